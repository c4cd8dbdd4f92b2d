//! Drains that outlive an invocation: the reconciler starts the drain document on a control
//! plane, records the command in `<prefix>/<cluster>/leases/drain-<instance>` (create-only, so
//! one drain per instance), and follows it by command id on later passes, in this invocation or
//! a later one, until it ends or its timeout passes. Only the holder of the cluster's reconcile
//! lease touches these records.

use std::collections::HashMap;
use std::time::Duration;

use tracing::warn;

use crate::aws::run_command::{CommandRequest, Progress};
use crate::aws::AwsCallError;
use crate::context::Context;
use crate::lease::{now_ms, LeaseValue};
use crate::names::{ClusterName, InstanceId};
use crate::reconcile::decide::DrainStatus;
use crate::reconcile::node_status::dns_name_ok;

/// A drain record. Its life: *intended* (created before the command is sent, no command id),
/// *sent* (command id and control plane written in), then forgotten before the action is
/// completed — or, when the drain did not delete the Node of an instance on its way to
/// termination, *left* (the Node's name), until that Node is deleted once the instance is gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainRecord {
    /// Empty while the drain is only intended.
    pub command_id: String,
    pub control_plane: Option<InstanceId>,
    pub started_at_ms: i64,
    /// Set once the action is completed with its Node still in place.
    pub left_node: Option<String>,
    /// The Node the instance owns, as matched when the drain was first intended.
    pub node: Option<String>,
    /// *Left* records: the pods that kept the drain from ending clean (`ns/pod (why)`).
    pub blocked: Vec<String>,
}

impl DrainRecord {
    /// A drain command is (or was) running for the current wait.
    pub fn in_flight(&self) -> bool {
        !self.command_id.is_empty() && self.left_node.is_none()
    }
}

pub mod cordon;
mod output;
mod placement;

pub use output::{parse_drain_output, DrainOutput};
pub use placement::{
    cluster_has_room, in_flight_per_control_plane, pick_control_planes, DRAINS_PER_CONTROL_PLANE,
};

const NAME_PREFIX: &str = "drain-";

/// Every drain record of the cluster (one `GetParametersByPath` walk).
pub async fn load_all(
    ctx: &Context,
    cluster: &ClusterName,
) -> Result<HashMap<InstanceId, DrainRecord>, AwsCallError> {
    let path = ctx.config.lease_path(cluster);
    let mut found = HashMap::new();
    for p in ctx.parameters.list_path(&path).await? {
        let Some(rest) = p.name.strip_prefix(&format!("{path}/{NAME_PREFIX}")) else {
            continue;
        };
        let (Ok(instance), Ok(v)) = (
            InstanceId::parse(rest),
            serde_json::from_str::<LeaseValue>(&p.value),
        ) else {
            continue;
        };
        found.insert(instance, to_record(&v));
    }
    Ok(found)
}

fn to_record(v: &LeaseValue) -> DrainRecord {
    DrainRecord {
        command_id: v.command_id.clone(),
        control_plane: InstanceId::parse(&v.instance_id).ok(),
        started_at_ms: v.started_at_ms,
        left_node: (!v.left_node.is_empty()).then(|| v.left_node.clone()),
        node: (!v.node.is_empty()).then(|| v.node.clone()),
        blocked: v.blocked_pods.clone(),
    }
}

fn to_value(record: &DrainRecord, request_id: &str, expires_at_ms: i64) -> LeaseValue {
    LeaseValue {
        holder: request_id.to_owned(),
        request_id: request_id.to_owned(),
        expires_at_ms,
        started_at_ms: record.started_at_ms,
        command_id: record.command_id.clone(),
        instance_id: record
            .control_plane
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        left_node: record.left_node.clone().unwrap_or_default(),
        node: record.node.clone().unwrap_or_default(),
        blocked_pods: record.blocked.clone(),
        ..Default::default()
    }
}

fn json(v: &LeaseValue) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn record_name(ctx: &Context, cluster: &ClusterName, instance: &InstanceId) -> String {
    ctx.config
        .lease_parameter(cluster, &format!("{NAME_PREFIX}{instance}"))
}

