//! Instances leaving service (terminated, or back to the warm pool on scale-in) have their Node
//! cordoned, drained and deleted on a control plane before the action completes; drains run
//! across passes and invocations (see [`crate::reconcile::drain`]). A drain that did not delete
//! the Node of an instance on its way to termination leaves a record, and the Node is deleted
//! once the instance is gone ([`crate::reconcile::cleanup`]).

use tracing::warn;

use crate::aws::autoscaling::{Completion, Hook};
use crate::aws::AwsCallError;
use crate::context::Context;
use crate::lifecycle::{HookResult, NodeState, WaitState};
use crate::names::{ClusterName, InstanceId};
use crate::reconcile::act;
use crate::reconcile::decide::{decide_terminate, DrainStatus, TerminateDecision, TerminateFacts};
use crate::reconcile::drain::{self, Started};
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
    let (status, left, node_name) = match &record {
        // Left by this very action, whose completion then failed (throttled, lost): complete
        // again, keeping the record for the Node's deletion; never drain again.
        Some(r) if w.state == WaitState::TerminatingWait && r.left_node.is_some() => (
            DrainStatus::Finished {
                result: "failed (Node left in place)".into(),
            },
            r.blocked.clone(),
            r.left_node.clone(),
        ),
        Some(r) => drain::status(ctx, r).await,
        None => (DrainStatus::NotStarted, Vec::new(), None),
    };
    let active = record.as_ref().is_some_and(|r| r.left_node.is_none());
    if matches!(status, DrainStatus::Finished { .. }) {
        mem.drains_finished.insert(w.instance.clone());
    }
    let absent_for = mem.absent_for(&w.instance, node == Some(NodeState::Absent));
    let launched_lately = mem
        .facts
        .get(&w.instance)
        .and_then(|f| f.launched)
        .is_some_and(|at| crate::reconcile::launch::age_since(at) < ctx.config.join_deadline);
    let facts = TerminateFacts {
        state: w.state,
        node,
        unreachable_for: mem.unreachable_for(&w.instance, node.is_some() || active),
        drain: status.clone(),
        drain_timeout: ctx.config.drain_timeout,
        command_deadline: ctx.config.command_deadline,
        may_be_joining: launched_lately && absent_for < crate::reconcile::decide::JOIN_SETTLE,
        // A left record's delay was waited out before the action was first completed.
        labelled_for: record
            .as_ref()
            .filter(|_| active)
            .map_or(std::time::Duration::MAX, drain::running_for),
        deregistration_delay: ctx.config.deregistration_delay,
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
            let clean = status.is_clean()
                || node == Some(NodeState::Absent)
                || facts.state == WaitState::WarmedTerminatingWait;
            let outcome = if clean {
                ActionOutcome::Drained
            } else {
                ActionOutcome::Completed
            };
            let left_node = (!clean).then_some(node_name).flatten();
            let done = finish(ctx, mem, cluster, w, hooks, (left_node, &left), request_id).await?;
            (done.unwrap_or(outcome), reason)
        }
        TerminateDecision::GiveUpDrain { reason } => {
            if let Some(r) = &record {
                drain::cancel(ctx, r).await;
            }
            warn!(cluster = %cluster, instance = %w.instance, "drain given up; completing the action, the Node is deleted once the instance is gone");
            let done = finish(ctx, mem, cluster, w, hooks, (None, &[]), request_id).await?;
            (done.unwrap_or(ActionOutcome::Completed), reason)
        }
        TerminateDecision::Deregistering { result, left } => {
            act::heartbeat_if_due(ctx, mem, w, hooks, None).await?;
            (
                ActionOutcome::Waiting,
                format!(
                    "drain result: {result}; the instance stays {} s more for the load balancers' deregistration delay",
                    left.as_secs()
                ),
            )
        }
        TerminateDecision::StartDrain => {
            let records = mem.drains.get_or_insert_with(Default::default);
            let busy = drain::in_flight_per_control_plane(records, &mem.drains_finished);
            let room = drain::cluster_has_room(
                records,
                &mem.drains_finished,
                &w.instance,
                ctx.config.drain_concurrency,
            );
            let previous = record.as_ref().filter(|r| r.left_node.is_none());
            let started = if !room {
                Started::Queued
            } else {
                drain::start(
                    ctx,
                    cluster,
                    (
                        &w.instance,
                        mem.node_names.get(&w.instance).map(String::as_str),
                    ),
                    candidates,
                    &busy,
                    previous,
                    request_id,
                )
                .await?
            };
            act::heartbeat_if_due(ctx, mem, w, hooks, None).await?;
            match started {
                Started::Sent(r) => {
                    let id = r.command_id.clone();
                    mem.drains
                        .get_or_insert_with(Default::default)
                        .insert(w.instance.clone(), r);
                    (
                        ActionOutcome::DrainStarted,
                        format!("drain command {id} sent"),
                    )
                }
                Started::NotSent(r) => {
                    mem.drains
                        .get_or_insert_with(Default::default)
                        .insert(w.instance.clone(), r);
                    (
                        ActionOutcome::Waiting,
                        "no control plane took the drain command: sent again next pass".into(),
                    )
                }
                Started::Queued if !room => (
                    ActionOutcome::Waiting,
                    format!(
                        "drain queued: {} drains of the cluster run at once",
                        ctx.config.drain_concurrency
                    ),
                ),
                Started::Queued => (
                    ActionOutcome::Waiting,
                    "drain queued: every control plane runs its share of drains".into(),
                ),
            }
        }
        TerminateDecision::Follow => {
            act::heartbeat_if_due(ctx, mem, w, hooks, None).await?;
            (ActionOutcome::Draining, "drain running".into())
        }
        TerminateDecision::Wait => {
            act::heartbeat_if_due(ctx, mem, w, hooks, None).await?;
            let reason = if node == Some(NodeState::Absent) {
                "no Node yet, but the instance launched lately and may be joining: asked again"
            } else {
                "control plane unreachable: the Node cannot be drained yet"
            };
            (ActionOutcome::Waiting, reason.into())
        }
    };
    let mut r = report(outcome, reason);
    r.left_pods = left;
    if matches!(outcome, ActionOutcome::Drained | ActionOutcome::Completed) {
        r.drain_seconds = record
            .as_ref()
            .filter(|d| d.left_node.is_none())
            .map(|d| drain::running_for(d).as_secs());
    }
    Ok(r)
}

