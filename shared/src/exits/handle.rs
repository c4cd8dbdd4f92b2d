//! An exit event's handler: read the event, ask EC2 and Auto Scaling which cluster each named
//! instance is a worker of (never the event), record the exit, cordon at once when the door is
//! urgent (Spot, a stop or termination under way), and wake the cluster's reconciler, which does
//! the rest ([`crate::exits::pass`]).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;
use tracing::{info, warn};

use crate::aws::exits::Ec2Standing;
use crate::aws::fleet::{CONTROL_PLANE_ROLE, WORKER_ROLE};
use crate::aws::patience::{salt_of, while_throttled};
use crate::aws::AwsCallError;
use crate::context::{Context, Invocation};
use crate::events::EventError;
use crate::exits::decide::in_warm_pool;
use crate::exits::event::{parse_exit_event, ExitEvent};
use crate::exits::node::{self, NodeOp, NodeResult};
use crate::exits::record::{self, merge};
use crate::exits::Door;
use crate::lease::now_ms;
use crate::names::{ClusterName, GroupName, InstanceId};
use crate::queue::{standing_of, GroupStanding};
use crate::reconcile::{reconcile, ReconcileOutcome};

#[derive(Debug, thiserror::Error)]
pub enum ExitError {
    #[error("bad exit event: {0}")]
    BadEvent(#[from] EventError),
    #[error(transparent)]
    Aws(#[from] AwsCallError),
}

/// The answer to an exit event.
#[derive(Clone, Debug, Serialize)]
pub struct ExitAnswer {
    pub door: Option<Door>,
    /// Per instance named: the cluster it was recorded for, or why nothing was done.
    pub instances: BTreeMap<String, String>,
    pub reconciled: Vec<ReconcileOutcome>,
}

/// Pure: the cluster `instance` is a worker of, from EC2's description (tags, state), its group
/// membership, and what that group is; `Err(why)` when it is none's.
pub fn worker_of(
    ec2: Option<&Ec2Standing>,
    member_of: Option<&GroupStanding>,
    tagged_group: Option<&GroupStanding>,
) -> Result<ClusterName, String> {
    let s = ec2.ok_or("EC2 does not know the instance")?;
    let tag = s.cluster_tag.as_deref().ok_or("not tagged for a cluster")?;
    let cluster = ClusterName::parse(tag).map_err(|e| e.to_string())?;
    if s.role_tag.as_deref() == Some(CONTROL_PLANE_ROLE) {
        return Err("a control plane, not a worker".into());
    }
    let of_cluster =
        |g: Option<&GroupStanding>| matches!(g, Some(GroupStanding::Cluster(c)) if *c == cluster);
    match member_of {
        Some(g) if of_cluster(Some(g)) => Ok(cluster),
        Some(_) => Err("in a group that is not a worker group of its cluster".into()),
        // In no group: detached, or gone. A worker by the group that launched it, or its role.
        None if of_cluster(tagged_group) || s.role_tag.as_deref() == Some(WORKER_ROLE) => {
            Ok(cluster)
        }
        None => Err("in no worker group of its cluster".into()),
    }
}

/// Handles one exit event.
pub async fn handle_exit(
    ctx: &Context,
    payload: &serde_json::Value,
    inv: &Invocation,
) -> Result<ExitAnswer, ExitError> {
    let (door, ids, deadline_ms, state) = match parse_exit_event(payload)? {
        ExitEvent::Ignored { reason } => {
            info!(reason = %reason, "exit event ignored");
            return Ok(ExitAnswer {
                door: None,
                instances: BTreeMap::new(),
                reconciled: Vec::new(),
            });
        }
        ExitEvent::Leaving {
            door,
            instances,
            deadline_ms,
            state,
        } => (door, instances, deadline_ms, state),
    };
    let ec2: HashMap<InstanceId, Ec2Standing> = ctx
        .fleet
        .standings(&ids)
        .await?
        .into_iter()
        .map(|s| (s.id.clone(), s))
        .collect();
    // Auto Scaling's reads share one account-wide bucket, which a burst of warnings empties
    // within a second: asked again while throttled, within the first part of the notice.
    let patience = inv.deadline.within(LOOKUP_PATIENCE);
    let salt = ids.first().map_or(0, |i| salt_of(i.as_str()));
    let tagged_groups = ec2
        .values()
        .filter_map(|s| GroupName::parse(s.group_tag.as_deref()?).ok());
    let mut groups = labels(ctx, &patience, salt, tagged_groups.collect()).await?;
    // A Spot worker has two minutes: its Node is cordoned as soon as EC2 and its group make it a
    // worker of a cluster (the group that launched it is a tag only Auto Scaling can set, and
    // the group's own tags name the cluster), before its membership is asked for.
    let mut early: HashMap<InstanceId, NodeResult> = HashMap::new();
    for id in ids.iter().filter(|_| door == Door::Spot) {
        let Some(s) = ec2
            .get(id)
            .filter(|s| matches!(s.state.as_str(), "pending" | "running"))
        else {
            continue;
        };
        let tagged = GroupName::parse(s.group_tag.as_deref().unwrap_or_default())
            .ok()
            .and_then(|g| groups.get(&g));
        if let Ok(cluster) = worker_of(Some(s), tagged, tagged) {
            let dns = s.private_dns.as_deref();
            if let Some(out) = cordon_at_once(ctx, &cluster, (id, dns), None, inv).await? {
                early.insert(id.clone(), out);
            }
        }
    }
    let members = while_throttled(&patience, salt, || ctx.asg.memberships(&ids)).await?;
    let untold: Vec<GroupName> = members
        .values()
        .map(|(g, _)| g.clone())
        .filter(|g| !groups.contains_key(g))
        .collect();
    groups.extend(labels(ctx, &patience, salt, untold).await?);
    let mut answer = ExitAnswer {
        door: Some(door),
        instances: BTreeMap::new(),
        reconciled: Vec::new(),
    };
    let mut clusters: Vec<ClusterName> = Vec::new();
    for id in &ids {
        if let Some((_, state)) = members.get(id).filter(|(_, st)| in_warm_pool(st)) {
            // Stopped (or started) in its group's warm pool, not leaving: the pool's lifecycle
            // hooks cover it, and it has no Node. (Warm pools take no Spot instances.)
            info!(instance = %id, door = door.as_str(), lifecycle_state = %state, "exit event for a warm pool's instance: nothing done");
            answer
                .instances
                .insert(id.to_string(), "in the warm pool".into());
            continue;
        }
        let s = ec2.get(id);
        let member_of = members.get(id).and_then(|(g, _)| groups.get(g));
        let tagged = s
            .and_then(|s| GroupName::parse(s.group_tag.as_deref()?).ok())
            .and_then(|g| groups.get(&g));
        let cluster = match worker_of(s, member_of, tagged) {
            Ok(c) => c,
            Err(why) => {
                info!(instance = %id, door = door.as_str(), reason = %why, "exit event for an instance that is no worker of any cluster: nothing done");
                answer.instances.insert(id.to_string(), why);
                continue;
            }
        };
        let gone = s.is_none_or(|s| matches!(s.state.as_str(), "shutting-down" | "terminated"));
        if gone && door != Door::Stopped {
            // A late notice (a warning after the termination): nothing to resurrect.
            info!(cluster = %cluster, instance = %id, door = door.as_str(), "exit notice for an instance already gone: nothing done");
            answer
                .instances
                .insert(id.to_string(), "already gone".into());
            continue;
        }
        // Nothing to cordon on an instance already gone: its Node is deleted by the pass.
        let urgent = !gone
            && (door == Door::Spot
                || matches!(state.as_deref(), Some("stopping" | "shutting-down")));
        let dns = s.and_then(|s| s.private_dns.as_deref());
        let cordoned = early.remove(id);
        note(
            ctx,
            &cluster,
            (id, dns),
            (door, deadline_ms),
            (urgent, cordoned),
            inv,
        )
        .await?;
        answer.instances.insert(id.to_string(), cluster.to_string());
        clusters.push(cluster);
    }
    clusters.sort();
    clusters.dedup();
    for c in &clusters {
        answer.reconciled.push(reconcile(ctx, c, inv).await?);
    }
    Ok(answer)
}

/// How long an exit event's Auto Scaling lookups and its record's write are asked again while
/// throttled.
const LOOKUP_PATIENCE: Duration = Duration::from_secs(30);

/// The standing of each of `names` that carries joinkeeper's tags (the others are left out).
async fn labels(
    ctx: &Context,
    patience: &crate::deadline::Deadline,
    salt: u64,
    mut names: Vec<GroupName>,
) -> Result<HashMap<GroupName, GroupStanding>, AwsCallError> {
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Ok(HashMap::new());
    }
    let found = while_throttled(patience, salt, || ctx.asg.group_labels(&names)).await?;
    Ok(found
        .iter()
        .map(|g| (g.name.clone(), standing_of(Some(g))))
        .collect())
}

/// Records the exit and, when the door is urgent, cordons the Node at once (idempotent, outside
/// the reconcile lease: the cordon touches no drain record) unless `cordoned` says it was
/// already. The cordon goes first and the record is written once, after it: Parameter Store
/// throttles writes early (3 a second in the emulator's model), a rate every warning of a burst
/// shares (20 Spot warnings at once would queue the last cordon some 6 s behind the writes). A
/// cordon whose record is then lost is done again by Lambda's retry of the event.
async fn note(
    ctx: &Context,
    cluster: &ClusterName,
    (id, private_dns): (&InstanceId, Option<&str>),
    (door, deadline_ms): (Door, Option<i64>),
    (urgent, cordoned): (bool, Option<NodeResult>),
    inv: &Invocation,
) -> Result<(), AwsCallError> {
    let existing = record::load(ctx, cluster, id).await?;
    let Some(mut r) = merge(existing.as_ref(), door, deadline_ms, now_ms()) else {
        info!(cluster = %cluster, instance = %id, door = door.as_str(), "exit already recorded");
        return Ok(());
    };
    if urgent && !r.cordoned {
        let done = match cordoned {
            Some(out) => Some(out),
            None => cordon_at_once(ctx, cluster, (id, private_dns), r.node.as_deref(), inv).await?,
        };
        if let Some(out) = done {
            r.cordoned = true;
            r.node = out.node.or(r.node.take());
        }
    }
    // Parameter Store throttles writes early (3 a second in the emulator's model): a burst of
    // warnings waits its turn (the record is what lets the reconcile pass drain).
    let patience = inv.deadline.within(LOOKUP_PATIENCE);
    while_throttled(&patience, salt_of(id.as_str()), || {
        record::write(ctx, cluster, id, &r)
    })
    .await?;
    info!(cluster = %cluster, instance = %id, door = r.door.as_str(), cordoned = r.cordoned, "exit recorded");
    Ok(())
}

/// How long the cordon of an urgent door is waited on before the record is written anyway: the
/// record is what lets the reconcile pass drain (and cordon, when this could not).
const CORDON_AT_ONCE: Duration = Duration::from_secs(20);

/// Cordons the Node of `id` (the one it is found to have when `node` is not known); `None` when
/// that could not be done within [`CORDON_AT_ONCE`] (left to the reconcile pass).
async fn cordon_at_once(
    ctx: &Context,
    cluster: &ClusterName,
    (id, private_dns): (&InstanceId, Option<&str>),
    node: Option<&str>,
    inv: &Invocation,
) -> Result<Option<NodeResult>, AwsCallError> {
    let candidates = ctx.control_plane_candidates(cluster).await?;
    let target = node::Target {
        instance: id,
        node,
        private_dns,
    };
    let bound = inv.deadline.within(CORDON_AT_ONCE);
    match node::run(ctx, cluster, &candidates, target, NodeOp::Cordon, &bound).await {
        Some(out) if out.settled() => {
            info!(cluster = %cluster, instance = %id, result = %out.result, "Node of a leaving worker cordoned at once");
            Ok(Some(out))
        }
        other => {
            warn!(cluster = %cluster, instance = %id, result = ?other.map(|o| o.result), "could not cordon at once; the reconcile pass tries again");
            Ok(None)
        }
    }
}
