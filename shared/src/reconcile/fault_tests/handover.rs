//! A run that reaches its deadline hands its waiting actions over: those a killed successor
//! could leave past their heartbeat timeout are heartbeated before the lease is let go.

use std::time::Duration;

use aws_sdk_autoscaling::operation::record_lifecycle_action_heartbeat::RecordLifecycleActionHeartbeatOutput;
use aws_smithy_mocks::mock;
use tokio::time::Instant;

use super::completions::with_launch_hook;
use super::{waiting, Asg};
use crate::deadline::Deadline;
use crate::lifecycle::WaitState;
use crate::reconcile::act::{due_before_handover, heartbeat_before_handover};
use crate::reconcile::gather::Waiting;
use crate::testing::{context, id, SERVER_ERROR};

fn worker(n: u32) -> Waiting {
    Waiting {
        instance: id(&format!("i-{n:017x}")),
        ..waiting(WaitState::PendingWait)
    }
}

#[test]
fn an_action_is_heartbeated_before_handover_when_a_quarter_of_its_timeout_would_not_be_left() {
    let s = Duration::from_secs;
    let (timeout, gap) = (s(120), s(40));
    assert!(due_before_handover(None, gap, timeout), "unknown: beat");
    assert!(!due_before_handover(Some(s(5)), gap, timeout));
    assert!(!due_before_handover(Some(s(49)), gap, timeout));
    assert!(due_before_handover(Some(s(50)), gap, timeout));
    assert!(due_before_handover(Some(Duration::ZERO), s(90), timeout));
}

#[tokio::test]
async fn a_run_at_its_deadline_heartbeats_only_the_actions_that_could_time_out() {
    let beat = mock!(Asg::record_lifecycle_action_heartbeat)
        .then_output(|| RecordLifecycleActionHeartbeatOutput::builder().build());
    let ctx = context(&[], &[], &[&beat]);
    let mut mem = with_launch_hook();
    let now = Instant::now();
    // Hooks of 300 s: with a 200 s gap, anything beaten 25 s ago or more is due.
    mem.last_heartbeat.insert(worker(1).instance, now);
    mem.last_heartbeat
        .insert(worker(2).instance, now - Duration::from_secs(80));
    let pending = [worker(1), worker(2), worker(3)];
    let room = Deadline::after(Duration::from_secs(10));
    let n =
        heartbeat_before_handover(&ctx, &mut mem, &pending, Duration::from_secs(200), &room).await;
    assert_eq!(n, 2);
    assert_eq!(beat.num_calls(), 2);
    assert!(mem.since_heartbeat(&worker(2).instance) < Some(Duration::from_secs(5)));
    assert!(mem.since_heartbeat(&worker(3).instance).is_some());
}

#[tokio::test]
async fn a_failing_heartbeat_at_handover_is_left_to_the_successor_without_error() {
    let beat = mock!(Asg::record_lifecycle_action_heartbeat)
        .sequence()
        .http_status(SERVER_ERROR, None)
        .repeatedly()
        .build();
    let ctx = context(&[], &[], &[&beat]);
    let mut mem = with_launch_hook();
    let room = Deadline::after(Duration::from_secs(10));
    let n = heartbeat_before_handover(
        &ctx,
        &mut mem,
        &[worker(1)],
        Duration::from_secs(100),
        &room,
    )
    .await;
    assert_eq!(n, 0);
    assert!(mem.since_heartbeat(&worker(1).instance).is_none());
}
