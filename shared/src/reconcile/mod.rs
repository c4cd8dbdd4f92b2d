//! A level-triggered reconcile per cluster, in the manner of a Kubernetes controller: whatever
//! woke it (a launch or terminate event, the schedule), it reads the whole cluster, decides every
//! pending lifecycle action with pure functions, acts, and repeats every poll interval until
//! nothing is pending or the invocation's deadline is near.
//!
//! One reconciler per cluster at a time, under the lease `<prefix>/<cluster>/leases/reconcile`.
//! An invocation that finds it held returns at once, naming the holder's request; the holder
//! picks the new action up on its next pass. Hand-off: a holder that ran out of work releases
//! the lease and then looks once more, taking it again if anything arrived meanwhile; a caller
//! that finds a holder about to stop waits for it and takes over, so no action waits for the
//! schedule because of the hand-off.

pub mod act;
pub mod cleanup;
pub mod decide;
pub mod drain;
#[cfg(test)]
mod fault_tests;
pub mod gather;
pub mod launch;
pub mod memory;
pub mod node_status;
pub mod pass;
pub mod plan;
pub mod report;
pub mod terminate;
pub mod tokens;
pub mod warm_entry;

use std::time::Duration;

use serde::Serialize;
use tracing::{info, Instrument};

use crate::aws::AwsCallError;
use crate::context::{Context, Invocation};
use crate::lease::{now_ms, Acquire, Held, LeaseValue};
use crate::names::ClusterName;
use memory::Memory;
pub use report::{ActionOutcome, ActionReport, ReconcileReport, StopReason};

/// What a call to [`reconcile`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum ReconcileOutcome {
    Ran(ReconcileReport),
    /// Another invocation reconciles this cluster; it picks up whatever woke this one.
    HeldElsewhere {
        cluster: String,
        request_id: String,
    },
}

/// Passes in a row that may fail (AWS errors after the SDK's retries) before the run gives up
/// and returns the error (Lambda then retries the invocation).
pub const MAX_FAILED_PASSES: u32 = 5;

/// How long the reconcile lease is honoured without renewal: a pass (one Run Command wait, the
/// completions) and the sleep before the next one.
pub fn lease_ttl(ctx: &Context) -> Duration {
    ctx.config.command_deadline * 2 + ctx.config.node_poll + Duration::from_secs(30)
}

/// The lease's TTL when it is taken, before the run knows the cluster's hooks: enough for the
/// first pass (one Run Command wait and a poll past the guard), so that a holder killed at once
/// blocks its cluster no longer than that; [`run_ttl`] takes over at the first renewal. Safe
/// because a pass never outlives its lease: it is cut at the guard (see [`run_passes`]).
pub fn first_ttl(ctx: &Context) -> Duration {
    lease_ttl(ctx).min(
        ctx.config.command_deadline + ctx.config.node_poll + crate::lease::GUARD + pass::ACT_ROOM,
    )
}

/// The lease's TTL once the run knows the cluster's hooks: never longer than half the shortest
/// heartbeat timeout (but long enough for two polls past the guard), so that if this run dies
/// the next one takes over while the actions it held can still be heartbeated in time.
pub fn run_ttl(ctx: &Context, mem: &Memory) -> Duration {
    let shortest = mem
        .hooks
        .values()
        .flat_map(|g| g.launch.iter().chain(g.terminate.iter()))
        .map(|h| h.heartbeat_timeout)
        .min();
    let floor = ctx.config.node_poll * 2 + crate::lease::GUARD * 2;
    match shortest {
        Some(h) => lease_ttl(ctx).min((h / 2).max(floor)),
        None => lease_ttl(ctx),
    }
}

/// Room a run keeps after its last pass, before its invocation's deadline, to heartbeat the
/// actions it hands over and release its lease (an eighth of a shorter invocation).
pub const HANDOVER_ROOM: Duration = Duration::from_secs(3);

/// Room a run keeps before its deadline to start another pass.
fn pass_room(ctx: &Context) -> Duration {
    Duration::from_secs(10).max(ctx.config.node_poll / 2)
}

/// Reconciles the cluster until nothing is pending or the deadline is near.
pub async fn reconcile(
    ctx: &Context,
    cluster: &ClusterName,
    inv: &Invocation,
) -> Result<ReconcileOutcome, AwsCallError> {
    let span = tracing::info_span!("reconcile", cluster = %cluster);
    reconcile_inner(ctx, cluster, inv).instrument(span).await
}

