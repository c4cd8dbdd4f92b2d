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

/// `GetParameter` of a lease nobody holds.
fn lease_absent() -> Rule {
    use aws_sdk_ssm::operation::get_parameter::GetParameterError;
    use aws_sdk_ssm::types::error::ParameterNotFound;
    mock!(Ssm::get_parameter)
        .then_error(|| GetParameterError::ParameterNotFound(ParameterNotFound::builder().build()))
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
        node: None,
        blocked: Vec::new(),
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
            private_ip: None,
        },
    );
    vec![hook("joinkeeper-launch", Transition::Launching)]
}

mod completions;
mod drains;
mod handover;
mod launches;
mod leases;
mod prompt;
