//! Rogue Nodes: anyone holding a valid token can register a Node. On each scheduled pass the
//! refresher lists the cluster's Nodes (document `joinkeeper-nodes`), and judges each against
//! the instances tagged for the cluster and the instances its providerID, name or address point
//! at ([`verdict`]). What is done about a rogue Node is the cluster operator's choice
//! (parameter `<prefix>/<cluster>/rogue-nodes`: `report`, the default, `cordon` or `delete`).

mod cordon;
pub mod leaked;
pub mod verdict;

use std::collections::HashSet;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::aws::fleet::InstanceFacts;
use crate::aws::run_command::CommandRequest;
use crate::context::{Context, Invocation};
use crate::names::{ClusterName, InstanceId};
use crate::nodes::matching::NodeIndex;
use crate::nodes::{parse_listing, NodeLine};
use cordon::cordon;
pub use verdict::{act, decide, Act, Fleet, Mode, Verdict};

/// One Node the check reports, and what was done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RogueNode {
    pub cluster: String,
    pub node: String,
    pub age_seconds: Option<u64>,
    pub reason: String,
    /// `reported`, `cordoned`, `deleted`, `already-cordoned`, `not yet (next pass)` or
    /// `failed: …`.
    pub action: String,
}

/// One cluster's check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RogueCheck {
    pub cluster: String,
    /// `report`, `cordon` or `delete`.
    pub mode: String,
    pub nodes_listed: usize,
    /// False when the listing was cut (more pages than one pass reads) or held lines that were
    /// not understood: Nodes may be missing from the verdicts.
    pub complete: bool,
    pub nodes: Vec<RogueNode>,
}

/// At most this many Nodes are cordoned per pass: a mass of rogues is an incident for people.
const CORDONS_PER_PASS: usize = 20;
/// Pages of the Node listing read per pass (each at most 24,000 characters).
const PAGES: usize = 20;

/// The cluster's mode; report-only when the parameter is absent, unreadable or invalid.
pub async fn mode(ctx: &Context, cluster: &ClusterName) -> Mode {
    let name = ctx.config.rogue_mode_parameter(cluster);
    match ctx.parameters.get(&name, false).await {
        Ok(None) => Mode::Report,
        Ok(Some((value, _))) => Mode::parse(&value).unwrap_or_else(|| {
            warn!(cluster = %cluster, parameter = %name, "rogue-nodes is not report, cordon or delete: report only");
            Mode::Report
        }),
        Err(err) => {
            warn!(cluster = %cluster, error = %err, "could not read the rogue-nodes mode: report only");
            Mode::Report
        }
    }
}

/// Lists the Nodes of the cluster on `cp`: the Nodes, and whether the listing is complete.
async fn list(
    ctx: &Context,
    cluster: &ClusterName,
    cp: &InstanceId,
    inv: &Invocation,
    pickup: Option<Duration>,
) -> Option<(Vec<NodeLine>, bool)> {
    let mut nodes = Vec::new();
    let mut after = "-".to_owned();
    let mut complete = true;
    for page in 0.. {
        if page == PAGES {
            complete = false;
            break;
        }
        let request = CommandRequest {
            cluster: cluster.as_str(),
            instance: cp,
            document: &ctx.config.documents.nodes,
            parameters: vec![("StartAfter", after.clone())],
            comment: format!("joinkeeper: Nodes of {cluster}"),
        };
        let out = ctx
            .run_command_picked_up(request, &inv.deadline, pickup)
            .await
            .ok()?;
        let (lines, more, bad) = parse_listing(&out.stdout);
        complete &= bad == 0;
        nodes.extend(lines);
        match more {
            Some(next) => after = next,
            None => break,
        }
    }
    Some((nodes, complete))
}

/// What EC2 says about the instances the Nodes are judged against. `None` when EC2 could not
/// be asked: nothing is judged on half the facts.
async fn fleet(ctx: &Context, cluster: &ClusterName, nodes: &[NodeLine]) -> Option<Fleet> {
    let members = ctx.fleet.cluster_instances(cluster).await.ok()?;
    let known: HashSet<InstanceId> = members.iter().map(|f| f.id.clone()).collect();
    let index = NodeIndex::new(nodes);
    // The Nodes no member owns point at instances that may be others': look those up.
    let owned: HashSet<String> = members
        .iter()
        .filter_map(|m| {
            index
                .ownership(&m.host_keys())
                .node_name()
                .map(str::to_owned)
        })
        .collect();
    let unowned: Vec<&NodeLine> = nodes.iter().filter(|n| !owned.contains(&n.name)).collect();
    let ids: Vec<String> = unowned
        .iter()
        .filter_map(|n| n.provider_instance())
        .filter(|i| !known.contains(i))
        .map(|i| i.to_string())
        .collect();
    let ips: Vec<String> = unowned
        .iter()
        .filter_map(|n| n.internal_ip.clone())
        .collect();
    let names: Vec<String> = unowned
        .iter()
        .filter(|n| n.name.contains('.'))
        .map(|n| n.name.clone())
        .collect();
    let mut foreign: Vec<InstanceFacts> = Vec::new();
    for (filter, values) in [
        ("instance-id", &ids),
        ("private-ip-address", &ips),
        ("private-dns-name", &names),
    ] {
        if !values.is_empty() {
            foreign.extend(ctx.fleet.live_instances_by(filter, values).await.ok()?);
        }
    }
    foreign.retain(|f| !known.contains(&f.id));
    let gone: Vec<InstanceId> = ids
        .iter()
        .filter_map(|i| InstanceId::parse(i).ok())
        .collect();
    let terminated = if gone.is_empty() {
        HashSet::new()
    } else {
        ctx.fleet
            .terminated_of_cluster(cluster, &gone)
            .await
            .unwrap_or_default()
    };
    Some(Fleet {
        members: members.iter().map(InstanceFacts::host_keys).collect(),
        foreign: foreign.iter().map(InstanceFacts::host_keys).collect(),
        terminated,
    })
}

