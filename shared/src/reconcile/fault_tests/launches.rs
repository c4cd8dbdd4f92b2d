//! Launches, warm-pool entry and the scheduled sweep under faults.

use super::*;

fn activity(description: &str, start: OffsetDateTime) -> Activity {
    Activity::builder()
        .activity_id("a-1")
        .auto_scaling_group_name("demo-workers")
        .cause("scale-out")
        .description(description)
        .start_time(aws_smithy_types::DateTime::from_secs(
            start.unix_timestamp(),
        ))
        .status_code(ScalingActivityStatusCode::InProgress)
        .build()
}

#[tokio::test]
async fn a_running_warm_pool_instance_is_timed_from_leaving_the_pool_not_its_launch() {
    let now = OffsetDateTime::now_utc();
    let activities = mock!(Asg::describe_scaling_activities).then_output(move || {
        DescribeScalingActivitiesOutput::builder()
            .activities(activity(
                "Launching a new EC2 instance from warm pool: i-0000000000000000a",
                now - time::Duration::seconds(10),
            ))
            .build()
    });
    let (r, completions) = launch_after_two_hours(&activities).await;
    assert_eq!(r.outcome, ActionOutcome::Waiting, "{r:?}");
    assert_eq!(completions, 0, "never ABANDONed for its time in the pool");
    assert_eq!(activities.num_calls(), 1);
}

/// One launch step for a worker whose EC2 launch time is two hours old, its Node absent:
/// the report and how many completions were made.
async fn launch_after_two_hours(
    activities: &Rule,
) -> (crate::reconcile::report::ActionReport, usize) {
    let (complete, beat) = (complete_ok(), heartbeat_ok());
    let ctx = context(&[], &[], &[activities, &complete, &beat]);
    let w = waiting(WaitState::PendingWait);
    let mut mem = Memory::default();
    let hooks = launch_setup(&mut mem, &w, time::Duration::hours(2));
    let hooks: Vec<_> = hooks.iter().collect();
    let deadline = crate::deadline::Deadline::after(Duration::from_secs(60));
    let r = launch::launch(
        &ctx,
        &mut mem,
        "demo",
        &w,
        &hooks,
        Some(NodeState::Absent),
        &deadline,
    )
    .await
    .expect("report");
    (r, complete.num_calls())
}

#[tokio::test]
async fn an_unknown_wait_start_holds_the_action() {
    let activities = failing(mock!(Asg::describe_scaling_activities));
    let (r, completions) = launch_after_two_hours(&activities).await;
    assert_eq!(r.outcome, ActionOutcome::Waiting);
    assert_eq!(completions, 0);
}

#[tokio::test]
async fn warm_pool_entries_fetch_at_most_five_join_logs_per_pass() {
    let send = mock!(Ssm::send_command).then_output(|| {
        SendCommandOutput::builder()
            .command(Command::builder().command_id("cmd-log").build())
            .build()
    });
    let log = invocation(CommandInvocationStatus::Success, "Success", "installing\n");
    let (complete, beat) = (complete_ok(), heartbeat_ok());
    let ctx = context(&[&send, &log], &[], &[&complete, &beat]);
    let mut mem = Memory::default();
    let hooks = [hook("joinkeeper-launch", Transition::Launching)];
    let hooks: Vec<_> = hooks.iter().collect();
    let deadline = crate::deadline::Deadline::after(Duration::from_secs(60));
    for n in 0..8 {
        let w = Waiting {
            group: group("demo-workers"),
            instance: id(&format!("i-000000000000000{n}a")),
            state: WaitState::WarmedPendingWait,
        };
        launch_setup(&mut mem, &w, time::Duration::ZERO);
        let r = crate::reconcile::warm_entry::enter_warm_pool(
            &ctx, &mut mem, "demo", &w, &hooks, true, &deadline,
        )
        .await
        .expect("report");
        assert_eq!(r.outcome, ActionOutcome::Waiting);
    }
    assert_eq!(
        send.num_calls(),
        5,
        "the per-pass cap applies to warm-pool entry"
    );
}

