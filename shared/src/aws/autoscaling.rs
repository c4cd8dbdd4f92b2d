//! Auto Scaling adapter: group tags, lifecycle states, hook settings, and completing actions.

use std::time::Duration;

use aws_sdk_autoscaling::types::Filter;

use super::fleet::CLUSTER_TAG;
use super::AwsCallError;
use crate::lifecycle::{LifecycleAction, Transition, LAUNCHING, TERMINATING};
use crate::names::{ClusterName, GroupName, HookName, InstanceId, NameError};

#[derive(Clone, Debug)]
pub struct AutoScaling {
    client: aws_sdk_autoscaling::Client,
}

/// A group that carries the `joinkeeper:cluster` tag, with its instances' lifecycle states.
#[derive(Clone, Debug)]
pub struct ManagedGroup {
    pub name: GroupName,
    pub cluster: Result<ClusterName, NameError>,
    pub instances: Vec<(InstanceId, String)>,
}

/// How completing an action went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    Completed,
    /// No action was pending any more: another invocation completed it, or it timed out.
    AlreadyDone,
}

impl AutoScaling {
    pub fn new(client: aws_sdk_autoscaling::Client) -> Self {
        AutoScaling { client }
    }

    /// The group, if it exists; `cluster` is an error when the tag is absent or not a valid name.
    pub async fn group(&self, group: &GroupName) -> Result<Option<ManagedGroup>, AwsCallError> {
        let out = self
            .client
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(group.as_str())
            .send()
            .await
            .map_err(|e| {
                AwsCallError::new(
                    "autoscaling:DescribeAutoScalingGroups",
                    &e.into_service_error(),
                )
            })?;
        Ok(out.auto_scaling_groups().first().and_then(to_managed))
    }

    /// Every group tagged `joinkeeper:cluster`.
    pub async fn managed_groups(&self) -> Result<Vec<ManagedGroup>, AwsCallError> {
        let mut groups = Vec::new();
        let mut pages = self
            .client
            .describe_auto_scaling_groups()
            .filters(
                Filter::builder()
                    .name("tag-key")
                    .values(CLUSTER_TAG)
                    .build(),
            )
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                AwsCallError::new(
                    "autoscaling:DescribeAutoScalingGroups",
                    &e.into_service_error(),
                )
            })?;
            groups.extend(page.auto_scaling_groups().iter().filter_map(to_managed));
        }
        Ok(groups)
    }

    /// The instance's lifecycle state in its group (`Pending:Wait`, `InService`, …), or `None`
    /// when the group no longer knows it.
    pub async fn lifecycle_state(
        &self,
        instance: &InstanceId,
    ) -> Result<Option<String>, AwsCallError> {
        let out = self
            .client
            .describe_auto_scaling_instances()
            .instance_ids(instance.as_str())
            .send()
            .await
            .map_err(|e| {
                AwsCallError::new(
                    "autoscaling:DescribeAutoScalingInstances",
                    &e.into_service_error(),
                )
            })?;
        Ok(out
            .auto_scaling_instances()
            .first()
            .and_then(|i| i.lifecycle_state())
            .map(str::to_owned))
    }

    /// The hook's heartbeat timeout, and the name of the group's hook for a transition.
    pub async fn hook(
        &self,
        group: &GroupName,
        transition: Transition,
    ) -> Result<Option<(HookName, Duration)>, AwsCallError> {
        let out = self
            .client
            .describe_lifecycle_hooks()
            .auto_scaling_group_name(group.as_str())
            .send()
            .await
            .map_err(|e| {
                AwsCallError::new(
                    "autoscaling:DescribeLifecycleHooks",
                    &e.into_service_error(),
                )
            })?;
        let want = match transition {
            Transition::Launching => LAUNCHING,
            Transition::Terminating => TERMINATING,
        };
        Ok(out
            .lifecycle_hooks()
            .iter()
            .find(|h| h.lifecycle_transition() == Some(want))
            .and_then(|h| {
                let name = HookName::parse(h.lifecycle_hook_name()?).ok()?;
                let timeout =
                    Duration::from_secs(h.heartbeat_timeout().unwrap_or(3600).max(30) as u64);
                Some((name, timeout))
            }))
    }

    /// Completes the action by instance id. An action that is no longer pending counts as done.
    pub async fn complete(
        &self,
        action: &LifecycleAction,
        result: &str,
    ) -> Result<Completion, AwsCallError> {
        let sent = self
            .client
            .complete_lifecycle_action()
            .auto_scaling_group_name(action.group.as_str())
            .lifecycle_hook_name(action.hook.as_str())
            .instance_id(action.instance.as_str())
            .lifecycle_action_result(result)
            .send()
            .await;
        settle(
            "autoscaling:CompleteLifecycleAction",
            sent.map_err(|e| e.into_service_error()),
        )
    }

    /// Extends the hook's timeout. An action no longer pending counts as done.
    pub async fn heartbeat(&self, action: &LifecycleAction) -> Result<Completion, AwsCallError> {
        let sent = self
            .client
            .record_lifecycle_action_heartbeat()
            .auto_scaling_group_name(action.group.as_str())
            .lifecycle_hook_name(action.hook.as_str())
            .instance_id(action.instance.as_str())
            .send()
            .await;
        settle(
            "autoscaling:RecordLifecycleActionHeartbeat",
            sent.map_err(|e| e.into_service_error()),
        )
    }
}

/// Success, or an action no longer pending (counted as done), or the error.
fn settle<O, E>(operation: &'static str, sent: Result<O, E>) -> Result<Completion, AwsCallError>
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    match sent {
        Ok(_) => Ok(Completion::Completed),
        Err(e) => {
            let err = AwsCallError::new(operation, &e);
            if no_active_action(&err) {
                Ok(Completion::AlreadyDone)
            } else {
                Err(err)
            }
        }
    }
}

/// AWS answers `ValidationError: No active Lifecycle Action found with instance ID …` when the
/// action was already completed or has timed out.
fn no_active_action(err: &AwsCallError) -> bool {
    err.code.as_deref() == Some("ValidationError")
        && err.message.contains("No active Lifecycle Action")
}

/// A group whose name AWS returned but that fails our own pattern is left out.
fn to_managed(g: &aws_sdk_autoscaling::types::AutoScalingGroup) -> Option<ManagedGroup> {
    let name = GroupName::parse(g.auto_scaling_group_name()?).ok()?;
    let tag = g
        .tags()
        .iter()
        .find(|t| t.key() == Some(CLUSTER_TAG))
        .and_then(|t| t.value());
    let cluster = match tag {
        Some(v) => ClusterName::parse(v),
        None => Err(NameError::Cluster("(no joinkeeper:cluster tag)".into())),
    };
    let instances = g
        .instances()
        .iter()
        .filter_map(|i| {
            Some((
                InstanceId::parse(i.instance_id()?).ok()?,
                i.lifecycle_state()?.as_str().to_owned(),
            ))
        })
        .collect();
    Some(ManagedGroup {
        name,
        cluster,
        instances,
    })
}
