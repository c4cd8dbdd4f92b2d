//! Call-sequence tests of the reconciler's steps under AWS's faults, in process (the SDK's own
//! mocks, no emulator): each pins one way work was lost before — a drain that never ran counted
//! as done, an undelivered drain, a stale record, a failed lease renewal, a sweep failed for one
//! cluster, a Running warm pool's instance ABANDONed for its age, join logs without a cap.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_autoscaling::operation::complete_lifecycle_action::CompleteLifecycleActionOutput;
use aws_sdk_autoscaling::operation::describe_scaling_activities::DescribeScalingActivitiesOutput;
use aws_sdk_autoscaling::operation::record_lifecycle_action_heartbeat::RecordLifecycleActionHeartbeatOutput;
use aws_sdk_autoscaling::types::{Activity, ScalingActivityStatusCode};
use aws_sdk_ssm::operation::delete_parameter::DeleteParameterOutput;
use aws_sdk_ssm::operation::get_command_invocation::GetCommandInvocationOutput;
use aws_sdk_ssm::operation::put_parameter::PutParameterOutput;
use aws_sdk_ssm::operation::send_command::SendCommandOutput;
use aws_sdk_ssm::types::{Command, CommandInvocationStatus};
use aws_smithy_mocks::{mock, Rule};
use time::OffsetDateTime;

use crate::aws::fleet::InstanceFacts;
use crate::lease::{now_ms, Held, LeaseValue};
use crate::lifecycle::{NodeState, Transition, WaitState};
use crate::names::ClusterName;
use crate::reconcile::drain::DrainRecord;
use crate::reconcile::gather::Waiting;
use crate::reconcile::memory::Memory;
use crate::reconcile::report::ActionOutcome;
use crate::reconcile::{launch, terminate};
use crate::testing::{context, group, hook, id, SERVER_ERROR};

type Asg = aws_sdk_autoscaling::Client;
type Ssm = aws_sdk_ssm::Client;

fn cluster() -> ClusterName {
    ClusterName::parse("demo").expect("name")
}

fn waiting(state: WaitState) -> Waiting {
    Waiting {
        group: group("demo-workers"),
        instance: id("i-0000000000000000a"),
        state,
    }
}

fn sent_to(cp: &'static str) -> Rule {
    mock!(Ssm::send_command)
        .match_requests(move |r| r.instance_ids().iter().any(|i| i == cp))
        .then_output(|| {
            SendCommandOutput::builder()
                .command(Command::builder().command_id("cmd-new").build())
                .build()
        })
}

fn invocation(status: CommandInvocationStatus, details: &'static str, out: &'static str) -> Rule {
    mock!(Ssm::get_command_invocation).then_output(move || {
        GetCommandInvocationOutput::builder()
            .status(status.clone())
            .status_details(details)
            .response_code(if details == "Success" { 0 } else { -1 })
            .standard_output_content(out)
            .build()
    })
}

/// A rule that answers every call with a 5xx.
fn failing<I, O, E>(rule: aws_smithy_mocks::RuleBuilder<I, O, E>) -> Rule
where
    I: std::fmt::Debug + Send + Sync + 'static,
    O: std::fmt::Debug + Send + Sync + 'static,
    E: std::fmt::Debug + Send + Sync + std::error::Error + 'static,
{
    rule.sequence()
        .http_status(SERVER_ERROR, None)
        .repeatedly()
        .build()
}

fn put_ok() -> Rule {
    mock!(Ssm::put_parameter).then_output(|| PutParameterOutput::builder().version(2).build())
}

fn delete_ok() -> Rule {
    mock!(Ssm::delete_parameter).then_output(|| DeleteParameterOutput::builder().build())
}

fn complete_ok() -> Rule {
    mock!(Asg::complete_lifecycle_action)
        .then_output(|| CompleteLifecycleActionOutput::builder().build())
}

fn heartbeat_ok() -> Rule {
    mock!(Asg::record_lifecycle_action_heartbeat)
        .then_output(|| RecordLifecycleActionHeartbeatOutput::builder().build())
}

fn memory_with(record: DrainRecord) -> Memory {
    Memory {
        drains: Some(HashMap::from([(id("i-0000000000000000a"), record)])),
        ..Default::default()
    }
}

fn terminate_hooks() -> Vec<crate::aws::autoscaling::Hook> {
    vec![hook("joinkeeper-terminate", Transition::Terminating)]
}

/// A drain record started `ago_ms` ago (`command` empty: only intended).
fn record(
    command: &str,
    control_plane: Option<&str>,
    ago_ms: i64,
    left: Option<&str>,
) -> DrainRecord {
    DrainRecord {
        command_id: command.into(),
        control_plane: control_plane.map(id),
        started_at_ms: now_ms() - ago_ms,
        left_node: left.map(str::to_owned),
    }
}