/// What [`start`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Started {
    /// The command was sent; the record names it.
    Sent(DrainRecord),
    /// Every control plane is busy with other drains: nothing written, try again next pass.
    Queued,
    /// No control plane took it: the record says *intended* (never finished), next pass resends.
    NotSent(DrainRecord),
}

/// Starts the drain of `instance`: writes the intent (create-only, keeping the first intent's
/// time when one exists), sends the drain document to the least busy control plane that takes
/// it, then writes the command id in. `previous`: the record this run holds for the instance
/// (intended, or undelivered on `previous.control_plane`). `node`: the Node the instance owns
/// ([`crate::nodes::matching`]), kept in the record for a later run that sends the drain again
/// without asking; `None` on both lets the script find it, refusing when two Nodes claim the
/// instance.
pub async fn start(
    ctx: &Context,
    cluster: &ClusterName,
    target: (&InstanceId, Option<&str>),
    candidates: &[InstanceId],
    in_flight: &HashMap<InstanceId, usize>,
    previous: Option<&DrainRecord>,
    request_id: &str,
) -> Result<Started, AwsCallError> {
    let budget = Budget {
        timeout: ctx.config.drain_timeout,
        keep_node: false,
    };
    start_with(
        ctx, cluster, target, candidates, in_flight, previous, request_id, budget,
    )
    .await
}

/// How a drain started by an exit without a hook runs ([`crate::exits`]): its own timeout (a
/// Spot drain fits the two minutes), and whether the Node stays (an instance that may come back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub timeout: Duration,
    pub keep_node: bool,
}

/// [`start`] with a [`Budget`].
#[allow(clippy::too_many_arguments)]
pub async fn start_with(
    ctx: &Context,
    cluster: &ClusterName,
    (instance, node): (&InstanceId, Option<&str>),
    candidates: &[InstanceId],
    in_flight: &HashMap<InstanceId, usize>,
    previous: Option<&DrainRecord>,
    request_id: &str,
    budget: Budget,
) -> Result<Started, AwsCallError> {
    let avoid = previous.and_then(|p| p.control_plane.as_ref());
    let order = pick_control_planes(candidates, in_flight, avoid);
    if order.is_empty() {
        return Ok(Started::Queued);
    }
    let name = record_name(ctx, cluster, instance);
    let now = now_ms();
    // A retry keeps the first intent's time, so a drain that never gets sent is given up in time.
    let started_at_ms = previous
        .filter(|p| p.left_node.is_none())
        .map_or(now, |p| p.started_at_ms);
    // The Node matched by this run, else the one the first intent recorded.
    let node = node
        .map(str::to_owned)
        .or_else(|| previous.and_then(|p| p.node.clone()))
        .filter(|n| dns_name_ok(n));
    let mut record = DrainRecord {
        command_id: String::new(),
        control_plane: None,
        started_at_ms,
        left_node: None,
        node: node.clone(),
        blocked: Vec::new(),
    };
    let expires =
        started_at_ms + (budget.timeout + ctx.config.command_deadline * 2).as_millis() as i64;
    if previous.is_some() {
        ctx.parameters
            .overwrite(&name, &json(&to_value(&record, request_id, expires)))
            .await?;
    } else if !ctx
        .parameters
        .create_only(&name, &json(&to_value(&record, request_id, expires)))
        .await?
    {
        // A record this run did not know (a lost answer to our own create, or a record left by
        // an earlier wait of this instance that was not forgotten): this wait's intent replaces
        // it. Only the reconcile lease's holder writes drain records.
        ctx.parameters
            .overwrite(&name, &json(&to_value(&record, request_id, expires)))
            .await?;
    }
    for cp in &order {
        let request = CommandRequest {
            cluster: cluster.as_str(),
            instance: cp,
            document: &ctx.config.documents.drain,
            parameters: [
                ("InstanceId", instance.to_string()),
                ("Node", node.clone().unwrap_or_else(|| "-".to_owned())),
                (
                    "DrainTimeoutSeconds",
                    budget.timeout.as_secs().max(1).to_string(),
                ),
            ]
            .into_iter()
            .chain(budget.keep_node.then(|| ("KeepNode", "true".to_owned())))
            .collect(),
            comment: format!("joinkeeper: drain {instance}"),
        };
        match ctx.send_command(&request).await {
            Ok(command_id) => {
                record.command_id = command_id;
                record.control_plane = Some(cp.clone());
                ctx.parameters
                    .overwrite(&name, &json(&to_value(&record, request_id, expires)))
                    .await?;
                return Ok(Started::Sent(record));
            }
            Err(err) => {
                warn!(control_plane = %cp, error = %err, "could not send the drain command")
            }
        }
    }
    Ok(Started::NotSent(record))
}