/// Lists, judges, acts as the cluster's mode allows. `None` when no control plane could be
/// asked, or EC2 could not. `running`: the cluster's running control planes as the scheduled
/// run's discovery listed them; the instances the Nodes are judged against are listed afresh,
/// after the Nodes.
pub async fn check(
    ctx: &Context,
    cluster: &ClusterName,
    running: Vec<InstanceId>,
    inv: &Invocation,
) -> Option<RogueCheck> {
    // Each step that cannot be taken is said: a check skipped in silence leaves the Nodes of
    // terminated instances standing until someone wonders why.
    let candidates = match ctx.fleet.reachable_among(running).await {
        Ok(c) if !c.is_empty() => c,
        Ok(_) => {
            warn!(cluster = %cluster, "rogue check skipped: no reachable control plane");
            return None;
        }
        Err(err) => {
            warn!(cluster = %cluster, error = %err, "rogue check skipped: control planes not known");
            return None;
        }
    };
    let mode = mode(ctx, cluster).await;
    // The listing is asked of each control plane in turn until one answers.
    let mut listed = None;
    for (n, cp) in candidates.iter().enumerate() {
        // An agent that has not taken the question by the next poll is passed over while
        // another control plane is left.
        let pickup = ctx.pickup_before_next(n, candidates.len());
        if let Some(l) = list(ctx, cluster, cp, inv, pickup).await {
            listed = Some((cp, l));
            break;
        }
    }
    let Some((cp, (nodes, complete))) = listed else {
        warn!(cluster = %cluster, "rogue check skipped: no control plane listed the Nodes");
        return None;
    };
    let Some(fleet) = fleet(ctx, cluster, &nodes).await else {
        warn!(cluster = %cluster, "rogue check skipped: EC2 could not be asked about the Nodes' instances");
        return None;
    };
    if !complete {
        warn!(cluster = %cluster, nodes = nodes.len(), "the Node listing is not complete: Nodes past it were not judged");
    }
    let index = NodeIndex::new(&nodes);
    let now = OffsetDateTime::now_utc();
    let mut found = Vec::new();
    let (mut acted, mut deleted) = (0, 0);
    for node in &nodes {
        let age_seconds = node
            .created
            .map(|c| (now - c).whole_seconds().max(0) as u64);
        let near = || inv.deadline.is_near(Duration::from_secs(15));
        let (reason, action) = match decide(node, &index, &fleet, now, ctx.config.rogue_grace) {
            Verdict::Rogue { reason } => {
                let action = match act(mode, node.cordoned) {
                    Act::Report => "reported".to_owned(),
                    Act::AlreadyCordoned => "already-cordoned".to_owned(),
                    _ if acted >= CORDONS_PER_PASS || near() => "not yet (next pass)".to_owned(),
                    a => {
                        acted += 1;
                        cordon(ctx, cluster, cp, &node.name, a == Act::Delete, inv).await
                    }
                };
                (reason, action)
            }
            Verdict::Contested { instance } => (
                format!("it is one of two or more Nodes claiming {instance}: none is believed"),
                "reported".to_owned(),
            ),
            Verdict::Dead { instance } => {
                if deleted < CORDONS_PER_PASS && !near() {
                    deleted += 1;
                    let gone = crate::reconcile::cleanup::delete_node(
                        ctx,
                        cluster,
                        std::slice::from_ref(cp),
                        &node.name,
                        &inv.deadline,
                    )
                    .await;
                    info!(cluster = %cluster, node = %node.name, instance = %instance, deleted = gone, "Node of a terminated instance");
                }
                continue;
            }
            _ => continue,
        };
        warn!(cluster = %cluster, node = %node.name, age_seconds = age_seconds.unwrap_or(0), reason = %reason, action = %action, "rogue Node: no instance of the cluster stands behind it alone");
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
    Some(RogueCheck {
        cluster: cluster.to_string(),
        mode: format!("{mode:?}").to_lowercase(),
        nodes_listed: nodes.len(),
        complete,
        nodes: found,
    })
}
