//! The catalogue: which metrics joinkeeper publishes, their names and units, and the functions
//! that turn what the core did (a refresh pass, a regeneration, a command sent, a decision on a
//! lifecycle action) into [`Record`]s. Pure: the callers hand the records to their context's
//! sink ([`super::Metrics`]).
//!
//! Dimension `Cluster` on every metric; a few metrics also carry a second dimension set
//! (`Cluster` + `Reason` or `Result`) to break them down. Properties (instance, trigger, document)
//! are searchable in Logs Insights and cost nothing as metrics. Nothing secret is ever a property:
//! only labels, ids and durations.

use super::emf::{Record, Unit};
use crate::lifecycle::{NodeState, WaitState};
use crate::reconcile::report::{ActionOutcome, ActionReport};

/// Metric names; `infra/lib/dashboard.ts` graphs and alarms on the same names (and
/// `infra/test/dashboard.test.ts` reads this block).
pub mod name {
    /// Seconds the cluster's join record stays valid, on every refresh pass (failed ones too, from
    /// the last known record; 0 when there is no valid record).
    pub const RECORD_REMAINING: &str = "RecordRemainingSeconds";
    /// 1 for a refresh pass of the cluster that failed, 0 otherwise.
    pub const REFRESH_FAILURES: &str = "RefreshFailures";
    /// Regenerations this caller ran to completion (a new record was written and verified).
    pub const REGENERATIONS: &str = "Regenerations";
    /// Wall time of one regeneration (lease held → new record verified).
    pub const REGENERATION_DURATION: &str = "RegenerationDuration";
    /// Regenerations that failed on every control plane (or found none).
    pub const REGENERATION_FAILURES: &str = "RegenerationFailures";
    /// Launch actions completed CONTINUE (dimension `Reason`: node-ready, warm-pool-entry).
    pub const LAUNCHES_CONTINUED: &str = "LaunchesContinued";
    /// Launch actions completed ABANDON (dimension `Reason`: see [`super::abandon_class`]).
    pub const LAUNCHES_ABANDONED: &str = "LaunchesAbandoned";
    /// Instance launch → its Node Ready → hook completed CONTINUE.
    pub const JOIN_SECONDS: &str = "JoinSeconds";
    /// Terminate actions completed after a drain ran (dimension `Result`: drained, incomplete).
    pub const DRAINS: &str = "Drains";
    /// Drain started → action completed.
    pub const DRAIN_SECONDS: &str = "DrainSeconds";
    /// Pods that kept a drain from ending clean (a PodDisruptionBudget, no controller, still
    /// terminating at the timeout), per completed terminate action; property `Pods` names them.
    pub const DRAIN_BLOCKED_PODS: &str = "DrainBlockedPods";
    /// Actions completed by the scheduled reconcile rather than by their own event's invocation.
    pub const COMPLETED_BY_SWEEP: &str = "ActionsCompletedBySweep";
    /// Run Commands sent (property `Document`).
    pub const COMMANDS_SENT: &str = "CommandsSent";
    /// Join mode per-instance: bootstrap tokens minted, one per waiting worker.
    pub const TOKENS_MINTED: &str = "JoinTokensMinted";
    /// Join mode per-instance: tokens revoked (with their parameters) once the wait ended.
    pub const TOKENS_REVOKED: &str = "JoinTokensRevoked";
}

/// Certificate requests made with an instance's token under another Node name, denied
/// (properties `Instance`, `Node`). Not graphed, like [`ROGUE_NODES`].
pub const ROGUE_CERTIFICATE_REQUESTS: &str = "RogueCertificateRequests";

/// Nodes found with no instance of the cluster behind them (properties `Node`, `Action`). Not in
/// [`name`], the list the dashboard graphs (`infra/test/dashboard.test.ts` holds them equal):
/// searchable in Logs Insights, not graphed.
pub const ROGUE_NODES: &str = "RogueNodes";

/// Instances tagged as a cluster's control planes without its control-plane instance profile
/// (properties `Instance`, `Profile`). Like [`ROGUE_NODES`], not in [`name`]: searchable in Logs
/// Insights, not graphed.
pub const IMPOSTOR_CONTROL_PLANES: &str = "ImpostorControlPlanes";

/// After one refresh pass of one cluster. `remaining_seconds`: what is left of the record now
/// known (0 when there is none or it expired); `None` when even reading it failed.
pub fn refresh_pass(
    cluster: &str,
    outcome: &str,
    remaining_seconds: Option<u64>,
    duration_ms: u64,
) -> Record {
    let mut r = Record::new(cluster)
        .metric(
            name::REFRESH_FAILURES,
            Unit::Count,
            if outcome == "failed" { 1.0 } else { 0.0 },
        )
        .property("Outcome", outcome)
        .property("DurationMs", duration_ms);
    if let Some(s) = remaining_seconds {
        r = r.metric(name::RECORD_REMAINING, Unit::Seconds, s as f64);
    }
    r
}

