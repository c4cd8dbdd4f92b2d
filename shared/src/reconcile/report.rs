//! What happened to each lifecycle action, and to each reconcile run: the structured log lines
//! the alarms' metric filters read, and the handlers' responses.

use serde::Serialize;
use tracing::info;

use crate::lifecycle::WaitState;
use crate::names::{GroupName, InstanceId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionOutcome {
    /// Completed CONTINUE: the Node is Ready, or the instance entered the warm pool.
    Continue,
    /// Completed ABANDON: no Ready Node by the join deadline.
    Abandon,
    /// Still waiting (heartbeated when due).
    Waiting,
    /// A drain was started on the control plane.
    DrainStarted,
    /// A drain runs; the action is held.
    Draining,
    /// Drained (or nothing to drain) and completed CONTINUE.
    Drained,
    /// Completed CONTINUE without a successful drain (timeout, failure, unreachable).
    Completed,
    /// Nothing done: already completed elsewhere, or not joinkeeper's.
    Skipped,
    /// This action's handling failed; the others went on.
    Failed,
}

impl ActionOutcome {
    pub fn label(self) -> &'static str {
        match self {
            ActionOutcome::Continue => "continue",
            ActionOutcome::Abandon => "abandon",
            ActionOutcome::Waiting => "waiting",
            ActionOutcome::DrainStarted => "drain-started",
            ActionOutcome::Draining => "draining",
            ActionOutcome::Drained => "drained",
            ActionOutcome::Completed => "completed",
            ActionOutcome::Skipped => "skipped",
            ActionOutcome::Failed => "failed",
        }
    }

    /// True when the action is finished as far as joinkeeper is concerned.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            ActionOutcome::Waiting | ActionOutcome::DrainStarted | ActionOutcome::Draining
        )
    }
}

/// One decision on one action; also the shape of its log line. Never holds a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActionReport {
    pub cluster: String,
    pub group: String,
    pub instance: String,
    pub state: &'static str,
    pub outcome: ActionOutcome,
    pub reason: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub heartbeat: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_pods: Vec<String>,
    /// For an abandoned worker: the last line of its own join log (tokens redacted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join_log_last_line: Option<String>,
    /// Instance launch → hook completed, for launches completed CONTINUE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join_seconds: Option<u64>,
    /// For an abandoned launch: why, as one word of [`crate::metrics::abandon_class`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_class: Option<&'static str>,
    /// Drain started → action completed, for terminations completed after a drain ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_seconds: Option<u64>,
    /// Decided by the scheduled reconcile (the sweep), not by the action's own event.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub by_schedule: bool,
}

impl ActionReport {
    pub fn new(
        cluster: &str,
        group: &GroupName,
        instance: &InstanceId,
        state: WaitState,
        outcome: ActionOutcome,
        reason: impl Into<String>,
    ) -> Self {
        ActionReport {
            cluster: cluster.to_owned(),
            group: group.to_string(),
            instance: instance.to_string(),
            state: state.as_str(),
            outcome,
            reason: reason.into(),
            heartbeat: false,
            left_pods: Vec::new(),
            join_log_last_line: None,
            join_seconds: None,
            reason_class: None,
            drain_seconds: None,
            by_schedule: false,
        }
    }

    /// Logs the decision (only final ones and starts of drains at info; waits at debug). Its
    /// metrics ([`crate::metrics::action`]) are recorded by the pass, into the context's sink.
    pub fn log(self) -> Self {
        if self.outcome == ActionOutcome::Waiting || self.outcome == ActionOutcome::Draining {
            tracing::debug!(cluster = %self.cluster, instance = %self.instance, outcome = self.outcome.label(), reason = %self.reason, "lifecycle action waits");
        } else {
            info!(
                cluster = %self.cluster,
                group = %self.group,
                instance = %self.instance,
                state = self.state,
                outcome = self.outcome.label(),
                reason = %self.reason,
                left_pods = ?self.left_pods,
                join_seconds = self.join_seconds.unwrap_or(0),
                by_schedule = self.by_schedule,
                "lifecycle action decided"
            );
        }
        self
    }
}

/// Why a reconcile run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// Nothing is pending any more.
    Settled,
    /// The invocation's deadline is near; the next trigger (or the schedule) goes on.
    Deadline,
    /// The lease could no longer be trusted.
    LeaseLost,
}

/// One reconcile run of one cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    pub cluster: String,
    pub passes: u32,
    pub stopped: StopReason,
    /// Actions still waiting when the run ended.
    pub pending: usize,
    /// Final decisions of the run (waits are not listed).
    pub actions: Vec<ActionReport>,
}