#[tokio::test]
async fn warm_pool_entries_join_logs_are_fetched_together_not_one_after_the_other() {
    // The order AWS sees: every join log's SendCommand before the first answer is asked for.
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sent = calls.clone();
    let send = mock!(Ssm::send_command).then_output(move || {
        sent.lock().expect("calls").push("send");
        SendCommandOutput::builder()
            .command(Command::builder().command_id("cmd-log").build())
            .build()
    });
    // Each command is still running when first asked about (the fetch then waits a poll).
    let asked = calls.clone();
    let log = mock!(Ssm::get_command_invocation).then_output(move || {
        let mut calls = asked.lock().expect("calls");
        let running = calls.iter().filter(|c| **c == "running").count()
            < calls.iter().filter(|c| **c == "send").count();
        calls.push(if running { "running" } else { "answered" });
        let status = if running {
            CommandInvocationStatus::InProgress
        } else {
            CommandInvocationStatus::Success
        };
        GetCommandInvocationOutput::builder()
            .status(status.clone())
            .status_details(status.as_str())
            .standard_output_content("join deferred\n")
            .build()
    });
    let ctx = context(&[&send, &log], &[], &[]);
    let deadline = crate::deadline::Deadline::after(Duration::from_secs(60));
    let entering: Vec<Waiting> = (0..8)
        .map(|n| Waiting {
            group: group("demo-workers"),
            instance: id(&format!("i-000000000000000{n}a")),
            state: WaitState::WarmedPendingWait,
        })
        .collect();
    let entering: Vec<&Waiting> = entering.iter().collect();
    let mut mem = Memory::default();
    crate::reconcile::warm_entry::prefetch_join_logs(&ctx, &mut mem, "demo", &entering, &deadline)
        .await;
    assert_eq!(
        mem.join_logs, 5,
        "the per-pass share of join logs still applies"
    );
    assert_eq!(mem.warm_logs.len(), 5);
    assert!(mem.warm_logs.values().all(|l| l.contains("join deferred")));
    let calls = calls.lock().expect("calls").clone();
    let first_answer = calls.iter().position(|c| *c == "answered");
    let sends_before = calls[..first_answer.unwrap_or(calls.len())]
        .iter()
        .filter(|c| **c == "send")
        .count();
    assert_eq!(
        sends_before, 5,
        "the join logs were fetched one after the other: {calls:?}"
    );
}

