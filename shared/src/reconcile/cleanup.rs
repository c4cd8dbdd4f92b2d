//! No Node outlives its instance, whatever the drain did: every pass that holds the cluster's
//! drain records (any pass with a terminate action, and every scheduled one) lists the instances
//! they name and, for each instance EC2 no longer lists as live whose action no longer waits,
//! deletes the Node the record names on a control plane (document `joinkeeper-cordon`,
//! `Delete=true`), then forgets the record. That covers a Node *left* by a completed action (the
//! drain failed, timed out, or met a PodDisruptionBudget) and the Node of a drain whose instance
//! went away mid-drain (terminated through EC2, its action gone with it). Deleting the Node of a
//! terminated instance is what a cloud provider's node lifecycle controller does: its pods are
//! then garbage-collected and rescheduled, and a new instance that reuses the private IP (and so
//! the Node name) registers a Node of its own. Nodes of instances that left with no record at
//! all are found by the scheduled Node check ([`crate::rogue`], verdict `Dead`: its providerID
//! names a terminated instance of the cluster), under the same trusted matching rules.

use std::collections::{HashMap, HashSet};

use tracing::{info, warn};

use crate::aws::run_command::CommandRequest;
use crate::aws::AwsCallError;
use crate::context::Context;
use crate::deadline::Deadline;
use crate::names::{ClusterName, InstanceId};
use crate::reconcile::drain::{self, DrainRecord};

/// A left record is always looked at (its action was completed, perhaps this very pass); the
/// record of a drain is only once its action no longer waits.
fn eligible(instance: &InstanceId, r: &DrainRecord, waiting: &HashSet<InstanceId>) -> bool {
    r.left_node.is_some() || !waiting.contains(instance)
}

/// Pure: the records to act on — left ones, and those of drains whose action no longer waits —
/// whose instance is gone (`live`: instances EC2 still lists as live), with the Node each names (`None`: the drain was
/// to find it and never said; the scheduled Node check finds it by providerID).
pub fn gone(
    records: &HashMap<InstanceId, DrainRecord>,
    waiting: &HashSet<InstanceId>,
    live: &(dyn Fn(&InstanceId) -> bool + Sync),
) -> Vec<(InstanceId, Option<String>)> {
    let mut out: Vec<(InstanceId, Option<String>)> = records
        .iter()
        .filter(|(i, r)| eligible(i, r, waiting) && !live(i))
        .map(|(i, r)| (i.clone(), r.left_node.clone().or_else(|| r.node.clone())))
        .collect();
    out.sort();
    out
}

/// Deletes the Nodes recorded for instances that are gone (see [`gone`]). Returns how many
/// records still wait for it: left Nodes of live instances (about to terminate) and gone
/// instances' Nodes not deleted yet.
pub async fn delete_nodes_of_gone(
    ctx: &Context,
    cluster: &ClusterName,
    records: &mut HashMap<InstanceId, DrainRecord>,
    waiting: &HashSet<InstanceId>,
    candidates: &[InstanceId],
    deadline: &Deadline,
) -> Result<usize, AwsCallError> {
    let asked: Vec<InstanceId> = records
        .iter()
        .filter(|(i, r)| eligible(i, r, waiting))
        .map(|(i, _)| i.clone())
        .collect();
    if asked.is_empty() {
        return Ok(0);
    }
    let live = ctx.fleet.instances(&asked).await?;
    let mut undone = 0;
    for (instance, node) in gone(records, waiting, &|i| live.contains_key(i)) {
        if deadline.is_near(std::time::Duration::from_secs(15)) {
            undone += 1;
            continue;
        }
        let deleted = match &node {
            Some(node) => delete_node(ctx, cluster, candidates, node, deadline).await,
            None => true,
        };
        if deleted {
            if let Some(node) = &node {
                info!(cluster = %cluster, instance = %instance, node = %node, "Node of a terminated instance deleted");
            }
            drain::forget(ctx, cluster, &instance).await?;
            records.remove(&instance);
        } else {
            undone += 1;
        }
    }
    let left_of_live = records
        .iter()
        .filter(|(i, r)| r.left_node.is_some() && live.contains_key(*i))
        .count();
    Ok(undone + left_of_live)
}

/// Deletes one Node by name on the first control plane that runs the command.
pub async fn delete_node(
    ctx: &Context,
    cluster: &ClusterName,
    candidates: &[InstanceId],
    node: &str,
    deadline: &Deadline,
) -> bool {
    for (n, cp) in candidates.iter().enumerate() {
        let request = CommandRequest {
            cluster: cluster.as_str(),
            instance: cp,
            document: &ctx.config.documents.cordon,
            parameters: vec![("NodeName", node.to_owned()), ("Delete", "true".to_owned())],
            comment: format!("joinkeeper: delete the Node of a terminated instance of {cluster}"),
        };
        // An agent that has not taken the command by the next poll (offline, busy) is passed
        // over while another control plane is left, not waited on until the deadline.
        let pickup = ctx.pickup_before_next(n, candidates.len());
        match ctx.run_command_picked_up(request, deadline, pickup).await {
            Ok(out) if !out.stdout.contains("result=failed") => return true,
            Ok(_) => {
                warn!(cluster = %cluster, node = %node, "the control plane could not delete the Node")
            }
            Err(err) => {
                warn!(cluster = %cluster, control_plane = %cp, error = %err, "could not run the Node deletion")
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nodes_of_gone_instances_are_deleted_whatever_the_record_says() {
        let id = |s: &str| InstanceId::parse(s).expect("id");
        let rec = |left: Option<&str>, node: Option<&str>| DrainRecord {
            command_id: if left.is_some() {
                String::new()
            } else {
                "c".into()
            },
            control_plane: None,
            started_at_ms: 0,
            left_node: left.map(str::to_owned),
            node: node.map(str::to_owned),
            blocked: Vec::new(),
        };
        let records: HashMap<InstanceId, DrainRecord> = [
            (
                id("i-00000001"),
                rec(Some("ip-10-0-0-1.ec2.internal"), None),
            ),
            (
                id("i-00000002"),
                rec(Some("ip-10-0-0-2.ec2.internal"), None),
            ),
            (
                id("i-00000003"),
                rec(None, Some("ip-10-0-0-3.ec2.internal")),
            ),
            (
                id("i-00000004"),
                rec(None, Some("ip-10-0-0-4.ec2.internal")),
            ),
            (id("i-00000005"), rec(None, None)),
        ]
        .into_iter()
        .collect();
        let still = id("i-00000002");
        let waiting: HashSet<InstanceId> =
            [id("i-00000001"), id("i-00000004")].into_iter().collect();
        let found = gone(&records, &waiting, &|i| *i == still);
        assert_eq!(
            found,
            vec![
                (
                    id("i-00000001"),
                    Some("ip-10-0-0-1.ec2.internal".to_owned())
                ),
                (
                    id("i-00000003"),
                    Some("ip-10-0-0-3.ec2.internal".to_owned())
                ),
                (id("i-00000005"), None),
            ],
            "a left Node once its instance is gone (its action completed this very pass); the Node \
             of a drain whose instance went away mid-drain; a live instance's Node waits; a \
             waiting action's drain is no cleanup"
        );
    }
}
