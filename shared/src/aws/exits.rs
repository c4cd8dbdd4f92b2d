//! What the exits ask of EC2 and Auto Scaling: an instance's state and tags (which cluster and
//! role it claims, which group launched it), its group and lifecycle state, and marking it
//! unhealthy. Plain data out; no decisions here.

use std::collections::HashMap;

use super::autoscaling::AutoScaling;
use super::fleet::{filter, Fleet, CLUSTER_TAG, ROLE_TAG};
use super::AwsCallError;
use crate::names::{ClusterName, GroupName, InstanceId};

/// The tag Auto Scaling puts on the instances it launches.
pub const GROUP_TAG: &str = "aws:autoscaling:groupName";

/// One instance as EC2 describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ec2Standing {
    pub id: InstanceId,
    /// `pending`, `running`, `stopping`, `stopped`, `shutting-down`, `terminated`.
    pub state: String,
    pub cluster_tag: Option<String>,
    pub role_tag: Option<String>,
    pub group_tag: Option<String>,
    /// The private DNS name (lower case, a valid DNS name), which a Node without a providerID
    /// is named after.
    pub private_dns: Option<String>,
}

fn standing(i: &aws_sdk_ec2::types::Instance) -> Option<Ec2Standing> {
    let tag = |key: &str| {
        i.tags()
            .iter()
            .find(|t| t.key() == Some(key))
            .and_then(|t| t.value())
            .map(str::to_owned)
    };
    Some(Ec2Standing {
        id: InstanceId::parse(i.instance_id()?).ok()?,
        state: i
            .state()
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default(),
        cluster_tag: tag(CLUSTER_TAG),
        role_tag: tag(ROLE_TAG),
        group_tag: tag(GROUP_TAG),
        private_dns: i
            .private_dns_name()
            .map(str::to_ascii_lowercase)
            .filter(|d| crate::reconcile::node_status::dns_name_ok(d)),
    })
}

impl Fleet {
    /// `ids` as EC2 lists them, in any state (an id EC2 no longer lists is absent).
    pub async fn standings(&self, ids: &[InstanceId]) -> Result<Vec<Ec2Standing>, AwsCallError> {
        let mut found = Vec::new();
        for chunk in ids.chunks(200) {
            let values: Vec<&str> = chunk.iter().map(|i| i.as_str()).collect();
            let listed = self.describe(vec![filter("instance-id", &values)]).await?;
            found.extend(listed.iter().filter_map(standing));
        }
        Ok(found)
    }

    /// Every instance tagged for the cluster, in any state (terminated ones while EC2 lists them).
    pub async fn cluster_standings(
        &self,
        cluster: &ClusterName,
    ) -> Result<Vec<Ec2Standing>, AwsCallError> {
        let listed = self
            .describe(vec![filter(
                &format!("tag:{CLUSTER_TAG}"),
                &[cluster.as_str()],
            )])
            .await?;
        Ok(listed.iter().filter_map(standing).collect())
    }
}

impl AutoScaling {
    /// The group and lifecycle state of each of `ids` that is in a group or its warm pool
    /// (`DescribeAutoScalingInstances`, 50 ids a call); an instance in none is absent.
    pub async fn memberships(
        &self,
        ids: &[InstanceId],
    ) -> Result<HashMap<InstanceId, (GroupName, String)>, AwsCallError> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(50) {
            let out = self
                .client
                .describe_auto_scaling_instances()
                .set_instance_ids(Some(chunk.iter().map(|i| i.as_str().to_owned()).collect()))
                .max_records(50)
                .send()
                .await
                .map_err(|e| {
                    AwsCallError::new(
                        "autoscaling:DescribeAutoScalingInstances",
                        &e.into_service_error(),
                    )
                })?;
            for d in out.auto_scaling_instances() {
                let (Ok(id), Ok(group)) = (
                    InstanceId::parse(d.instance_id().unwrap_or_default()),
                    GroupName::parse(d.auto_scaling_group_name().unwrap_or_default()),
                ) else {
                    continue;
                };
                found.insert(
                    id,
                    (group, d.lifecycle_state().unwrap_or_default().to_owned()),
                );
            }
        }
        Ok(found)
    }

    /// Marks the instance unhealthy: its group replaces it, through its lifecycle hooks.
    pub async fn set_unhealthy(&self, instance: &InstanceId) -> Result<(), AwsCallError> {
        self.client
            .set_instance_health()
            .instance_id(instance.as_str())
            .health_status("Unhealthy")
            .should_respect_grace_period(false)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                AwsCallError::new("autoscaling:SetInstanceHealth", &e.into_service_error())
            })
    }
}
