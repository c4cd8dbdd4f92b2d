//! Decision tables of [`super`].
#![allow(clippy::type_complexity)]
use super::*;

const MIN: u64 = 60;

#[test]
fn launch_decision_table() {
    let deadline = Duration::from_secs(15 * MIN);
    let facts = |node, waiting, age_min: u64| LaunchFacts {
        node,
        waiting,
        age: Duration::from_secs(age_min * MIN),
        join_deadline: deadline,
    };
    use LaunchDecision::*;
    use NodeState::*;
    let cases: Vec<(&str, LaunchFacts, fn(&LaunchDecision) -> bool)> = vec![
        ("ready early", facts(Some(Ready), true, 2), |d| {
            *d == Continue
        }),
        ("ready late", facts(Some(Ready), true, 60), |d| {
            *d == Continue
        }),
        (
            "not ready, before deadline",
            facts(Some(NotReady), true, 5),
            |d| *d == Wait,
        ),
        (
            "absent, before deadline",
            facts(Some(Absent), true, 14),
            |d| *d == Wait,
        ),
        (
            "unreachable, before deadline: never a guessed CONTINUE",
            facts(None, true, 14),
            |d| *d == Wait,
        ),
        (
            "absent at deadline",
            facts(Some(Absent), true, 15),
            |d| matches!(d, Abandon { reason } if reason.contains("no Node registered")),
        ),
        (
            "not ready past deadline",
            facts(Some(NotReady), true, 20),
            |d| matches!(d, Abandon { reason } if reason.contains("NotReady")),
        ),
        (
            "unknown past deadline",
            facts(Some(Unknown), true, 20),
            |d| matches!(d, Abandon { reason } if reason.contains("Unknown")),
        ),
        (
            "contested before deadline: held, never CONTINUE",
            facts(Some(Contested), true, 5),
            |d| *d == Wait,
        ),
        (
            "contested past deadline: abandoned, never CONTINUE",
            facts(Some(Contested), true, 20),
            |d| matches!(d, Abandon { reason } if reason.contains("claim the instance")),
        ),
        (
            "unreachable past deadline: absence of an answer never abandons",
            facts(None, true, 20),
            |d| *d == Wait,
        ),
        (
            "unreachable far past deadline: still held",
            facts(None, true, 600),
            |d| *d == Wait,
        ),
        (
            "already completed, ready",
            facts(Some(Ready), false, 3),
            |d| matches!(d, Skip { .. }),
        ),
        (
            "already completed, past deadline: a duplicate never abandons",
            facts(Some(Absent), false, 30),
            |d| matches!(d, Skip { .. }),
        ),
    ];
    for (name, f, ok) in cases {
        let d = decide_launch(f);
        assert!(ok(&d), "{name}: {d:?}");
    }
}

#[test]
fn heartbeat_when_half_the_timeout_passed() {
    assert!(!heartbeat_due(
        Duration::from_secs(100),
        Duration::from_secs(300)
    ));
    assert!(heartbeat_due(
        Duration::from_secs(150),
        Duration::from_secs(300)
    ));
}