/// A control plane that takes drains, Parameter Store writes and Auto Scaling completions and
/// heartbeats that succeed: (send, put, complete, heartbeat).
fn sending_world() -> (Rule, Rule, Rule, Rule) {
    (
        sent_to("i-0000000000000000c"),
        put_ok(),
        complete_ok(),
        heartbeat_ok(),
    )
}

/// The worker every test's action is about.
fn worker() -> crate::names::InstanceId {
    id("i-0000000000000000a")
}

/// One terminate step for the worker, in `Terminating:Wait`.
async fn run_terminate(
    ctx: &crate::context::Context,
    mem: &mut Memory,
    node: Option<NodeState>,
    control_planes: &[crate::names::InstanceId],
) -> Result<crate::reconcile::report::ActionReport, crate::aws::AwsCallError> {
    let hooks = terminate_hooks();
    let hooks: Vec<_> = hooks.iter().collect();
    let w = waiting(WaitState::TerminatingWait);
    terminate::terminate(
        ctx,
        mem,
        &cluster(),
        &w,
        &hooks,
        node,
        control_planes,
        "req",
    )
    .await
}

const LEASE: &str = "/joinkeeper/demo/leases/reconcile";

/// A lease held by "h" for `ms` more milliseconds.
fn held_for(ms: i64) -> Held {
    Held {
        name: LEASE.into(),
        value: LeaseValue {
            holder: "h".into(),
            expires_at_ms: now_ms() + ms,
            ..Default::default()
        },
        previous: None,
    }
}

/// `GetParameter` of the lease, answering `value()`.
fn lease_parameter(value: impl Fn() -> String + Send + Sync + 'static) -> Rule {
    use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
    use aws_sdk_ssm::types::Parameter;
    mock!(Ssm::get_parameter).then_output(move || {
        GetParameterOutput::builder()
            .parameter(
                Parameter::builder()
                    .name(LEASE)
                    .value(value())
                    .version(1)
                    .build(),
            )
            .build()
    })
}

async fn acquire(ctx: &crate::context::Context) -> crate::lease::Acquire {
    ctx.leases
        .try_acquire(LEASE, Duration::from_secs(120), LeaseValue::default())
        .await
        .expect("an answer, not an error")
}

/// The worker, launched `launched` ago by EC2's clock, with the launch hook.
fn launch_setup(
    mem: &mut Memory,
    w: &Waiting,
    launched: time::Duration,
) -> Vec<crate::aws::autoscaling::Hook> {
    mem.facts.insert(
        w.instance.clone(),
        InstanceFacts {
            id: w.instance.clone(),
            launched: Some(OffsetDateTime::now_utc() - launched),
            private_dns: String::new(),
        },
    );
    vec![hook("joinkeeper-launch", Transition::Launching)]
}

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
async fn a_failed_lease_renewal_lets_go_at_once() {
    let put = failing(mock!(Ssm::put_parameter));
    let delete = delete_ok();
    let ctx = context(&[&put, &delete], &[], &[]);
    let mut held = held_for(120_000);
    let r = super::renew_or_let_go(&ctx.leases, &mut held, Duration::from_secs(120)).await;
    assert!(r.is_err());
    assert_eq!(delete.num_calls(), 1, "released, not left to expire");
}

#[tokio::test]
async fn a_lease_write_that_would_outlive_the_guard_is_abandoned() {
    // Nothing answers within the time left: the write is cut before the lease's expiry.
    let leases = context(&[], &[], &[]).leases;
    let held = held_for(crate::lease::GUARD.as_millis() as i64 - 1_000);
    assert!(!leases.may_act(&held), "inside the guard: no more writes");
    let mut h = held.clone();
    assert_eq!(
        leases.renew(&mut h, Duration::from_secs(60)).await.ok(),
        Some(false)
    );
}

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
async fn a_lease_whose_create_answer_was_lost_is_recognised_as_ours() {
    use aws_sdk_ssm::operation::put_parameter::PutParameterError;
    use aws_sdk_ssm::types::error::ParameterAlreadyExists;
    use std::sync::{Arc, Mutex};
    // The create took effect, its answer was lost, and the SDK's retry found the parameter.
    let written = Arc::new(Mutex::new(String::new()));
    let seen = written.clone();
    let create = mock!(Ssm::put_parameter)
        .match_requests(move |r| {
            *seen.lock().expect("lock") = r.value().unwrap_or_default().to_owned();
            true
        })
        .then_error(|| {
            PutParameterError::ParameterAlreadyExists(ParameterAlreadyExists::builder().build())
        });
    let stored = written.clone();
    let read = lease_parameter(move || stored.lock().expect("lock").clone());
    let ctx = context(&[&create, &read], &[], &[]);
    let got = acquire(&ctx).await;
    assert!(
        matches!(got, crate::lease::Acquire::Held(_)),
        "our own lease must not lock us out until it expires: {got:?}"
    );
}

