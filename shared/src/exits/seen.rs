//! Where the cluster's workers are, as one pass reads it: the worker groups' lifecycle states,
//! EC2's states and tags of every instance tagged for the cluster, and which of them no group
//! lists (detached, asked of `DescribeAutoScalingInstances` only for those).

use std::collections::{HashMap, HashSet};

use crate::aws::exits::Ec2Standing;
use crate::aws::fleet::{CONTROL_PLANE_ROLE, WORKER_ROLE};
use crate::aws::AwsCallError;
use crate::context::Context;
use crate::exits::decide::{whereabouts, Whereabouts};
use crate::names::{ClusterName, GroupName, InstanceId};

/// Where the cluster's workers are, as one pass reads it.
pub struct Seen {
    pub at: HashMap<InstanceId, Whereabouts>,
    /// Private DNS names, for the Node commands.
    pub dns: HashMap<InstanceId, String>,
}

/// `recorded`: the instances with an exit record; one the cluster's listing misses (its tag
/// removed, say) is asked of EC2 by id, so that only EC2's own word makes it gone.
pub async fn look(
    ctx: &Context,
    cluster: &ClusterName,
    recorded: &[InstanceId],
) -> Result<Seen, AwsCallError> {
    let mut group_state: HashMap<InstanceId, String> = HashMap::new();
    let mut worker_groups: HashSet<GroupName> = HashSet::new();
    for g in ctx.asg.managed_groups(cluster).await? {
        if g.is_worker_group {
            worker_groups.insert(g.name.clone());
        }
        group_state.extend(g.instances);
    }
    let mut ec2 = ctx.fleet.cluster_standings(cluster).await?;
    let missing: Vec<InstanceId> = recorded
        .iter()
        .filter(|i| !ec2.iter().any(|s| s.id == **i))
        .cloned()
        .collect();
    if !missing.is_empty() {
        ec2.extend(ctx.fleet.standings(&missing).await?);
    }
    // A worker of the cluster in no group's instances: detached, unless Auto Scaling still lists
    // it (a move under way); a stopped one may be in a warm pool, which the groups' instance
    // lists leave out (`Warmed:*`: stopped there by design, not leaving).
    let claims_worker = |s: &Ec2Standing| {
        s.role_tag.as_deref() != Some(CONTROL_PLANE_ROLE)
            && (s.role_tag.as_deref() == Some(WORKER_ROLE)
                || s.group_tag
                    .as_deref()
                    .and_then(|g| GroupName::parse(g).ok())
                    .is_some_and(|g| worker_groups.contains(&g)))
    };
    let suspects: Vec<InstanceId> = ec2
        .iter()
        .filter(|s| {
            matches!(
                s.state.as_str(),
                "running" | "pending" | "stopping" | "stopped"
            )
        })
        .filter(|s| !group_state.contains_key(&s.id) && claims_worker(s))
        .map(|s| s.id.clone())
        .collect();
    let listed = if suspects.is_empty() {
        HashMap::new()
    } else {
        ctx.asg.memberships(&suspects).await?
    };
    let mut at = HashMap::new();
    let dns = ec2
        .iter()
        .filter_map(|s| Some((s.id.clone(), s.private_dns.clone()?)))
        .collect();
    for s in &ec2 {
        let in_group = group_state.get(&s.id).map(String::as_str);
        let elsewhere = listed.get(&s.id).map(|(_, state)| state.as_str());
        let detached = suspects.contains(&s.id) && elsewhere.is_none();
        if in_group.is_none() && !detached && !claims_worker(s) && !recorded.contains(&s.id) {
            continue; // control planes, other tools' instances
        }
        at.insert(
            s.id.clone(),
            whereabouts(Some(&s.state), in_group.or(elsewhere), detached),
        );
    }
    Ok(Seen { at, dns })
}
