//! Instances entering the warm pool (`Warmed:Pending:Wait`). Fresh from EC2 they have no Node:
//! Auto Scaling stops them as soon as the action is completed, whatever their user data is still
//! doing, so CONTINUE waits until the worker says it is prepared (its join log ends with
//! `join deferred`: packages in, boot unit installed) — or, past the join deadline, completes
//! anyway rather than hold the pool. They never wait for a Node: a worker joins when it leaves
//! the pool for service. When no control plane can say whether the instance has a Node (it may
//! be coming back from service), its own join log decides when it can, and the wait is bounded
//! by the drain timeout. Those that come back from service with a Node are drained first
//! ([`crate::reconcile::terminate`]).

use std::time::Duration;

use crate::aws::autoscaling::{Completion, Hook};
use crate::aws::AwsCallError;
use crate::context::Context;
use crate::deadline::Deadline;
use crate::lifecycle::{HookResult, Transition, WaitState};
use crate::reconcile::act;
use crate::reconcile::decide::warm_pool_entry_unknown;
use crate::reconcile::gather::Waiting;
use crate::reconcile::launch::{age_since, join_log_tail, JOIN_LOGS_PER_PASS};
use crate::reconcile::memory::Memory;
use crate::reconcile::report::{ActionOutcome, ActionReport};

/// Enters the warm pool: `node_known` when a control plane said the instance has no Node,
/// false when none could say.
pub async fn enter_warm_pool(
    ctx: &Context,
    mem: &mut Memory,
    cluster: &str,
    w: &Waiting,
    hooks: &[&Hook],
    node_known: bool,
    deadline: &Deadline,
) -> Result<ActionReport, AwsCallError> {
    debug_assert_eq!(w.state, WaitState::WarmedPendingWait);
    let age = mem
        .facts
        .get(&w.instance)
        .and_then(|f| f.launched)
        .map(age_since);
    let unreachable_for = mem.unreachable_for(&w.instance, node_known);
    let Some(prepared) = prepared(ctx, mem, cluster, w, deadline).await else {
        return capped(ctx, mem, cluster, w, hooks, age).await;
    };
    let decision = if node_known {
        warm_pool_entry(prepared, age, ctx.config.join_deadline).map(str::to_owned)
    } else {
        warm_pool_entry_unknown(prepared, unreachable_for, ctx.config.drain_timeout)
    };
    let report = |outcome, reason: &str| {
        ActionReport::new(cluster, &w.group, &w.instance, w.state, outcome, reason)
    };
    let Some(reason) = decision else {
        let beat = act::heartbeat_if_due(ctx, mem, w, hooks, age).await?;
        let mut r = report(
            ActionOutcome::Waiting,
            if node_known {
                "entering the warm pool: its user data is still preparing it"
            } else {
                "control plane unreachable: cannot tell whether it has a Node"
            },
        );
        r.heartbeat = beat;
        return Ok(r);
    };
    // Maybe back from service (held by the terminate hook): try that hook first.
    let mut ordered: Vec<&Hook> = hooks.to_vec();
    ordered.sort_by_key(|h| node_known || prepared || h.transition != Transition::Terminating);
    Ok(
        match act::complete(ctx, w, &ordered, HookResult::Continue).await? {
            Completion::Completed => report(ActionOutcome::Continue, &reason),
            Completion::AlreadyDone => report(ActionOutcome::Skipped, "already completed"),
        },
    )
}

/// Fetches the join logs of instances entering the warm pool all at once, up to this pass's share
/// ([`JOIN_LOGS_PER_PASS`]): each is a Run Command on its own worker, so waiting on them one after
/// the other only lengthens the pass (and delays the next node-status question).
pub async fn prefetch_join_logs(
    ctx: &Context,
    mem: &mut Memory,
    cluster: &str,
    entering: &[&Waiting],
    deadline: &Deadline,
) {
    let share = JOIN_LOGS_PER_PASS.saturating_sub(mem.join_logs);
    let chosen: Vec<&Waiting> = entering.iter().copied().take(share).collect();
    mem.join_logs += chosen.len();
    let logs = futures_util::future::join_all(
        chosen
            .iter()
            .map(|w| join_log_tail(ctx, cluster, w, deadline)),
    )
    .await;
    for (w, log) in chosen.into_iter().zip(logs) {
        mem.warm_logs.insert(w.instance.clone(), log);
    }
}

/// Whether the worker says it is prepared (its join log ends with `join deferred`); `None` when
/// this pass already fetched its share of join logs (each is a Run Command on a worker).
async fn prepared(
    ctx: &Context,
    mem: &mut Memory,
    cluster: &str,
    w: &Waiting,
    deadline: &Deadline,
) -> Option<bool> {
    let log = match mem.warm_logs.remove(&w.instance) {
        Some(log) => log,
        None if mem.join_logs < JOIN_LOGS_PER_PASS => {
            mem.join_logs += 1;
            join_log_tail(ctx, cluster, w, deadline).await
        }
        None => return None,
    };
    Some(says_prepared(&log))
}

/// Pure: a join log whose last line says the join was deferred (packages in, boot unit installed).
fn says_prepared(log: &str) -> bool {
    log.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l.contains("join deferred"))
}

/// Held for a later pass: this one fetched its share of join logs.
async fn capped(
    ctx: &Context,
    mem: &mut Memory,
    cluster: &str,
    w: &Waiting,
    hooks: &[&Hook],
    age: Option<Duration>,
) -> Result<ActionReport, AwsCallError> {
    let beat = act::heartbeat_if_due(ctx, mem, w, hooks, age).await?;
    let mut r = ActionReport::new(
        cluster,
        &w.group,
        &w.instance,
        w.state,
        ActionOutcome::Waiting,
        "entering the warm pool: its join log is read in a later pass",
    );
    r.heartbeat = beat;
    Ok(r)
}

/// Pure: complete an instance entering the warm pool now (with the reason), or wait (`None`).
pub fn warm_pool_entry(
    prepared: bool,
    age: Option<Duration>,
    join_deadline: Duration,
) -> Option<&'static str> {
    if prepared {
        Some("entering the warm pool prepared: it joins when it leaves the pool for service")
    } else if age.is_none_or(|a| a >= join_deadline) {
        Some("entering the warm pool: preparation not confirmed by the join deadline, completed anyway")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_pool_entry_waits_for_the_worker_to_be_prepared() {
        let d = Duration::from_secs(900);
        let min = |m: u64| Some(Duration::from_secs(m * 60));
        assert!(warm_pool_entry(true, min(1), d).is_some());
        assert!(
            warm_pool_entry(false, min(1), d).is_none(),
            "still preparing: wait"
        );
        assert!(
            warm_pool_entry(false, min(15), d).is_some(),
            "past the deadline: complete"
        );
        assert!(
            warm_pool_entry(false, None, d).is_some(),
            "unknown instance: do not hold it"
        );
    }
}
