//! Single-flight regeneration of a cluster's join record.
//!
//! However many callers find the record stale at once (the schedule, reconcilers, the CLI), one
//! regeneration per cluster runs, under the lease `<prefix>/<cluster>/leases/regenerate`
//! ([`crate::lease`]):
//!
//! 1. **Read** the record's meta (never the secret). Fresh enough: done.
//! 2. **Lease.** Acquire the lease; a caller that cannot waits for the holder's result, bounded
//!    by its own invocation's deadline.
//! 3. **Double check** under the lease: a regeneration may have finished meanwhile.
//! 4. **Run** the regenerate document on the first reachable control plane (failing over to the
//!    next), recording the command in the lease and renewing it before each attempt.
//! 5. **Verify**: the record's version grew and the new meta says it is fresh.
//! 6. **Release.** A holder whose invocation ran out of time keeps the lease (its command may
//!    still finish); whoever takes the lease over after it expires cancels that command if it is
//!    still running, past its own deadline.

use std::time::Duration;

use time::OffsetDateTime;
use tracing::{info, warn};

use crate::aws::run_command::{CommandRequest, Progress, RunCommandError};
use crate::aws::AwsCallError;
use crate::context::{Context, Invocation};
use crate::freshness::{decide, Freshness, StoredRecord};
use crate::lease::{Acquire, Held, LeaseValue};
use crate::names::{ClusterName, InstanceId};

/// What a record looks like in logs: never the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordSummary {
    pub token_id: String,
    pub expires_at: OffsetDateTime,
    pub remaining: Duration,
    pub version: i64,
}

/// How the record came to be fresh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ensured {
    AlreadyFresh(RecordSummary),
    Regenerated {
        summary: RecordSummary,
        instance: InstanceId,
        reason: Freshness,
    },
    RegeneratedElsewhere(RecordSummary),
}