#[test]
fn terminate_decision_table() {
    use DrainStatus::*;
    use TerminateDecision::*;
    let s = Duration::from_secs;
    let facts = |state, node, drain, unreachable: u64| TerminateFacts {
        state,
        node,
        drain,
        unreachable_for: s(unreachable),
        drain_timeout: s(300),
        command_deadline: s(120),
        may_be_joining: false,
        labelled_for: s(30),
        deregistration_delay: Duration::ZERO,
    };
    let finished = |result: &str, labelled: u64, delay: u64| TerminateFacts {
        labelled_for: s(labelled),
        deregistration_delay: s(delay),
        ..facts(
            WaitState::TerminatingWait,
            None,
            Finished {
                result: result.into(),
            },
            0,
        )
    };
    let t = WaitState::TerminatingWait;
    let back = WaitState::WarmedPendingWait;
    let cases: Vec<(&str, TerminateFacts, fn(&TerminateDecision) -> bool)> = vec![
        (
            "ready Node: drain",
            facts(t, Some(NodeState::Ready), NotStarted, 0),
            |d| *d == StartDrain,
        ),
        (
            "NotReady Node still drained",
            facts(t, Some(NodeState::NotReady), NotStarted, 0),
            |d| *d == StartDrain,
        ),
        (
            "never joined: complete at once",
            facts(t, Some(NodeState::Absent), NotStarted, 0),
            |d| matches!(d, Complete { reason } if reason.contains("no Node")),
        ),
        (
            "no Node yet, but its join may be in flight: hold until it settles",
            TerminateFacts {
                may_be_joining: true,
                ..facts(t, Some(NodeState::Absent), NotStarted, 0)
            },
            |d| *d == Wait,
        ),
        (
            "a Node, while it may still be joining: drain",
            TerminateFacts {
                may_be_joining: true,
                ..facts(t, Some(NodeState::NotReady), NotStarted, 0)
            },
            |d| *d == StartDrain,
        ),
        (
            "two Nodes claim it: neither drained",
            facts(t, Some(NodeState::Contested), NotStarted, 0),
            |d| matches!(d, Complete { reason } if reason.contains("none drained")),
        ),
        (
            "back to the pool with a Node: drain",
            facts(back, Some(NodeState::Ready), NotStarted, 0),
            |d| *d == StartDrain,
        ),
        (
            "leaving the pool to die: complete",
            facts(WaitState::WarmedTerminatingWait, None, NotStarted, 0),
            |d| matches!(d, Complete { .. }),
        ),
        (
            "drain running: follow",
            facts(t, None, Running { for_: s(100) }, 0),
            |d| *d == Follow,
        ),
        (
            "drain at its timeout plus the command deadline: still follow",
            facts(t, None, Running { for_: s(420) }, 0),
            |d| *d == Follow,
        ),
        (
            "drain past timeout: give up",
            facts(t, None, Running { for_: s(421) }, 0),
            |d| matches!(d, GiveUpDrain { .. }),
        ),
        (
            "drain finished",
            facts(
                t,
                None,
                Finished {
                    result: "drained".into(),
                },
                0,
            ),
            |d| matches!(d, Complete { reason } if reason.contains("drained")),
        ),
        (
            "drained 30 s after the label, delay 300 s: the instance stays 270 s more",
            finished("drained", 30, 300),
            |d| matches!(d, Deregistering { result, left } if result == "drained" && *left == Duration::from_secs(270)),
        ),
        (
            "a drain a PodDisruptionBudget kept to its timeout waits out the delay too",
            finished("timeout", 100, 300),
            |d| matches!(d, Deregistering { .. }),
        ),
        (
            "the delay has run: complete",
            finished("drained", 300, 300),
            |d| matches!(d, Complete { reason } if reason.contains("drained")),
        ),
        (
            "no Node found by the drain: nothing deregisters, complete at once",
            finished("absent", 1, 300),
            |d| matches!(d, Complete { .. }),
        ),
        (
            "intended, never sent: send it (never read as finished)",
            facts(t, None, Intended { for_: s(10) }, 0),
            |d| *d == StartDrain,
        ),
        (
            "undelivered: send it again",
            facts(t, Some(NodeState::Ready), Undelivered { for_: s(60) }, 0),
            |d| *d == StartDrain,
        ),
        (
            "intended past the drain timeout: give up, never counted as drained",
            facts(t, None, Intended { for_: s(421) }, 0),
            |d| matches!(d, GiveUpDrain { reason } if reason.contains("no control plane")),
        ),
        (
            "unreachable, briefly: wait",
            facts(t, None, NotStarted, 299),
            |d| *d == Wait,
        ),
        (
            "unreachable past the drain timeout: complete",
            facts(t, None, NotStarted, 300),
            |d| matches!(d, Complete { reason } if reason.contains("unreachable")),
        ),
    ];
    for (name, f, ok) in cases {
        let d = decide_terminate(&f);
        assert!(ok(&d), "{name}: {d:?}");
    }
}

#[test]
fn the_wait_start_is_looked_up_only_before_an_abandon() {
    let s = Duration::from_secs;
    let d = s(900);
    assert!(wait_start_needed(Some(NodeState::Absent), s(901), d));
    assert!(wait_start_needed(Some(NodeState::NotReady), s(900), d));
    assert!(!wait_start_needed(Some(NodeState::Ready), s(5000), d));
    assert!(
        !wait_start_needed(None, s(5000), d),
        "unknown never abandons"
    );
    assert!(!wait_start_needed(Some(NodeState::Absent), s(899), d));
}

#[test]
fn warm_pool_entry_without_an_answer_is_bounded() {
    let s = Duration::from_secs;
    assert!(warm_pool_entry_unknown(true, s(0), s(300)).is_some());
    assert!(warm_pool_entry_unknown(false, s(299), s(300)).is_none());
    assert!(warm_pool_entry_unknown(false, s(300), s(300)).is_some());
}

#[test]
fn drain_status_clean_only_when_drained_or_absent() {
    let f = |r: &str| DrainStatus::Finished { result: r.into() };
    assert!(f("drained").is_clean());
    assert!(f("absent").is_clean());
    assert!(!f("failed").is_clean());
    assert!(!f("timeout").is_clean());
    assert!(!DrainStatus::Intended {
        for_: Duration::ZERO
    }
    .is_clean());
}

#[test]
fn warm_pool_entries() {
    assert_eq!(
        warm_pool_entry_has_node(Some(NodeState::Absent)),
        Some(false)
    );
    assert_eq!(
        warm_pool_entry_has_node(Some(NodeState::NotReady)),
        Some(true)
    );
    assert_eq!(warm_pool_entry_has_node(None), None);
}
