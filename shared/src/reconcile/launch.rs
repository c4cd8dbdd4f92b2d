//! Launching instances: `Pending:Wait` (into service) gets CONTINUE once its Node is Ready and
//! ABANDON past the join deadline (entering the warm pool: [`crate::reconcile::warm_entry`]).

use std::collections::VecDeque;
use std::time::Duration;

use time::OffsetDateTime;
use tracing::warn;

use crate::aws::autoscaling::{Completion, Hook};
use crate::aws::run_command::CommandRequest;
use crate::aws::AwsCallError;
use crate::context::Context;
use crate::deadline::Deadline;
use crate::lifecycle::{HookResult, NodeState};
use crate::reconcile::act;
use crate::reconcile::decide::{decide_launch, wait_start_needed, LaunchDecision, LaunchFacts};
use crate::reconcile::gather::Waiting;
use crate::reconcile::memory::Memory;
use crate::reconcile::report::{ActionOutcome, ActionReport};

mod pace;
use pace::Pace;

/// At most this many join logs are fetched per pass (each is a Run Command on the worker).
pub(crate) const JOIN_LOGS_PER_PASS: usize = 5;

pub async fn launch(
    ctx: &Context,
    mem: &mut Memory,
    cluster: &str,
    w: &Waiting,
    hooks: &[&Hook],
    node: Option<NodeState>,
    deadline: &Deadline,
) -> Result<ActionReport, AwsCallError> {
    let report = |outcome, reason: String| {
        ActionReport::new(cluster, &w.group, &w.instance, w.state, outcome, reason)
    };
    let Some(launched) = mem.facts.get(&w.instance).and_then(|f| f.launched) else {
        return Ok(report(
            ActionOutcome::Skipped,
            "instance no longer exists (or has no launch time)".into(),
        ));
    };
    let launch_age = age_since(launched);
    let age = if wait_start_needed(node, launch_age, ctx.config.join_deadline) {
        match wait_age(ctx, mem, w, launched).await {
            Ok(age) => age,
            Err(err) => {
                let beat = act::heartbeat_if_due(ctx, mem, w, hooks, None).await?;
                let mut r = report(
                    ActionOutcome::Waiting,
                    format!("could not tell when its wait began ({err}): held"),
                );
                r.heartbeat = beat;
                return Ok(r);
            }
        }
    } else {
        launch_age
    };
    let facts = LaunchFacts {
        node,
        waiting: true,
        age,
        join_deadline: ctx.config.join_deadline,
    };
    Ok(match decide_launch(facts) {
        LaunchDecision::Continue => match act::complete(ctx, w, hooks, HookResult::Continue).await?
        {
            Completion::Completed => {
                let mut r = report(ActionOutcome::Continue, "Node is Ready".into());
                r.join_seconds = Some(age.as_secs());
                r
            }
            Completion::AlreadyDone => report(
                ActionOutcome::Skipped,
                "already completed (by another invocation, or timed out)".into(),
            ),
        },
        LaunchDecision::Abandon { reason } => {
            let tail = if mem.join_logs < JOIN_LOGS_PER_PASS {
                mem.join_logs += 1;
                Some(join_log_tail(ctx, cluster, w, deadline).await)
            } else {
                None
            };
            match act::complete(ctx, w, hooks, HookResult::Abandon).await? {
                Completion::Completed => {
                    warn!(cluster, instance = %w.instance, reason = %reason, join_log = tail.as_deref().unwrap_or("(not fetched)"), "abandoning a worker that could not join");
                    let mut r = report(ActionOutcome::Abandon, reason);
                    r.reason_class = Some(crate::metrics::abandon_class(node));
                    r.join_log_last_line = tail.and_then(|t| {
                        t.lines()
                            .rev()
                            .find(|l| !l.trim().is_empty())
                            .map(|l| l.chars().take(300).collect())
                    });
                    r
                }
                Completion::AlreadyDone => report(
                    ActionOutcome::Skipped,
                    "already completed (by another invocation, or timed out)".into(),
                ),
            }
        }
        LaunchDecision::Wait => {
            let beat = act::heartbeat_if_due(ctx, mem, w, hooks, Some(age)).await?;
            let mut r = report(
                ActionOutcome::Waiting,
                format!("Node {node:?} after {} s", age.as_secs()),
            );
            r.heartbeat = beat;
            r
        }
        LaunchDecision::Skip { reason } => report(ActionOutcome::Skipped, reason),
    })
}

pub(crate) fn age_since(t: OffsetDateTime) -> Duration {
    Duration::try_from(OffsetDateTime::now_utc() - t).unwrap_or(Duration::ZERO)
}

/// When a launch's wait began: its launch time, or the later start of the scaling activity that
/// took it into service.
fn wait_start(launched: OffsetDateTime, activity: Option<OffsetDateTime>) -> OffsetDateTime {
    activity.map_or(launched, |b| b.max(launched))
}