impl Ensured {
    pub fn summary(&self) -> &RecordSummary {
        match self {
            Ensured::AlreadyFresh(s) | Ensured::RegeneratedElsewhere(s) => s,
            Ensured::Regenerated { summary, .. } => summary,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RegenerateError {
    #[error("cluster {cluster}: no control-plane instance is running with its SSM agent online; the join record was left as it was")]
    NoControlPlane { cluster: ClusterName },
    #[error("cluster {cluster}: regeneration failed on every control-plane instance: {}", attempts.join("; "))]
    AllCandidatesFailed {
        cluster: ClusterName,
        attempts: Vec<String>,
    },
    #[error("cluster {cluster}: the invocation's deadline came before the regeneration ended ({detail}); the next caller picks it up")]
    OutOfTime {
        cluster: ClusterName,
        detail: String,
    },
    #[error("cluster {cluster}: {source}")]
    Aws {
        cluster: ClusterName,
        source: AwsCallError,
    },
}

/// The record's state, from its meta: the verdict and a summary when there is a record.
#[derive(Clone, Debug)]
pub struct RecordState {
    pub verdict: Freshness,
    pub summary: Option<RecordSummary>,
    pub version: Option<i64>,
}

/// Reads the cluster's record meta and judges it against `required`.
pub async fn record_state(
    ctx: &Context,
    cluster: &ClusterName,
    required: Duration,
) -> Result<RecordState, AwsCallError> {
    let read = ctx
        .parameters
        .read_record(
            &ctx.config.meta_parameter(cluster),
            &ctx.config.record_parameter(cluster),
        )
        .await?;
    let now = OffsetDateTime::now_utc();
    let verdict = decide(&read.stored, now, required);
    let summary = match &read.stored {
        StoredRecord::Present(m) => Some(RecordSummary {
            token_id: m.token_id.clone(),
            expires_at: m.expires_at,
            remaining: Duration::try_from(m.expires_at - now).unwrap_or(Duration::ZERO),
            version: read.version.unwrap_or_default(),
        }),
        _ => None,
    };
    Ok(RecordState {
        verdict,
        summary,
        version: read.version,
    })
}

/// How long the regenerate lease is honoured: one command's deadline plus room for the calls
/// around it. A holder renews before each control plane it tries.
fn lease_ttl(ctx: &Context) -> Duration {
    ctx.config.command_deadline + Duration::from_secs(30)
}

/// Makes sure the cluster's record stays valid for at least `required`, regenerating it
/// (single-flight) when it does not. Every wait is bounded by the invocation's deadline.
pub async fn ensure_fresh(
    ctx: &Context,
    cluster: &ClusterName,
    required: Duration,
    inv: &Invocation,
) -> Result<Ensured, RegenerateError> {
    let aws = |source| RegenerateError::Aws {
        cluster: cluster.clone(),
        source,
    };
    let lease_name = ctx.config.lease_parameter(cluster, "regenerate");
    let mut waited = false;
    loop {
        let state = record_state(ctx, cluster, required).await.map_err(aws)?;
        if let (Freshness::Fresh { .. }, Some(s)) = (&state.verdict, state.summary.clone()) {
            return Ok(if waited {
                Ensured::RegeneratedElsewhere(s)
            } else {
                Ensured::AlreadyFresh(s)
            });
        }
        if !waited {
            info!(cluster = %cluster, reason = state.verdict.label(), detail = ?state.verdict, "join record needs regeneration");
        }
        let value = LeaseValue {
            request_id: inv.request_id.clone(),
            ..Default::default()
        };
        match ctx
            .leases
            .try_acquire(&lease_name, lease_ttl(ctx), value)
            .await
            .map_err(aws)?
        {
            Acquire::Held(held) => {
                return regenerate_holding(ctx, cluster, held, required, state, inv).await;
            }
            Acquire::Busy(holder) => {
                waited = true;
                let by = holder.map(|h| h.request_id).unwrap_or_default();
                if !inv.deadline.sleep(ctx.config.command_poll).await {
                    return Err(RegenerateError::OutOfTime {
                        cluster: cluster.clone(),
                        detail: format!("another caller ({by}) was still regenerating"),
                    });
                }
            }
        }
    }
}

async fn regenerate_holding(
    ctx: &Context,
    cluster: &ClusterName,
    mut held: Held,
    required: Duration,
    before: RecordState,
    inv: &Invocation,
) -> Result<Ensured, RegenerateError> {
    let aws = |source| RegenerateError::Aws {
        cluster: cluster.clone(),
        source,
    };
    // A command of a holder that died may still be running past its deadline: stop it first.
    if let Some(previous) = held.previous.take() {
        stop_orphaned_command(ctx, &previous).await;
    }
    let result = run_on_candidates(ctx, cluster, &mut held, required, before, inv).await;
    let keep = matches!(result, Err(RegenerateError::OutOfTime { .. }));
    if !keep {
        if let Err(err) = ctx.leases.release(held).await {
            warn!(cluster = %cluster, error = %err, "could not release the regenerate lease; it expires by itself");
        }
    }
    result.map_err(|e| match e {
        RegenerateError::Aws { source, .. } => aws(source),
        other => other,
    })
}

async fn stop_orphaned_command(ctx: &Context, previous: &LeaseValue) {
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

async fn run_on_candidates(
    ctx: &Context,
    cluster: &ClusterName,
    held: &mut Held,
    required: Duration,
    before: RecordState,
    inv: &Invocation,
) -> Result<Ensured, RegenerateError> {
    let aws = |source| RegenerateError::Aws {
        cluster: cluster.clone(),
        source,
    };
    // Double check under the lease.
    let now = record_state(ctx, cluster, required).await.map_err(aws)?;
    if let (Freshness::Fresh { .. }, Some(s)) = (&now.verdict, now.summary.clone()) {
        return Ok(Ensured::RegeneratedElsewhere(s));
    }
    let candidates = ctx
        .fleet
        .control_plane_candidates(cluster)
        .await
        .map_err(aws)?;
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
        let outcome = match ctx.runner.send(&request).await {
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
