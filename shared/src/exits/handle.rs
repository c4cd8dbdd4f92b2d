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
use crate::aws::AwsCallError;
use crate::context::{Context, Invocation};
use crate::events::EventError;
use crate::exits::decide::in_warm_pool;
use crate::exits::event::{parse_exit_event, ExitEvent};
use crate::exits::node::{self, NodeOp};
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
    // EC2 and Auto Scaling asked together: a Spot warning leaves two minutes for everything.
    let (standings, members) =
        tokio::try_join!(ctx.fleet.standings(&ids), ctx.asg.memberships(&ids))?;
    let ec2: HashMap<InstanceId, Ec2Standing> =
        standings.into_iter().map(|s| (s.id.clone(), s)).collect();
    let mut names: Vec<GroupName> = members.values().map(|(g, _)| g.clone()).collect();
    names.extend(
        ec2.values()
            .filter_map(|s| GroupName::parse(s.group_tag.as_deref()?).ok()),
    );
    names.sort();
    names.dedup();
    let groups: HashMap<GroupName, GroupStanding> = ctx
        .asg
        .group_labels(&names)
        .await?
        .iter()
        .map(|g| (g.name.clone(), standing_of(Some(g))))
        .collect();
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
        note(ctx, &cluster, (id, dns), (door, deadline_ms), urgent, inv).await?;
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

/// Records the exit and, when the door is urgent, cordons the Node at once (idempotent, outside
/// the reconcile lease: the cordon touches no drain record). The cordon goes first and the record
/// is written once, after it: Parameter Store takes 3 writes a second by default, shared by every
/// warning of a burst (20 Spot warnings at once would queue the last cordon some 6 s behind the
/// writes). A cordon whose record is then lost is done again by Lambda's retry of the event.
async fn note(
    ctx: &Context,
    cluster: &ClusterName,
    (id, private_dns): (&InstanceId, Option<&str>),
    (door, deadline_ms): (Door, Option<i64>),
    urgent: bool,
    inv: &Invocation,
) -> Result<(), AwsCallError> {
    let existing = record::load(ctx, cluster, id).await?;
    let Some(mut r) = merge(existing.as_ref(), door, deadline_ms, now_ms()) else {
        info!(cluster = %cluster, instance = %id, door = door.as_str(), "exit already recorded");
        return Ok(());
    };
    if urgent && !r.cordoned {
        cordon_at_once(ctx, cluster, (id, private_dns), &mut r, inv).await?;
    }
    record::write(ctx, cluster, id, &r).await?;
    info!(cluster = %cluster, instance = %id, door = r.door.as_str(), cordoned = r.cordoned, "exit recorded");
    Ok(())
}

/// How long the cordon of an urgent door is waited on before the record is written anyway: the
/// record is what lets the reconcile pass drain (and cordon, when this could not).
const CORDON_AT_ONCE: Duration = Duration::from_secs(20);

/// Cordons the Node of `id` and notes it in `r` (not yet written); a cordon that could not be
/// done within [`CORDON_AT_ONCE`] is left to the reconcile pass.
async fn cordon_at_once(
    ctx: &Context,
    cluster: &ClusterName,
    (id, private_dns): (&InstanceId, Option<&str>),
    r: &mut record::ExitRecord,
    inv: &Invocation,
) -> Result<(), AwsCallError> {
    let candidates = ctx.control_plane_candidates(cluster).await?;
    let target = node::Target {
        instance: id,
        node: r.node.as_deref(),
        private_dns,
    };
    match node::run(
        ctx,
        cluster,
        &candidates,
        target,
        NodeOp::Cordon,
        &inv.deadline.within(CORDON_AT_ONCE),
    )
    .await
    {
        Some(out) if out.settled() => {
            r.cordoned = true;
            r.node = out.node.or(r.node.take());
            info!(cluster = %cluster, instance = %id, door = r.door.as_str(), result = %out.result, "Node of a leaving worker cordoned at once");
        }
        other => {
            warn!(cluster = %cluster, instance = %id, result = ?other.map(|o| o.result), "could not cordon at once; the reconcile pass tries again")
        }
    }
    Ok(())
}
