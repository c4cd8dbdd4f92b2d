//! Which instances tagged as a cluster's control planes really are: an instance is a control
//! plane of cluster C only when its instance profile is one of C's control-plane profiles. Tags
//! alone never make one: any principal that may run or tag instances can set them, while
//! attaching a profile needs `iam:PassRole` on its role and creating a profile of a given name
//! needs `iam:CreateInstanceProfile` (names are unique per account).
//!
//! C's profiles are, by default, the one profile named [`default_profile_name`] (the cluster stack
//! creates it); `JOINKEEPER_CONTROL_PLANE_PROFILES` names them instead for clusters whose control
//! planes were made elsewhere (see [`crate::config::ControlPlaneProfiles`]). Pure: the fleet
//! adapter reports the facts, the callers log and count the impostors.

use serde::Serialize;

use crate::config::ControlPlaneProfiles;
use crate::names::{ClusterName, InstanceId};

/// The name of the instance profile the cluster stack gives the control planes of `cluster`.
/// IAM profile names allow `[\w+=,.@-]` up to 128 characters; a cluster name (at most 63 of
/// `[A-Za-z0-9_.-]`) always fits.
pub fn default_profile_name(cluster: &ClusterName) -> String {
    format!("{PROFILE_PREFIX}{cluster}")
}

/// The prefix of [`default_profile_name`]; `infra/lib/tags.ts` holds the same one (a test reads
/// it there).
pub const PROFILE_PREFIX: &str = "joinkeeper-control-plane-";

/// An instance tagged `joinkeeper:cluster=<C>` and `joinkeeper:role=control-plane`, as EC2
/// describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaggedControlPlane {
    pub id: InstanceId,
    /// EC2 state name (`running`, `stopped`, ...).
    pub state: String,
    /// `IamInstanceProfile.Arn`; `None` when the instance has no profile.
    pub profile_arn: Option<String>,
}

/// An instance that carries the control-plane tags of a cluster without its identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Impostor {
    pub cluster: String,
    pub instance: String,
    /// The profile it has (shown escaped and shortened), or `none`.
    pub profile: String,
}

/// The tagged instances, sorted into the cluster's control planes and impostors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identified {
    pub genuine: Vec<TaggedControlPlane>,
    pub impostors: Vec<Impostor>,
}

impl Identified {
    /// The genuine control planes' ids.
    pub fn ids(&self) -> Vec<InstanceId> {
        self.genuine.iter().map(|c| c.id.clone()).collect()
    }
}

/// `arn:<partition>:iam::<account>:instance-profile/<path><name>` → `(account, name)`.
fn profile_parts(arn: &str) -> Option<(&str, &str)> {
    let mut fields = arn.splitn(6, ':');
    let (arn_word, _partition, service, region, account, resource) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    if arn_word != "arn" || service != "iam" || !region.is_empty() || account.is_empty() {
        return None;
    }
    let path_and_name = resource.strip_prefix("instance-profile/")?;
    let name = path_and_name.rsplit('/').next()?;
    (!name.is_empty()).then_some((account, name))
}

/// Whether `profile_arn` is one of `cluster`'s control-plane profiles: an exact ARN named in the
/// configuration for that cluster, or else a profile of the default name (in the instance's own
/// account: EC2 attaches only profiles of the instance's account).
pub fn is_genuine(
    cluster: &ClusterName,
    profiles: &ControlPlaneProfiles,
    profile_arn: Option<&str>,
) -> bool {
    let Some(arn) = profile_arn else {
        return false;
    };
    match profiles.for_cluster(cluster) {
        Some(listed) => listed.iter().any(|p| p == arn),
        None => profile_parts(arn).is_some_and(|(_, name)| name == default_profile_name(cluster)),
    }
}

