//! The pure part of a pass: from the waiting actions, the drain records and the Node states,
//! which facts to gather, which instances to ask the control plane about (one batch for all of
//! them), and which path each action takes. The executor ([`crate::reconcile::pass`]) gathers
//! and acts; these are table-tested without I/O.

use std::collections::HashMap;

use crate::lifecycle::{NodeState, WaitState};
use crate::names::InstanceId;
use crate::reconcile::decide::warm_pool_entry_has_node;
use crate::reconcile::drain::DrainRecord;
use crate::reconcile::gather::Waiting;

/// The path one waiting action takes this pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// A launch whose Node is Ready: completed CONTINUE with the others, concurrently.
    Ready,
    /// A launch still waiting, or past its deadline ([`crate::reconcile::launch::launch`]).
    Launch,
    /// Entering the warm pool fresh from EC2: wait for the worker to be prepared.
    EnterWarmPool,
    /// Entering the warm pool, and no control plane could say whether it has a Node.
    EnterWarmPoolUnknown,
    /// Leaving service (terminated, back to the pool with a Node, or a drain of this wait runs).
    Leave,
}

/// Pure: the route of an action in `state`, given its Node state (`None`: not asked or no
/// answer) and whether a drain of this wait is recorded.
pub fn route(state: WaitState, node: Option<NodeState>, draining: bool) -> Route {
    match state {
        WaitState::PendingWait if node == Some(NodeState::Ready) => Route::Ready,
        WaitState::PendingWait => Route::Launch,
        WaitState::WarmedPendingWait if !draining => match warm_pool_entry_has_node(node) {
            Some(false) => Route::EnterWarmPool,
            None => Route::EnterWarmPoolUnknown,
            Some(true) => Route::Leave,
        },
        _ => Route::Leave,
    }
}

/// Whether a drain of the current wait is recorded for `instance` (intended or sent; a record
/// *left* by a completed action is not one).
pub fn draining(drains: &HashMap<InstanceId, DrainRecord>, instance: &InstanceId) -> bool {
    drains.get(instance).is_some_and(|r| r.left_node.is_none())
}

/// Pure: the instances the control plane is asked about, in one batch: every waiting action
/// but those leaving the warm pool to die (no Node) and those whose drain answers instead.
pub fn needs_node(
    waiting: &[Waiting],
    drains: &HashMap<InstanceId, DrainRecord>,
) -> Vec<InstanceId> {
    waiting
        .iter()
        .filter(|w| w.state != WaitState::WarmedTerminatingWait && !draining(drains, &w.instance))
        .map(|w| w.instance.clone())
        .collect()
}

/// Pure: whether the drain records must be read (once per run): when an action may drain, and
/// on every scheduled run, which deletes the Nodes recorded for instances that are gone
/// whichever way they left ([`crate::reconcile::cleanup`]).
pub fn needs_drains(waiting: &[Waiting], loaded: bool, scheduled: bool) -> bool {
    !loaded && (scheduled || waiting.iter().any(|w| w.state != WaitState::PendingWait))
}

/// Pure: whether the join record is checked this pass (workers about to join must find one that
/// outlives their join deadline).
pub fn needs_record_check(waiting: &[Waiting], due: bool) -> bool {
    due && waiting.iter().any(|w| w.state == WaitState::PendingWait)
}

/// The control planes in the order the next question goes to them: those passed over (their
/// agent did not take the question in time, or the command failed) last, the rest in their order.
pub fn answering_first(candidates: &[InstanceId], passed_over: &[InstanceId]) -> Vec<InstanceId> {
    let (last, first): (Vec<InstanceId>, Vec<InstanceId>) = candidates
        .iter()
        .cloned()
        .partition(|c| passed_over.contains(c));
    first.into_iter().chain(last).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{group, id};
    use NodeState::*;
    use WaitState::*;

    #[test]
    fn control_planes_passed_over_are_asked_last_in_their_order() {
        let (a, b, c) = (
            id("i-000000000000000a1"),
            id("i-000000000000000b1"),
            id("i-000000000000000c1"),
        );
        let all = [a.clone(), b.clone(), c.clone()];
        assert_eq!(answering_first(&all, &[]), all);
        assert_eq!(
            answering_first(&all, std::slice::from_ref(&a)),
            [b.clone(), c.clone(), a.clone()]
        );
        assert_eq!(
            answering_first(&all, &[b.clone(), a.clone()]),
            [c.clone(), a.clone(), b.clone()]
        );
        // Every one passed over (the last answered after the others failed): order kept.
        assert_eq!(answering_first(&all, &all), all);
    }

    #[test]
    fn route_table() {
        let cases = [
            (PendingWait, Some(Ready), false, Route::Ready),
            (PendingWait, Some(NotReady), false, Route::Launch),
            (PendingWait, Some(Absent), false, Route::Launch),
            (PendingWait, None, false, Route::Launch),
            (WarmedPendingWait, Some(Absent), false, Route::EnterWarmPool),
            (WarmedPendingWait, None, false, Route::EnterWarmPoolUnknown),
            (WarmedPendingWait, Some(Ready), false, Route::Leave),
            (WarmedPendingWait, Some(NotReady), false, Route::Leave),
            (WarmedPendingWait, None, true, Route::Leave),
            (WarmedPendingWait, Some(Absent), true, Route::Leave),
            (TerminatingWait, Some(Ready), false, Route::Leave),
            (TerminatingWait, None, true, Route::Leave),
            (WarmedTerminatingWait, None, false, Route::Leave),
        ];
        for (state, node, draining, want) in cases {
            assert_eq!(
                route(state, node, draining),
                want,
                "{state:?} {node:?} {draining}"
            );
        }
    }

    fn w(n: u8, state: WaitState) -> Waiting {
        Waiting {
            group: group("demo-workers"),
            instance: id(&format!("i-0000000{n}")),
            state,
        }
    }

    #[test]
    fn one_batch_asks_about_every_action_but_the_drained_and_the_dying() {
        let record = |left: Option<&str>| DrainRecord {
            command_id: "c".into(),
            control_plane: None,
            started_at_ms: 0,
            left_node: left.map(str::to_owned),
            node: None,
            blocked: Vec::new(),
        };
        let waiting: Vec<Waiting> = vec![
            w(1, PendingWait),
            w(2, PendingWait),
            w(3, TerminatingWait),
            w(4, TerminatingWait),
            w(5, WarmedPendingWait),
            w(6, WarmedTerminatingWait),
            w(7, TerminatingWait),
        ];
        let drains: HashMap<InstanceId, DrainRecord> = [
            (id("i-00000004"), record(None)),
            (id("i-00000007"), record(Some("ip-10-0-0-7.ec2.internal"))),
        ]
        .into_iter()
        .collect();
        let asked: Vec<String> = needs_node(&waiting, &drains)
            .iter()
            .map(|i| i.to_string())
            .collect();
        assert_eq!(
            asked,
            [
                "i-00000001",
                "i-00000002",
                "i-00000003",
                "i-00000005",
                "i-00000007"
            ],
            "a left record is no drain of the new wait: its Node is asked about again"
        );
        assert!(needs_drains(&waiting, false, false));
        assert!(!needs_drains(&waiting, true, false), "read once per run");
        assert!(
            !needs_drains(&waiting[..2], false, false),
            "launches alone never read drains"
        );
        assert!(
            needs_drains(&[], false, true),
            "the schedule reads them with nothing waiting"
        );
        assert!(needs_record_check(&waiting, true));
        assert!(!needs_record_check(&waiting, false));
        assert!(
            !needs_record_check(&waiting[2..], true),
            "no launch: no record check"
        );
    }
}
