//! Fleet adapter: finds clusters by tag and the control-plane instances Run Command can reach.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use aws_sdk_ec2::types::Filter;
use aws_sdk_ssm::types::{InstanceInformationStringFilter, PingStatus};

use super::AwsCallError;
use crate::identity::TaggedControlPlane;
use crate::names::{ClusterName, InstanceId, NameError};

pub const CLUSTER_TAG: &str = "joinkeeper:cluster";
pub const ROLE_TAG: &str = "joinkeeper:role";
pub const CONTROL_PLANE_ROLE: &str = "control-plane";
pub const WORKER_ROLE: &str = "worker";

/// What the functions need to know about one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceFacts {
    pub id: InstanceId,
    pub launched: Option<time::OffsetDateTime>,
    pub private_dns: String,
    /// The primary private IPv4 address (a Node's InternalIP).
    pub private_ip: Option<String>,
}

impl InstanceFacts {
    /// What identifies its Node ([`crate::nodes::matching`]).
    pub fn host_keys(&self) -> crate::nodes::matching::HostKeys {
        crate::nodes::matching::HostKeys {
            id: self.id.clone(),
            private_dns: self.private_dns.to_ascii_lowercase(),
            private_ip: self.private_ip.clone(),
        }
    }
}

/// A live (not terminated) instance's facts; `None` for anything else.
fn facts(i: &aws_sdk_ec2::types::Instance) -> Option<InstanceFacts> {
    let alive = i
        .state()
        .and_then(|s| s.name())
        .is_none_or(|n| !matches!(n.as_str(), "terminated" | "shutting-down"));
    if !alive {
        return None;
    }
    Some(InstanceFacts {
        id: InstanceId::parse(i.instance_id()?).ok()?,
        launched: i
            .launch_time()
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t.secs()).ok()),
        private_dns: crate::names::printable(i.private_dns_name().unwrap_or_default(), 255)
            .trim_matches('"')
            .to_owned(),
        private_ip: i
            .private_ip_address()
            .filter(|ip| crate::nodes::ip_ok(ip))
            .map(str::to_owned),
    })
}

/// An instance's id, state and instance profile ARN, as EC2 describes them.
fn tagged_control_plane(i: &aws_sdk_ec2::types::Instance) -> Option<TaggedControlPlane> {
    Some(TaggedControlPlane {
        id: InstanceId::parse(i.instance_id()?).ok()?,
        state: i
            .state()
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default(),
        profile_arn: i
            .iam_instance_profile()
            .and_then(|p| p.arn())
            .map(str::to_owned),
    })
}

#[derive(Clone, Debug)]
pub struct Fleet {
    ec2: aws_sdk_ec2::Client,
    ssm: aws_sdk_ssm::Client,
}

/// Clusters found by tag, tag values rejected as cluster names, and the running instances tagged
/// as control planes seen while listing (genuine or not: see [`crate::identity`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterScan {
    pub clusters: BTreeSet<ClusterName>,
    pub rejected: Vec<NameError>,
    pub running_control_planes: BTreeMap<ClusterName, Vec<TaggedControlPlane>>,
}

impl ClusterScan {
    /// Records a tag value; the cluster it names, when it is a valid name.
    fn add(&mut self, value: &str) -> Option<ClusterName> {
        match ClusterName::parse(value) {
            Ok(name) => {
                self.clusters.insert(name.clone());
                Some(name)
            }
            Err(err) => {
                if !self.rejected.contains(&err) {
                    self.rejected.push(err);
                }
                None
            }
        }
    }
}

pub(super) fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.iter().map(|v| (*v).to_owned()).collect()))
        .build()
}

/// Orders the reachable control-plane instances: running ones whose agent is Online, sorted by
/// instance id, so every caller tries them in the same order and fails over the same way.
pub fn order_candidates(running: Vec<InstanceId>, online: &HashSet<String>) -> Vec<InstanceId> {
    let mut candidates: Vec<InstanceId> = running
        .into_iter()
        .filter(|id| online.contains(id.as_str()))
        .collect();
    candidates.sort();
    candidates.dedup();
    candidates
}