/// Sorts `tagged` (the instances tagged as `cluster`'s control planes) by identity.
pub fn identify(
    cluster: &ClusterName,
    profiles: &ControlPlaneProfiles,
    tagged: Vec<TaggedControlPlane>,
) -> Identified {
    let mut out = Identified::default();
    for t in tagged {
        if is_genuine(cluster, profiles, t.profile_arn.as_deref()) {
            out.genuine.push(t);
        } else {
            out.impostors.push(Impostor {
                cluster: cluster.to_string(),
                instance: t.id.to_string(),
                profile: t
                    .profile_arn
                    .as_deref()
                    .map_or_else(|| "none".to_owned(), |p| crate::names::printable(p, 160)),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(s: &str) -> ClusterName {
        ClusterName::parse(s).expect("valid")
    }

    fn tagged(id: &str, profile: Option<&str>) -> TaggedControlPlane {
        TaggedControlPlane {
            id: InstanceId::parse(id).expect("valid"),
            state: "running".into(),
            profile_arn: profile.map(str::to_owned),
        }
    }

    const GENUINE: &str =
        "arn:aws:iam::123456789012:instance-profile/joinkeeper-control-plane-demo";

    #[test]
    fn only_the_clusters_profile_makes_a_control_plane() {
        let none = ControlPlaneProfiles::default();
        let demo = cluster("demo");
        let cases = [
            (Some(GENUINE), true),
            // A path before the name is still the same (unique) name.
            (
                Some("arn:aws:iam::123456789012:instance-profile/ops/joinkeeper-control-plane-demo"),
                true,
            ),
            (
                Some("arn:aws-cn:iam::123456789012:instance-profile/joinkeeper-control-plane-demo"),
                true,
            ),
            (None, false),
            (
                Some("arn:aws:iam::123456789012:instance-profile/joinkeeper-worker-demo"),
                false,
            ),
            // Another cluster's control-plane profile.
            (
                Some("arn:aws:iam::123456789012:instance-profile/joinkeeper-control-plane-prod"),
                false,
            ),
            // A longer name that merely starts with the right one.
            (
                Some("arn:aws:iam::123456789012:instance-profile/joinkeeper-control-plane-demo2"),
                false,
            ),
            // The name as a path segment, not as the name.
            (
                Some("arn:aws:iam::123456789012:instance-profile/joinkeeper-control-plane-demo/x"),
                false,
            ),
            (
                Some("arn:aws:iam::123456789012:role/joinkeeper-control-plane-demo"),
                false,
            ),
            (Some("joinkeeper-control-plane-demo"), false),
            (
                Some("arn:aws:iam:us-east-1:123456789012:instance-profile/joinkeeper-control-plane-demo"),
                false,
            ),
            (Some(""), false),
        ];
        for (arn, want) in cases {
            assert_eq!(is_genuine(&demo, &none, arn), want, "{arn:?}");
        }
    }

    #[test]
    fn the_cluster_stack_names_the_profile_the_same_way() {
        let path = format!("{}/../infra/lib/tags.ts", env!("CARGO_MANIFEST_DIR"));
        let tags = std::fs::read_to_string(path).expect("infra/lib/tags.ts");
        let line = format!("export const CONTROL_PLANE_PROFILE_PREFIX = '{PROFILE_PREFIX}';");
        assert!(tags.contains(&line), "infra/lib/tags.ts lacks {line}");
    }

    #[test]
    fn configured_profiles_replace_the_default_name() {
        let legacy = "arn:aws:iam::123456789012:instance-profile/kurl-masters";
        let profiles =
            ControlPlaneProfiles::parse(&format!("old={legacy}")).expect("valid setting");
        let old = cluster("old");
        assert!(is_genuine(&old, &profiles, Some(legacy)));
        assert!(!is_genuine(
            &old,
            &profiles,
            Some("arn:aws:iam::123456789012:instance-profile/joinkeeper-control-plane-old")
        ));
        // Clusters the setting does not name keep the default.
        assert!(is_genuine(&cluster("demo"), &profiles, Some(GENUINE)));
        assert!(!is_genuine(&cluster("demo"), &profiles, Some(legacy)));
    }

    #[test]
    fn identify_reports_impostors_with_their_profile_shown_safely() {
        let out = identify(
            &cluster("demo"),
            &ControlPlaneProfiles::default(),
            vec![
                tagged("i-0000000a", Some(GENUINE)),
                tagged("i-0000000b", None),
                tagged(
                    "i-0000000c",
                    Some("arn:aws:iam::123456789012:instance-profile/evil\nline"),
                ),
            ],
        );
        assert_eq!(
            out.ids(),
            vec![InstanceId::parse("i-0000000a").expect("id")]
        );
        assert_eq!(out.impostors.len(), 2);
        assert_eq!(out.impostors[0].instance, "i-0000000b");
        assert_eq!(out.impostors[0].profile, "none");
        assert!(!out.impostors[1].profile.contains('\n'));
        assert_eq!(out.impostors[1].cluster, "demo");
    }
}
