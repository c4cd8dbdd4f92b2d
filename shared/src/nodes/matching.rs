//! Which Node is whose. A providerID alone proves nothing: anyone holding a join token can
//! register a Node that names any instance. A Node belongs to an instance only when its
//! providerID names the instance (or it has none) *and* its name or InternalIP is the
//! instance's: the full private DNS name, its first label (the short hostname that Ubuntu and
//! most images use as the Node name), or the private IP. Two Nodes claiming one instance are
//! both unknown: neither is believed Ready, neither is drained in the other's place.

use std::collections::HashMap;

use super::NodeLine;
use crate::lifecycle::NodeState;
use crate::names::InstanceId;

/// What identifies an instance's Node, from EC2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostKeys {
    pub id: InstanceId,
    pub private_dns: String,
    pub private_ip: Option<String>,
}

impl HostKeys {
    /// The private DNS name's first label (`ip-10-0-0-9` of `ip-10-0-0-9.ec2.internal`).
    pub fn short_name(&self) -> Option<&str> {
        self.private_dns.split('.').next().filter(|s| !s.is_empty())
    }
}

/// Whether the Node's name or address is the instance's.
pub fn host_matches(node: &NodeLine, host: &HostKeys) -> bool {
    let by_name = !host.private_dns.is_empty()
        && (node.name == host.private_dns || Some(node.name.as_str()) == host.short_name());
    let by_ip = matches!((&node.internal_ip, &host.private_ip), (Some(a), Some(b)) if a == b);
    by_name || by_ip
}

/// A Node's claim on an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// It names the instance (or has no providerID) and its name or address is the instance's.
    Genuine,
    /// Its providerID names the instance but neither its name nor its address is the instance's.
    Forged,
}

/// The Node's claim on `host`, if any. A providerID naming another instance, or one that names
/// no EC2 instance, claims nothing here whatever the name.
pub fn claim(node: &NodeLine, host: &HostKeys) -> Option<Claim> {
    match node.provider_instance() {
        Some(id) if id == host.id => Some(if host_matches(node, host) {
            Claim::Genuine
        } else {
            Claim::Forged
        }),
        Some(_) => None,
        None if !node.has_provider_id() && host_matches(node, host) => Some(Claim::Genuine),
        None => None,
    }
}

/// Who owns an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership<'a> {
    /// Exactly one Node claims it, genuinely.
    Owned(&'a NodeLine),
    /// No Node claims it, or only one whose claim is forged.
    Absent,
    /// Two or more Nodes claim it (their names): both unknown, reported.
    Contested(Vec<String>),
}

impl Ownership<'_> {
    /// The Node state the reconciler decides on.
    pub fn state(&self) -> NodeState {
        match self {
            Ownership::Owned(n) => n.ready,
            Ownership::Absent => NodeState::Absent,
            Ownership::Contested(_) => NodeState::Contested,
        }
    }

    /// The name of the one Node that is the instance's.
    pub fn node_name(&self) -> Option<&str> {
        match self {
            Ownership::Owned(n) => Some(&n.name),
            _ => None,
        }
    }
}

/// The Nodes that claim `host` and how.
pub fn claimants<'a>(host: &HostKeys, nodes: &[&'a NodeLine]) -> Vec<(&'a NodeLine, Claim)> {
    nodes
        .iter()
        .filter_map(|n| Some((*n, claim(n, host)?)))
        .collect()
}

/// Who owns `host` among `nodes` (every Node that could claim it).
pub fn ownership<'a>(host: &HostKeys, nodes: &[&'a NodeLine]) -> Ownership<'a> {
    let found = claimants(host, nodes);
    match found.as_slice() {
        [] => Ownership::Absent,
        [(n, Claim::Genuine)] => Ownership::Owned(n),
        [(_, Claim::Forged)] => Ownership::Absent,
        many => Ownership::Contested(many.iter().map(|(n, _)| n.name.clone()).collect()),
    }
}

/// Index of the Nodes by what could tie them to an instance (providerID's instance, name,
/// address), so that judging thousands of Nodes against thousands of instances stays linear.
#[derive(Debug, Default)]
pub struct NodeIndex<'a> {
    by_key: HashMap<&'a str, Vec<&'a NodeLine>>,
    by_instance: HashMap<InstanceId, Vec<&'a NodeLine>>,
}

impl<'a> NodeIndex<'a> {
    pub fn new(nodes: &'a [NodeLine]) -> Self {
        let mut index = NodeIndex::default();
        for n in nodes {
            index.by_key.entry(n.name.as_str()).or_default().push(n);
            if let Some(ip) = &n.internal_ip {
                index.by_key.entry(ip.as_str()).or_default().push(n);
            }
            if let Some(id) = n.provider_instance() {
                index.by_instance.entry(id).or_default().push(n);
            }
        }
        index
    }

    /// Every Node that could claim `host` (each once).
    pub fn candidates(&self, host: &HostKeys) -> Vec<&'a NodeLine> {
        let keys = [
            Some(host.private_dns.as_str()),
            host.short_name(),
            host.private_ip.as_deref(),
        ];
        let mut found: Vec<&'a NodeLine> = Vec::new();
        let lists = keys
            .iter()
            .flatten()
            .filter_map(|k| self.by_key.get(k))
            .chain(self.by_instance.get(&host.id));
        for n in lists.flatten() {
            if !found.iter().any(|f| std::ptr::eq(*f, *n)) {
                found.push(n);
            }
        }
        found
    }

    pub fn ownership(&self, host: &HostKeys) -> Ownership<'a> {
        ownership(host, &self.candidates(host))
    }
}

#[cfg(test)]
mod tests;
