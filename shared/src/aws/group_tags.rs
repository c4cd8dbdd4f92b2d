//! What a group's own tags make it to joinkeeper, looked up by the tags alone
//! (`autoscaling:DescribeTags`): a batch of events needs only the tags of its groups, not their
//! instance lists, which for a group of thousands of instances is the bulk of
//! `DescribeAutoScalingGroups`' answer.

use std::collections::BTreeMap;

use aws_sdk_autoscaling::types::Filter;

use super::fleet::{CLUSTER_TAG, ROLE_TAG, WORKER_ROLE};
use super::AwsCallError;
use crate::names::{ClusterName, GroupName, NameError};

/// A group's joinkeeper tags.
#[derive(Clone, Debug)]
pub struct GroupLabels {
    pub name: GroupName,
    /// An error when the `joinkeeper:cluster` tag is absent or not a valid name.
    pub cluster: Result<ClusterName, NameError>,
    /// Tagged `joinkeeper:role=worker`: the only groups whose actions joinkeeper completes.
    pub is_worker_group: bool,
}

/// Pure: the labels a group's tags (key, value) give it.
pub fn labels_of<'a>(
    name: GroupName,
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> GroupLabels {
    let mut cluster = None;
    let mut is_worker_group = false;
    for (key, value) in tags {
        match key {
            CLUSTER_TAG => cluster = Some(value),
            ROLE_TAG => is_worker_group |= value == WORKER_ROLE,
            _ => {}
        }
    }
    GroupLabels {
        name,
        cluster: match cluster {
            Some(v) => ClusterName::parse(v),
            None => Err(NameError::Cluster("(no joinkeeper:cluster tag)".into())),
        },
        is_worker_group,
    }
}

/// Group names per `DescribeTags` call: AWS takes up to 1,000 values per filter type; a batch
/// names far fewer.
const NAMES_PER_CALL: usize = 100;

/// The labels of the groups of `names` that carry a joinkeeper tag (a group that does not exist,
/// or has neither tag, is absent from the answer).
pub async fn look_up(
    client: &aws_sdk_autoscaling::Client,
    names: &[GroupName],
) -> Result<Vec<GroupLabels>, AwsCallError> {
    let mut tags: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for chunk in names.chunks(NAMES_PER_CALL) {
        let groups = Filter::builder()
            .name("auto-scaling-group")
            .set_values(Some(chunk.iter().map(|g| g.as_str().to_owned()).collect()))
            .build();
        let keys = Filter::builder()
            .name("key")
            .values(CLUSTER_TAG)
            .values(ROLE_TAG)
            .build();
        let mut pages = client
            .describe_tags()
            .filters(groups)
            .filters(keys)
            .max_records(100)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                AwsCallError::new("autoscaling:DescribeTags", &e.into_service_error())
            })?;
            for t in page.tags() {
                if let (Some(group), Some(key)) = (t.resource_id(), t.key()) {
                    tags.entry(group.to_owned())
                        .or_default()
                        .push((key.to_owned(), t.value().unwrap_or_default().to_owned()));
                }
            }
        }
    }
    Ok(tags
        .iter()
        .filter_map(|(group, tags)| {
            let name = GroupName::parse(group).ok()?;
            Some(labels_of(
                name,
                tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            ))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> GroupName {
        GroupName::parse("demo-workers").expect("group")
    }

    #[test]
    fn a_worker_group_of_a_cluster_needs_both_tags() {
        let l = labels_of(name(), [(CLUSTER_TAG, "demo"), (ROLE_TAG, WORKER_ROLE)]);
        assert_eq!(l.cluster.ok(), ClusterName::parse("demo").ok());
        assert!(l.is_worker_group);
        let l = labels_of(name(), [(CLUSTER_TAG, "demo"), (ROLE_TAG, "control-plane")]);
        assert!(!l.is_worker_group);
        let l = labels_of(name(), [(ROLE_TAG, WORKER_ROLE)]);
        assert!(l.cluster.is_err());
    }

    #[test]
    fn a_hostile_cluster_tag_is_an_error_not_a_name() {
        let l = labels_of(
            name(),
            [(CLUSTER_TAG, "demo; rm -rf /"), (ROLE_TAG, WORKER_ROLE)],
        );
        assert!(l.cluster.is_err());
    }
}
