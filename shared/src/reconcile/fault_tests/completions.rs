//! Completions of Ready workers under Auto Scaling's throttling: paced, sent again within the
//! pass, never reported failed for being throttled.

use std::time::Duration;

use aws_sdk_autoscaling::operation::complete_lifecycle_action::CompleteLifecycleActionOutput;
use aws_smithy_mocks::mock;

use super::{waiting, Asg};
use crate::lifecycle::{Transition, WaitState};
use crate::reconcile::gather::Waiting;
use crate::reconcile::launch;
use crate::reconcile::memory::Memory;
use crate::reconcile::report::ActionOutcome;
use crate::testing::{context, group, hook, id};

/// Memory holding the demo group's launch hook, for completions.
pub(super) fn with_launch_hook() -> Memory {
    use crate::reconcile::gather::GroupHooks;
    let mut mem = Memory::default();
    mem.hooks.insert(
        group("demo-workers"),
        GroupHooks {
            launch: Some(hook("joinkeeper-launch", Transition::Launching)),
            terminate: None,
        },
    );
    mem
}

const THROTTLED: &str = "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>r</RequestId></ErrorResponse>";

#[tokio::test]
async fn a_throttled_completion_is_sent_again_in_the_pass_not_reported_failed() {
    let complete = mock!(Asg::complete_lifecycle_action)
        .sequence()
        .http_status(400, Some(THROTTLED.to_owned()))
        .times(2)
        .output(|| CompleteLifecycleActionOutput::builder().build())
        .build();
    let ctx = context(&[], &[], &[&complete]);
    let bound = crate::deadline::Deadline::after(Duration::from_secs(60));
    let ready = [waiting(WaitState::PendingWait)];
    let done = launch::continue_ready(&ctx, &with_launch_hook(), "demo", &ready, &bound).await;
    let report = done[0].1.as_ref().expect("no error");
    assert_eq!(report.outcome, ActionOutcome::Continue, "{report:?}");
    assert_eq!(complete.num_calls(), 3);
}

#[tokio::test]
async fn completions_throttled_until_the_bound_are_left_waiting_at_a_falling_pace() {
    let complete = mock!(Asg::complete_lifecycle_action)
        .sequence()
        .http_status(400, Some(THROTTLED.to_owned()))
        .repeatedly()
        .build();
    let ctx = context(&[], &[], &[&complete]);
    // Room for about two seconds of rounds before the bound.
    let bound = crate::deadline::Deadline::after(Duration::from_secs(7));
    let ready: Vec<Waiting> = (0..40)
        .map(|i| Waiting {
            instance: id(&format!("i-{i:017x}")),
            ..waiting(WaitState::PendingWait)
        })
        .collect();
    let done = launch::continue_ready(&ctx, &with_launch_hook(), "demo", &ready, &bound).await;
    assert_eq!(done.len(), 40);
    assert!(done.iter().all(|(_, r)| r
        .as_ref()
        .is_ok_and(|r| r.outcome == ActionOutcome::Waiting)));
    // Rounds of 16, 8, 4, 2, … after gaps of 0.2, 0.4, 0.8 s, …: fewer calls than instances,
    // where 16 at a time without pacing would have sent some 200 in the same time.
    let calls = complete.num_calls();
    assert!((16..40).contains(&calls), "{calls} completions sent");
}