/// A regeneration this caller ran: `duration_ms` when the new record was verified, `None` when it
/// failed; `trigger` is [`Trigger::label`](crate::Trigger::label).
pub fn regeneration(
    cluster: &str,
    duration_ms: Option<u64>,
    reason: &str,
    trigger: &str,
    control_plane: Option<&str>,
) -> Record {
    let r = match duration_ms {
        Some(ms) => Record::new(cluster)
            .metric(name::REGENERATIONS, Unit::Count, 1.0)
            .metric(name::REGENERATION_DURATION, Unit::Milliseconds, ms as f64),
        None => Record::new(cluster).metric(name::REGENERATION_FAILURES, Unit::Count, 1.0),
    };
    let r = r.property("Reason", reason).property("Trigger", trigger);
    match control_plane {
        Some(i) => r.property("ControlPlane", i),
        None => r,
    }
}

/// One Run Command sent.
pub fn command_sent(cluster: &str, document: &str) -> Record {
    Record::new(cluster)
        .metric(name::COMMANDS_SENT, Unit::Count, 1.0)
        .property("Document", document)
}

/// What one pass's control plane did about per-instance tokens (counts only; never a secret).
pub fn join_tokens(cluster: &str, minted: usize, revoked: usize) -> Record {
    Record::new(cluster)
        .metric(name::TOKENS_MINTED, Unit::Count, minted as f64)
        .metric(name::TOKENS_REVOKED, Unit::Count, revoked as f64)
}

/// A certificate request denied: made with `instance`'s token, asking for another `node`.
pub fn rogue_certificate_request(cluster: &str, instance: &str, node: &str) -> Record {
    Record::new(cluster)
        .metric(ROGUE_CERTIFICATE_REQUESTS, Unit::Count, 1.0)
        .property("Instance", instance)
        .property("Node", node)
}

/// A rogue Node: no instance of the cluster stands behind it; `action` is what was done about it.
pub fn rogue_node(cluster: &str, node: &str, action: &str) -> Record {
    Record::new(cluster)
        .metric(ROGUE_NODES, Unit::Count, 1.0)
        .property("Node", node)
        .property("Action", action)
}

/// An impostor control plane seen while listing the cluster's control planes.
pub fn impostor_control_plane(cluster: &str, instance: &str, profile: &str) -> Record {
    Record::new(cluster)
        .metric(IMPOSTOR_CONTROL_PLANES, Unit::Count, 1.0)
        .property("Instance", instance)
        .property("Profile", profile)
}

/// Why a launch was abandoned, as a small fixed set of words (a metric dimension).
pub fn abandon_class(node: Option<NodeState>) -> &'static str {
    match node {
        None => "control-plane-unreachable",
        Some(NodeState::Absent) => "no-node",
        Some(NodeState::NotReady) => "not-ready",
        Some(NodeState::Unknown) => "node-unknown",
        Some(NodeState::Contested) => "node-contested",
        Some(NodeState::Ready) => "ready",
    }
}

/// The metrics of one decision on one lifecycle action (none for waits and skips).
pub fn action(report: &ActionReport) -> Vec<Record> {
    let base = || {
        Record::new(&report.cluster)
            .property("Instance", report.instance.as_str())
            .property("Group", report.group.as_str())
            .property("State", report.state)
    };
    let mut out = Vec::new();
    let launching = report.state == WaitState::PendingWait.as_str()
        || report.state == WaitState::WarmedPendingWait.as_str();
    match report.outcome {
        ActionOutcome::Continue if launching => {
            let reason = if report.state == WaitState::PendingWait.as_str() {
                "node-ready"
            } else {
                "warm-pool-entry"
            };
            let mut r = base()
                .metric(name::LAUNCHES_CONTINUED, Unit::Count, 1.0)
                .by("Reason", reason);
            if let Some(s) = report.join_seconds {
                r = r.metric(name::JOIN_SECONDS, Unit::Seconds, s as f64);
            }
            out.push(r);
        }
        ActionOutcome::Abandon => out.push(
            base()
                .metric(name::LAUNCHES_ABANDONED, Unit::Count, 1.0)
                .by("Reason", report.reason_class.unwrap_or("other")),
        ),
        ActionOutcome::Drained | ActionOutcome::Completed => {
            if let Some(s) = report.drain_seconds {
                let result = if report.outcome == ActionOutcome::Drained {
                    "drained"
                } else {
                    "incomplete"
                };
                out.push(
                    base()
                        .metric(name::DRAINS, Unit::Count, 1.0)
                        .metric(name::DRAIN_SECONDS, Unit::Seconds, s as f64)
                        .by("Result", result),
                );
            }
            if !report.left_pods.is_empty() {
                out.push(
                    base()
                        .metric(
                            name::DRAIN_BLOCKED_PODS,
                            Unit::Count,
                            report.left_pods.len() as f64,
                        )
                        .property("Pods", report.left_pods.join(", ").as_str()),
                );
            }
        }
        _ => {}
    }
    let completed = matches!(
        report.outcome,
        ActionOutcome::Continue
            | ActionOutcome::Abandon
            | ActionOutcome::Drained
            | ActionOutcome::Completed
    );
    if completed && report.by_schedule {
        out.push(
            base()
                .metric(name::COMPLETED_BY_SWEEP, Unit::Count, 1.0)
                .property("Outcome", report.outcome.label()),
        );
    }
    out
}
