//! Rogue Nodes: anyone holding a valid token can register a Node. On each scheduled pass the
//! refresher lists the cluster's Nodes (document `joinkeeper-nodes`) and compares them with the
//! instances tagged for the cluster: a Node whose providerID names no live instance of the
//! cluster, or that has no providerID and the name of none of them, is cordoned and reported
//! once older than the grace period (deleted too when configured). Decisions are pure.

use std::collections::HashSet;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use tracing::warn;

use crate::aws::run_command::CommandRequest;
use crate::context::{Context, Invocation};
use crate::names::{ClusterName, InstanceId};

/// One line of the `joinkeeper-nodes` listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLine {
    pub name: String,
    /// The providerID as printed (`-` when the Node has none).
    pub provider_id: String,
    pub created: Option<OffsetDateTime>,
    pub cordoned: bool,
}

/// Parses one page; the second value is the name to continue after when the page was cut.
pub fn parse_nodes(output: &str) -> (Vec<NodeLine>, Option<String>) {
    let mut nodes = Vec::new();
    let mut more = None;
    for line in output.lines().take(5000) {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["more", name] => more = Some((*name).to_owned()),
            [name, provider, created, _ready, cordoned] => nodes.push(NodeLine {
                name: crate::names::printable(name, 253)
                    .trim_matches('"')
                    .to_owned(),
                provider_id: (*provider).to_owned(),
                created: crate::timefmt::parse(created),
                cordoned: *cordoned == "yes",
            }),
            _ => {}
        }
    }
    (nodes, more)
}

