//! `JOINKEEPER_CONTROL_PLANE_PROFILES`: the instance profiles that make an instance a control
//! plane of a cluster whose control planes the cluster stack did not make (an existing kubeadm
//! or kURL cluster). Only the deployer sets it (the account stack's configuration), never a tag:
//! see [`crate::identity`].

use std::collections::BTreeMap;

use super::{ConfigError, CONTROL_PLANE_PROFILES};
use crate::names::ClusterName;

/// Profile ARNs by cluster; a cluster not listed has the default profile
/// ([`crate::identity::default_profile_name`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControlPlaneProfiles(BTreeMap<ClusterName, Vec<String>>);

impl ControlPlaneProfiles {
    /// `none`, or comma-separated `<cluster>=<instance profile ARN>` pairs (a cluster may appear
    /// more than once, for several profiles).
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let fail = |reason: &str| ConfigError {
            variable: CONTROL_PLANE_PROFILES.variable,
            value: crate::names::printable(raw, 80),
            reason: reason.to_owned(),
        };
        let mut map: BTreeMap<ClusterName, Vec<String>> = BTreeMap::new();
        if raw.trim() == "none" {
            return Ok(ControlPlaneProfiles(map));
        }
        for pair in raw.split(',').map(str::trim) {
            let (cluster, arn) = pair
                .split_once('=')
                .ok_or_else(|| fail("expected none or <cluster>=<instance profile ARN>,..."))?;
            let cluster = ClusterName::parse(cluster.trim())
                .map_err(|_| fail("a cluster name is not valid"))?;
            let arn = arn.trim();
            if !profile_arn_ok(arn) {
                return Err(fail(
                    "expected arn:<partition>:iam::<account>:instance-profile/<path><name>",
                ));
            }
            let arns = map.entry(cluster).or_default();
            if !arns.iter().any(|a| a == arn) {
                arns.push(arn.to_owned());
            }
        }
        Ok(ControlPlaneProfiles(map))
    }

    /// The profiles configured for `cluster`, if the setting names it.
    pub fn for_cluster(&self, cluster: &ClusterName) -> Option<&[String]> {
        self.0.get(cluster).map(Vec::as_slice)
    }
}

/// An instance profile ARN as IAM spells it: 12-digit account, name of `[\w+=,.@-]`.
fn profile_arn_ok(arn: &str) -> bool {
    let fields: Vec<&str> = arn.splitn(6, ':').collect();
    let [arn_word, partition, service, region, account, resource] = fields[..] else {
        return false;
    };
    let Some(path_and_name) = resource.strip_prefix("instance-profile/") else {
        return false;
    };
    let name = path_and_name.rsplit('/').next().unwrap_or_default();
    arn_word == "arn"
        && partition.starts_with("aws")
        && service == "iam"
        && region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && (1..=128).contains(&name.len())
        && path_and_name.len() <= 640
        && path_and_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-/".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_read_by_cluster() {
        let p = ControlPlaneProfiles::parse(
            "old=arn:aws:iam::123456789012:instance-profile/kurl/masters, old=arn:aws:iam::123456789012:instance-profile/b,x=arn:aws:iam::210987654321:instance-profile/c",
        )
        .expect("valid");
        let old = ClusterName::parse("old").expect("valid");
        assert_eq!(p.for_cluster(&old).map(<[String]>::len), Some(2));
        assert!(p
            .for_cluster(&ClusterName::parse("demo").expect("valid"))
            .is_none());
        assert_eq!(
            ControlPlaneProfiles::parse("none").expect("valid"),
            ControlPlaneProfiles::default()
        );
    }

    #[test]
    fn malformed_values_name_the_variable() {
        for raw in [
            "",
            "old",
            "old=",
            "x;y=arn:aws:iam::123456789012:instance-profile/a",
            "old=arn:aws:iam::123456789012:role/a",
            "old=arn:aws:iam::1234:instance-profile/a",
            "old=arn:aws:iam::123456789012:instance-profile/a b",
            "old=arn:aws:iam::123456789012:instance-profile/",
        ] {
            let err = ControlPlaneProfiles::parse(raw).expect_err(raw);
            assert_eq!(err.variable, "JOINKEEPER_CONTROL_PLANE_PROFILES", "{raw}");
        }
    }
}
