//! Metrics in CloudWatch Embedded Metric Format (EMF): one JSON object per line on stdout, which
//! Lambda sends to the function's log group, where CloudWatch extracts the metrics.
//!
//! Written by hand with `serde_json` rather than with an EMF crate: the format is one small JSON
//! object, the crates that exist add their own dependency trees (and some an async flush or an
//! agent socket) for what is twenty lines here, and the lines must not go through `tracing` (its
//! JSON layer would nest the `_aws` object as a string). Each line is written with one locked
//! write, so it never interleaves with a log line.
//!
//! Namespace `joinkeeper`, dimension `Cluster` on every metric; a few metrics also carry a second
//! dimension set (`Cluster` + `Reason` or `Result`) to break them down. Properties (instance,
//! trigger, document) are searchable in Logs Insights and cost nothing as metrics. Nothing
//! secret is ever a property: only labels, ids and durations.

use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{json, Map, Value};

use crate::context::Trigger;
use crate::lifecycle::{NodeState, WaitState};
use crate::reconcile::report::{ActionOutcome, ActionReport};

pub const NAMESPACE: &str = "joinkeeper";
pub const CLUSTER: &str = "Cluster";

/// Metric names; `infra/lib/dashboard.ts` graphs and alarms on the same names.
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
    /// Actions completed by the scheduled reconcile rather than by their own event's invocation.
    pub const COMPLETED_BY_SWEEP: &str = "ActionsCompletedBySweep";
    /// Run Commands sent (property `Document`).
    pub const COMMANDS_SENT: &str = "CommandsSent";
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Count,
    Seconds,
    Milliseconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Seconds => "Seconds",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One EMF document: some metrics of one cluster at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    cluster: String,
    breakdown: Option<(&'static str, String)>,
    metrics: Vec<(&'static str, Unit, f64)>,
    properties: Map<String, Value>,
}

impl Record {
    pub fn new(cluster: &str) -> Self {
        Record {
            cluster: cluster.to_owned(),
            breakdown: None,
            metrics: Vec::new(),
            properties: Map::new(),
        }
    }

    pub fn metric(mut self, name: &'static str, unit: Unit, value: f64) -> Self {
        self.metrics.push((name, unit, value));
        self
    }

    /// Publishes the metrics a second time with the dimensions `Cluster` and `key`.
    pub fn by(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.breakdown = Some((key, value.into()));
        self
    }

    /// A value searchable in the log line, not a metric.
    pub fn property(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.properties.insert(key.to_owned(), value.into());
        self
    }

    /// The EMF JSON object.
    pub fn to_json(&self, timestamp_ms: i64) -> Value {
        let mut dimensions = vec![json!([CLUSTER])];
        let mut root = self.properties.clone();
        if let Some((key, value)) = &self.breakdown {
            dimensions.push(json!([CLUSTER, key]));
            root.insert((*key).to_owned(), json!(value));
        }
        root.insert(CLUSTER.to_owned(), json!(self.cluster));
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        for (name, _, value) in &self.metrics {
            root.insert((*name).to_owned(), json!(value));
        }
        root.insert(
            "_aws".to_owned(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": dimensions,
                    "Metrics": definitions,
                }],
            }),
        );
        Value::Object(root)
    }

    /// Writes the line (to this thread's capture when one is installed, else stdout).
    pub fn emit(self) {
        if self.metrics.is_empty() {
            return;
        }
        let line = self.to_json(crate::lease::now_ms()).to_string();
        let captured = CAPTURE.with(|c| match c.borrow_mut().as_mut() {
            Some(lines) => {
                lines.push(line.clone());
                true
            }
            None => false,
        });
        if captured || !ENABLED.load(Ordering::Relaxed) {
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(format!("{line}\n").as_bytes());
        let _ = out.flush();
    }
}

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Stops writing metric lines to stdout for the rest of the process (the command-line tool: its
/// stdout is for people and scripts, and no log group would read the lines).
pub fn disable_stdout() {
    ENABLED.store(false, Ordering::Relaxed);
}

thread_local! {
    static CAPTURE: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Collects the lines emitted on this thread while it lives (tests; use a current-thread runtime).
pub struct Capture(());

impl Capture {
    pub fn start() -> Capture {
        CAPTURE.with(|c| *c.borrow_mut() = Some(Vec::new()));
        Capture(())
    }

    /// The lines emitted so far, parsed.
    pub fn lines(&self) -> Vec<Value> {
        CAPTURE.with(|c| {
            c.borrow()
                .iter()
                .flatten()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        CAPTURE.with(|c| *c.borrow_mut() = None);
    }
}

// ---- What the core emits -------------------------------------------------------------------

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
/// failed.
pub fn regeneration(
    cluster: &str,
    duration_ms: Option<u64>,
    reason: &str,
    trigger: Trigger,
    control_plane: Option<&str>,
) -> Record {
    let r = match duration_ms {
        Some(ms) => Record::new(cluster)
            .metric(name::REGENERATIONS, Unit::Count, 1.0)
            .metric(name::REGENERATION_DURATION, Unit::Milliseconds, ms as f64),
        None => Record::new(cluster).metric(name::REGENERATION_FAILURES, Unit::Count, 1.0),
    };
    let r = r
        .property("Reason", reason)
        .property("Trigger", trigger.label());
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

/// Why a launch was abandoned, as a small fixed set of words (a metric dimension).
pub fn abandon_class(node: Option<NodeState>) -> &'static str {
    match node {
        None => "control-plane-unreachable",
        Some(NodeState::Absent) => "no-node",
        Some(NodeState::NotReady) => "not-ready",
        Some(NodeState::Unknown) => "node-unknown",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{GroupName, InstanceId};

    /// Checks a line against the EMF specification and returns (metric name → unit, dimension
    /// sets). Every metric and dimension named in the directive has its value at the top level.
    fn parse_emf(line: &Value) -> (Vec<(String, String)>, Vec<Vec<String>>) {
        let aws = &line["_aws"];
        assert!(aws["Timestamp"].as_i64().is_some_and(|t| t > 0), "{line}");
        let directives = aws["CloudWatchMetrics"].as_array().expect("directives");
        assert_eq!(directives.len(), 1);
        let d = &directives[0];
        assert_eq!(d["Namespace"], NAMESPACE);
        let dims: Vec<Vec<String>> = d["Dimensions"]
            .as_array()
            .expect("dimension sets")
            .iter()
            .map(|set| {
                set.as_array()
                    .expect("a dimension set")
                    .iter()
                    .map(|k| k.as_str().expect("key").to_owned())
                    .collect()
            })
            .collect();
        for key in dims.iter().flatten() {
            assert!(
                line[key].is_string(),
                "dimension {key} has a string value: {line}"
            );
        }
        let metrics: Vec<(String, String)> = d["Metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .map(|m| {
                let name = m["Name"].as_str().expect("name").to_owned();
                assert!(
                    line[&name].is_number(),
                    "metric {name} has a number: {line}"
                );
                (name, m["Unit"].as_str().expect("unit").to_owned())
            })
            .collect();
        assert!(!metrics.is_empty() && metrics.len() <= 100);
        (metrics, dims)
    }

    fn report(state: WaitState, outcome: ActionOutcome) -> ActionReport {
        ActionReport::new(
            "demo",
            &GroupName::parse("workers").expect("group"),
            &InstanceId::parse("i-0123456789abcdef0").expect("id"),
            state,
            outcome,
            "because",
        )
    }

    fn one(records: Vec<Record>) -> Value {
        assert_eq!(records.len(), 1, "{records:?}");
        records[0].to_json(1_700_000_000_000)
    }

    #[test]
    fn refresh_lines_carry_remaining_seconds_even_when_failed() {
        let line = refresh_pass("demo", "failed", Some(1200), 35).to_json(1);
        let (metrics, dims) = parse_emf(&line);
        assert_eq!(
            metrics,
            vec![
                ("RefreshFailures".into(), "Count".into()),
                ("RecordRemainingSeconds".into(), "Seconds".into())
            ]
        );
        assert_eq!(dims, vec![vec!["Cluster".to_owned()]]);
        assert_eq!(line["Cluster"], "demo");
        assert_eq!(line["RecordRemainingSeconds"], 1200.0);
        assert_eq!(line["RefreshFailures"], 1.0);
        // Unknown (the record could not even be read): no remaining, the failure still counts.
        let line = refresh_pass("demo", "failed", None, 35).to_json(1);
        let (metrics, _) = parse_emf(&line);
        assert_eq!(metrics, vec![("RefreshFailures".into(), "Count".into())]);
        let line = refresh_pass("demo", "fresh", Some(5000), 3).to_json(1);
        assert_eq!(line["RefreshFailures"], 0.0);
    }

    #[test]
    fn regeneration_lines() {
        let ok = regeneration(
            "demo",
            Some(4200),
            "expires-soon",
            Trigger::Schedule,
            Some("i-0a"),
        )
        .to_json(1);
        let (metrics, _) = parse_emf(&ok);
        assert_eq!(
            metrics,
            vec![
                ("Regenerations".into(), "Count".into()),
                ("RegenerationDuration".into(), "Milliseconds".into())
            ]
        );
        assert_eq!(ok["Trigger"], "schedule");
        assert_eq!(ok["ControlPlane"], "i-0a");
        let failed = regeneration("demo", None, "forced", Trigger::Operator, None).to_json(1);
        let (metrics, _) = parse_emf(&failed);
        assert_eq!(
            metrics,
            vec![("RegenerationFailures".into(), "Count".into())]
        );
        assert_eq!(failed["Reason"], "forced");
    }

    #[test]
    fn launch_lines_break_down_by_reason_and_time_the_join() {
        let mut r = report(WaitState::PendingWait, ActionOutcome::Continue);
        r.join_seconds = Some(95);
        let line = one(action(&r));
        let (metrics, dims) = parse_emf(&line);
        assert_eq!(
            metrics,
            vec![
                ("LaunchesContinued".into(), "Count".into()),
                ("JoinSeconds".into(), "Seconds".into())
            ]
        );
        assert_eq!(
            dims,
            vec![
                vec!["Cluster".to_owned()],
                vec!["Cluster".to_owned(), "Reason".to_owned()]
            ]
        );
        assert_eq!(line["Reason"], "node-ready");
        assert_eq!(line["JoinSeconds"], 95.0);
        assert_eq!(line["Instance"], "i-0123456789abcdef0");

        let warm = one(action(&report(
            WaitState::WarmedPendingWait,
            ActionOutcome::Continue,
        )));
        assert_eq!(warm["Reason"], "warm-pool-entry");

        let mut a = report(WaitState::PendingWait, ActionOutcome::Abandon);
        a.reason_class = Some(abandon_class(Some(NodeState::NotReady)));
        let line = one(action(&a));
        let (metrics, _) = parse_emf(&line);
        assert_eq!(metrics, vec![("LaunchesAbandoned".into(), "Count".into())]);
        assert_eq!(line["Reason"], "not-ready");
    }

    #[test]
    fn drains_and_sweep_completions() {
        let mut d = report(WaitState::TerminatingWait, ActionOutcome::Drained);
        d.drain_seconds = Some(40);
        d.by_schedule = true;
        let lines: Vec<Value> = action(&d).iter().map(|r| r.to_json(1)).collect();
        assert_eq!(lines.len(), 2);
        let (metrics, dims) = parse_emf(&lines[0]);
        assert_eq!(
            metrics,
            vec![
                ("Drains".into(), "Count".into()),
                ("DrainSeconds".into(), "Seconds".into())
            ]
        );
        assert_eq!(dims[1], vec!["Cluster".to_owned(), "Result".to_owned()]);
        assert_eq!(lines[0]["Result"], "drained");
        let (metrics, dims) = parse_emf(&lines[1]);
        assert_eq!(
            metrics,
            vec![("ActionsCompletedBySweep".into(), "Count".into())]
        );
        assert_eq!(dims, vec![vec!["Cluster".to_owned()]]);
        assert_eq!(lines[1]["Outcome"], "drained");

        let mut c = report(WaitState::TerminatingWait, ActionOutcome::Completed);
        c.drain_seconds = Some(400);
        assert_eq!(one(action(&c))["Result"], "incomplete");
        // Nothing drained (no Node), not by the schedule: no metric at all.
        assert!(action(&report(WaitState::TerminatingWait, ActionOutcome::Drained)).is_empty());
        // Waits and skips are not counted, even by the schedule.
        let mut w = report(WaitState::PendingWait, ActionOutcome::Waiting);
        w.by_schedule = true;
        assert!(action(&w).is_empty());
    }

    #[test]
    fn command_lines_and_the_capture() {
        let capture = Capture::start();
        command_sent("demo", "joinkeeper-node-status").emit();
        Record::new("demo").emit(); // no metric: nothing written
        let lines = capture.lines();
        assert_eq!(lines.len(), 1);
        let (metrics, dims) = parse_emf(&lines[0]);
        assert_eq!(metrics, vec![("CommandsSent".into(), "Count".into())]);
        assert_eq!(dims, vec![vec!["Cluster".to_owned()]]);
        assert_eq!(lines[0]["Document"], "joinkeeper-node-status");
    }
}
