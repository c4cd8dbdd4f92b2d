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

/// The launch decision. Never CONTINUE without a Ready Node, never ABANDON before the deadline,
/// and never ABANDON on missing information: a control plane that cannot be asked (throttled,
/// agent offline, an SSM incident) holds the action, it does not count as "not Ready". `age` is
/// timed from when the wait began (not from EC2's `LaunchTime`, which a Running warm pool's
/// instance keeps from its first start).
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
        // Absence of an answer is not an answer.
        None => return LaunchDecision::Wait,
        Some(NodeState::Absent) => {
            format!("no Node registered for the instance after {after}")
        }
        Some(NodeState::NotReady) => format!("Node registered but NotReady after {after}"),
        Some(NodeState::Unknown) => format!("Node status Unknown after {after}"),
        Some(NodeState::Contested) => {
            format!("two or more Nodes claim the instance (none believed) after {after}")
        }
        Some(NodeState::Ready) => unreachable_ready(),
    };
    LaunchDecision::Abandon { reason }
}

/// Whether the launch wait's start must be looked up before deciding: only when EC2's
/// `LaunchTime` alone would make the action look past its deadline without a Ready Node (the one
/// case where an instance out of a Running warm pool could be ABANDONed for its age in the pool).
pub fn wait_start_needed(
    node: Option<NodeState>,
    launch_age: Duration,
    deadline: Duration,
) -> bool {
    launch_age >= deadline && matches!(node, Some(n) if n != NodeState::Ready)
}

fn unreachable_ready() -> String {
    // Ready is handled above; kept total without a panic.
    "Node Ready".into()
}

/// Where a Node's drain stands, as the reconciler knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DrainStatus {
    /// No drain record for the instance (or one left by an earlier wait).
    NotStarted,
    /// A record says the drain was intended `for_` ago, but no command id was ever written into it
    /// (every send failed, or the invocation died between the two writes): it never ran.
    Intended { for_: Duration },
    /// The command was sent `for_` ago but never reached the control plane's agent (offline,
    /// busy past the delivery timeout): it never ran either.
    Undelivered { for_: Duration },
    /// A drain command runs on the control plane since `for_` ago.
    Running { for_: Duration },
    /// The drain command ended; `result` is its `result=` word (or why it did not run).
    Finished { result: String },
}

impl DrainStatus {
    /// Whether the drain ran to a clean end (the Node drained and deleted, or there was none).
    pub fn is_clean(&self) -> bool {
        matches!(self, DrainStatus::Finished { result } if result == "drained" || result == "absent")
    }
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
    /// The instance launched within the join deadline and has been seen without a Node for less
    /// than [`JOIN_SETTLE`]: a scale-in can meet a worker whose `kubeadm join` is in flight, and
    /// its Node appears moments after "no Node" was answered.
    pub may_be_joining: bool,
    /// How long since the drain of this wait began: its first step labels the Node out of
    /// external load balancers, so the targets' deregistration delay runs from about then.
    pub labelled_for: Duration,
    pub deregistration_delay: Duration,
}

/// How long a terminating instance that may be joining must be seen without a Node before
/// "nothing to drain" is believed: the join script reads the target lifecycle state again right
/// before `kubeadm join`, so a join still in flight then registers its Node within this.
pub const JOIN_SETTLE: Duration = Duration::from_secs(30);

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
    /// The drain ended (`result`), but the load balancers' deregistration delay has `left` to
    /// run: keep the instance (heartbeat when due), complete on a later pass.
    Deregistering { result: String, left: Duration },
}

/// The terminate decision. Never complete while a drain that may still finish runs within its
/// timeout; never count a drain that never ran as done (it is sent again, on another control
/// plane); never drain an instance without a Node; never hold an instance forever when the
/// control plane is gone.
pub fn decide_terminate(f: &TerminateFacts) -> TerminateDecision {
    use TerminateDecision::*;
    if f.state == WaitState::WarmedTerminatingWait {
        return Complete {
            reason: "leaving the warm pool to terminate: it has no Node".into(),
        };
    }
    let give_up_after = f.drain_timeout + f.command_deadline;
    match &f.drain {
        DrainStatus::Finished { result } => {
            // No Node found, or none believed: nothing was labelled, nothing deregisters.
            let labelled = !matches!(result.as_str(), "absent" | "contested");
            if labelled && f.labelled_for < f.deregistration_delay {
                return Deregistering {
                    result: result.clone(),
                    left: f.deregistration_delay - f.labelled_for,
                };
            }
            return Complete {
                reason: format!("drain result: {result}"),
            };
        }
        DrainStatus::Running { for_ } if *for_ > give_up_after => {
            return GiveUpDrain {
                reason: format!(
                    "drain still running after {} s (timeout {} s): completing anyway",
                    for_.as_secs(),
                    f.drain_timeout.as_secs()
                ),
            }
        }
        DrainStatus::Running { .. } => return Follow,
        DrainStatus::Intended { for_ } | DrainStatus::Undelivered { for_ }
            if *for_ > give_up_after =>
        {
            return GiveUpDrain {
                reason: format!(
                    "no control plane took the drain in {} s (timeout {} s): completing anyway",
                    for_.as_secs(),
                    f.drain_timeout.as_secs()
                ),
            }
        }
        // Never ran: send it again (the record holds when it was first intended).
        DrainStatus::Intended { .. } | DrainStatus::Undelivered { .. } => return StartDrain,
        DrainStatus::NotStarted => {}
    }
    match f.node {
        Some(NodeState::Absent) if f.may_be_joining => Wait,
        Some(NodeState::Absent) => Complete {
            reason: "instance has no Node: nothing to drain".into(),
        },
        // Draining either claimant could drain a Node in another's place.
        Some(NodeState::Contested) => Complete {
            reason: "two or more Nodes claim the instance: none drained, left for people".into(),
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

/// An instance entering the warm pool while no control plane can tell whether it has a Node.
/// Its own join log is a positive fact (`join deferred`: fresh from EC2, prepared, no Node);
/// otherwise it waits, but no longer than the drain timeout: the pool must not be held until the
/// hook's global timeout. `None`: wait; `Some(reason)`: complete CONTINUE.
pub fn warm_pool_entry_unknown(
    prepared: bool,
    unreachable_for: Duration,
    drain_timeout: Duration,
) -> Option<String> {
    if prepared {
        Some("entering the warm pool prepared (its join log says so): no Node to drain".into())
    } else if unreachable_for >= drain_timeout {
        Some(format!(
            "entering the warm pool; control plane unreachable for {} s: completed, any Node left in place",
            unreachable_for.as_secs()
        ))
    } else {
        None
    }
}

/// Whether to heartbeat a waiting action now, given when it was last heartbeated (or began).
pub fn heartbeat_now(since: Duration, heartbeat_timeout: Duration) -> bool {
    heartbeat_due(since, heartbeat_timeout)
}

#[cfg(test)]
mod tests;
