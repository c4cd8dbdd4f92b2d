//! The catalogue's records checked against the EMF specification, and the captured sink.

use serde_json::Value;

use super::catalogue::*;
use super::emf::{parse_emf, Record};
use super::Metrics;
use crate::context::Trigger;
use crate::lifecycle::{NodeState, WaitState};
use crate::names::{GroupName, InstanceId};
use crate::reconcile::report::{ActionOutcome, ActionReport};

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
        Trigger::Schedule.label(),
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
    let failed = regeneration("demo", None, "forced", Trigger::Operator.label(), None).to_json(1);
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
    // A drain a PodDisruptionBudget kept: how many pods, and which.
    c.left_pods = vec![
        "shop/cart-1 (pdb)".into(),
        "default/bare (unmanaged)".into(),
    ];
    let lines: Vec<Value> = action(&c).iter().map(|r| r.to_json(1)).collect();
    assert_eq!(lines.len(), 2);
    let (metrics, dims) = parse_emf(&lines[1]);
    assert_eq!(metrics, vec![("DrainBlockedPods".into(), "Count".into())]);
    assert_eq!(dims, vec![vec!["Cluster".to_owned()]]);
    assert_eq!(lines[1]["DrainBlockedPods"], 2.0);
    assert_eq!(
        lines[1]["Pods"],
        "shop/cart-1 (pdb), default/bare (unmanaged)"
    );
    // Nothing drained (no Node), not by the schedule: no metric at all.
    assert!(action(&report(WaitState::TerminatingWait, ActionOutcome::Drained)).is_empty());
    // Waits and skips are not counted, even by the schedule.
    let mut w = report(WaitState::PendingWait, ActionOutcome::Waiting);
    w.by_schedule = true;
    assert!(action(&w).is_empty());
}

#[test]
fn command_lines_and_the_captured_sink() {
    let sink = Metrics::captured();
    sink.record(command_sent("demo", "joinkeeper-node-status"));
    sink.record(Record::new("demo")); // no metric: nothing written
    let lines = sink.lines();
    assert_eq!(lines.len(), 1);
    let (metrics, dims) = parse_emf(&lines[0]);
    assert_eq!(metrics, vec![("CommandsSent".into(), "Count".into())]);
    assert_eq!(dims, vec![vec!["Cluster".to_owned()]]);
    assert_eq!(lines[0]["Document"], "joinkeeper-node-status");
    // Clones of a context share its sink; off and stdout keep nothing.
    let clone = sink.clone();
    clone.record(rogue_node("demo", "ip-10-0-0-9", "cordoned"));
    assert_eq!(sink.lines().len(), 2);
    assert_eq!(sink.lines()[1]["RogueNodes"], 1.0);
    Metrics::Off.record(command_sent("demo", "joinkeeper-drain"));
    assert!(Metrics::Off.lines().is_empty());
}
