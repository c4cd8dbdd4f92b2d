//! Kubernetes Nodes as the control plane's scripts report them: plain facts (name, providerID,
//! creation, Ready, cordoned, InternalIP, the labels a kubelet cannot set on itself), parsed
//! here and judged by pure functions ([`matching`]). The scripts never decide which Node is
//! whose.

pub mod joins;
pub mod matching;

use time::OffsetDateTime;

use crate::lifecycle::NodeState;
use crate::names::InstanceId;

/// One Node line: `<name> <providerID|-> <created|-> <Ready|NotReady|Unknown> <yes|no>
/// [<InternalIP|-> <labels|->]` (the last two fields since the listing reports addresses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLine {
    pub name: String,
    /// The providerID as printed (`-` when the Node has none, `invalid` when unprintable).
    pub provider_id: String,
    pub created: Option<OffsetDateTime>,
    /// Ready, NotReady or Unknown (the Node's Ready condition).
    pub ready: NodeState,
    pub cordoned: bool,
    pub internal_ip: Option<String>,
    /// `key=value` pairs of the labels under `node-role.kubernetes.io/` and
    /// `node-restriction.kubernetes.io/`: NodeRestriction forbids kubelets to set them, so only
    /// an administrator can have put them there.
    pub labels: Vec<(String, String)>,
}

/// Label of the Nodes the rogue check leaves alone (`…=ignore`). Under
/// `node-restriction.kubernetes.io/`, so a kubelet cannot put it on its own Node.
pub const EXCLUDE_LABEL: &str = "node-restriction.kubernetes.io/joinkeeper-rogue-check";
/// Role labels kubeadm puts on control-plane Nodes (the second one before Kubernetes 1.24).
pub const CONTROL_PLANE_LABELS: &[&str] = &[
    "node-role.kubernetes.io/control-plane",
    "node-role.kubernetes.io/master",
];

impl NodeLine {
    /// The instance its providerID names (`aws:///<zone>/<instance-id>` or `aws:///<id>`).
    pub fn provider_instance(&self) -> Option<InstanceId> {
        provider_instance(&self.provider_id)
    }

    pub fn has_provider_id(&self) -> bool {
        self.provider_id != "-"
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether an administrator excluded it from the rogue check.
    pub fn excluded(&self) -> bool {
        self.label(EXCLUDE_LABEL) == Some("ignore")
    }

    pub fn control_plane_label(&self) -> bool {
        CONTROL_PLANE_LABELS.iter().any(|k| self.label(k).is_some())
    }
}

/// The instance a providerID names.
pub fn provider_instance(provider_id: &str) -> Option<InstanceId> {
    let rest = provider_id.strip_prefix("aws:///")?;
    InstanceId::parse(rest.rsplit('/').next()?).ok()
}

/// One Node line's words, or `None` when they are not one (wrong count, invalid name).
pub fn parse_node_words(w: &[&str]) -> Option<NodeLine> {
    let (core, extra) = match w.len() {
        5 => (w, None),
        7 => (&w[..5], Some(&w[5..])),
        _ => return None,
    };
    let name = core[0];
    if !name_ok(name) {
        return None;
    }
    let ready = match core[3] {
        "Ready" => NodeState::Ready,
        "NotReady" => NodeState::NotReady,
        "Unknown" => NodeState::Unknown,
        _ => return None,
    };
    let (internal_ip, labels) = match extra {
        Some([ip, labels]) => (
            (*ip != "-" && ip_ok(ip)).then(|| (*ip).to_owned()),
            parse_labels(labels),
        ),
        _ => (None, Vec::new()),
    };
    Some(NodeLine {
        name: name.to_owned(),
        provider_id: core[1].to_owned(),
        created: crate::timefmt::parse(core[2]),
        ready,
        cordoned: core[4] == "yes",
        internal_ip,
        labels,
    })
}

fn parse_labels(field: &str) -> Vec<(String, String)> {
    if field == "-" {
        return Vec::new();
    }
    field
        .split(',')
        .take(16)
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// A Node (or DNS) name the documents' patterns accept: lowercase letters, digits, `-` and `.`.
pub fn name_ok(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=253).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'.')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// An IPv4 or IPv6 address as text.
pub fn ip_ok(ip: &str) -> bool {
    ip.parse::<std::net::IpAddr>().is_ok()
}

/// Parses a `joinkeeper-nodes` page: its Nodes, the name to continue after when the page was
/// cut (`more <name>`), and how many lines were not understood (the listing is then not
/// complete).
pub fn parse_listing(output: &str) -> (Vec<NodeLine>, Option<String>, usize) {
    let mut nodes = Vec::new();
    let mut more = None;
    let mut bad = 0;
    for line in output.lines().take(5000) {
        let w: Vec<&str> = line.split_whitespace().take(8).collect();
        match w.as_slice() {
            [] => {}
            ["more", name] => more = Some((*name).to_owned()),
            words => match parse_node_words(words) {
                Some(n) => nodes.push(n),
                None => bad += 1,
            },
        }
    }
    (nodes, more, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_old_and_new_lines() {
        let out = "ip-10-0-0-1.ec2.internal aws:///us-east-1a/i-0123456789abcdef0 2026-11-27T10:00:00Z Ready no 10.0.0.1 -\n\
                   cp aws:///us-east-1a/i-0123456789abcdef1 - Ready no 10.0.0.2 node-role.kubernetes.io/control-plane=,node-restriction.kubernetes.io/joinkeeper-rogue-check=ignore\n\
                   rogue - 2026-11-27T09:00:00Z NotReady yes\nBad line\nmore rogue\n";
        let (nodes, more, bad) = parse_listing(out);
        assert_eq!(nodes.len(), 3);
        assert_eq!(bad, 1);
        assert_eq!(more.as_deref(), Some("rogue"));
        assert_eq!(nodes[0].internal_ip.as_deref(), Some("10.0.0.1"));
        assert!(nodes[1].control_plane_label() && nodes[1].excluded());
        assert!(!nodes[0].excluded() && !nodes[0].control_plane_label());
        assert!(nodes[2].cordoned && nodes[2].internal_ip.is_none());
        assert_eq!(nodes[2].ready, NodeState::NotReady);
        assert_eq!(
            nodes[0]
                .provider_instance()
                .map(|i| i.to_string())
                .as_deref(),
            Some("i-0123456789abcdef0")
        );
    }

    #[test]
    fn hostile_fields_are_refused() {
        for line in [
            "UPPER - - Ready no",
            "a;b - - Ready no",
            "a - - Maybe no",
            "a - - Ready no 10.0.0.1",
        ] {
            let w: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(parse_node_words(&w), None, "{line}");
        }
        let w = ["a", "-", "-", "Ready", "no", "not-an-ip", "-"];
        assert_eq!(
            parse_node_words(&w).and_then(|n| n.internal_ip),
            None,
            "an unreadable address is no address"
        );
    }
}
