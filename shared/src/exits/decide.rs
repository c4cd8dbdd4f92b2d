//! The pure decisions of the exits: which door an instance seen by the pass leaves by (when no
//! event said so), and the next step for each exit record. No I/O; table-tested.

use std::time::Duration;

use crate::exits::record::ExitRecord;
use crate::exits::{Door, ExitAction, ExitSettings};

/// Where EC2 and Auto Scaling say the instance is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whereabouts {
    /// Running and in service in a worker group of the cluster.
    InService,
    /// Running, in Standby (or entering it) in its group.
    Standby,
    /// Running, in no group, but a worker of the cluster by its tags.
    Detached,
    /// EC2 `stopping` or `stopped`.
    Stopped,
    /// EC2 `shutting-down`, `terminated`, or no longer listed.
    Gone,
    /// Running elsewhere in its group's life (pending, terminating under a hook, warm pool):
    /// the lifecycle hooks serve it.
    Elsewhere,
}

/// Pure: where an instance is, from its EC2 state (`None`: EC2 does not list it), its lifecycle
/// state in its group (`None`: in no group) and whether it is a detached worker of the cluster.
pub fn whereabouts(ec2: Option<&str>, group: Option<&str>, detached: bool) -> Whereabouts {
    match ec2 {
        None | Some("shutting-down" | "terminated") => Whereabouts::Gone,
        // A warm pool's instances are stopped (or kept running) there by design and have no
        // Node; their lifecycle hooks cover them on the way in and out.
        _ if group.is_some_and(in_warm_pool) => Whereabouts::Elsewhere,
        Some("stopping" | "stopped") => Whereabouts::Stopped,
        _ => match group {
            Some("InService") => Whereabouts::InService,
            Some("Standby" | "EnteringStandby") => Whereabouts::Standby,
            None if detached => Whereabouts::Detached,
            _ => Whereabouts::Elsewhere,
        },
    }
}

/// Pure: whether an Auto Scaling lifecycle state is one of a warm pool's (`Warmed:*`).
pub fn in_warm_pool(lifecycle_state: &str) -> bool {
    lifecycle_state.starts_with("Warmed:")
}

/// Pure: the door an instance the pass sees (no record) is leaving by, when it is leaving.
/// A terminated instance without a record is left to its terminate hook or the rogue check:
/// EC2 lists it for an hour, and a record would be written again on every pass.
pub fn seen_leaving(at: Whereabouts) -> Option<Door> {
    match at {
        Whereabouts::Standby => Some(Door::Standby),
        Whereabouts::Detached => Some(Door::Detached),
        Whereabouts::Stopped => Some(Door::Stopped),
        Whereabouts::InService | Whereabouts::Gone | Whereabouts::Elsewhere => None,
    }
}

/// The next step for one exit record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Cordon the Node (at once: the first thing every door gets, unless set to nothing).
    Cordon,
    /// Drain within `budget`, the Node kept (cordoned): it is deleted once the instance is gone
    /// (a kubelet still running would find its Node missing), or given back if it returns.
    Drain { budget: Duration },
    /// Mark the instance unhealthy, so its group replaces it through its hooks.
    SetUnhealthy,
    /// The instance is gone: delete its Node, then forget the record.
    DeleteNode,
    /// Back in service: uncordon what this record cordoned, then forget it.
    Uncordon,
    /// Nothing was done and nothing is to do: forget the record.
    Forget,
    /// Nothing now; `watch`: look again next pass (something happens soon).
    Wait { watch: bool },
}

/// Room kept between a Spot drain's end and the interruption (the Node's deletion, the
/// command's own start-up).
pub const SPOT_MARGIN: Duration = Duration::from_secs(15);
/// A drain shorter than this is not worth starting: the cordon is all there is time for.
pub const SHORTEST_DRAIN: Duration = Duration::from_secs(5);

/// What the door lets the pass do (cordon, drain or nothing).
pub fn action_for(door: Door, s: &ExitSettings) -> ExitAction {
    match door {
        Door::Spot | Door::Maintenance => ExitAction::Drain,
        Door::Stopped => ExitAction::Cordon,
        Door::Rebalance => s.rebalance,
        Door::Standby | Door::Detached => s.standby,
    }
}

/// The facts one decision reads.
#[derive(Clone, Debug)]
pub struct ExitFacts<'a> {
    pub record: &'a ExitRecord,
    pub at: Whereabouts,
    pub now_ms: i64,
    /// A drain of this exit is recorded and not finished.
    pub draining: bool,
}

/// Pure: the next step. Order: a gone instance's Node is deleted whatever else; an instance
/// back in service is given back its Node; then cordon, drain, replace, as the door and the
/// settings allow, and for maintenance no earlier than the lead time before the window.
pub fn next_step(f: &ExitFacts<'_>, s: &ExitSettings) -> Step {
    let r = f.record;
    if f.at == Whereabouts::Gone {
        return Step::DeleteNode;
    }
    let back = match r.door {
        Door::Standby | Door::Detached => f.at == Whereabouts::InService,
        Door::Stopped => f.at == Whereabouts::InService,
        // A notice about a running instance stands until the instance leaves.
        _ => false,
    };
    if back && r.door.may_return() {
        return if r.cordoned {
            Step::Uncordon
        } else {
            Step::Forget
        };
    }
    let action = action_for(r.door, s);
    if action == ExitAction::Nothing {
        return Step::Forget;
    }
    if r.door == Door::Maintenance {
        let due = r
            .deadline_ms
            .is_none_or(|d| f.now_ms >= d - s.maintenance_lead.as_millis() as i64);
        if !due {
            return Step::Wait { watch: false };
        }
    }
    if !r.cordoned {
        return Step::Cordon;
    }
    if action == ExitAction::Cordon || f.at == Whereabouts::Stopped {
        // A stopped instance has nothing running to evict; its Node waits for it to come back
        // or to be terminated (its group replaces an unhealthy instance within minutes).
        return Step::Wait { watch: false };
    }
    if f.draining {
        return Step::Wait { watch: true };
    }
    if !r.drained {
        return match drain_budget(r, f.now_ms, s) {
            Some(budget) => Step::Drain { budget },
            // Too late to drain: the cordon stands until the interruption.
            None => Step::Wait { watch: true },
        };
    }
    if r.door == Door::Maintenance && s.maintenance_replace && !r.replaced {
        return Step::SetUnhealthy;
    }
    // Drained; a Spot instance is watched until it is reclaimed.
    Step::Wait {
        watch: r.door == Door::Spot,
    }
}

/// Pure: how long a drain may take: Spot's time left before the interruption less a margin
/// (`None` when too short to start), else the drain timeout.
pub fn drain_budget(r: &ExitRecord, now_ms: i64, s: &ExitSettings) -> Option<Duration> {
    if r.door != Door::Spot {
        return Some(s.drain_timeout);
    }
    let left = r.deadline_ms? - now_ms;
    let budget = Duration::from_millis(left.max(0) as u64).saturating_sub(SPOT_MARGIN);
    (budget >= SHORTEST_DRAIN).then_some(budget.min(s.drain_timeout))
}

#[cfg(test)]
mod tests;
