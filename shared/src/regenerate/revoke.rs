//! Revoking older tokens after an operator's rotation, on the control plane that minted the
//! new one, while the regenerate lease is still held.

use std::time::Duration;

use super::*;

/// Runs the revoke document on the control plane that just regenerated, still under the lease:
/// every joinkeeper token of the cluster except the new record's is deleted.
pub(super) async fn revoke_older(
    ctx: &Context,
    cluster: &ClusterName,
    held: &mut Held,
    ensured: &Ensured,
    document: &str,
    inv: &Invocation,
) -> Result<Revoked, RegenerateError> {
    let Ensured::Regenerated {
        summary, instance, ..
    } = ensured
    else {
        return Ok(Revoked::default());
    };
    let failed = |detail: String| RegenerateError::RevokeFailed {
        cluster: cluster.clone(),
        token_id: summary.token_id.clone(),
        instance: instance.clone(),
        detail,
    };
    match ctx.leases.renew(held, lease_ttl(ctx)).await {
        Ok(true) => {}
        Ok(false) => {
            return Err(failed(
                "the regenerate lease ran out before revoking".into(),
            ))
        }
        Err(err) => return Err(failed(err.to_string())),
    }
    let request = CommandRequest {
        cluster: cluster.as_str(),
        instance,
        document,
        parameters: vec![
            ("ClusterName", cluster.to_string()),
            ("ParameterPrefix", ctx.config.parameter_prefix.clone()),
            ("KeepTokenId", summary.token_id.clone()),
        ],
        comment: format!("joinkeeper: revoke the older join tokens of {cluster}"),
    };
    let lease_left =
        Duration::from_millis((held.value.expires_at_ms - crate::lease::now_ms()).max(0) as u64)
            .saturating_sub(crate::lease::GUARD);
    let out = ctx
        .run_command(request, &inv.deadline.within(lease_left))
        .await
        .map_err(|e| failed(e.to_string()))?;
    let revoked = parse_revoke_output(&out.stdout).map_err(failed)?;
    if revoked.kept != summary.token_id {
        return Err(failed(format!(
            "the control plane kept token {} instead of {}",
            revoked.kept, summary.token_id
        )));
    }
    info!(cluster = %cluster, instance = %instance, kept = %revoked.kept, revoked = ?revoked.token_ids, "older join tokens revoked");
    Ok(revoked)
}

/// The revoke document's output: `revoked token_id=<id>` lines, the joins
/// ([`crate::nodes::joins::parse_joins`]), then the last line
/// `revoke-tokens cluster=<C> kept=<id> revoked=<n>` (never a secret).
pub fn parse_revoke_output(stdout: &str) -> Result<Revoked, String> {
    let is_id = crate::nodes::joins::token_id_ok;
    let mut token_ids = Vec::new();
    let mut summary = None;
    for line in stdout.lines() {
        if let Some(id) = line.strip_prefix("revoked token_id=") {
            if is_id(id.trim()) {
                token_ids.push(id.trim().to_owned());
            }
        } else if line.starts_with("revoke-tokens ") {
            let field = |key: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(key))
                    .map(str::to_owned)
            };
            summary = Some((field("kept="), field("revoked=")));
        }
    }
    let Some((Some(kept), Some(count))) = summary else {
        return Err("the revoke document printed no summary line".into());
    };
    if !is_id(&kept) {
        return Err("the revoke document named no valid kept token".into());
    }
    if count.parse::<usize>().ok() != Some(token_ids.len()) {
        return Err(format!(
            "the revoke document reported {count} revoked tokens but listed {}",
            token_ids.len()
        ));
    }
    Ok(Revoked {
        kept,
        token_ids,
        joins: crate::nodes::joins::parse_joins(stdout),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoke_output() {
        let out = "revoked token_id=aaaaaa\nrevoked token_id=bbbbbb\nrevoke-tokens cluster=demo kept=cccccc revoked=2\n";
        let r = parse_revoke_output(out).expect("valid");
        assert_eq!(r.kept, "cccccc");
        assert_eq!(r.token_ids, vec!["aaaaaa", "bbbbbb"]);
        let none = parse_revoke_output("revoke-tokens cluster=demo kept=cccccc revoked=0\n");
        assert_eq!(none.map(|r| r.token_ids.len()), Ok(0));
        assert!(parse_revoke_output("revoked token_id=aaaaaa\n").is_err());
        assert!(parse_revoke_output("revoke-tokens cluster=demo kept=cccccc revoked=3\n").is_err());
        assert!(parse_revoke_output("revoke-tokens cluster=demo kept=ABC;rm revoked=0\n").is_err());
    }
}