/// How long the launch has waited: from the later of its launch time and the start of the
/// scaling activity that took it into service (looked up once per run).
async fn wait_age(
    ctx: &Context,
    mem: &mut Memory,
    w: &Waiting,
    launched: OffsetDateTime,
) -> Result<Duration, AwsCallError> {
    let began = match mem.wait_began.get(&w.instance) {
        Some(b) => *b,
        None => {
            let b = ctx.asg.wait_began(&w.group, &w.instance).await?;
            mem.wait_began.insert(w.instance.clone(), b);
            b
        }
    };
    Ok(age_since(wait_start(launched, began)))
}

/// Completes CONTINUE for every instance whose Node is Ready, in rounds paced to Auto Scaling's
/// request bucket ([`pace`]): a throttled completion is sent again later in this pass, not counted
/// as a failed action; those the pass's `bound` leaves are still waiting (the next pass completes
/// them).
pub async fn continue_ready(
    ctx: &Context,
    mem: &Memory,
    cluster: &str,
    ready: &[Waiting],
    bound: &Deadline,
) -> Vec<(Waiting, Result<ActionReport, AwsCallError>)> {
    let mut queue: VecDeque<Waiting> = ready.iter().cloned().collect();
    let mut pace = Pace::default();
    let mut settled = Vec::with_capacity(ready.len());
    while !queue.is_empty() && !bound.is_near(pace.gap + ROUND_ROOM) {
        tokio::time::sleep(pace.gap).await;
        let round: Vec<Waiting> = queue.drain(..pace.round.min(queue.len())).collect();
        let results = futures_util::future::join_all(
            round.iter().map(|w| continue_one(ctx, mem, cluster, w)),
        )
        .await;
        let mut throttled = 0;
        for (w, result) in round.into_iter().zip(results) {
            match result {
                Err(err) if err.is_throttling() => {
                    throttled += 1;
                    queue.push_back(w);
                }
                other => settled.push((w, other)),
            }
        }
        pace = pace.after(throttled);
    }
    if !queue.is_empty() {
        warn!(
            cluster,
            left = queue.len(),
            "completions throttled until the pass's bound; the next pass completes them"
        );
    }
    settled.extend(queue.into_iter().map(|w| {
        let r = ActionReport::new(
            cluster,
            &w.group,
            &w.instance,
            w.state,
            ActionOutcome::Waiting,
            "Node is Ready; its completion waits for Auto Scaling's request rate",
        );
        (w, Ok(r))
    }));
    settled
}

/// Room a round of completions keeps before the pass's bound (one answer, or one SDK retry).
const ROUND_ROOM: Duration = Duration::from_secs(5);

/// Completes CONTINUE for one instance whose Node is Ready.
async fn continue_one(
    ctx: &Context,
    mem: &Memory,
    cluster: &str,
    w: &Waiting,
) -> Result<ActionReport, AwsCallError> {
    let hooks: Vec<&Hook> = mem
        .hooks
        .get(&w.group)
        .map(|h| h.for_state(w.state))
        .unwrap_or_default();
    let launched = mem.facts.get(&w.instance).and_then(|f| f.launched);
    let looked_up = mem.wait_began.get(&w.instance).copied();
    // Timed from the wait's start: a launch time older than the join deadline may be a Running
    // warm pool's (one lookup, only then and only once a run, for JoinSeconds).
    let mut start = launched.map(|l| wait_start(l, looked_up.flatten()));
    if let (Some(s), None) = (start, looked_up) {
        if age_since(s) >= ctx.config.join_deadline {
            if let Ok(began) = ctx.asg.wait_began(&w.group, &w.instance).await {
                start = Some(wait_start(s, began));
            }
        }
    }
    let age = start.map(age_since);
    let done = act::complete(ctx, w, &hooks, HookResult::Continue).await?;
    let (outcome, reason) = match done {
        Completion::Completed => (ActionOutcome::Continue, "Node is Ready"),
        Completion::AlreadyDone => (
            ActionOutcome::Skipped,
            "already completed (by another invocation, or timed out)",
        ),
    };
    let mut r = ActionReport::new(cluster, &w.group, &w.instance, w.state, outcome, reason);
    if outcome == ActionOutcome::Continue {
        r.join_seconds = age.map(|a| a.as_secs());
    }
    Ok(r)
}

/// The tail of the worker's own join log, through Run Command, tokens redacted.
pub(crate) async fn join_log_tail(
    ctx: &Context,
    cluster: &str,
    w: &Waiting,
    deadline: &Deadline,
) -> String {
    let request = CommandRequest {
        cluster,
        instance: &w.instance,
        document: &ctx.config.documents.join_log,
        parameters: vec![("Lines", "20".into())],
        comment: "joinkeeper: join log of a worker that did not join".into(),
    };
    let bound = deadline.within(Duration::from_secs(30));
    match ctx.run_command(request, &bound).await {
        Ok(out) => {
            let redacted = crate::redact::redact_tokens(&out.stdout);
            let chars: Vec<char> = redacted.chars().collect();
            chars[chars.len().saturating_sub(2000)..].iter().collect()
        }
        Err(err) => format!("(join log unavailable: {err})"),
    }
}
