//! The three triggers, each a thin layer over [`crate::reconcile`] and [`crate::refresh`]:
//! validate the event, find the cluster, reconcile it. Errors are classed for Lambda's
//! `Diagnostic` (bad event, AWS call). A scheduled run never fails for one cluster's failure.

use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn, Instrument};

use crate::aws::AwsCallError;
use crate::context::{Context, Invocation};
use crate::lifecycle::{parse_event, LifecycleEvent, Transition};
use crate::names::ClusterName;
use crate::queue::GroupStanding;
use crate::reconcile::{reconcile, ReconcileOutcome};
use crate::refresh::{refresh_clusters, RefreshSummary};

/// Why an invocation failed, one class per cause (Lambda's `errorType`).
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("bad event: {0}")]
    BadEvent(String),
    #[error(transparent)]
    Aws(#[from] AwsCallError),
}

impl HandlerError {
    pub fn error_type(&self) -> &'static str {
        match self {
            HandlerError::BadEvent(_) => "joinkeeper.BadEvent",
            HandlerError::Aws(e) if e.is_throttling() => "joinkeeper.Throttled",
            HandlerError::Aws(_) => "joinkeeper.AwsCall",
        }
    }
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.error_type().to_owned(),
            error_message: e.to_string(),
        }
    }
}

/// The answer to a lifecycle event.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "handled", rename_all = "kebab-case")]
pub enum LifecycleResponse {
    /// Not joinkeeper's (another source, another tool's hook, an unmanaged group).
    Ignored { reason: String },
    Reconciled {
        instance: String,
        #[serde(flatten)]
        outcome: ReconcileOutcome,
    },
}

/// The answer to a lifecycle function's invocation: a bare event's, or a queue batch's.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum LifecycleDelivery {
    Event(LifecycleResponse),
    Batch(crate::batch::BatchAnswer),
    /// An exit event without a hook ([`crate::exits`]).
    Exit(crate::exits::handle::ExitAnswer),
}

/// A lifecycle function's whole handler: an SQS batch from the queue (the deployed path), or a
/// bare EventBridge event (a direct invocation, `events/`, an older rule still targeting the
/// function).
pub async fn handle_lifecycle_delivery(
    ctx: &Context,
    payload: &Value,
    expected: Transition,
    inv: &Invocation,
) -> Result<LifecycleDelivery, HandlerError> {
    if crate::exits::event::is_exit_event(payload) {
        // EC2's and AWS Health's exit events come by a direct rule (no batching: a Spot warning
        // leaves two minutes).
        let answer = crate::exits::handle::handle_exit(ctx, payload, inv)
            .await
            .map_err(|e| match e {
                crate::exits::handle::ExitError::Aws(a) => HandlerError::Aws(a),
                bad => HandlerError::BadEvent(bad.to_string()),
            })?;
        return Ok(LifecycleDelivery::Exit(answer));
    }
    if crate::queue::is_sqs_batch(payload) {
        return Ok(LifecycleDelivery::Batch(
            crate::batch::handle_batch(ctx, payload, inv)
                .await
                .map_err(|e| HandlerError::BadEvent(e.to_string()))?,
        ));
    }
    Ok(LifecycleDelivery::Event(
        handle_lifecycle(ctx, payload, expected, inv).await?,
    ))
}

/// A launch or terminate lifecycle event: reconcile the cluster of the event's group.
pub async fn handle_lifecycle(
    ctx: &Context,
    payload: &Value,
    expected: Transition,
    inv: &Invocation,
) -> Result<LifecycleResponse, HandlerError> {
    let action = match parse_event(payload, &ctx.config.hook_prefix)
        .map_err(|e| HandlerError::BadEvent(e.to_string()))?
    {
        LifecycleEvent::Ignored { reason } => {
            info!(reason = %reason, "event ignored");
            return Ok(LifecycleResponse::Ignored { reason });
        }
        LifecycleEvent::Action(a) if a.transition != expected => {
            return Err(HandlerError::BadEvent(format!(
                "a {:?} action sent to the {expected:?} handler",
                a.transition
            )))
        }
        LifecycleEvent::Action(a) => a,
    };
    let span = tracing::info_span!("lifecycle", group = %action.group, instance = %action.instance);
    lifecycle_for(ctx, &action, inv).instrument(span).await
}

