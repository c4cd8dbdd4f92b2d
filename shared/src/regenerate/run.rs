//! Running the regenerate document under the lease: failover across control planes, the
//! command recorded in the lease, the result verified; a dead holder's command stopped.

use std::time::Duration;

use tracing::warn;

use super::*;

pub(super) async fn stop_orphaned_command(ctx: &Context, previous: &LeaseValue) {
    let Ok(instance) = InstanceId::parse(&previous.instance_id) else {
        return;
    };
    if previous.command_id.is_empty() {
        return;
    }
    if let Ok((Progress::Waiting, _)) = ctx.runner.poll_once(&instance, &previous.command_id).await
    {
        warn!(command_id = %previous.command_id, instance = %instance, "cancelling a regeneration left running by a caller that died");
        ctx.runner.cancel(&instance, &previous.command_id).await;
    }
}

pub(super) async fn run_on_candidates(
    ctx: &Context,
    cluster: &ClusterName,
    held: &mut Held,
    job: Job<'_>,
    before: RecordState,
    inv: &Invocation,
) -> Result<Ensured, RegenerateError> {
    let aws = |source| RegenerateError::Aws {
        cluster: cluster.clone(),
        source,
    };
    let required = job.required;
    // Double check under the lease (an operator's rotation regenerates whatever it finds).
    let now = record_state(ctx, cluster, required).await.map_err(aws)?;
    if let (Freshness::Fresh { .. }, Some(s), false) =
        (&now.verdict, now.summary.clone(), job.force)
    {
        return Ok(Ensured::RegeneratedElsewhere(s));
    }
    let candidates = ctx.control_plane_candidates(cluster).await.map_err(aws)?;
    if candidates.is_empty() {
        return Err(RegenerateError::NoControlPlane {
            cluster: cluster.clone(),
        });
    }
    let mut attempts = Vec::new();
    for instance in &candidates {
        let out_of_time = |detail: String| RegenerateError::OutOfTime {
            cluster: cluster.clone(),
            detail,
        };
        if inv.deadline.is_near(Duration::from_secs(10))
            || !ctx.leases.renew(held, lease_ttl(ctx)).await.map_err(aws)?
        {
            return Err(out_of_time("before trying the next control plane".into()));
        }
        let request = CommandRequest {
            cluster: cluster.as_str(),
            instance,
            document: &ctx.config.documents.regenerate,
            parameters: vec![
                ("ClusterName", cluster.to_string()),
                ("ParameterPrefix", ctx.config.parameter_prefix.clone()),
                (
                    "TokenTtlSeconds",
                    ctx.config.token_ttl.as_secs().to_string(),
                ),
            ],
            comment: format!("joinkeeper: regenerate the join record of {cluster}"),
        };
        // The lease's own validity bounds the wait as much as the invocation does.
        let lease_left = ctx.leases.time_left(held);
        let bound = inv.deadline.within(lease_left);
        let outcome = match ctx.send_command(&request).await {
            Ok(command_id) => {
                // Only an aid for a later takeover; failing to record it is harmless.
                let _ = ctx
                    .leases
                    .note_command(held, &command_id, instance.as_str())
                    .await;
                ctx.runner.wait(instance, &command_id, &bound).await
            }
            Err(err) => Err(err),
        };
        match outcome {
            Ok(_output) => match verify(ctx, cluster, before.version, required)
                .await
                .map_err(aws)?
            {
                Ok(summary) => {
                    return Ok(Ensured::Regenerated {
                        summary,
                        instance: instance.clone(),
                        reason: before.verdict,
                    })
                }
                Err(why) => {
                    warn!(cluster = %cluster, instance = %instance, reason = %why, "regeneration not verified; trying the next control plane");
                    attempts.push(format!("{instance}: {why}"));
                }
            },
            Err(RunCommandError::OutOfTime { command_id, .. }) => {
                return Err(out_of_time(format!("command {command_id} on {instance}")));
            }
            Err(RunCommandError::Aws(source)) => return Err(aws(source)),
            Err(err) => {
                warn!(cluster = %cluster, instance = %instance, error = %err, "regeneration failed on this control plane; trying the next");
                attempts.push(err.to_string());
            }
        }
    }
    Err(RegenerateError::AllCandidatesFailed {
        cluster: cluster.clone(),
        attempts,
    })
}

/// A new version of the record was written, and its meta says it is fresh for `required`.
async fn verify(
    ctx: &Context,
    cluster: &ClusterName,
    before: Option<i64>,
    required: Duration,
) -> Result<Result<RecordSummary, String>, AwsCallError> {
    let after = record_state(ctx, cluster, required).await?;
    if after.version.is_none() || after.version <= before {
        return Ok(Err(
            "the command succeeded but no new record was written".into()
        ));
    }
    Ok(match (after.verdict, after.summary) {
        (Freshness::Fresh { .. }, Some(s)) => Ok(s),
        (other, _) => Err(format!("the new record is not fresh: {}", other.label())),
    })
}