#[test]
fn a_lease_left_to_expire_unrenewed_is_waited_for_and_taken_over() {
    let ctx = context(&[], &[], &[]);
    let ttl = super::lease_ttl(&ctx);
    let at = |left: Duration| LeaseValue {
        expires_at_ms: now_ms() + left.as_millis() as i64,
        ..Default::default()
    };
    assert!(
        super::expiring_unrenewed(&ctx, &at(ttl)).is_none(),
        "just renewed"
    );
    assert!(super::expiring_unrenewed(&ctx, &at(ttl / 2)).is_none());
    assert!(
        super::expiring_unrenewed(&ctx, &at(ttl / 4)).is_some(),
        "a dead holder's"
    );
}

#[tokio::test]
async fn a_release_is_never_retried_so_a_lost_answer_cannot_delete_a_successors_lease() {
    use aws_sdk_ssm::config::retry::RetryConfig;
    use aws_smithy_mocks::{mock_client, RuleMode};
    // The delete took effect, its answer was lost (a 5xx here): a retry would delete whatever
    // lease a successor created meanwhile.
    let delete = mock!(Ssm::delete_parameter)
        .sequence()
        .http_status(SERVER_ERROR, None)
        .output(|| DeleteParameterOutput::builder().build())
        .build();
    let client = mock_client!(aws_sdk_ssm, RuleMode::Sequential, [&delete], |c| c
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(1))
        ));
    let leases = crate::lease::Leases::new(crate::aws::parameters::ParameterStore::new(client));
    let held = held_for(120_000);
    assert!(leases.release(held).await.is_err());
    assert_eq!(delete.num_calls(), 1, "one attempt only");
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
async fn a_throttled_lease_create_finds_the_holder_without_failing() {
    const THROTTLED: &str = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
    let create = mock!(Ssm::put_parameter)
        .sequence()
        .http_status(400, Some(THROTTLED.to_owned()))
        .repeatedly()
        .build();
    let holder = LeaseValue {
        holder: "someone".into(),
        request_id: "req-holder".into(),
        expires_at_ms: now_ms() + 60_000,
        ..Default::default()
    };
    let value = serde_json::to_string(&holder).expect("json");
    let read = lease_parameter(move || value.clone());
    let ctx = context(&[&create, &read], &[], &[]);
    let got = acquire(&ctx).await;
    assert!(
        matches!(got, crate::lease::Acquire::Busy(Some(ref v)) if v.request_id == "req-holder"),
        "{got:?}"
    );
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
    let (put, delete) = (put_ok(), delete_ok());
    let ctx = context(&[&put, &delete], &[], &[&groups]);
    let inv = crate::context::Invocation::new(
        "req",
        crate::deadline::Deadline::after(Duration::from_secs(120)),
    );
    let outcome = super::reconcile(&ctx, &cluster(), &inv)
        .await
        .expect("a throttled read is asked again within the run");
    match outcome {
        super::ReconcileOutcome::Ran(report) => assert_eq!(report.passes, 2, "{report:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(delete.num_calls(), 1, "the lease released at the end");
}

#[tokio::test]
async fn a_throttled_release_is_tried_again_it_was_never_applied() {
    const THROTTLED: &str = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
    let delete = mock!(Ssm::delete_parameter)
        .sequence()
        .http_status(400, Some(THROTTLED.to_owned()))
        .times(2)
        .output(|| DeleteParameterOutput::builder().build())
        .build();
    let ctx = context(&[&delete], &[], &[]);
    ctx.leases
        .release(held_for(120_000))
        .await
        .expect("released on the third attempt");
    assert_eq!(delete.num_calls(), 3);
}

#[test]
fn a_run_renews_its_lease_for_no_longer_than_half_the_shortest_heartbeat_timeout() {
    use crate::reconcile::gather::GroupHooks;
    let ctx = context(&[], &[], &[]);
    let mut mem = Memory::default();
    assert_eq!(
        super::run_ttl(&ctx, &mem),
        super::lease_ttl(&ctx),
        "hooks not read yet"
    );
    let mut short = hook("joinkeeper-launch", Transition::Launching);
    short.heartbeat_timeout = Duration::from_secs(90);
    mem.hooks.insert(
        group("demo-workers"),
        GroupHooks {
            launch: Some(short),
            terminate: None,
        },
    );
    assert_eq!(super::run_ttl(&ctx, &mem), Duration::from_secs(45));
}

#[test]
fn the_takeover_window_follows_the_ttl_the_holder_wrote() {
    let ctx = context(&[], &[], &[]);
    let holder = |left_ms: i64, ttl_ms: i64| LeaseValue {
        expires_at_ms: now_ms() + left_ms,
        ttl_ms,
        ..Default::default()
    };
    // A live holder on a 45 s lease, 20 s left: not expiring (a third of 45 s is 15 s).
    assert!(super::expiring_unrenewed(&ctx, &holder(20_000, 45_000)).is_none());
    assert!(super::expiring_unrenewed(&ctx, &holder(10_000, 45_000)).is_some());
}