async fn reconcile_inner(
    ctx: &Context,
    cluster: &ClusterName,
    inv: &Invocation,
) -> Result<ReconcileOutcome, AwsCallError> {
    let name = ctx.config.lease_parameter(cluster, "reconcile");
    let mut waited = false;
    let mut report = ReconcileReport {
        cluster: cluster.to_string(),
        passes: 0,
        stopped: StopReason::Settled,
        pending: 0,
        actions: Vec::new(),
    };
    loop {
        let value = LeaseValue {
            request_id: inv.request_id.clone(),
            holder_until_ms: now_ms() + inv.deadline.remaining().as_millis() as i64,
            ..Default::default()
        };
        let held = match ctx.leases.try_acquire(&name, first_ttl(ctx), value).await? {
            Acquire::Held(held) => held,
            Acquire::Busy(holder) => {
                let holder = holder.unwrap_or_default();
                // A lease about to expire unrenewed: its holder died (killed, timed out) or is
                // about to lose it. Wait for the expiry and take over, so the actions it held do
                // not wait for the schedule (Lambda's retry of a killed invocation lands here).
                // Once per invocation: a live holder that renewed meanwhile keeps the cluster.
                if let Some(wait) = expiring_unrenewed(ctx, &holder).filter(|_| !waited) {
                    waited = true;
                    if inv.deadline.remaining() > wait + pass_room(ctx) * 2
                        && inv.deadline.sleep(wait).await
                    {
                        continue;
                    }
                }
                if holder_about_to_stop(ctx, &holder) && !inv.deadline.is_near(pass_room(ctx) * 2) {
                    // Hand-off: wait for the holder to let go, then take over.
                    if inv
                        .deadline
                        .sleep(ctx.config.command_poll.max(Duration::from_millis(200)))
                        .await
                    {
                        continue;
                    }
                }
                if report.passes > 0 {
                    return Ok(ReconcileOutcome::Ran(report));
                }
                info!(cluster = %cluster, holder_request = %holder.request_id, "another invocation reconciles this cluster");
                return Ok(ReconcileOutcome::HeldElsewhere {
                    cluster: cluster.to_string(),
                    request_id: holder.request_id,
                });
            }
        };
        let stopped = run_passes(ctx, cluster, inv, held, &mut report).await?;
        report.stopped = stopped;
        // A pass cut at the lease's guard (or a renewal too late): take the lease again once it
        // has expired, rather than leave the actions to the next trigger.
        if stopped == StopReason::LeaseLost
            && !inv
                .deadline
                .is_near(pass_room(ctx) * 2 + crate::lease::GUARD)
        {
            continue;
        }
        if stopped != StopReason::Settled || inv.deadline.is_near(pass_room(ctx) * 2) {
            break;
        }
        // Released: look once more, so an action that arrived while this run was ending (its
        // invocation saw the lease held and returned) is not left for the schedule.
        // An error here is no answer: the run itself succeeded; the next trigger looks again.
        if !gather::any_waiting(ctx, cluster).await.unwrap_or(false) {
            break;
        }
    }
    info!(cluster = %cluster, passes = report.passes, pending = report.pending, stopped = ?report.stopped, "reconcile run ended");
    Ok(ReconcileOutcome::Ran(report))
}

/// Renews the run's lease before a pass; `Ok(false)` when it can no longer be trusted. A failed
/// renewal lets go at once (a lost answer may even have renewed it), so the next trigger takes the
/// cluster over without waiting for the lease to expire. A throttled one was refused, never
/// applied: the lease stands as it was, and the run goes on under it (its next pass is cut at
/// the guard as always) and renews again before the pass after.
pub(crate) async fn renew_or_let_go(
    leases: &crate::lease::Leases,
    held: &mut Held,
    ttl: Duration,
) -> Result<bool, AwsCallError> {
    match leases.renew(held, ttl).await {
        Ok(renewed) => Ok(renewed),
        Err(err) if err.is_throttling() => {
            tracing::warn!(error = %err, "lease renewal throttled; going on under the lease as it stands");
            Ok(leases.may_act(held))
        }
        Err(err) => {
            if let Err(release) = leases.release(held.clone()).await {
                tracing::warn!(error = %release, "could not release the reconcile lease; it expires by itself");
            }
            Err(err)
        }
    }
}

/// The pause before the next pass: passes begin a poll interval apart, so a Node that became
/// Ready during a long pass (drains sent, join logs fetched, throttled writes) is not left a
/// whole poll more; never less than a fifth of the poll, so throttled passes do not run back to
/// back.
pub fn until_next_pass(poll: Duration, pass_took: Duration) -> Duration {
    poll.saturating_sub(pass_took).max(poll / 5)
}

/// The pause after the `failed`-th failed pass in a row: a fifth of the poll, doubling up to the
/// poll. The SDK has already retried the failed call with backoff, so the failure is most often
/// over; asking again at once would only add to a throttled bucket, waiting a whole poll leaves a
/// Node that became Ready meanwhile a poll more.
pub fn after_failed_pass(poll: Duration, failed: u32) -> Duration {
    let first = poll / 5;
    first
        .saturating_mul(1 << failed.saturating_sub(1).min(8))
        .min(poll)
}