/// How long since the drain was first intended.
pub fn running_for(record: &DrainRecord) -> Duration {
    Duration::from_millis((now_ms() - record.started_at_ms).max(0) as u64)
}

/// Where a recorded drain stands. A record without a command id never ran (*intended*); a
/// command the agent never received never ran either (*undelivered*): neither is ever read as
/// finished. A record *left* by a completed action is no drain of the current wait.
pub async fn status(
    ctx: &Context,
    record: &DrainRecord,
) -> (DrainStatus, Vec<String>, Option<String>) {
    let for_ = running_for(record);
    if record.left_node.is_some() {
        return (DrainStatus::NotStarted, Vec::new(), None);
    }
    let Some(cp) = record
        .control_plane
        .as_ref()
        .filter(|_| !record.command_id.is_empty())
    else {
        return (DrainStatus::Intended { for_ }, Vec::new(), None);
    };
    match ctx.runner.poll_once(cp, &record.command_id).await {
        Ok((Progress::Waiting, _)) => (DrainStatus::Running { for_ }, Vec::new(), None),
        Ok((Progress::Undeliverable, _)) => (DrainStatus::Undelivered { for_ }, Vec::new(), None),
        Ok((Progress::Succeeded | Progress::Failed(_), stdout)) => {
            let out = parse_drain_output(&stdout);
            (
                DrainStatus::Finished { result: out.result },
                out.left,
                out.node,
            )
        }
        Ok((other, _)) => (
            DrainStatus::Finished {
                result: format!("failed ({other:?})").to_lowercase(),
            },
            Vec::new(),
            None,
        ),
        Err(err) => {
            warn!(error = %err, "drain status unavailable");
            (DrainStatus::Running { for_ }, Vec::new(), None)
        }
    }
}

/// Cancels a drain that ran past its timeout.
pub async fn cancel(ctx: &Context, record: &DrainRecord) {
    if let Some(cp) = record
        .control_plane
        .as_ref()
        .filter(|_| !record.command_id.is_empty())
    {
        ctx.runner.cancel(cp, &record.command_id).await;
    }
}

/// Forgets the drain. Called *before* the action is completed: if the completion is then lost,
/// the next pass finds no record and asks the control plane again (a drained Node is gone), so no
/// record of this wait can ever answer for a later one.
pub async fn forget(
    ctx: &Context,
    cluster: &ClusterName,
    instance: &InstanceId,
) -> Result<(), AwsCallError> {
    ctx.parameters
        .delete(&record_name(ctx, cluster, instance))
        .await
}

/// Marks the record *left*: the action is about to be completed with `node` still in place
/// (kept from clean by the `blocked` pods, which `joinkeeper status` shows); it is deleted once
/// the instance is gone ([`crate::reconcile::cleanup`]).
pub async fn leave(
    ctx: &Context,
    cluster: &ClusterName,
    instance: &InstanceId,
    (node, blocked): (&str, &[String]),
    request_id: &str,
) -> Result<DrainRecord, AwsCallError> {
    let record = DrainRecord {
        command_id: String::new(),
        control_plane: None,
        started_at_ms: now_ms(),
        left_node: Some(node.to_owned()),
        node: None,
        blocked: blocked.to_vec(),
    };
    // Kept (by the lease cleanup) well past the instance's termination.
    let expires = record.started_at_ms + 3_600_000;
    ctx.parameters
        .overwrite(
            &record_name(ctx, cluster, instance),
            &json(&to_value(&record, request_id, expires)),
        )
        .await?;
    Ok(record)
}