async fn lifecycle_for(
    ctx: &Context,
    action: &crate::lifecycle::LifecycleAction,
    inv: &Invocation,
) -> Result<LifecycleResponse, HandlerError> {
    let found = ctx
        .asg
        .group_labels(std::slice::from_ref(&action.group))
        .await?;
    let cluster = match crate::queue::standing_of(found.first()) {
        GroupStanding::Cluster(c) => c,
        GroupStanding::NotManaged(reason) => return Ok(LifecycleResponse::Ignored { reason }),
    };
    let outcome = reconcile(ctx, &cluster, inv).await?;
    Ok(LifecycleResponse::Reconciled {
        instance: action.instance.to_string(),
        outcome,
    })
}

/// The answer to the schedule.
#[derive(Clone, Debug, Serialize)]
pub struct ScheduledResponse {
    pub refresh: RefreshSummary,
    pub reconcile: Vec<ReconcileOutcome>,
    /// Each cluster's rogue check: its mode, whether its Node listing was complete, and the
    /// Nodes no instance of the cluster stands behind alone (reported, or acted on).
    pub rogue_checks: Vec<crate::rogue::RogueCheck>,
    pub leftovers_removed: usize,
}

/// The schedule: keep every record valid, reconcile every cluster with worker groups (the
/// safety net for lost events), clean up leftover lease parameters.
pub async fn handle_schedule(
    ctx: &Context,
    payload: &Value,
    inv: &Invocation,
) -> Result<ScheduledResponse, HandlerError> {
    let event = crate::events::parse_scheduled(payload)
        .map_err(|e| HandlerError::BadEvent(e.to_string()))?;
    info!(event_id = %event.id, event_time = %event.time, "scheduled run started");
    // What this run completes, it completes as the sweep (metrics tell it from events).
    let inv = &inv.clone().with_trigger(crate::context::Trigger::Schedule);
    // One listing of the groups and one of the instances serve discovery, the reconcilers and
    // the rogue check's choice of control plane.
    let (groups, scan) = ctx.discover().await?;
    let refresh = refresh_clusters(ctx, &scan, inv).await;
    let mut clusters: Vec<ClusterName> = groups
        .groups
        .into_iter()
        .filter(|g| g.is_worker_group)
        .filter_map(|g| g.cluster.ok())
        .collect();
    clusters.sort();
    clusters.dedup();
    let runs = clusters.iter().map(|c| async move {
        match reconcile(ctx, c, inv).await {
            Ok(o) => Some(o),
            Err(err) => {
                warn!(cluster = %c, error = %err, "reconcile failed; the next trigger tries again");
                None
            }
        }
    });
    let reconciled: Vec<ReconcileOutcome> = futures_util::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect();
    let mut rogue_checks = Vec::new();
    for c in refresh
        .clusters
        .iter()
        .filter_map(|r| ClusterName::parse(&r.cluster).ok())
    {
        if inv.deadline.is_near(std::time::Duration::from_secs(30)) {
            break;
        }
        let tagged = scan
            .running_control_planes
            .get(&c)
            .cloned()
            .unwrap_or_default();
        let running = ctx.identify(&c, tagged).ids();
        rogue_checks.extend(crate::rogue::check(ctx, &c, running, inv).await);
    }
    let mut leftovers_removed = 0;
    for c in refresh
        .clusters
        .iter()
        .filter_map(|r| ClusterName::parse(&r.cluster).ok())
    {
        match ctx.leases.cleanup(&ctx.config.lease_path(&c)).await {
            Ok(n) => leftovers_removed += n,
            Err(err) => warn!(cluster = %c, error = %err, "could not clean up leftover leases"),
        }
    }
    // A cluster that failed is reported (the `RefreshFailures` metric and its alarm, the log
    // line, this response), never returned as the invocation's error: Lambda would run the whole
    // sweep again, twice, repeating every other cluster's work; the next schedule retries it.
    let failed = refresh.failed();
    if failed > 0 {
        warn!(
            failed,
            clusters = refresh.clusters.len(),
            "some clusters failed to refresh; the next scheduled run tries them again"
        );
    }
    Ok(ScheduledResponse {
        refresh,
        reconcile: reconciled,
        rogue_checks,
        leftovers_removed,
    })
}