/// How long until `holder`'s lease expires, when that is soon: within a third of the lease's
/// TTL. A live holder renews before every pass, so it never lets its lease run that low (a pass
/// that would outlast the lease stops at the lease's guard and loses it).
pub fn expiring_unrenewed(ctx: &Context, holder: &LeaseValue) -> Option<Duration> {
    let left = holder.expires_at_ms - now_ms();
    let ttl = if holder.ttl_ms > 0 {
        holder.ttl_ms
    } else {
        lease_ttl(ctx).as_millis() as i64
    };
    let window = ttl / 3;
    (holder.expires_at_ms > 0 && left < window)
        .then(|| Duration::from_millis(left.max(0) as u64 + 250))
}

/// A holder whose invocation ends within two polls will not see a new action in time.
fn holder_about_to_stop(ctx: &Context, holder: &LeaseValue) -> bool {
    let window = (ctx.config.node_poll * 2 + Duration::from_secs(15)).as_millis() as i64;
    holder.holder_until_ms > 0 && holder.holder_until_ms - now_ms() < window
}

async fn run_passes(
    ctx: &Context,
    cluster: &ClusterName,
    inv: &Invocation,
    mut held: Held,
    report: &mut ReconcileReport,
) -> Result<StopReason, AwsCallError> {
    let mut mem = Memory::default();
    let mut first = true;
    let mut failed_passes = 0;
    let mut still_waiting = Vec::new();
    // The passes end HANDOVER_ROOM before the invocation does: what is left is for handing the
    // waiting actions over (heartbeats) and letting the lease go.
    let left = inv.deadline.remaining();
    let passes = Invocation {
        deadline: inv
            .deadline
            .within(left.saturating_sub(HANDOVER_ROOM.min(left / 8))),
        ..inv.clone()
    };
    let stopped = loop {
        if !first && !renew_or_let_go(&ctx.leases, &mut held, run_ttl(ctx, &mem)).await? {
            break StopReason::LeaseLost;
        }
        first = false;
        let lease_left = ctx.leases.time_left(&held);
        let bound = pass::pass_bound(&passes, lease_left);
        // Every write of a pass (completions, drain records, heartbeats, not only the Run Command
        // waits that `bound` limits) must land while the lease is this run's: a pass slowed past
        // the lease's guard (throttling, retries) is cut there, as a killed invocation would be,
        // and the run stops; what it left half done is what a successor already survives.
        let pass_began = tokio::time::Instant::now();
        let result = tokio::time::timeout(
            lease_left,
            pass::run_pass(ctx, cluster, &passes, &mut mem, &bound),
        )
        .await;
        report.passes += 1;
        let Ok(result) = result else {
            tracing::warn!(cluster = %cluster, "pass cut at the lease's guard; the next holder goes on");
            break StopReason::LeaseLost;
        };
        let result = match result {
            Ok(r) => {
                failed_passes = 0;
                r
            }
            // A pass that could not read the cluster (throttled, a 5xx, an answer lost) holds
            // every action: keep the lease and ask again soon, backing off to a poll, so the
            // actions are heartbeated and decided by this run rather than left to a retry or
            // the schedule.
            Err(err) if failed_passes + 1 < MAX_FAILED_PASSES => {
                failed_passes += 1;
                let pause = after_failed_pass(ctx.config.node_poll, failed_passes);
                tracing::warn!(cluster = %cluster, error = %err, failed_passes, pause_ms = pause.as_millis() as u64, "pass failed; asking again");
                if passes.deadline.is_near(pause + pass_room(ctx))
                    || !passes.deadline.sleep(pause).await
                {
                    break StopReason::Deadline;
                }
                continue;
            }
            Err(err) => {
                let _ = ctx.leases.release(held).await;
                return Err(err);
            }
        };
        report.pending = result.pending;
        still_waiting = result.still_waiting;
        report
            .actions
            .extend(result.reports.into_iter().filter(|r| r.outcome.is_final()));
        if result.pending == 0 {
            break StopReason::Settled;
        }
        if passes
            .deadline
            .is_near(ctx.config.node_poll + pass_room(ctx))
            || !passes
                .deadline
                .sleep(until_next_pass(ctx.config.node_poll, pass_began.elapsed()))
                .await
        {
            break StopReason::Deadline;
        }
    };
    if stopped == StopReason::Deadline && !still_waiting.is_empty() {
        // The successor that takes these actions over may be killed at once and block the
        // cluster for its first lease: heartbeat now whatever could not wait that long.
        let gap = first_ttl(ctx) + ctx.config.node_poll;
        let room = inv.deadline.within(pass_room(ctx));
        let beaten =
            act::heartbeat_before_handover(ctx, &mut mem, &still_waiting, gap, &room).await;
        info!(cluster = %cluster, pending = still_waiting.len(), heartbeated = beaten, "handing the waiting actions over at the deadline");
    }
    if let Err(err) = ctx.leases.release(held).await {
        tracing::warn!(error = %err, "could not release the reconcile lease; it expires by itself");
    }
    Ok(stopped)
}
