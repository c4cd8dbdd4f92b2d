//! The rogue check's pure part: each Node judged against the cluster's instances, the
//! instances of others, and what the cluster's operator allows joinkeeper to do about it.
//!
//! Safe on a cluster that joinkeeper meets already running: short hostnames and addresses
//! match ([`crate::nodes::matching`]); Nodes of control planes, Nodes of instances not tagged
//! for the cluster (pre-existing workers, other tools' node groups) and Nodes an administrator
//! labelled [`crate::nodes::EXCLUDE_LABEL`]`=ignore` are never acted on; and a cluster starts
//! in report-only mode until its operator turns action on.

use std::collections::HashSet;
use std::time::Duration;

use time::OffsetDateTime;

use crate::names::InstanceId;
use crate::nodes::matching::{claim, Claim, HostKeys, NodeIndex, Ownership};
use crate::nodes::NodeLine;

/// What the check knows about instances.
#[derive(Clone, Debug, Default)]
pub struct Fleet {
    /// Live instances tagged for the cluster.
    pub members: Vec<HostKeys>,
    /// Live instances not tagged for the cluster that a Node's providerID, name or address
    /// points at (another node group's, or workers that predate the tag).
    pub foreign: Vec<HostKeys>,
    /// Instances of the cluster that EC2 lists as terminated or shutting down.
    pub terminated: HashSet<InstanceId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The one Node of an instance of the cluster.
    Belongs,
    /// An administrator excluded it.
    Excluded,
    /// Labelled control plane by an administrator (a kubelet cannot label itself so).
    ControlPlane,
    /// The Node of a live instance that is not the cluster's: not joinkeeper's to judge.
    Foreign {
        instance: InstanceId,
    },
    /// One of two or more Nodes claiming the instance: none is believed, none is acted on.
    Contested {
        instance: InstanceId,
    },
    /// Looks rogue but is younger than the grace period (a worker still joining).
    TooYoung,
    Rogue {
        reason: String,
    },
    /// Its providerID names an instance of the cluster that EC2 says is gone: no Node outlives
    /// its instance, so it is deleted, whatever the rogue settings and its age.
    Dead {
        instance: InstanceId,
    },
}

/// Judges `node`, one of `index`'s Nodes.
pub fn decide(
    node: &NodeLine,
    index: &NodeIndex<'_>,
    fleet: &Fleet,
    now: OffsetDateTime,
    grace: Duration,
) -> Verdict {
    if node.excluded() {
        return Verdict::Excluded;
    }
    let mut forged = None;
    for host in &fleet.members {
        match claim(node, host) {
            None => continue,
            Some(Claim::Forged) => forged = Some(host.id.clone()),
            Some(Claim::Genuine) => {}
        }
        match index.ownership(host) {
            Ownership::Owned(owner) if std::ptr::eq(owner, node) => return Verdict::Belongs,
            Ownership::Contested(_) => {
                return Verdict::Contested {
                    instance: host.id.clone(),
                }
            }
            _ => {}
        }
    }
    if node.control_plane_label() {
        return Verdict::ControlPlane;
    }
    let reason = if let Some(id) = forged {
        format!(
            "its providerID names {id}, but neither its name nor its address is that instance's"
        )
    } else if let Some(host) = fleet
        .foreign
        .iter()
        .find(|h| claim(node, h) == Some(Claim::Genuine))
    {
        return Verdict::Foreign {
            instance: host.id.clone(),
        };
    } else {
        match node.provider_instance() {
            Some(id) if fleet.terminated.contains(&id) => return Verdict::Dead { instance: id },
            Some(id) => format!("its providerID names {id}, no live instance of the cluster"),
            None if node.has_provider_id() => "its providerID names no EC2 instance".to_owned(),
            None => "it has no providerID, and neither its name nor its address is an instance's of the cluster".to_owned(),
        }
    };
    let young = node
        .created
        .is_some_and(|c| now - c < time::Duration::seconds(grace.as_secs() as i64));
    if young {
        Verdict::TooYoung
    } else {
        Verdict::Rogue { reason }
    }
}

/// What the cluster's operator lets the check do (parameter `<prefix>/<cluster>/rogue-nodes`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Report only: the default, so a cluster joinkeeper meets already running is never touched
    /// before its operator has seen what the check would do.
    #[default]
    Report,
    Cordon,
    Delete,
}

impl Mode {
    /// The parameter's value; `None` for anything else (the caller stays in report-only mode).
    pub fn parse(value: &str) -> Option<Mode> {
        match value.trim() {
            "report" => Some(Mode::Report),
            "cordon" => Some(Mode::Cordon),
            "delete" => Some(Mode::Delete),
            _ => None,
        }
    }
}

/// What is done about one rogue Node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Report,
    AlreadyCordoned,
    Cordon,
    Delete,
}

/// The act for a Node judged rogue.
pub fn act(mode: Mode, cordoned: bool) -> Act {
    match mode {
        Mode::Report => Act::Report,
        Mode::Cordon if cordoned => Act::AlreadyCordoned,
        Mode::Cordon => Act::Cordon,
        Mode::Delete => Act::Delete,
    }
}

#[cfg(test)]
mod tests;
