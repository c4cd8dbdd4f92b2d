//! Instances leaving service (terminated, or back to the warm pool on scale-in) have their Node
//! cordoned, drained and deleted on a control plane before the action completes; drains run
//! across passes and invocations (see [`crate::reconcile::drain`]).

use tracing::warn;

use crate::aws::autoscaling::{Completion, Hook};
use crate::aws::AwsCallError;
use crate::context::Context;
use crate::lifecycle::{HookResult, NodeState};
use crate::names::{ClusterName, InstanceId};
use crate::reconcile::act;
use crate::reconcile::decide::{decide_terminate, DrainStatus, TerminateDecision, TerminateFacts};
use crate::reconcile::drain;
use crate::reconcile::gather::Waiting;
use crate::reconcile::memory::Memory;
use crate::reconcile::report::{ActionOutcome, ActionReport};

#[allow(clippy::too_many_arguments)]
pub async fn terminate(
    ctx: &Context,
    mem: &mut Memory,
    cluster: &ClusterName,
    w: &Waiting,
    hooks: &[&Hook],
    node: Option<NodeState>,
    candidates: &[InstanceId],
    request_id: &str,
) -> Result<ActionReport, AwsCallError> {
    let record = mem
        .drains
        .as_ref()
        .and_then(|d| d.get(&w.instance))
        .cloned();
    let (status, left) = match &record {
        Some(r) => drain::status(ctx, r).await,
        None => (DrainStatus::NotStarted, Vec::new()),
    };
    let facts = TerminateFacts {
        state: w.state,
        node,
        unreachable_for: mem.unreachable_for(&w.instance, node.is_some() || record.is_some()),
        drain: status.clone(),
        drain_timeout: ctx.config.drain_timeout,
        command_deadline: ctx.config.command_deadline,
    };
    let report = |outcome, reason: String| {
        ActionReport::new(
            cluster.as_str(),
            &w.group,
            &w.instance,
            w.state,
            outcome,
            reason,
        )
    };
    let decision = decide_terminate(&facts);
    let (outcome, reason) = match decision {
        TerminateDecision::Complete { reason } => {
            let clean = matches!(&status, DrainStatus::Finished { result } if result == "drained" || result == "absent")
                || node == Some(NodeState::Absent)
                || facts.state == crate::lifecycle::WaitState::WarmedTerminatingWait;
            let outcome = if clean {
                ActionOutcome::Drained
            } else {
                ActionOutcome::Completed
            };
            (finish(ctx, mem, cluster, w, hooks, outcome).await?, reason)
        }
        TerminateDecision::GiveUpDrain { reason } => {
            if let Some(r) = &record {
                drain::cancel(ctx, r).await;
            }
            warn!(cluster = %cluster, instance = %w.instance, "drain timed out; completing the action with the Node left in place");
            (
                finish(ctx, mem, cluster, w, hooks, ActionOutcome::Completed).await?,
                reason,
            )
        }
        TerminateDecision::StartDrain => {
            let r = drain::start(ctx, cluster, &w.instance, candidates, request_id).await?;
            let id = r.command_id.clone();
            mem.drains
                .get_or_insert_with(Default::default)
                .insert(w.instance.clone(), r);
            act::heartbeat_if_due(ctx, mem, w, hooks, None).await?;
            (
                ActionOutcome::DrainStarted,
                format!("drain command {id} sent"),
            )
        }
        TerminateDecision::Follow => {
            act::heartbeat_if_due(ctx, mem, w, hooks, None).await?;
            (ActionOutcome::Draining, "drain running".into())
        }
        TerminateDecision::Wait => {
            act::heartbeat_if_due(ctx, mem, w, hooks, None).await?;
            (
                ActionOutcome::Waiting,
                "control plane unreachable: the Node cannot be drained yet".into(),
            )
        }
    };
    let mut r = report(outcome, reason);
    r.left_pods = left;
    if matches!(outcome, ActionOutcome::Drained | ActionOutcome::Completed) {
        r.drain_seconds = record.as_ref().map(|d| drain::running_for(d).as_secs());
    }
    Ok(r)
}

/// Completes CONTINUE and forgets the drain record.
async fn finish(
    ctx: &Context,
    mem: &mut Memory,
    cluster: &ClusterName,
    w: &Waiting,
    hooks: &[&Hook],
    outcome: ActionOutcome,
) -> Result<ActionOutcome, AwsCallError> {
    // Back to the warm pool: the terminate hook holds it, so try that one first.
    let mut ordered: Vec<&Hook> = hooks.to_vec();
    ordered.sort_by_key(|h| h.transition != crate::lifecycle::Transition::Terminating);
    let done = act::complete(ctx, w, &ordered, HookResult::Continue).await?;
    if mem
        .drains
        .as_mut()
        .and_then(|d| d.remove(&w.instance))
        .is_some()
    {
        drain::forget(ctx, cluster, &w.instance).await;
    }
    Ok(match done {
        Completion::Completed => outcome,
        Completion::AlreadyDone => ActionOutcome::Skipped,
    })
}
