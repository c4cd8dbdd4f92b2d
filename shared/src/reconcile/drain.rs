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

/// A drain in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainRecord {
    pub command_id: String,
    pub control_plane: Option<InstanceId>,
    pub started_at_ms: i64,
}

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
    }
}

fn record_name(ctx: &Context, cluster: &ClusterName, instance: &InstanceId) -> String {
    ctx.config
        .lease_parameter(cluster, &format!("{NAME_PREFIX}{instance}"))
}

/// Starts the drain of `instance` on the first control plane that takes the command. Returns the
/// record (an existing one when another pass already started it).
pub async fn start(
    ctx: &Context,
    cluster: &ClusterName,
    instance: &InstanceId,
    candidates: &[InstanceId],
    request_id: &str,
) -> Result<DrainRecord, AwsCallError> {
    let name = record_name(ctx, cluster, instance);
    let started = now_ms();
    let mut value = LeaseValue {
        holder: request_id.to_owned(),
        request_id: request_id.to_owned(),
        expires_at_ms: started
            + (ctx.config.drain_timeout + ctx.config.command_deadline * 2).as_millis() as i64,
        started_at_ms: started,
        ..Default::default()
    };
    let json = |v: &LeaseValue| serde_json::to_string(v).unwrap_or_default();
    if !ctx.parameters.create_only(&name, &json(&value)).await? {
        if let Some((text, _)) = ctx.parameters.get(&name, false).await? {
            if let Ok(existing) = serde_json::from_str::<LeaseValue>(&text) {
                return Ok(to_record(&existing));
            }
        }
        ctx.parameters.overwrite(&name, &json(&value)).await?;
    }
    for cp in candidates {
        let request = CommandRequest {
            cluster: cluster.as_str(),
            instance: cp,
            document: &ctx.config.documents.drain,
            parameters: vec![
                ("InstanceId", instance.to_string()),
                (
                    "DrainTimeoutSeconds",
                    ctx.config.drain_timeout.as_secs().to_string(),
                ),
            ],
            comment: format!("joinkeeper: drain {instance}"),
        };
        match ctx.runner.send(&request).await {
            Ok(command_id) => {
                value.command_id = command_id;
                value.instance_id = cp.to_string();
                ctx.parameters.overwrite(&name, &json(&value)).await?;
                return Ok(to_record(&value));
            }
            Err(err) => {
                warn!(control_plane = %cp, error = %err, "could not send the drain command")
            }
        }
    }
    Ok(to_record(&value))
}

/// How long since the drain started.
pub fn running_for(record: &DrainRecord) -> Duration {
    Duration::from_millis((now_ms() - record.started_at_ms).max(0) as u64)
}

/// Where a recorded drain stands. A record without a command (no control plane took it) is
/// finished as failed, so the action completes rather than waiting on nothing.
pub async fn status(ctx: &Context, record: &DrainRecord) -> (DrainStatus, Vec<String>) {
    let running_for = running_for(record);
    let Some(cp) = &record.control_plane else {
        return (
            DrainStatus::Finished {
                result: "failed (no control plane took the drain command)".into(),
            },
            Vec::new(),
        );
    };
    match ctx.runner.poll_once(cp, &record.command_id).await {
        Ok((Progress::Waiting, _)) => (DrainStatus::Running { for_: running_for }, Vec::new()),
        Ok((Progress::Succeeded | Progress::Failed(_), stdout)) => {
            let (result, left) = parse_drain_output(&stdout);
            (DrainStatus::Finished { result }, left)
        }
        Ok((other, _)) => (
            DrainStatus::Finished {
                result: format!("failed ({other:?})").to_lowercase(),
            },
            Vec::new(),
        ),
        Err(err) => {
            warn!(error = %err, "drain status unavailable");
            (DrainStatus::Running { for_: running_for }, Vec::new())
        }
    }
}

/// Cancels a drain that ran past its timeout.
pub async fn cancel(ctx: &Context, record: &DrainRecord) {
    if let Some(cp) = &record.control_plane {
        ctx.runner.cancel(cp, &record.command_id).await;
    }
}

/// Forgets the drain once its action is completed.
pub async fn forget(ctx: &Context, cluster: &ClusterName, instance: &InstanceId) {
    if let Err(err) = ctx
        .parameters
        .delete(&record_name(ctx, cluster, instance))
        .await
    {
        warn!(error = %err, "could not remove the drain record; the cleanup removes it later");
    }
}

/// The drain document's result: its last `drain …` line and the `left <ns>/<pod>` lines.
pub fn parse_drain_output(output: &str) -> (String, Vec<String>) {
    let mut result = "unknown".to_owned();
    let mut left = Vec::new();
    for line in output.lines() {
        if let Some(pod) = line.strip_prefix("left ") {
            if left.len() < 50 {
                left.push(
                    crate::names::printable(pod.trim(), 120)
                        .trim_matches('"')
                        .to_owned(),
                );
            }
        } else if line.starts_with("drain ") {
            if let Some(r) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("result="))
            {
                result = r
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .take(20)
                    .collect();
            }
        }
    }
    (result, left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_output() {
        let out = "cordoned\nleft default/web-1\nleft kube-system/x\ndrain i-0000000a node=ip-1 result=timeout\n";
        let (result, left) = parse_drain_output(out);
        assert_eq!(result, "timeout");
        assert_eq!(left, vec!["default/web-1", "kube-system/x"]);
        assert_eq!(parse_drain_output("garbage").0, "unknown");
    }
}
