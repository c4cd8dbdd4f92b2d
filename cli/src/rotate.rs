//! `joinkeeper rotate --cluster C [--revoke-all]`: a new token now, through the functions' own
//! single-flight regeneration ([`joinkeeper::regenerate::force_regenerate`]), and optionally every
//! older joinkeeper token revoked, for a suspected leak, with the Nodes that joined with a revoked
//! token and that no instance stands behind ([`joinkeeper::rogue::leaked`]).

use std::io::{self, Write};
use std::time::Duration;

use serde::Serialize;

use joinkeeper::deadline::Deadline;
use joinkeeper::names::ClusterName;
use joinkeeper::regenerate::{force_regenerate, RegenerateError};
use joinkeeper::rogue::leaked::{self, LeakCheck};
use joinkeeper::rogue::Mode;
use joinkeeper::timefmt::rfc3339;
use joinkeeper::{Context, Invocation, Trigger};

use crate::status::control_planes;
use crate::{human, CliError};

/// How long a rotation may take, waits for another regeneration included.
const BUDGET: Duration = Duration::from_secs(900);

#[derive(Clone, Debug, Serialize)]
pub struct Rotated {
    pub cluster: String,
    pub token_id: String,
    pub expires_at: String,
    pub remaining_seconds: u64,
    /// The control plane that minted the token (and revoked the others).
    pub control_plane: String,
    /// The record's state before (`fresh`, `expires-soon`, `missing`, ...).
    pub previous_state: &'static str,
    /// With `--revoke-all`: the tokens deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Vec<String>>,
    /// With `--revoke-all`: the Nodes that joined with a revoked token and that no instance of
    /// the cluster stands behind, and what was done about them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaked_nodes: Option<LeakCheck>,
    /// Why they could not be checked (the rotation itself stands; the exit code says failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leak_error: Option<String>,
}

/// Refuses when no control plane is reachable; otherwise regenerates (and revokes) under the
/// cluster's regenerate lease.
pub async fn rotate(
    ctx: &Context,
    cluster: &ClusterName,
    revoke_document: Option<&str>,
    leaked: Mode,
    request_id: &str,
) -> Result<Rotated, CliError> {
    let planes = control_planes(ctx, cluster).await?.genuine;
    if !planes.iter().any(|c| c.reachable) {
        return Err(unreachable(cluster, &planes));
    }
    let inv = Invocation::new(request_id, Deadline::after(BUDGET)).with_trigger(Trigger::Operator);
    let r = force_regenerate(ctx, cluster, &inv, revoke_document)
        .await
        .map_err(|e| match e {
            RegenerateError::NoControlPlane { .. } => unreachable(cluster, &planes),
            RegenerateError::Aws { source, .. } => CliError::from(source),
            RegenerateError::RevokeFailed { .. } => CliError::Failed(format!(
                "{e}; run `joinkeeper rotate --cluster {cluster} --revoke-all` again"
            )),
            other => CliError::Failed(other.to_string()),
        })?;
    let (leaked_nodes, leak_error) = match &r.revoked {
        None => (None, None),
        Some(rev) => {
            let facts = (&rev.joins, rev.token_ids.as_slice());
            match leaked::check(ctx, cluster, &r.instance, facts, leaked, &inv).await {
                Ok(found) => (Some(found), None),
                Err(e) => (None, Some(format!(
                    "the tokens were revoked, but the Nodes that joined with them were not checked: {e}; run `joinkeeper rotate --cluster {cluster} --revoke-all` again"
                ))),
            }
        }
    };
    Ok(Rotated {
        leaked_nodes,
        leak_error,
        cluster: cluster.to_string(),
        token_id: r.summary.token_id.clone(),
        expires_at: rfc3339(r.summary.expires_at),
        remaining_seconds: r.summary.remaining.as_secs(),
        control_plane: r.instance.to_string(),
        previous_state: r.before.label(),
        revoked: r.revoked.map(|v| v.token_ids),
    })
}

fn unreachable(cluster: &ClusterName, planes: &[crate::status::ControlPlane]) -> CliError {
    let seen = if planes.is_empty() {
        "no instance tagged joinkeeper:role=control-plane has the cluster's control-plane instance profile".to_owned()
    } else {
        planes
            .iter()
            .map(|c| {
                let ssm = if c.ssm_online {
                    "SSM agent online"
                } else {
                    "SSM agent not online"
                };
                format!("{} {}, {ssm}", c.instance, c.state)
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    CliError::Unreachable(format!(
        "refusing to rotate cluster {cluster}: no control plane is running with its SSM agent online ({seen}); the join record was left as it was"
    ))
}

pub fn render(r: &Rotated, json: bool, out: &mut dyn Write) -> io::Result<()> {
    if json {
        return writeln!(out, "{}", serde_json::to_string_pretty(r)?);
    }
    writeln!(
        out,
        "rotated cluster {}: new token {}, expires {} (in {}), minted on {} (the record was {})",
        r.cluster,
        r.token_id,
        r.expires_at,
        human(r.remaining_seconds),
        r.control_plane,
        r.previous_state
    )?;
    if let Some(revoked) = &r.revoked {
        let list = if revoked.is_empty() {
            "none left".to_owned()
        } else {
            revoked.join(", ")
        };
        writeln!(
            out,
            "revoked {} older joinkeeper token(s) on {}: {list}; only {} remains",
            revoked.len(),
            r.control_plane,
            r.token_id
        )?;
    }
    if let Some(check) = &r.leaked_nodes {
        render_leaked(check, out)?;
    }
    Ok(())
}

/// The Nodes that joined with a revoked token, for people; the limits of what could be seen.
fn render_leaked(c: &LeakCheck, out: &mut dyn Write) -> io::Result<()> {
    if !c.joins_known {
        return writeln!(
            out,
            "which Nodes joined with the revoked tokens is unknown: the control plane could not read the certificate signing requests; look at the rogue check's Nodes (docs/operating.md)"
        );
    }
    writeln!(
        out,
        "{} recent join(s) used a revoked token (kubelet CSRs are kept about an hour: older joins are not seen); {} Node(s) among them with no instance of the cluster behind (mode {}):",
        c.joins_with_revoked_tokens,
        c.nodes.len(),
        c.mode
    )?;
    for n in &c.nodes {
        writeln!(
            out,
            "  {}  token {}  {}: {}",
            n.node, n.token_id, n.action, n.reason
        )?;
    }
    if c.joins_left_out > 0 || !c.listing_complete {
        writeln!(
            out,
            "incomplete: {} join(s) not reported by the control plane, Node listing complete: {}; run again after acting",
            c.joins_left_out, c.listing_complete
        )?;
    }
    Ok(())
}