/// What the cluster's instances look like to the check.
#[derive(Clone, Debug, Default)]
pub struct Fleet {
    pub instances: HashSet<InstanceId>,
    pub dns_names: HashSet<String>,
    /// Instances of the cluster that EC2 lists as terminated or shutting down.
    pub terminated: HashSet<InstanceId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Belongs,
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

/// The instance a providerID names (`aws:///<zone>/<instance-id>`).
pub fn provider_instance(provider_id: &str) -> Option<InstanceId> {
    let rest = provider_id.strip_prefix("aws:///")?;
    InstanceId::parse(rest.rsplit('/').next()?).ok()
}

pub fn decide(node: &NodeLine, fleet: &Fleet, now: OffsetDateTime, grace: Duration) -> Verdict {
    let reason = if node.provider_id == "-" {
        if fleet.dns_names.contains(&node.name) {
            return Verdict::Belongs;
        }
        "it has no providerID and no instance of the cluster has its name".to_owned()
    } else {
        match provider_instance(&node.provider_id) {
            Some(id) if fleet.instances.contains(&id) => return Verdict::Belongs,
            Some(id) if fleet.terminated.contains(&id) => return Verdict::Dead { instance: id },
            Some(id) => format!("its providerID names {id}, no live instance of the cluster"),
            None => "its providerID names no EC2 instance".to_owned(),
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

/// One rogue Node found, and what was done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RogueNode {
    pub cluster: String,
    pub node: String,
    pub age_seconds: Option<u64>,
    pub reason: String,
    /// `cordoned`, `deleted`, `already-cordoned`, or `failed: …`.
    pub action: String,
}

/// At most this many Nodes are cordoned per pass: a mass of rogues is an incident for people.
const CORDONS_PER_PASS: usize = 20;

/// Lists, decides, cordons. `None` when no control plane could be asked. `running`: the cluster's
/// running control planes as the scheduled run's discovery listed them; the instances the Nodes
/// are judged against are listed afresh, after the Nodes.
pub async fn check(
    ctx: &Context,
    cluster: &ClusterName,
    running: Vec<InstanceId>,
    inv: &Invocation,
) -> Option<Vec<RogueNode>> {
    let candidates = ctx.fleet.reachable_among(running).await.ok()?;
    let cp = candidates.first()?;
    let mut nodes = Vec::new();
    let mut after = "-".to_owned();
    for _ in 0..20 {
        let request = CommandRequest {
            cluster: cluster.as_str(),
            instance: cp,
            document: &ctx.config.documents.nodes,
            parameters: vec![("StartAfter", after.clone())],
            comment: format!("joinkeeper: Nodes of {cluster}"),
        };
        let out = ctx.run_command(request, &inv.deadline).await.ok()?;
        let (page, more) = parse_nodes(&out.stdout);
        nodes.extend(page);
        match more {
            Some(next) => after = next,
            None => break,
        }
    }
    let facts = ctx.fleet.cluster_instances(cluster).await.ok()?;
    let mut fleet = Fleet {
        instances: facts.iter().map(|f| f.id.clone()).collect(),
        dns_names: facts.iter().map(|f| f.private_dns.clone()).collect(),
        terminated: HashSet::new(),
    };
    let named: Vec<InstanceId> = nodes
        .iter()
        .filter_map(|n| provider_instance(&n.provider_id))
        .filter(|i| !fleet.instances.contains(i))
        .collect();
    if !named.is_empty() {
        fleet.terminated = ctx
            .fleet
            .terminated_of_cluster(cluster, &named)
            .await
            .unwrap_or_default();
    }
    let now = OffsetDateTime::now_utc();
    let mut found = Vec::new();
    let mut deleted = 0;
    for node in &nodes {
        let reason = match decide(node, &fleet, now, ctx.config.rogue_grace) {
            Verdict::Rogue { reason } => reason,
            Verdict::Dead { instance } => {
                if deleted < CORDONS_PER_PASS && !inv.deadline.is_near(Duration::from_secs(15)) {
                    deleted += 1;
                    let gone = crate::reconcile::cleanup::delete_node(
                        ctx,
                        cluster,
                        std::slice::from_ref(cp),
                        &node.name,
                        &inv.deadline,
                    )
                    .await;
                    tracing::info!(cluster = %cluster, node = %node.name, instance = %instance, deleted = gone, "Node of a terminated instance");
                }
                continue;
            }
            _ => continue,
        };
        let age_seconds = node
            .created
            .map(|c| (now - c).whole_seconds().max(0) as u64);
        let action = if node.cordoned && !ctx.config.delete_rogue_nodes {
            "already-cordoned".to_owned()
        } else if found.len() >= CORDONS_PER_PASS || inv.deadline.is_near(Duration::from_secs(15)) {
            "not yet (next pass)".to_owned()
        } else {
            cordon(ctx, cluster, cp, &node.name, inv).await
        };
        warn!(cluster = %cluster, node = %node.name, age_seconds = age_seconds.unwrap_or(0), reason = %reason, action = %action, "rogue Node: no instance of the cluster stands behind it");
        ctx.metrics.record(crate::metrics::rogue_node(
            cluster.as_str(),
            &node.name,
            &action,
        ));
        found.push(RogueNode {
            cluster: cluster.to_string(),
            node: node.name.clone(),
            age_seconds,
            reason,
            action,
        });
    }
    Some(found)
}

async fn cordon(
    ctx: &Context,
    cluster: &ClusterName,
    cp: &InstanceId,
    node: &str,
    inv: &Invocation,
) -> String {
    let delete = ctx.config.delete_rogue_nodes;
    let request = CommandRequest {
        cluster: cluster.as_str(),
        instance: cp,
        document: &ctx.config.documents.cordon,
        parameters: vec![
            ("NodeName", node.to_owned()),
            ("Delete", delete.to_string()),
        ],
        comment: format!("joinkeeper: cordon a rogue Node of {cluster}"),
    };
    match ctx.run_command(request, &inv.deadline).await {
        Ok(_) if delete => "deleted".to_owned(),
        Ok(_) => "cordoned".to_owned(),
        Err(err) => format!("failed: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn line(name: &str, provider: &str, created: Option<OffsetDateTime>) -> NodeLine {
        NodeLine {
            name: name.into(),
            provider_id: provider.into(),
            created,
            cordoned: false,
        }
    }

    #[test]
    fn parses_pages() {
        let out = "ip-10-0-0-1.ec2.internal aws:///us-east-1a/i-0123456789abcdef0 2026-11-27T10:00:00Z Ready no\nrogue - 2026-11-27T09:00:00Z NotReady yes\nbad line\nmore rogue\n";
        let (nodes, more) = parse_nodes(out);
        assert_eq!(nodes.len(), 2);
        assert!(nodes[1].cordoned);
        assert_eq!(more.as_deref(), Some("rogue"));
    }

    #[test]
    fn decision_table() {
        let now = datetime!(2026-11-27 12:00 UTC);
        let grace = Duration::from_secs(900);
        let ours = InstanceId::parse("i-0123456789abcdef0").expect("id");
        let dead = InstanceId::parse("i-0aaaaaaaaaaaaaaa1").expect("id");
        let fleet = Fleet {
            instances: [ours].into_iter().collect(),
            dns_names: ["ip-10-0-0-9.ec2.internal".to_owned()]
                .into_iter()
                .collect(),
            terminated: [dead.clone()].into_iter().collect(),
        };
        let old = Some(now - time::Duration::hours(1));
        let young = Some(now - time::Duration::minutes(5));
        let cases = [
            (
                "our worker",
                line("a", "aws:///us-east-1a/i-0123456789abcdef0", old),
                Verdict::Belongs,
            ),
            (
                "control plane without providerID, by name",
                line("ip-10-0-0-9.ec2.internal", "-", old),
                Verdict::Belongs,
            ),
            (
                "another instance's providerID",
                line("b", "aws:///us-east-1a/i-0fedcba987654321f", old),
                Verdict::Rogue {
                    reason:
                        "its providerID names i-0fedcba987654321f, no live instance of the cluster"
                            .into(),
                },
            ),
            (
                "no providerID, unknown name",
                line("c", "-", old),
                Verdict::Rogue {
                    reason: "it has no providerID and no instance of the cluster has its name"
                        .into(),
                },
            ),
            (
                "invalid providerID",
                line("d", "invalid", None),
                Verdict::Rogue {
                    reason: "its providerID names no EC2 instance".into(),
                },
            ),
            (
                "a terminated instance's Node, even young: deleted",
                line("f", "aws:///us-east-1a/i-0aaaaaaaaaaaaaaa1", young),
                Verdict::Dead { instance: dead },
            ),
            (
                "rogue-looking but young",
                line("e", "-", young),
                Verdict::TooYoung,
            ),
        ];
        for (name, node, want) in cases {
            assert_eq!(decide(&node, &fleet, now, grace), want, "{name}");
        }
    }
}
