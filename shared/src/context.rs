//! One `Context` for every trigger: configuration, the AWS adapters and the metrics sink, built
//! once per process (outside the handler), and the per-invocation facts (request id, deadline).

use crate::aws::autoscaling::AutoScaling;
use crate::aws::fleet::Fleet;
use crate::aws::parameters::ParameterStore;
use crate::aws::run_command::{CommandOutput, CommandRequest, CommandRunner, RunCommandError};
use crate::aws::{AwsCallError, AwsClients};
use crate::config::Config;
use crate::deadline::Deadline;
use crate::identity::{self, Identified, TaggedControlPlane};
use crate::lease::Leases;
use crate::metrics::Metrics;
use crate::names::{ClusterName, InstanceId};
use tracing::warn;

#[derive(Clone, Debug)]
pub struct Context {
    pub config: Config,
    pub parameters: ParameterStore,
    pub leases: Leases,
    pub fleet: Fleet,
    pub runner: CommandRunner,
    pub asg: AutoScaling,
    /// Where the metrics go: stdout unless [`Context::with_metrics`] chose another sink.
    pub metrics: Metrics,
}

impl Context {
    /// Every cluster joinkeeper knows by tag: one listing of the tagged groups, one of the
    /// tagged instances.
    pub async fn discover_clusters(&self) -> Result<crate::aws::fleet::ClusterScan, AwsCallError> {
        Ok(self.discover().await?.1)
    }

    /// [`Context::discover_clusters`], with the tagged groups it listed (a scheduled run
    /// reconciles the worker groups among them).
    pub async fn discover(
        &self,
    ) -> Result<
        (
            crate::aws::autoscaling::TaggedGroups,
            crate::aws::fleet::ClusterScan,
        ),
        AwsCallError,
    > {
        let groups = self.asg.tagged_groups().await?;
        let scan = self.fleet.discover_clusters(&groups.cluster_tags).await?;
        Ok((groups, scan))
    }

    /// Sorts instances tagged as `cluster`'s control planes by identity ([`crate::identity`]);
    /// every impostor is logged and counted (`ImpostorControlPlanes`), and never asked anything.
    pub fn identify(&self, cluster: &ClusterName, tagged: Vec<TaggedControlPlane>) -> Identified {
        let out = identity::identify(cluster, &self.config.control_plane_profiles, tagged);
        for i in &out.impostors {
            warn!(
                cluster = %cluster,
                instance = %i.instance,
                profile = %i.profile,
                expected = %identity::default_profile_name(cluster),
                "an instance tagged as a control plane lacks the cluster's control-plane instance profile; it is sent no command and its tags are not believed"
            );
            self.metrics.record(crate::metrics::impostor_control_plane(
                cluster.as_str(),
                &i.instance,
                &i.profile,
            ));
        }
        out
    }

    /// The cluster's control planes in one of `states` (EC2 state names), sorted by identity.
    pub async fn control_planes(
        &self,
        cluster: &ClusterName,
        states: &[&str],
    ) -> Result<Identified, AwsCallError> {
        let tagged = self.fleet.tagged_control_planes(cluster, states).await?;
        Ok(self.identify(cluster, tagged))
    }

    /// The cluster's genuine control planes that are running and whose SSM agent is Online, in
    /// failover order: the only instances the functions send commands to.
    pub async fn control_plane_candidates(
        &self,
        cluster: &ClusterName,
    ) -> Result<Vec<InstanceId>, AwsCallError> {
        let identified = self.control_planes(cluster, &["running"]).await?;
        self.fleet.reachable_among(identified.ids()).await
    }

    pub fn new(config: Config, clients: &AwsClients) -> Self {
        let parameters = ParameterStore::new(clients.ssm.clone());
        Context {
            leases: Leases::new(parameters.clone()),
            parameters,
            fleet: Fleet::new(clients),
            runner: CommandRunner::new(
                clients.ssm.clone(),
                config.command_poll,
                config.command_deadline,
            ),
            asg: AutoScaling::new(clients.autoscaling.clone()),
            metrics: Metrics::Stdout,
            config,
        }
    }

    /// The same context with its metrics going to `metrics` (off for the command-line tool,
    /// captured in tests).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Sends a Run Command document and returns the command id without waiting; counts it
    /// (`CommandsSent`, property `Document`, dimension the request's cluster).
    pub async fn send_command(
        &self,
        request: &CommandRequest<'_>,
    ) -> Result<String, RunCommandError> {
        let command_id = self.runner.send(request).await?;
        self.metrics.record(crate::metrics::command_sent(
            request.cluster,
            request.document,
        ));
        Ok(command_id)
    }

    /// Sends the document ([`Context::send_command`]), then polls until it ends, its own deadline
    /// passes (cancelled), or the invocation's deadline comes (left running).
    pub async fn run_command(
        &self,
        request: CommandRequest<'_>,
        deadline: &Deadline,
    ) -> Result<CommandOutput, RunCommandError> {
        self.run_command_picked_up(request, deadline, None).await
    }

    /// The pickup bound for a read-only question asked of control plane `n` of `of`: one node
    /// poll while another is left to ask, none for the last (it is waited on).
    pub fn pickup_before_next(&self, n: usize, of: usize) -> Option<std::time::Duration> {
        (n + 1 < of).then_some(self.config.node_poll)
    }

    /// [`Context::run_command`], given up when the agent has not taken the command within
    /// `pickup` (see [`crate::aws::run_command::CommandRunner::wait_picked_up`]).
    pub async fn run_command_picked_up(
        &self,
        request: CommandRequest<'_>,
        deadline: &Deadline,
        pickup: Option<std::time::Duration>,
    ) -> Result<CommandOutput, RunCommandError> {
        // A throttled SendCommand was refused, never applied: sent again after a pause, for a
        // while (a burst of commands shares one account-wide rate), not given up at once.
        let patience = deadline.within(SEND_PATIENCE);
        let salt = crate::aws::patience::salt_of(request.instance.as_str());
        let mut attempt = 0;
        let command_id = loop {
            match self.send_command(&request).await {
                Err(RunCommandError::Aws(err))
                    if err.is_throttling()
                        && patience
                            .sleep(crate::aws::patience::pause_before(
                                attempt,
                                salt ^ u64::from(attempt),
                            ))
                            .await =>
                {
                    attempt += 1;
                }
                other => break other?,
            }
        };
        self.runner
            .wait_picked_up(request.instance, &command_id, deadline, pickup)
            .await
    }
}

/// How long a throttled SendCommand of [`Context::run_command_picked_up`] is sent again.
const SEND_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// What started the work: a lifecycle event, the schedule, or an operator (the CLI). Metrics
/// tell actions completed by the schedule's sweep from those completed by their own event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Trigger {
    #[default]
    Event,
    Schedule,
    Operator,
}

impl Trigger {
    pub fn label(self) -> &'static str {
        match self {
            Trigger::Event => "event",
            Trigger::Schedule => "schedule",
            Trigger::Operator => "operator",
        }
    }
}

/// What one invocation brings: who it is (for "held by …" answers), when it must end, and what
/// started it.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub request_id: String,
    pub deadline: Deadline,
    pub trigger: Trigger,
}

impl Invocation {
    /// An invocation started by an event (see [`Invocation::with_trigger`]).
    pub fn new(request_id: impl Into<String>, deadline: Deadline) -> Self {
        Invocation {
            request_id: request_id.into(),
            deadline,
            trigger: Trigger::Event,
        }
    }

    pub fn with_trigger(mut self, trigger: Trigger) -> Self {
        self.trigger = trigger;
        self
    }
}