#[tokio::test]
async fn a_scheduled_sweep_reports_a_failed_cluster_instead_of_failing_and_being_retried() {
    use aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput;
    use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
    use aws_sdk_ec2::types::{Instance, InstanceState, InstanceStateName, Reservation, Tag};
    type Ec2 = aws_sdk_ec2::Client;
    let groups = mock!(Asg::describe_auto_scaling_groups)
        .then_output(|| DescribeAutoScalingGroupsOutput::builder().build());
    let instances = mock!(Ec2::describe_instances).then_output(|| {
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
        DescribeInstancesOutput::builder()
            .reservations(
                Reservation::builder()
                    .instances(
                        Instance::builder()
                            .instance_id("i-0000000000000000c")
                            .state(
                                InstanceState::builder()
                                    .name(InstanceStateName::Running)
                                    .build(),
                            )
                            .tags(tag("joinkeeper:cluster", "demo"))
                            .tags(tag("joinkeeper:role", "control-plane"))
                            .iam_instance_profile(
                                aws_sdk_ec2::types::IamInstanceProfile::builder()
                                    .arn("arn:aws:iam::123456789012:instance-profile/joinkeeper-control-plane-demo")
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    // Every Parameter Store and SSM call fails: the cluster's refresh fails.
    let get = failing(mock!(Ssm::get_parameter));
    let put = failing(mock!(Ssm::put_parameter));
    let by_path = failing(mock!(Ssm::get_parameters_by_path));
    let info = failing(mock!(Ssm::describe_instance_information));
    let ctx = context(&[&get, &put, &by_path, &info], &[&instances], &[&groups]);
    let event: serde_json::Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/scheduled-refresh.json"
    )))
    .expect("event");
    let inv = crate::context::Invocation::new(
        "req",
        crate::deadline::Deadline::after(Duration::from_secs(60)),
    );
    let response = crate::handler::handle_schedule(&ctx, &event, &inv)
        .await
        .expect("a failed cluster is reported, not returned as the invocation's error");
    assert_eq!(response.refresh.failed(), 1, "{:?}", response.refresh);
}

#[tokio::test]
async fn a_pass_that_cannot_read_the_cluster_is_asked_again_not_the_end_of_the_run() {
    use aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput;
    const THROTTLED: &str = "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>r</RequestId></ErrorResponse>";
    let groups = mock!(Asg::describe_auto_scaling_groups)
        .sequence()
        .http_status(400, Some(THROTTLED.to_owned()))
        .output(|| DescribeAutoScalingGroupsOutput::builder().build())
        .repeatedly()
        .build();
    let (put, delete, absent) = (put_ok(), delete_ok(), lease_absent());
    // No worker leaves by a door without a hook.
    let no_exits = mock!(Ssm::get_parameters_by_path).then_output(|| {
        aws_sdk_ssm::operation::get_parameters_by_path::GetParametersByPathOutput::builder().build()
    });
    let ctx = context(&[&put, &delete, &absent, &no_exits], &[], &[&groups]);
    let inv = crate::context::Invocation::new(
        "req",
        crate::deadline::Deadline::after(Duration::from_secs(120)),
    );
    let outcome = crate::reconcile::reconcile(&ctx, &cluster(), &inv)
        .await
        .expect("a throttled read is asked again within the run");
    match outcome {
        crate::reconcile::ReconcileOutcome::Ran(report) => {
            assert_eq!(report.passes, 2, "{report:?}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(delete.num_calls(), 1, "the lease released at the end");
}

#[tokio::test]
async fn a_node_status_question_an_agent_never_takes_is_asked_of_the_next_control_plane() {
    use aws_sdk_ssm::operation::cancel_command::CancelCommandOutput;
    // The first control plane's agent went offline while PingStatus still says Online: its
    // command stays Pending. The question goes to the second after one node poll, not after the
    // command deadline.
    let (silent, answering) = (id("i-0000000000000000c"), id("i-0000000000000000d"));
    let send = mock!(Ssm::send_command).then_output(|| {
        SendCommandOutput::builder()
            .command(Command::builder().command_id("cmd-new").build())
            .build()
    });
    let pending = mock!(Ssm::get_command_invocation)
        .match_requests(|r| r.instance_id() == Some("i-0000000000000000c"))
        .then_output(|| {
            GetCommandInvocationOutput::builder()
                .status(CommandInvocationStatus::Pending)
                .status_details("Pending")
                .build()
        });
    let answer = mock!(Ssm::get_command_invocation)
        .match_requests(|r| r.instance_id() == Some("i-0000000000000000d"))
        .then_output(worker_ready);
    let cancel = mock!(Ssm::cancel_command)
        .match_requests(|r| r.instance_ids().iter().any(|i| i == "i-0000000000000000c"))
        .then_output(|| CancelCommandOutput::builder().build());
    let ctx = context(&[&send, &pending, &answer, &cancel], &[], &[]);
    let started = std::time::Instant::now();
    let (states, passed_over) = ask_about_worker(&ctx, &[silent.clone(), answering], 60).await;
    let states = states.expect("the second control plane answered").0;
    assert_eq!(
        passed_over,
        [silent],
        "the silent one is named, to be asked last next pass"
    );
    assert_eq!(
        states.get(&worker()).map(|(s, _)| *s),
        Some(NodeState::Ready)
    );
    assert_eq!(cancel.num_calls(), 1, "the untaken command is cancelled");
    assert!(
        started.elapsed() < ctx.config.command_deadline / 2,
        "passed over after about one node poll, not waited on until the command deadline"
    );

    // The last control plane left is waited on (nothing else could answer).
    let polled_before = pending.num_calls();
    let ctx = context(&[&send, &pending, &cancel], &[], &[]);
    let alone = ask_about_worker(&ctx, &[id("i-0000000000000000c")], 3)
        .await
        .0;
    assert!(alone.is_none());
    assert!(
        pending.num_calls() - polled_before > 20,
        "polled until the bound, not given up after a poll"
    );
    assert_eq!(
        cancel.num_calls(),
        1,
        "not cancelled for being slow to be taken"
    );
}

#[tokio::test]
async fn a_throttled_send_is_sent_again_and_throttled_polls_wait_for_the_answer_not_cancel_it() {
    use aws_sdk_ssm::operation::cancel_command::CancelCommandOutput;
    // SendCommand throttled (refused, never applied), then GetCommandInvocation throttled past
    // the SDK's attempts, poll after poll: the question is sent again until it goes out, runs on
    // its control plane, and its answer is still read; nothing is cancelled.
    const THROTTLED: &str = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
    let cp = id("i-0000000000000000d");
    let send = mock!(Ssm::send_command)
        .sequence()
        .http_status(400, Some(THROTTLED.to_owned()))
        .times(2)
        .output(|| {
            SendCommandOutput::builder()
                .command(Command::builder().command_id("cmd-new").build())
                .build()
        })
        .build();
    let polls = mock!(Ssm::get_command_invocation)
        .sequence()
        .http_status(400, Some(THROTTLED.to_owned()))
        .times(4)
        .output(worker_ready)
        .build();
    let cancel = mock!(Ssm::cancel_command).then_output(|| CancelCommandOutput::builder().build());
    let ctx = context(&[&send, &polls, &cancel], &[], &[]);
    let (states, passed_over) = ask_about_worker(&ctx, &[cp], 60).await;
    let states = states.expect("answered once the polls got through").0;
    assert_eq!(
        states.get(&worker()).map(|(s, _)| *s),
        Some(NodeState::Ready)
    );
    assert!(passed_over.is_empty());
    assert_eq!(polls.num_calls(), 5);
    assert_eq!(
        send.num_calls(),
        3,
        "a throttled send (never applied) sent again; then once"
    );
    assert_eq!(cancel.num_calls(), 0, "not cancelled");
}

/// The node-status question about `worker()` (at ip-10-0-0-1), asked of `control_planes` within
/// `seconds`: the answers, and the control planes passed over.
async fn ask_about_worker(
    ctx: &crate::Context,
    control_planes: &[crate::names::InstanceId],
    seconds: u64,
) -> (
    Option<crate::reconcile::node_status::Answers>,
    Vec<crate::names::InstanceId>,
) {
    crate::reconcile::node_status::node_states(
        ctx,
        &cluster(),
        control_planes,
        &[worker()],
        &HashMap::from([(
            worker(),
            crate::nodes::matching::HostKeys {
                id: worker(),
                private_dns: "ip-10-0-0-1.ec2.internal".into(),
                private_ip: Some("10.0.0.1".into()),
            },
        )]),
        None,
        &crate::deadline::Deadline::after(Duration::from_secs(seconds)),
    )
    .await
}

/// The control plane's answer: `worker()`'s Node is Ready.
fn worker_ready() -> GetCommandInvocationOutput {
    GetCommandInvocationOutput::builder()
        .status(CommandInvocationStatus::Success)
        .status_details("Success")
        .standard_output_content(
            "node ip-10-0-0-1.ec2.internal aws:///us-east-1a/i-0000000000000000a - Ready no 10.0.0.1 -\nid i-0000000000000000a\n",
        )
        .build()
}
