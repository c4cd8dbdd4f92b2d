//! No Node outlives its instance: a terminate action completed with its Node still in place
//! (the drain failed, timed out, or met a PodDisruptionBudget) leaves a *left* drain record; once
//! EC2 no longer lists the instance as live, the Node is deleted on a control plane (document
//! `joinkeeper-cordon`, `Delete=true`) and the record forgotten. Deleting the Node of a
//! terminated instance is what a cloud provider's node lifecycle controller does: its pods are
//! then garbage-collected and rescheduled, and a new instance that reuses the private IP (and so
//! the Node name) can register. The scheduled run's Node check covers instances that left by
//! any other door ([`crate::rogue`]).

use std::collections::HashMap;

use tracing::{info, warn};

use crate::aws::run_command::CommandRequest;
use crate::aws::AwsCallError;
use crate::context::Context;
use crate::deadline::Deadline;
use crate::names::{ClusterName, InstanceId};
use crate::reconcile::drain::{self, DrainRecord};

/// Pure: the left records whose instance is gone (`live`: instances EC2 still lists as live).
pub fn gone(
    records: &HashMap<InstanceId, DrainRecord>,
    live: &dyn Fn(&InstanceId) -> bool,
) -> Vec<(InstanceId, String)> {
    let mut out: Vec<(InstanceId, String)> = records
        .iter()
        .filter_map(|(i, r)| Some((i.clone(), r.left_node.clone()?)))
        .filter(|(i, _)| !live(i))
        .collect();
    out.sort();
    out
}

/// Deletes the Nodes left by completed actions whose instances are gone. Returns how many left
/// records remain (still to do).
pub async fn delete_left_nodes(
    ctx: &Context,
    cluster: &ClusterName,
    records: &mut HashMap<InstanceId, DrainRecord>,
    candidates: &[InstanceId],
    deadline: &Deadline,
) -> Result<usize, AwsCallError> {
    let left: Vec<InstanceId> = records
        .iter()
        .filter(|(_, r)| r.left_node.is_some())
        .map(|(i, _)| i.clone())
        .collect();
    if left.is_empty() {
        return Ok(0);
    }
    let live = ctx.fleet.instances(&left).await?;
    for (instance, node) in gone(records, &|i| live.contains_key(i)) {
        if deadline.is_near(std::time::Duration::from_secs(15)) {
            break;
        }
        if delete_node(ctx, cluster, candidates, &node, deadline).await {
            info!(cluster = %cluster, instance = %instance, node = %node, "Node of a terminated instance deleted");
            drain::forget(ctx, cluster, &instance).await?;
            records.remove(&instance);
        }
    }
    Ok(records.values().filter(|r| r.left_node.is_some()).count())
}

/// Deletes one Node by name on the first control plane that runs the command.
pub async fn delete_node(
    ctx: &Context,
    cluster: &ClusterName,
    candidates: &[InstanceId],
    node: &str,
    deadline: &Deadline,
) -> bool {
    for cp in candidates {
        let request = CommandRequest {
            cluster: cluster.as_str(),
            instance: cp,
            document: &ctx.config.documents.cordon,
            parameters: vec![("NodeName", node.to_owned()), ("Delete", "true".to_owned())],
            comment: format!("joinkeeper: delete the Node of a terminated instance of {cluster}"),
        };
        match ctx.run_command(request, deadline).await {
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
    fn only_left_records_of_gone_instances_are_deleted() {
        let id = |s: &str| InstanceId::parse(s).expect("id");
        let rec = |left: Option<&str>| DrainRecord {
            command_id: if left.is_some() {
                String::new()
            } else {
                "c".into()
            },
            control_plane: None,
            started_at_ms: 0,
            left_node: left.map(str::to_owned),
            node: None,
        };
        let records: HashMap<InstanceId, DrainRecord> = [
            (id("i-00000001"), rec(Some("ip-10-0-0-1.ec2.internal"))),
            (id("i-00000002"), rec(Some("ip-10-0-0-2.ec2.internal"))),
            (id("i-00000003"), rec(None)),
        ]
        .into_iter()
        .collect();
        let still = id("i-00000002");
        let found = gone(&records, &|i| *i == still);
        assert_eq!(
            found,
            vec![(id("i-00000001"), "ip-10-0-0-1.ec2.internal".to_owned())],
            "a live instance's Node waits; a running drain is not a cleanup"
        );
    }
}
