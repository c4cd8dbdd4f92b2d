//! Exit records: `<prefix>/<cluster>/exits/<instance-id>`, one String parameter per leaving
//! worker, JSON. Written by an exit event's handler (the fact: door, deadline) and by the
//! reconcile pass (what was done: cordoned, drained, replaced; the Node's name), forgotten once the
//! instance's Node is deleted or given back. Kept outside `leases/` so the lease cleanup never
//! takes a record that waits for a long maintenance window or a Standby.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::aws::AwsCallError;
use crate::context::Context;
use crate::exits::Door;
use crate::names::{ClusterName, InstanceId};

/// One worker's exit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    pub door: Door,
    /// When the exit was first noticed (ms since the epoch).
    pub noticed_ms: i64,
    /// When the instance goes (Spot: the interruption; maintenance: the window's start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<i64>,
    #[serde(default)]
    pub cordoned: bool,
    #[serde(default)]
    pub drained: bool,
    /// Marked unhealthy in its group (maintenance with replacement).
    #[serde(default)]
    pub replaced: bool,
    /// The Node the cordon found: the one deleted after the instance is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl ExitRecord {
    pub fn new(door: Door, now_ms: i64, deadline_ms: Option<i64>) -> Self {
        ExitRecord {
            door,
            noticed_ms: now_ms,
            deadline_ms,
            cordoned: false,
            drained: false,
            replaced: false,
            node: None,
        }
    }
}

/// Pure: the record after a new notice, or `None` when the notice changes nothing (a duplicate,
/// a weaker door). A stronger door replaces the weaker one and keeps what was done; an earlier
/// deadline of the same door wins.
pub fn merge(
    existing: Option<&ExitRecord>,
    door: Door,
    deadline_ms: Option<i64>,
    now_ms: i64,
) -> Option<ExitRecord> {
    let Some(old) = existing else {
        return Some(ExitRecord::new(door, now_ms, deadline_ms));
    };
    let mut new = old.clone();
    if door > old.door {
        new.door = door;
        new.deadline_ms = deadline_ms;
        // A drain of a weaker door kept the Node and had another budget: drain again.
        new.drained = false;
    } else if door == old.door {
        new.deadline_ms = match (old.deadline_ms, deadline_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    (new != *old).then_some(new)
}

fn path(ctx: &Context, cluster: &ClusterName) -> String {
    format!("{}/{}/exits", ctx.config.parameter_prefix, cluster)
}

fn name(ctx: &Context, cluster: &ClusterName, instance: &InstanceId) -> String {
    format!("{}/{instance}", path(ctx, cluster))
}

/// Every exit record of the cluster (one `GetParametersByPath` walk). A record that does not
/// parse is skipped with a warning (it names no action anyone could take).
pub async fn load_all(
    ctx: &Context,
    cluster: &ClusterName,
) -> Result<HashMap<InstanceId, ExitRecord>, AwsCallError> {
    let prefix = format!("{}/", path(ctx, cluster));
    let mut found = HashMap::new();
    for p in ctx.parameters.list_path(&path(ctx, cluster)).await? {
        let Some(rest) = p.name.strip_prefix(&prefix) else {
            continue;
        };
        match (
            InstanceId::parse(rest),
            serde_json::from_str::<ExitRecord>(&p.value),
        ) {
            (Ok(i), Ok(r)) => {
                found.insert(i, r);
            }
            _ => {
                tracing::warn!(parameter = %crate::names::printable(&p.name, 120), "an exit record that does not parse is skipped")
            }
        }
    }
    Ok(found)
}

/// Reads one instance's record.
pub async fn load(
    ctx: &Context,
    cluster: &ClusterName,
    instance: &InstanceId,
) -> Result<Option<ExitRecord>, AwsCallError> {
    Ok(ctx
        .parameters
        .get(&name(ctx, cluster, instance), false)
        .await?
        .and_then(|(v, _)| serde_json::from_str(&v).ok()))
}

/// Writes the record (idempotent: the same record written twice is one record).
pub async fn write(
    ctx: &Context,
    cluster: &ClusterName,
    instance: &InstanceId,
    record: &ExitRecord,
) -> Result<(), AwsCallError> {
    let value = serde_json::to_string(record).unwrap_or_default();
    ctx.parameters
        .overwrite(&name(ctx, cluster, instance), &value)
        .await
}

/// Forgets the record (a record already gone counts as forgotten).
pub async fn forget(
    ctx: &Context,
    cluster: &ClusterName,
    instance: &InstanceId,
) -> Result<(), AwsCallError> {
    ctx.parameters.delete(&name(ctx, cluster, instance)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_merges_into_what_is_known() {
        let rebalance = ExitRecord {
            cordoned: true,
            drained: true,
            node: Some("ip-10-0-0-1.ec2.internal".into()),
            ..ExitRecord::new(Door::Rebalance, 1_000, None)
        };
        assert_eq!(
            merge(None, Door::Spot, Some(5), 9),
            Some(ExitRecord::new(Door::Spot, 9, Some(5)))
        );
        let spot = merge(Some(&rebalance), Door::Spot, Some(121_000), 2_000).expect("stronger");
        assert_eq!(spot.door, Door::Spot);
        assert!(
            spot.cordoned && !spot.drained,
            "the cordon stands, the drain is redone"
        );
        assert_eq!(spot.node, rebalance.node);
        assert_eq!(spot.noticed_ms, 1_000, "first noticed is kept");
        assert_eq!(
            merge(Some(&spot), Door::Spot, Some(121_000), 3_000),
            None,
            "a duplicate changes nothing"
        );
        assert_eq!(
            merge(Some(&spot), Door::Rebalance, None, 3_000),
            None,
            "a weaker notice after a stronger one changes nothing"
        );
        assert_eq!(
            merge(Some(&spot), Door::Spot, Some(100_000), 3_000).and_then(|r| r.deadline_ms),
            Some(100_000),
            "the earlier deadline wins"
        );
    }

    #[test]
    fn the_json_is_stable() {
        let r = ExitRecord::new(Door::Maintenance, 1, Some(2));
        let json = serde_json::to_string(&r).expect("json");
        assert_eq!(
            json,
            r#"{"door":"maintenance","noticed_ms":1,"deadline_ms":2,"cordoned":false,"drained":false,"replaced":false}"#
        );
        assert!(serde_json::from_str::<ExitRecord>(r#"{"door":"x","noticed_ms":1}"#).is_err());
    }
}