/// EC2 states of an instance that is still there (not shutting down or terminated).
const LIVE_STATES: &[&str] = &["pending", "running", "stopping", "stopped"];

impl Fleet {
    pub fn new(clients: &super::AwsClients) -> Self {
        Fleet {
            ec2: clients.ec2.clone(),
            ssm: clients.ssm.clone(),
        }
    }

    /// Every instance `DescribeInstances` lists with these filters, all pages.
    pub(super) async fn describe(
        &self,
        filters: Vec<Filter>,
    ) -> Result<Vec<aws_sdk_ec2::types::Instance>, AwsCallError> {
        let mut pages = self
            .ec2
            .describe_instances()
            .set_filters(Some(filters))
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page
                .map_err(|e| AwsCallError::new("ec2:DescribeInstances", &e.into_service_error()))?;
            found.extend(
                page.reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .cloned(),
            );
        }
        Ok(found)
    }

    /// Every cluster named by a `joinkeeper:cluster` tag on a live instance or, through
    /// `group_tags` (the values [`super::autoscaling::AutoScaling::tagged_groups`] found), on an
    /// Auto Scaling group; and each cluster's running control planes, from the same listing.
    pub async fn discover_clusters(
        &self,
        group_tags: &[String],
    ) -> Result<ClusterScan, AwsCallError> {
        let mut scan = ClusterScan::default();
        let listed = self
            .describe(vec![
                filter("tag-key", &[CLUSTER_TAG]),
                filter("instance-state-name", LIVE_STATES),
            ])
            .await?;
        for instance in &listed {
            let tag = |key: &str| {
                instance
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some(key))
                    .and_then(|t| t.value())
            };
            let Some(cluster) = tag(CLUSTER_TAG).and_then(|value| scan.add(value)) else {
                continue;
            };
            let running = instance
                .state()
                .and_then(|s| s.name())
                .is_some_and(|n| n.as_str() == "running");
            if running && tag(ROLE_TAG) == Some(CONTROL_PLANE_ROLE) {
                if let Some(tagged) = tagged_control_plane(instance) {
                    scan.running_control_planes
                        .entry(cluster)
                        .or_default()
                        .push(tagged);
                }
            }
        }
        for value in group_tags {
            let _ = scan.add(value);
        }
        Ok(scan)
    }

    /// The instances tagged as the cluster's control planes in one of `states` (EC2 state names),
    /// with their state and instance profile: tagged, not yet known to be genuine.
    pub async fn tagged_control_planes(
        &self,
        cluster: &ClusterName,
        states: &[&str],
    ) -> Result<Vec<TaggedControlPlane>, AwsCallError> {
        let listed = self
            .describe(vec![
                filter(&format!("tag:{CLUSTER_TAG}"), &[cluster.as_str()]),
                filter(&format!("tag:{ROLE_TAG}"), &[CONTROL_PLANE_ROLE]),
                filter("instance-state-name", states),
            ])
            .await?;
        Ok(listed.iter().filter_map(tagged_control_plane).collect())
    }

    /// Those of `running` (control planes listed moments ago) whose agent is Online, in
    /// [`order_candidates`] order.
    pub async fn reachable_among(
        &self,
        running: Vec<InstanceId>,
    ) -> Result<Vec<InstanceId>, AwsCallError> {
        if running.is_empty() {
            return Ok(Vec::new());
        }
        let online = self.online_instances(&running).await?;
        Ok(order_candidates(running, &online))
    }

    /// Facts about each of `ids` that still exists (not terminated).
    pub async fn instances(
        &self,
        ids: &[InstanceId],
    ) -> Result<HashMap<InstanceId, InstanceFacts>, AwsCallError> {
        let mut found = HashMap::new();
        // DescribeInstances takes at most 200 values per filter.
        for chunk in ids.chunks(200) {
            let values: Vec<&str> = chunk.iter().map(|i| i.as_str()).collect();
            for i in self.describe(vec![filter("instance-id", &values)]).await? {
                if let Some(f) = facts(&i) {
                    found.insert(f.id.clone(), f);
                }
            }
        }
        Ok(found)
    }

    /// Those of `ids` that EC2 lists as terminated (or shutting down) with the cluster's tag: a
    /// positive fact that they are gone (EC2 lists a terminated instance for about an hour).
    pub async fn terminated_of_cluster(
        &self,
        cluster: &ClusterName,
        ids: &[InstanceId],
    ) -> Result<HashSet<InstanceId>, AwsCallError> {
        let mut gone = HashSet::new();
        for chunk in ids.chunks(200) {
            let values: Vec<&str> = chunk.iter().map(|i| i.as_str()).collect();
            let listed = self
                .describe(vec![
                    filter("instance-id", &values),
                    filter(&format!("tag:{CLUSTER_TAG}"), &[cluster.as_str()]),
                    filter("instance-state-name", &["shutting-down", "terminated"]),
                ])
                .await?;
            gone.extend(
                listed
                    .iter()
                    .filter_map(|i| InstanceId::parse(i.instance_id()?).ok()),
            );
        }
        Ok(gone)
    }

    /// Live instances, whatever their tags, whose `filter` (`instance-id`,
    /// `private-ip-address`, `private-dns-name`) is one of `values`.
    pub async fn live_instances_by(
        &self,
        filter_name: &str,
        values: &[String],
    ) -> Result<Vec<InstanceFacts>, AwsCallError> {
        let mut found = Vec::new();
        for chunk in values.chunks(200) {
            let values: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let listed = self
                .describe(vec![
                    filter(filter_name, &values),
                    filter("instance-state-name", LIVE_STATES),
                ])
                .await?;
            found.extend(listed.iter().filter_map(facts));
        }
        Ok(found)
    }

    /// Every live instance tagged for the cluster (control planes and workers).
    pub async fn cluster_instances(
        &self,
        cluster: &ClusterName,
    ) -> Result<Vec<InstanceFacts>, AwsCallError> {
        let listed = self
            .describe(vec![
                filter(&format!("tag:{CLUSTER_TAG}"), &[cluster.as_str()]),
                filter("instance-state-name", LIVE_STATES),
            ])
            .await?;
        Ok(listed.iter().filter_map(facts).collect())
    }

    /// Which of `ids` have an SSM agent reporting Online.
    pub async fn online_instances(
        &self,
        ids: &[InstanceId],
    ) -> Result<HashSet<String>, AwsCallError> {
        let mut online = HashSet::new();
        // DescribeInstanceInformation takes at most 50 ids per filter.
        for chunk in ids.chunks(50) {
            let id_filter = InstanceInformationStringFilter::builder()
                .key("InstanceIds")
                .set_values(Some(
                    chunk.iter().map(|id| id.as_str().to_owned()).collect(),
                ))
                .build()
                .map_err(|e| AwsCallError {
                    operation: "ssm:DescribeInstanceInformation",
                    code: None,
                    message: e.to_string(),
                })?;
            let mut pages = self
                .ssm
                .describe_instance_information()
                .filters(id_filter)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| {
                    AwsCallError::new("ssm:DescribeInstanceInformation", &e.into_service_error())
                })?;
                for info in page.instance_information_list() {
                    if info.ping_status() == Some(&PingStatus::Online) {
                        if let Some(id) = info.instance_id() {
                            online.insert(id.to_owned());
                        }
                    }
                }
            }
        }
        Ok(online)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> InstanceId {
        InstanceId::parse(s).expect("valid id")
    }

    #[test]
    fn candidates_are_online_running_instances_in_id_order() {
        let running = vec![
            id("i-0000000c"),
            id("i-0000000a"),
            id("i-0000000b"),
            id("i-0000000a"),
        ];
        let online: HashSet<String> = ["i-0000000a", "i-0000000c", "i-0000000f"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(
            order_candidates(running, &online),
            vec![id("i-0000000a"), id("i-0000000c")]
        );
        assert!(order_candidates(vec![id("i-0000000b")], &online).is_empty());
    }

    #[test]
    fn scan_keeps_valid_names_and_reports_hostile_ones() {
        let mut scan = ClusterScan::default();
        for value in ["demo", "prod", "demo", "x;rm -rf /", "x;rm -rf /"] {
            scan.add(value);
        }
        assert_eq!(
            scan.clusters.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            vec!["demo", "prod"]
        );
        assert_eq!(scan.rejected.len(), 1);
    }
}
