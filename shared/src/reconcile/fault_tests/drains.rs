//! Drains under faults: never counted as done without running, resent elsewhere, settled before
//! the action completes, and the Node left for deletion.

use super::*;

#[tokio::test]
async fn an_intended_drain_without_a_command_id_is_sent_not_counted_as_done() {
    let (send, put, complete, beat) = sending_world();
    let ctx = context(&[&send, &put], &[], &[&complete, &beat]);
    let mut mem = memory_with(record("", None, 5_000, None));
    let r = run_terminate(&ctx, &mut mem, None, &[id("i-0000000000000000c")])
        .await
        .expect("report");
    assert_eq!(r.outcome, ActionOutcome::DrainStarted, "{r:?}");
    assert_eq!(send.num_calls(), 1, "the drain is sent");
    assert_eq!(
        complete.num_calls(),
        0,
        "never completed with the Node undrained"
    );
}

#[tokio::test]
async fn an_undelivered_drain_is_sent_again_to_another_control_plane() {
    let undelivered = invocation(CommandInvocationStatus::Failed, "Undeliverable", "");
    let (to_b, put, complete, beat) = (
        sent_to("i-0000000000000000b"),
        put_ok(),
        complete_ok(),
        heartbeat_ok(),
    );
    let ctx = context(&[&undelivered, &to_b, &put], &[], &[&complete, &beat]);
    let mut mem = memory_with(record("cmd-old", Some("i-0000000000000000c"), 30_000, None));
    // The control plane that did not take it sorts first: it must still go last.
    let r = run_terminate(
        &ctx,
        &mut mem,
        None,
        &[id("i-0000000000000000c"), id("i-0000000000000000b")],
    )
    .await
    .expect("report");
    assert_eq!(r.outcome, ActionOutcome::DrainStarted, "{r:?}");
    assert_eq!(to_b.num_calls(), 1, "resent to the other control plane");
    assert_eq!(complete.num_calls(), 0);
}

#[tokio::test]
async fn the_record_is_forgotten_before_the_action_is_completed() {
    let drained = invocation(
        CommandInvocationStatus::Success,
        "Success",
        "drain i-0000000000000000a node=ip-10-0-0-1.ec2.internal result=drained\n",
    );
    let failing_delete = failing(mock!(Ssm::delete_parameter));
    let (complete, beat) = (complete_ok(), heartbeat_ok());
    let ctx = context(&[&drained, &failing_delete], &[], &[&complete, &beat]);
    let mut mem = memory_with(record("cmd-1", Some("i-0000000000000000c"), 30_000, None));
    let result = run_terminate(&ctx, &mut mem, None, &[id("i-0000000000000000c")]).await;
    assert!(
        result.is_err(),
        "the record could not be forgotten: {result:?}"
    );
    assert_eq!(
        complete.num_calls(),
        0,
        "not completed while a record of this wait could answer for a later one"
    );
}

#[tokio::test]
async fn a_failed_drain_leaves_a_record_so_the_node_is_deleted_once_the_instance_is_gone() {
    let failed = invocation(
        CommandInvocationStatus::Success,
        "Success",
        "left default/web-1\ndrain i-0000000000000000a node=ip-10-0-0-1.ec2.internal result=timeout\n",
    );
    let (put, complete, beat) = (put_ok(), complete_ok(), heartbeat_ok());
    let ctx = context(&[&failed, &put], &[], &[&complete, &beat]);
    let mut mem = memory_with(record("cmd-1", Some("i-0000000000000000c"), 30_000, None));
    let r = run_terminate(&ctx, &mut mem, None, &[id("i-0000000000000000c")])
        .await
        .expect("report");
    assert_eq!(r.outcome, ActionOutcome::Completed);
    assert_eq!(
        put.num_calls(),
        1,
        "the record is marked left before completing"
    );
    let left = mem.drains.as_ref().and_then(|d| d.get(&worker())).cloned();
    assert_eq!(
        left.and_then(|l| l.left_node).as_deref(),
        Some("ip-10-0-0-1.ec2.internal")
    );
}

#[tokio::test]
async fn a_completion_that_failed_after_the_record_was_left_is_retried_without_a_new_drain() {
    let (send, put, complete, beat) = sending_world();
    let ctx = context(&[&send, &put], &[], &[&complete, &beat]);
    let mut mem = memory_with(record("", None, 5_000, Some("ip-10-0-0-1.ec2.internal")));
    let r = run_terminate(
        &ctx,
        &mut mem,
        Some(NodeState::NotReady),
        &[id("i-0000000000000000c")],
    )
    .await
    .expect("report");
    assert_eq!(r.outcome, ActionOutcome::Completed, "{r:?}");
    assert_eq!(send.num_calls(), 0, "no second drain");
    assert_eq!(complete.num_calls(), 1);
    let kept = mem.drains.as_ref().and_then(|d| d.get(&worker())).cloned();
    assert!(
        kept.and_then(|k| k.left_node).is_some(),
        "the Node is still to delete"
    );
}

#[tokio::test]
async fn a_drain_sent_again_by_a_later_run_names_the_node_matched_at_first() {
    // This run did not ask about the instance (its drain was recorded by an earlier run): the
    // record names the Node matched then, so the script never has to guess between claimants.
    let undelivered = invocation(CommandInvocationStatus::Failed, "Undeliverable", "");
    let named = mock!(Ssm::send_command)
        .match_requests(|r| {
            r.parameters()
                .and_then(|p| p.get("Node"))
                .is_some_and(|v| v.as_slice() == ["ip-10-0-0-9.ec2.internal"])
        })
        .then_output(|| {
            SendCommandOutput::builder()
                .command(Command::builder().command_id("cmd-new").build())
                .build()
        });
    let kept = mock!(Ssm::put_parameter)
        .match_requests(|r| {
            r.value()
                .is_some_and(|v| v.contains(r#""node":"ip-10-0-0-9.ec2.internal""#))
        })
        .then_output(|| PutParameterOutput::builder().version(2).build());
    let (complete, beat) = (complete_ok(), heartbeat_ok());
    let ctx = context(&[&undelivered, &named, &kept], &[], &[&complete, &beat]);
    let mut first = record("cmd-old", Some("i-0000000000000000c"), 30_000, None);
    first.node = Some("ip-10-0-0-9.ec2.internal".into());
    let mut mem = memory_with(first);
    let r = run_terminate(
        &ctx,
        &mut mem,
        None,
        &[id("i-0000000000000000c"), id("i-0000000000000000b")],
    )
    .await
    .expect("report");
    assert_eq!(r.outcome, ActionOutcome::DrainStarted, "{r:?}");
    assert_eq!(named.num_calls(), 1, "sent again naming the recorded Node");
    assert!(kept.num_calls() >= 1, "the record still names it");
}
