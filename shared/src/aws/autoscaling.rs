//! Auto Scaling adapter: group tags, lifecycle states, hook settings, and completing actions.

use std::time::Duration;

use aws_sdk_autoscaling::types::Filter;

use super::fleet::CLUSTER_TAG;
use super::AwsCallError;
use crate::lifecycle::{HookResult, LifecycleAction, Transition};
use crate::names::{ClusterName, GroupName, HookName, InstanceId, NameError};

#[derive(Clone, Debug)]
pub struct AutoScaling {
    pub(super) client: aws_sdk_autoscaling::Client,
}

/// A group that carries the `joinkeeper:cluster` tag, with its instances' lifecycle states.
#[derive(Clone, Debug)]
pub struct ManagedGroup {
    pub name: GroupName,
    pub cluster: Result<ClusterName, NameError>,
    /// Tagged `joinkeeper:role=worker`: the only groups whose actions joinkeeper completes.
    pub is_worker_group: bool,
    pub has_warm_pool: bool,
    /// Instances in the group (not in its warm pool) and their lifecycle states.
    pub instances: Vec<(InstanceId, String)>,
}

/// The groups tagged `joinkeeper:cluster` and every value of that tag, valid or not.
#[derive(Clone, Debug, Default)]
pub struct TaggedGroups {
    pub groups: Vec<ManagedGroup>,
    pub cluster_tags: Vec<String>,
}

/// One lifecycle hook of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    pub name: HookName,
    pub transition: Transition,
    pub heartbeat_timeout: Duration,
}

/// How completing an action went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    Completed,
    /// No action was pending any more for this hook: another invocation completed it, it timed
    /// out, or the instance waits on another hook.
    AlreadyDone,
}

fn asg_error<E>(
    operation: &'static str,
) -> impl FnOnce(
    aws_sdk_autoscaling::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> AwsCallError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata
        + aws_smithy_runtime_api::client::result::CreateUnhandledError
        + std::error::Error
        + Send
        + Sync
        + 'static,
{
    move |e| AwsCallError::new(operation, &e.into_service_error())
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
            .map_err(asg_error("autoscaling:DescribeAutoScalingGroups"))?;
        Ok(out.auto_scaling_groups().first().and_then(to_managed))
    }

    /// The groups of `names` that exist, in as few calls as the API allows (50 names a call):
    /// one look-up serves a whole batch of events.
    pub async fn groups(&self, names: &[GroupName]) -> Result<Vec<ManagedGroup>, AwsCallError> {
        let mut found = Vec::new();
        for chunk in names.chunks(50) {
            let mut pages = self
                .client
                .describe_auto_scaling_groups()
                .set_auto_scaling_group_names(Some(
                    chunk.iter().map(|g| g.as_str().to_owned()).collect(),
                ))
                .max_records(100)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(asg_error("autoscaling:DescribeAutoScalingGroups"))?;
                found.extend(page.auto_scaling_groups().iter().filter_map(to_managed));
            }
        }
        Ok(found)
    }

    /// The joinkeeper tags of the groups of `names` ([`super::group_tags`]).
    pub async fn group_labels(
        &self,
        names: &[GroupName],
    ) -> Result<Vec<super::group_tags::GroupLabels>, AwsCallError> {
        super::group_tags::look_up(&self.client, names).await
    }

    /// Every group tagged `joinkeeper:cluster` with this value.
    pub async fn managed_groups(
        &self,
        cluster: &ClusterName,
    ) -> Result<Vec<ManagedGroup>, AwsCallError> {
        let filter = Filter::builder()
            .name(format!("tag:{CLUSTER_TAG}"))
            .values(cluster.as_str())
            .build();
        let mut groups = self.list(filter).await?.groups;
        groups.retain(|g| g.cluster.as_ref().is_ok_and(|gc| gc == cluster));
        Ok(groups)
    }

    /// Every group tagged `joinkeeper:cluster`, with the tag values as found, those of groups
    /// whose name or tag is not valid included: one listing serves cluster discovery and the
    /// reconcilers of a scheduled run.
    pub async fn tagged_groups(&self) -> Result<TaggedGroups, AwsCallError> {
        self.list(
            Filter::builder()
                .name("tag-key")
                .values(CLUSTER_TAG)
                .build(),
        )
        .await
    }

    async fn list(&self, filter: Filter) -> Result<TaggedGroups, AwsCallError> {
        let mut listing = TaggedGroups::default();
        let mut pages = self
            .client
            .describe_auto_scaling_groups()
            .filters(filter)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(asg_error("autoscaling:DescribeAutoScalingGroups"))?;
            for g in page.auto_scaling_groups() {
                let tag = g.tags().iter().find(|t| t.key() == Some(CLUSTER_TAG));
                if let Some(value) = tag.and_then(|t| t.value()) {
                    listing.cluster_tags.push(value.to_owned());
                }
                listing.groups.extend(to_managed(g));
            }
        }
        Ok(listing)
    }

    /// The instances of the group's warm pool and their lifecycle states (`Warmed:*`).
    pub async fn warm_pool(
        &self,
        group: &GroupName,
    ) -> Result<Vec<(InstanceId, String)>, AwsCallError> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_warm_pool()
                .auto_scaling_group_name(group.as_str())
                .set_next_token(token.take())
                .send()
                .await
                .map_err(asg_error("autoscaling:DescribeWarmPool"))?;
            found.extend(out.instances().iter().filter_map(|i| {
                Some((
                    InstanceId::parse(i.instance_id()?).ok()?,
                    i.lifecycle_state()?.as_str().to_owned(),
                ))
            }));
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(found),
            }
        }
    }

    /// The group's lifecycle hooks whose name starts with `prefix` (joinkeeper's own).
    pub async fn hooks(&self, group: &GroupName, prefix: &str) -> Result<Vec<Hook>, AwsCallError> {
        let out = self
            .client
            .describe_lifecycle_hooks()
            .auto_scaling_group_name(group.as_str())
            .send()
            .await
            .map_err(asg_error("autoscaling:DescribeLifecycleHooks"))?;
        Ok(out
            .lifecycle_hooks()
            .iter()
            .filter_map(|h| {
                let name = HookName::parse(h.lifecycle_hook_name()?).ok()?;
                if !name.as_str().starts_with(prefix) {
                    return None;
                }
                Some(Hook {
                    name,
                    transition: Transition::from_aws(h.lifecycle_transition()?)?,
                    heartbeat_timeout: Duration::from_secs(
                        h.heartbeat_timeout().unwrap_or(3600).max(30) as u64,
                    ),
                })
            })
            .collect())
    }

    /// Completes the action by instance id. An action that is no longer pending counts as done.
    pub async fn complete(
        &self,
        action: &LifecycleAction,
        result: HookResult,
    ) -> Result<Completion, AwsCallError> {
        let sent = self
            .client
            .complete_lifecycle_action()
            .auto_scaling_group_name(action.group.as_str())
            .lifecycle_hook_name(action.hook.as_str())
            .instance_id(action.instance.as_str())
            .lifecycle_action_result(result.as_str())
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
    let labels = super::group_tags::labels_of(
        name,
        g.tags()
            .iter()
            .filter_map(|t| Some((t.key()?, t.value().unwrap_or_default()))),
    );
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
        name: labels.name,
        cluster: labels.cluster,
        is_worker_group: labels.is_worker_group,
        has_warm_pool: g.warm_pool_configuration().is_some(),
        instances,
    })
}
