//! Completing and heartbeating actions on joinkeeper's hooks, whichever of the group's hooks
//! holds the instance.

use std::time::Duration;

use tokio::time::Instant;

use crate::aws::autoscaling::{Completion, Hook};
use crate::aws::AwsCallError;
use crate::context::Context;
use crate::lifecycle::{heartbeat_due, HookResult, LifecycleAction};
use crate::reconcile::gather::Waiting;
use crate::reconcile::memory::Memory;

fn action(w: &Waiting, hook: &Hook) -> LifecycleAction {
    LifecycleAction {
        transition: hook.transition,
        group: w.group.clone(),
        hook: hook.name.clone(),
        instance: w.instance.clone(),
        token: None,
        origin: None,
        destination: None,
    }
}

/// Completes the action with `result` on the first of `hooks` that holds the instance.
pub async fn complete(
    ctx: &Context,
    w: &Waiting,
    hooks: &[&Hook],
    result: HookResult,
) -> Result<Completion, AwsCallError> {
    for hook in hooks {
        if ctx.asg.complete(&action(w, hook), result).await? == Completion::Completed {
            return Ok(Completion::Completed);
        }
    }
    Ok(Completion::AlreadyDone)
}

/// Heartbeats the action when due: half the hook's timeout (less one poll, so the next pass is
/// never too late) since the last heartbeat, or since `waiting_for` when this run has not sent
/// one. With nothing known (`waiting_for` is `None`) it heartbeats at first sight.
pub async fn heartbeat_if_due(
    ctx: &Context,
    mem: &mut Memory,
    w: &Waiting,
    hooks: &[&Hook],
    waiting_for: Option<Duration>,
) -> Result<bool, AwsCallError> {
    let Some(timeout) = hooks.iter().map(|h| h.heartbeat_timeout).min() else {
        return Ok(false);
    };
    let since = match (mem.since_heartbeat(&w.instance), waiting_for) {
        (Some(s), _) => s,
        (None, Some(age)) => {
            // The action's timeout clock started with its wait: remembered as its last beat.
            if let Some(began) = Instant::now().checked_sub(age) {
                mem.last_heartbeat.insert(w.instance.clone(), began);
            }
            age
        }
        (None, None) => Duration::MAX,
    };
    let threshold_room = ctx.config.node_poll.min(timeout / 4);
    if !heartbeat_due(since.saturating_add(threshold_room), timeout) {
        return Ok(false);
    }
    for hook in hooks {
        if ctx.asg.heartbeat(&action(w, hook)).await? == Completion::Completed {
            mem.last_heartbeat
                .insert(w.instance.clone(), Instant::now());
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether an action whose timeout clock last restarted `since` ago (`None`: unknown to this run)
/// must be heartbeated before the run lets its lease go: a successor may not reach it for `gap`
/// (a successor killed at once blocks the cluster for its first lease), and by then a quarter of
/// its timeout must still be left for that successor's first pass.
pub fn due_before_handover(since: Option<Duration>, gap: Duration, timeout: Duration) -> bool {
    since.is_none_or(|s| s.saturating_add(gap) >= timeout * 3 / 4)
}

/// At most this many heartbeats in flight when a run hands its actions over.
const HANDOVER_HEARTBEATS_IN_FLIGHT: usize = 8;

/// Heartbeats, before a run that reached its deadline releases the lease, every action still
/// waiting that could otherwise reach its heartbeat timeout before a successor's first pass;
/// returns how many were heartbeated. Best effort within `deadline`: a failure is logged and the
/// action is left to the successor as it would be without this.
pub async fn heartbeat_before_handover(
    ctx: &Context,
    mem: &mut Memory,
    pending: &[Waiting],
    gap: Duration,
    deadline: &crate::deadline::Deadline,
) -> usize {
    use futures_util::StreamExt;
    let due: Vec<(Waiting, Vec<Hook>)> = pending
        .iter()
        .filter_map(|w| {
            let hooks: Vec<Hook> = mem
                .hooks
                .get(&w.group)?
                .for_state(w.state)
                .into_iter()
                .cloned()
                .collect();
            let timeout = hooks.iter().map(|h| h.heartbeat_timeout).min()?;
            due_before_handover(mem.since_heartbeat(&w.instance), gap, timeout)
                .then(|| (w.clone(), hooks))
        })
        .collect();
    let beats = futures_util::stream::iter(due.iter().map(|(w, hooks)| async move {
        for hook in hooks {
            match ctx.asg.heartbeat(&action(w, hook)).await {
                Ok(Completion::Completed) => return Some(w.instance.clone()),
                Ok(Completion::AlreadyDone) => continue,
                Err(err) => {
                    tracing::warn!(instance = %w.instance, error = %err, "could not heartbeat the action before handing it over");
                    return None;
                }
            }
        }
        None
    }))
    .buffer_unordered(HANDOVER_HEARTBEATS_IN_FLIGHT)
    .collect::<Vec<_>>();
    let Ok(beaten) = tokio::time::timeout(deadline.remaining(), beats).await else {
        tracing::warn!("ran out of time heartbeating the actions it hands over");
        return 0;
    };
    let now = Instant::now();
    let mut count = 0;
    for instance in beaten.into_iter().flatten() {
        mem.last_heartbeat.insert(instance, now);
        count += 1;
    }
    count
}