/// Settles the drain record, then completes CONTINUE. The record goes first: forgotten, or
/// marked *left* (`left_node` and the pods that blocked the drain, for an instance on its way
/// to termination); if the completion is
/// then lost, the next pass finds the action again and no stale record answers for it. `None`
/// when completed; `Some(Skipped)` when another invocation or a timeout did.
async fn finish(
    ctx: &Context,
    mem: &mut Memory,
    cluster: &ClusterName,
    w: &Waiting,
    hooks: &[&Hook],
    (left_node, blocked): (Option<String>, &[String]),
    request_id: &str,
) -> Result<Option<ActionOutcome>, AwsCallError> {
    let had_record = mem
        .drains
        .as_ref()
        .is_some_and(|d| d.contains_key(&w.instance));
    match left_node.filter(|_| w.state == WaitState::TerminatingWait) {
        Some(node) => {
            let r = drain::leave(ctx, cluster, &w.instance, (&node, blocked), request_id).await?;
            mem.drains
                .get_or_insert_with(Default::default)
                .insert(w.instance.clone(), r);
        }
        None if had_record => {
            drain::forget(ctx, cluster, &w.instance).await?;
            if let Some(d) = mem.drains.as_mut() {
                d.remove(&w.instance);
            }
        }
        None => {}
    }
    // Back to the warm pool: the terminate hook holds it, so try that one first.
    let mut ordered: Vec<&Hook> = hooks.to_vec();
    ordered.sort_by_key(|h| h.transition != crate::lifecycle::Transition::Terminating);
    Ok(
        match act::complete(ctx, w, &ordered, HookResult::Continue).await? {
            Completion::Completed => None,
            Completion::AlreadyDone => Some(ActionOutcome::Skipped),
        },
    )
}
