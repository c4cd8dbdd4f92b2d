//! The pure decisions of a reconcile pass: what to do with each waiting lifecycle action, from
//! plain facts. Unit-tested as tables; no I/O.

use std::time::Duration;

use crate::lifecycle::{heartbeat_due, NodeState, WaitState};

/// What joinkeeper knows about a launching worker at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchFacts {
    /// `None` when the control plane could not be asked.
    pub node: Option<NodeState>,
    /// Whether the instance is still in `Pending:Wait` in its group.
    pub waiting: bool,
    /// Time since the instance launched.
    pub age: Duration,
    pub join_deadline: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LaunchDecision {
    /// The Node is Ready: complete with CONTINUE.
    Continue,
    /// Past the deadline without a Ready Node: complete with ABANDON.
    Abandon { reason: String },
    /// Not yet: check again later (heartbeat if the hook's timeout nears).
    Wait,
    /// Nothing to do: the action is no longer pending.
    Skip { reason: String },
}

/// The launch decision. Never CONTINUE without a Ready Node, never ABANDON before the deadline.
pub fn decide_launch(f: LaunchFacts) -> LaunchDecision {
    if !f.waiting {
        return LaunchDecision::Skip {
            reason: "no launch action is pending for this instance (already completed)".into(),
        };
    }
    if f.node == Some(NodeState::Ready) {
        return LaunchDecision::Continue;
    }
    if f.age < f.join_deadline {
        return LaunchDecision::Wait;
    }
    let after = format!(
        "{} s (join deadline {} s)",
        f.age.as_secs(),
        f.join_deadline.as_secs()
    );
    let reason = match f.node {
        None => format!(
            "control plane unreachable, and the node is not known to be Ready after {after}"
        ),
        Some(NodeState::Absent) => {
            format!("no Node registered for the instance after {after}")
        }
        Some(NodeState::NotReady) => format!("Node registered but NotReady after {after}"),
        Some(NodeState::Unknown) => format!("Node status Unknown after {after}"),
        Some(NodeState::Ready) => unreachable_ready(),
    };
    LaunchDecision::Abandon { reason }
}

fn unreachable_ready() -> String {
    // Ready is handled above; kept total without a panic.
    "Node Ready".into()
}

/// Where a Node's drain stands, as the reconciler knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DrainStatus {
    /// No drain record for the instance.
    NotStarted,
    /// A drain command runs on the control plane since `for_` ago.
    Running { for_: Duration },
    /// The drain command ended; `result` is its `result=` word (or why it did not run).
    Finished { result: String },
}

/// What joinkeeper knows about an instance leaving service (or going back to the warm pool).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TerminateFacts {
    pub state: WaitState,
    /// `None` when the control plane could not be asked (or was not asked: a drain runs).
    pub node: Option<NodeState>,
    pub drain: DrainStatus,
    /// How long this action has been seen waiting without a reachable control plane.
    pub unreachable_for: Duration,
    pub drain_timeout: Duration,
    pub command_deadline: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TerminateDecision {
    /// Complete with CONTINUE now, for `reason`.
    Complete { reason: String },
    /// Start the drain document on a control plane.
    StartDrain,
    /// A drain runs: follow it (heartbeat when due).
    Follow,
    /// The drain ran past its timeout: cancel it and complete.
    GiveUpDrain { reason: String },
    /// The control plane cannot be asked yet: wait (heartbeat when due), try again next pass.
    Wait,
}

/// The terminate decision. Never complete while a drain that may still finish runs within its
/// timeout; never drain an instance without a Node; never hold an instance forever when the
/// control plane is gone.
pub fn decide_terminate(f: &TerminateFacts) -> TerminateDecision {
    use TerminateDecision::*;
    if f.state == WaitState::WarmedTerminatingWait {
        return Complete {
            reason: "leaving the warm pool to terminate: it has no Node".into(),
        };
    }
    match &f.drain {
        DrainStatus::Finished { result } => {
            return Complete {
                reason: format!("drain result: {result}"),
            }
        }
        DrainStatus::Running { for_ } if *for_ > f.drain_timeout + f.command_deadline => {
            return GiveUpDrain {
                reason: format!(
                    "drain still running after {} s (timeout {} s): completing anyway",
                    for_.as_secs(),
                    f.drain_timeout.as_secs()
                ),
            }
        }
        DrainStatus::Running { .. } => return Follow,
        DrainStatus::NotStarted => {}
    }
    match f.node {
        Some(NodeState::Absent) => Complete {
            reason: "instance has no Node: nothing to drain".into(),
        },
        Some(_) => StartDrain,
        None if f.unreachable_for >= f.drain_timeout => Complete {
            reason: format!(
                "control plane unreachable for {} s: Node left in place",
                f.unreachable_for.as_secs()
            ),
        },
        None => Wait,
    }
}

/// An instance entering the warm pool fresh from EC2 has no Node: CONTINUE at once. One that
/// comes back from service has a Node: it goes through the terminate path first.
pub fn warm_pool_entry_has_node(node: Option<NodeState>) -> Option<bool> {
    match node {
        Some(NodeState::Absent) => Some(false),
        Some(_) => Some(true),
        None => None,
    }
}

/// Whether to heartbeat a waiting action now, given when it was last heartbeated (or began).
pub fn heartbeat_now(since: Duration, heartbeat_timeout: Duration) -> bool {
    heartbeat_due(since, heartbeat_timeout)
}

#[cfg(test)]
mod tests {
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
                "unreachable past deadline",
                facts(None, true, 20),
                |d| matches!(d, Abandon { reason } if reason.contains("unreachable")),
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
}
