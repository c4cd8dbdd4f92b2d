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
//!
//! An operator's rotation ([`force_regenerate`], `joinkeeper rotate`) takes the same lease and
//! skips the freshness checks; with revocation it then runs the revoke document on the control
//! plane that regenerated, still holding the lease, so no other regeneration can mint a token
//! between the new record and the revocation.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::aws::run_command::{CommandRequest, Progress, RunCommandError};
use crate::aws::AwsCallError;
use crate::context::{Context, Invocation};
use crate::freshness::{decide, Freshness, StoredRecord};
use crate::lease::{Acquire, Held, LeaseValue};

mod revoke;
mod run;

use crate::names::{ClusterName, InstanceId};
pub use revoke::parse_revoke_output;
use revoke::revoke_older;
use run::{run_on_candidates, stop_orphaned_command};

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
    #[error("cluster {cluster}: the new record was written (token {token_id}), but revoking the older tokens failed on {instance}: {detail}")]
    RevokeFailed {
        cluster: ClusterName,
        token_id: String,
        instance: InstanceId,
        detail: String,
    },
}

/// An operator's rotation: the new record, where it was minted, and what was revoked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotation {
    pub summary: RecordSummary,
    pub instance: InstanceId,
    /// The record's state before the rotation.
    pub before: Freshness,
    /// With revocation: the older joinkeeper tokens deleted on the control plane.
    pub revoked: Option<Revoked>,
}

/// What the revoke document reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Revoked {
    /// The current record's token, kept.
    pub kept: String,
    pub token_ids: Vec<String>,
    /// Which token each recent Node joined with (from the kubelets' bootstrap CSRs).
    pub joins: crate::nodes::joins::Joins,
}

/// What a regeneration under the lease is asked to do.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Job<'a> {
    /// The new record must stay valid at least this long.
    required: Duration,
    /// Regenerate even when the record is fresh (skip the double check).
    force: bool,
    /// Then run this revoke document on the same control plane.
    revoke_document: Option<&'a str>,
}

/// The record's state, from its meta: the verdict and a summary when there is a record.
#[derive(Clone, Debug)]
pub struct RecordState {
    pub verdict: Freshness,
    pub summary: Option<RecordSummary>,
    pub version: Option<i64>,
    /// The meta itself, when it is valid and describes the current record.
    pub meta: Option<crate::meta::RecordMeta>,
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
        meta: match read.stored {
            StoredRecord::Present(m) => Some(m),
            _ => None,
        },
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
        match acquire_or_wait(ctx, cluster, inv).await? {
            Some(held) => {
                let job = Job {
                    required,
                    force: false,
                    revoke_document: None,
                };
                return regenerate_holding(ctx, cluster, held, job, state, inv)
                    .await
                    .map(|(ensured, _)| ensured);
            }
            None => waited = true,
        }
    }
}

/// One attempt at the regenerate lease. `None`: another caller holds it and this one waited a
/// poll interval (try again); out of time when the invocation's deadline comes first.
async fn acquire_or_wait(
    ctx: &Context,
    cluster: &ClusterName,
    inv: &Invocation,
) -> Result<Option<Held>, RegenerateError> {
    let value = LeaseValue {
        request_id: inv.request_id.clone(),
        ..Default::default()
    };
    let name = ctx.config.lease_parameter(cluster, "regenerate");
    match ctx
        .leases
        .try_acquire(&name, lease_ttl(ctx), value)
        .await
        .map_err(|source| RegenerateError::Aws {
            cluster: cluster.clone(),
            source,
        })? {
        Acquire::Held(held) => Ok(Some(held)),
        Acquire::Busy(holder) => {
            if inv.deadline.sleep(ctx.config.command_poll).await {
                return Ok(None);
            }
            let by = holder.map(|h| h.request_id).unwrap_or_default();
            Err(RegenerateError::OutOfTime {
                cluster: cluster.clone(),
                detail: format!("another caller ({by}) was still regenerating"),
            })
        }
    }
}

/// Regenerates now, whatever the record's freshness (an operator's rotation after a suspected
/// leak), under the same lease as [`ensure_fresh`]: a caller holding it is waited for, bounded by
/// the invocation's deadline. With `revoke_document`, that document then runs on the control
/// plane that regenerated, still under the lease, and deletes every older joinkeeper token.
pub async fn force_regenerate(
    ctx: &Context,
    cluster: &ClusterName,
    inv: &Invocation,
    revoke_document: Option<&str>,
) -> Result<Rotation, RegenerateError> {
    let aws = |source| RegenerateError::Aws {
        cluster: cluster.clone(),
        source,
    };
    let held = loop {
        if let Some(held) = acquire_or_wait(ctx, cluster, inv).await? {
            break held;
        }
    };
    let job = Job {
        required: ctx.config.refresh_margin,
        force: true,
        revoke_document,
    };
    let before = match record_state(ctx, cluster, job.required).await {
        Ok(b) => b,
        Err(err) => {
            let _ = ctx.leases.release(held).await;
            return Err(aws(err));
        }
    };
    let verdict = before.verdict.clone();
    match regenerate_holding(ctx, cluster, held, job, before, inv).await? {
        (
            Ensured::Regenerated {
                summary, instance, ..
            },
            revoked,
        ) => Ok(Rotation {
            summary,
            instance,
            before: verdict,
            revoked,
        }),
        // A forced run never stops at "fresh"; kept total without a panic.
        (other, _) => Err(RegenerateError::AllCandidatesFailed {
            cluster: cluster.clone(),
            attempts: vec![format!(
                "unexpected: no regeneration ran (token {})",
                other.summary().token_id
            )],
        }),
    }
}

async fn regenerate_holding(
    ctx: &Context,
    cluster: &ClusterName,
    mut held: Held,
    job: Job<'_>,
    before: RecordState,
    inv: &Invocation,
) -> Result<(Ensured, Option<Revoked>), RegenerateError> {
    let aws = |source| RegenerateError::Aws {
        cluster: cluster.clone(),
        source,
    };
    // A command of a holder that died may still be running past its deadline: stop it first.
    if let Some(previous) = held.previous.take() {
        stop_orphaned_command(ctx, &previous).await;
    }
    let started = Instant::now();
    let reason = if job.force {
        "forced"
    } else {
        before.verdict.label()
    };
    let result = run_on_candidates(ctx, cluster, &mut held, job, before, inv).await;
    match &result {
        Ok(Ensured::Regenerated { instance, .. }) => {
            ctx.metrics.record(crate::metrics::regeneration(
                cluster.as_str(),
                Some(started.elapsed().as_millis() as u64),
                reason,
                inv.trigger.label(),
                Some(instance.as_str()),
            ))
        }
        Ok(_) | Err(RegenerateError::OutOfTime { .. }) => {}
        Err(_) => ctx.metrics.record(crate::metrics::regeneration(
            cluster.as_str(),
            None,
            reason,
            inv.trigger.label(),
            None,
        )),
    }
    let result = match (result, job.revoke_document) {
        (Ok(ensured @ Ensured::Regenerated { .. }), Some(document)) => {
            revoke_older(ctx, cluster, &mut held, &ensured, document, inv)
                .await
                .map(|revoked| (ensured, Some(revoked)))
        }
        (other, _) => other.map(|ensured| (ensured, None)),
    };
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
