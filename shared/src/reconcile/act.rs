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
        (None, Some(w)) => w,
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
