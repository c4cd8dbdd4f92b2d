//! What a reconcile run remembers between its passes: hooks, instance facts, heartbeats, drains,
//! actions it already completed. Lost when the invocation ends; a later run reads it back from
//! AWS (drain records) or starts afresh (heartbeats are then sent at first sight).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use crate::aws::fleet::InstanceFacts;
use crate::lifecycle::WaitState;
use crate::names::{GroupName, InstanceId};
use crate::reconcile::drain::DrainRecord;
use crate::reconcile::gather::GroupHooks;

#[derive(Debug, Default)]
pub struct Memory {
    pub hooks: HashMap<GroupName, GroupHooks>,
    pub facts: HashMap<InstanceId, InstanceFacts>,
    pub last_heartbeat: HashMap<InstanceId, Instant>,
    pub unreachable_since: HashMap<InstanceId, Instant>,
    /// Drain records, loaded once per run when a terminate action is first seen.
    pub drains: Option<HashMap<InstanceId, DrainRecord>>,
    /// Actions this run completed (the group may still list them for a moment).
    pub done: HashSet<(InstanceId, WaitState)>,
    pub record_checked: Option<Instant>,
    pub candidates: Option<Vec<InstanceId>>,
    /// Join logs fetched in the current pass (each is a Run Command on the worker).
    pub join_logs: usize,
    /// Join logs of instances entering the warm pool, fetched together at the start of the
    /// current pass's actions (see [`crate::reconcile::warm_entry::prefetch_join_logs`]).
    pub warm_logs: HashMap<InstanceId, String>,
    /// The wait state each instance was last seen in: what the run knows of an instance (its
    /// launch time above all) is dropped when it moves (into or out of a warm pool).
    pub seen_state: HashMap<InstanceId, WaitState>,
    /// When each launch's wait began, from the group's scaling activities (`None`: no activity
    /// names it, its launch time stands).
    pub wait_began: HashMap<InstanceId, Option<time::OffsetDateTime>>,
    /// When the run first saw each terminating instance without a Node.
    pub absent_since: HashMap<InstanceId, Instant>,
    /// The Node each instance owns, as the last node-status answer showed it: what a drain names.
    pub node_names: HashMap<InstanceId, String>,
    /// Drains this run saw end (their action may still wait out the deregistration delay): they
    /// no longer take a place of the cluster's drain concurrency.
    pub drains_finished: HashSet<InstanceId>,
    /// Nodes this run cordoned ahead of their drains (several leaving at once).
    pub cordoned: HashSet<String>,
    /// The cluster's join mode, once read in this run.
    pub join_mode: Option<crate::reconcile::tokens::JoinMode>,
    /// Per-instance mode: instances whose tokens are still to be revoked (their wait ended, or
    /// a stray token of an instance no longer waiting).
    pub revoke: std::collections::BTreeSet<InstanceId>,
    /// Whether this run swept the per-instance records left by earlier runs (on a schedule).
    pub tokens_swept: bool,
}

/// How often a run re-checks that the record outlives the join deadline while launches wait.
pub const RECORD_RECHECK: Duration = Duration::from_secs(300);

impl Memory {
    /// How long since the action was last heartbeated, or `None` when never in this run.
    pub fn since_heartbeat(&self, instance: &InstanceId) -> Option<Duration> {
        self.last_heartbeat.get(instance).map(Instant::elapsed)
    }

    /// Notes the state `instance` is seen in; forgets what the run knew of it when it moved.
    pub fn see(&mut self, instance: &InstanceId, state: WaitState) {
        if self.seen_state.insert(instance.clone(), state) != Some(state) {
            self.facts.remove(instance);
            self.wait_began.remove(instance);
            self.unreachable_since.remove(instance);
        }
    }

    pub fn record_check_due(&self) -> bool {
        self.record_checked
            .is_none_or(|t| t.elapsed() >= RECORD_RECHECK)
    }

    /// How long the run has seen `instance` without a Node (0 when it has one, or is unknown).
    pub fn absent_for(&mut self, instance: &InstanceId, absent: bool) -> Duration {
        held_for(&mut self.absent_since, instance, absent)
    }

    /// How long the control plane has been unreachable for this instance (0 when it answered).
    pub fn unreachable_for(&mut self, instance: &InstanceId, reachable: bool) -> Duration {
        held_for(&mut self.unreachable_since, instance, !reachable)
    }
}

/// How long `holds` has been true of `instance` in this run, by the first time it was seen so in
/// `since`; 0 (and forgotten) once it no longer holds.
fn held_for(
    since: &mut HashMap<InstanceId, Instant>,
    instance: &InstanceId,
    holds: bool,
) -> Duration {
    if !holds {
        since.remove(instance);
        return Duration::ZERO;
    }
    since
        .entry(instance.clone())
        .or_insert_with(Instant::now)
        .elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::id;

    #[test]
    fn what_the_run_knew_of_an_instance_is_dropped_when_it_moves() {
        let i = id("i-0000000a");
        let mut mem = Memory::default();
        mem.see(&i, WaitState::WarmedPendingWait);
        mem.facts.insert(
            i.clone(),
            InstanceFacts {
                id: i.clone(),
                launched: Some(time::OffsetDateTime::UNIX_EPOCH),
                private_dns: String::new(),
                private_ip: None,
            },
        );
        mem.wait_began.insert(i.clone(), None);
        mem.see(&i, WaitState::WarmedPendingWait);
        assert!(mem.facts.contains_key(&i), "same wait: kept");
        // Out of the pool: started again, a new launch time, a new wait.
        mem.see(&i, WaitState::PendingWait);
        assert!(!mem.facts.contains_key(&i));
        assert!(!mem.wait_began.contains_key(&i));
    }
}
