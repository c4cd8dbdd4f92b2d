//! Where a new drain goes: spread over the control planes, a few at a time on each, so that no
//! agent queues drains past their delivery timeout, and at most the cluster's drain concurrency
//! at once (`JOINKEEPER_DRAIN_CONCURRENCY`).

use std::collections::{HashMap, HashSet};

use super::DrainRecord;
use crate::names::InstanceId;

/// Drains sent to one control plane at once. Its SSM agent runs 5 commands at a time and buffers
/// 5 more; node-status batches take up to 3 of those, so drains beyond this wait their turn here
/// (no record, no command) instead of queueing past their delivery timeout on the agent.
pub const DRAINS_PER_CONTROL_PLANE: usize = 2;

/// Pure: the control planes to try for a new drain, least busy first, those with no room left
/// out; `avoid` (the one that did not take this drain last time) goes last.
pub fn pick_control_planes(
    candidates: &[InstanceId],
    in_flight: &HashMap<InstanceId, usize>,
    avoid: Option<&InstanceId>,
) -> Vec<InstanceId> {
    let mut open: Vec<(bool, usize, usize, InstanceId)> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let busy = in_flight.get(c).copied().unwrap_or(0);
            (Some(c) == avoid, busy, i, c.clone())
        })
        .filter(|(_, busy, _, _)| *busy < DRAINS_PER_CONTROL_PLANE)
        .collect();
    open.sort();
    open.into_iter().map(|(_, _, _, c)| c).collect()
}

/// Drains in flight per control plane, from the run's records; `finished`: the drains this run
/// saw end (their action may still wait out the deregistration delay), which hold no agent.
pub fn in_flight_per_control_plane(
    records: &HashMap<InstanceId, DrainRecord>,
    finished: &HashSet<InstanceId>,
) -> HashMap<InstanceId, usize> {
    let mut counts = HashMap::new();
    for (_, r) in running(records, finished) {
        if let Some(cp) = &r.control_plane {
            *counts.entry(cp.clone()).or_insert(0) += 1;
        }
    }
    counts
}

fn running<'a>(
    records: &'a HashMap<InstanceId, DrainRecord>,
    finished: &'a HashSet<InstanceId>,
) -> impl Iterator<Item = (&'a InstanceId, &'a DrainRecord)> {
    records
        .iter()
        .filter(|(i, r)| r.in_flight() && !finished.contains(*i))
}

/// Pure: whether `instance` may start its drain now: fewer than `limit` others of the cluster
/// run (a drain of its own being sent again does not count against it).
pub fn cluster_has_room(
    records: &HashMap<InstanceId, DrainRecord>,
    finished: &HashSet<InstanceId>,
    instance: &InstanceId,
    limit: usize,
) -> bool {
    running(records, finished)
        .filter(|(i, _)| *i != instance)
        .count()
        < limit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> InstanceId {
        InstanceId::parse(s).expect("id")
    }

    #[test]
    fn drains_spread_over_control_planes_and_queue_when_all_are_busy() {
        let (a, b, c) = (id("i-0000000a"), id("i-0000000b"), id("i-0000000c"));
        let cands = vec![a.clone(), b.clone(), c.clone()];
        let mut busy = HashMap::new();
        assert_eq!(pick_control_planes(&cands, &busy, None)[0], a);
        busy.insert(a.clone(), 1);
        assert_eq!(
            pick_control_planes(&cands, &busy, None)[0],
            b,
            "least busy first"
        );
        busy.insert(b.clone(), 1);
        busy.insert(c.clone(), 1);
        assert_eq!(
            pick_control_planes(&cands, &busy, Some(&a)),
            vec![b.clone(), c.clone(), a.clone()],
            "the one that did not take it goes last"
        );
        for cp in &cands {
            busy.insert(cp.clone(), DRAINS_PER_CONTROL_PLANE);
        }
        assert!(
            pick_control_planes(&cands, &busy, None).is_empty(),
            "all busy: queued"
        );
    }

    #[test]
    fn in_flight_counts_sent_drains_only() {
        let cp = id("i-0000000a");
        let rec = |cmd: &str, left: Option<&str>| DrainRecord {
            command_id: cmd.into(),
            control_plane: Some(cp.clone()),
            started_at_ms: 0,
            left_node: left.map(str::to_owned),
            node: None,
            blocked: Vec::new(),
        };
        let records: HashMap<InstanceId, DrainRecord> = [
            (id("i-00000001"), rec("c1", None)),
            (id("i-00000002"), rec("", None)),
            (id("i-00000003"), rec("c3", Some("n"))),
            (id("i-00000004"), rec("c4", None)),
        ]
        .into_iter()
        .collect();
        let finished: HashSet<InstanceId> = [id("i-00000004")].into_iter().collect();
        assert_eq!(
            in_flight_per_control_plane(&records, &finished).get(&cp),
            Some(&1),
            "sent, not left, not seen finished"
        );
        assert_eq!(
            in_flight_per_control_plane(&records, &HashSet::new()).get(&cp),
            Some(&2)
        );
    }

    #[test]
    fn at_most_the_drain_concurrency_runs_in_a_cluster() {
        let rec = |cmd: &str| DrainRecord {
            command_id: cmd.into(),
            control_plane: Some(id("i-0000000a")),
            started_at_ms: 0,
            left_node: None,
            node: None,
            blocked: Vec::new(),
        };
        let records: HashMap<InstanceId, DrainRecord> = [
            (id("i-00000001"), rec("c1")),
            (id("i-00000002"), rec("c2")),
            (id("i-00000003"), rec("")),
        ]
        .into_iter()
        .collect();
        let none = HashSet::new();
        let new = id("i-00000009");
        assert!(!cluster_has_room(&records, &none, &new, 2), "two run: full");
        assert!(cluster_has_room(&records, &none, &new, 3));
        assert!(
            cluster_has_room(&records, &none, &id("i-00000001"), 2),
            "its own drain sent again does not count against it"
        );
        let done: HashSet<InstanceId> = [id("i-00000002")].into_iter().collect();
        assert!(
            cluster_has_room(&records, &done, &new, 2),
            "a drain seen finished frees its place"
        );
    }
}
