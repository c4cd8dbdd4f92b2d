//! The pure part of the check after a leak: which Nodes joined with a revoked token and have no
//! instance of the cluster standing behind them. "Standing behind" is the rogue check's own
//! verdict ([`crate::rogue::verdict::decide`]: providerID and name, short name or InternalIP),
//! so control-plane and excluded Nodes are never acted on here either.

use std::collections::HashSet;
use std::time::Duration;

use time::OffsetDateTime;

use crate::nodes::joins::Join;
use crate::nodes::matching::NodeIndex;
use crate::nodes::NodeLine;
use crate::rogue::verdict::{decide, Fleet, Verdict};

/// Whether a suspect may be cordoned or deleted on the operator's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// No instance of the cluster stands behind it: the operator's flag decides.
    Act,
    /// Reported only: an administrator vouched for it (labels), two Nodes claim one instance, or
    /// it is younger than the rogue grace period.
    Hold,
}

/// A Node that joined with a revoked token and that no instance of the cluster owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suspect {
    pub node: String,
    pub token_id: String,
    pub reason: String,
    pub plan: Plan,
    pub cordoned: bool,
}

/// Whether the join's token is revoked: this run revoked it, or it is no longer on the control
/// plane (revoked earlier, or expired).
pub fn revoked_join(join: &Join, revoked: &[String]) -> bool {
    !join.token_live || revoked.contains(&join.token_id)
}

/// The suspects among `joins`, each Node once, in the order of the joins. Joins naming a Node
/// that no longer exists are left out (nothing to act on).
pub fn suspects(
    joins: &[Join],
    revoked: &[String],
    nodes: &[NodeLine],
    fleet: &Fleet,
    now: OffsetDateTime,
    grace: Duration,
) -> Vec<Suspect> {
    let index = NodeIndex::new(nodes);
    let mut done = HashSet::new();
    let mut found = Vec::new();
    for join in joins.iter().filter(|j| revoked_join(j, revoked)) {
        let Some(node) = nodes.iter().find(|n| n.name == join.node) else {
            continue;
        };
        if !done.insert(node.name.as_str()) {
            continue;
        }
        let (plan, reason) = match decide(node, &index, fleet, now, grace) {
            Verdict::Belongs | Verdict::Foreign { .. } => continue,
            Verdict::Rogue { reason } => (Plan::Act, reason),
            Verdict::Dead { instance } => (
                Plan::Act,
                format!("its providerID names {instance}, which is terminated"),
            ),
            Verdict::Excluded => (
                Plan::Hold,
                "an administrator excluded it from the rogue check".to_owned(),
            ),
            Verdict::ControlPlane => (
                Plan::Hold,
                "an administrator labelled it a control plane".to_owned(),
            ),
            Verdict::Contested { instance } => (
                Plan::Hold,
                format!("it is one of two or more Nodes claiming {instance}: none is believed"),
            ),
            Verdict::TooYoung => (
                Plan::Hold,
                "no instance of the cluster stands behind it, but it is younger than the rogue grace period".to_owned(),
            ),
        };
        found.push(Suspect {
            node: node.name.clone(),
            token_id: join.token_id.clone(),
            reason,
            plan,
            cordoned: node.cordoned,
        });
    }
    found
}

#[cfg(test)]
mod tests;
