use super::*;
use crate::lifecycle::NodeState;
use crate::names::InstanceId;
use crate::nodes::matching::HostKeys;
use time::macros::datetime;

fn host(id: &str, n: u8) -> HostKeys {
    HostKeys {
        id: InstanceId::parse(id).expect("id"),
        private_dns: format!("ip-10-0-0-{n}.ec2.internal"),
        private_ip: Some(format!("10.0.0.{n}")),
    }
}

fn node(name: &str, provider: &str, ip: Option<&str>, label: Option<(&str, &str)>) -> NodeLine {
    NodeLine {
        name: name.into(),
        provider_id: provider.into(),
        created: Some(datetime!(2026-11-27 11:00 UTC)),
        ready: NodeState::Ready,
        cordoned: name.starts_with("cordoned"),
        internal_ip: ip.map(Into::into),
        labels: label
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect(),
    }
}

fn join(token: &str, node: &str, live: bool) -> Join {
    Join {
        token_id: token.into(),
        node: node.into(),
        token_live: live,
    }
}

/// Every verdict of the rogue check, each Node joined with the revoked token `leaked` unless
/// said otherwise.
#[test]
fn who_joined_with_a_revoked_token_and_has_no_instance_behind_it() {
    let now = datetime!(2026-11-27 12:00 UTC);
    let grace = Duration::from_secs(900);
    let fleet = Fleet {
        members: vec![
            host("i-0000000000000000a", 1),
            host("i-0000000000000000b", 2),
            host("i-0000000000000000c", 3),
        ],
        foreign: vec![host("i-0000000000000000f", 9)],
        terminated: [InstanceId::parse("i-0000000000000000d").expect("id")]
            .into_iter()
            .collect(),
    };
    let mut young = node("young", "-", None, None);
    young.created = Some(datetime!(2026-11-27 11:55 UTC));
    let nodes = vec![
        // The worker of a real instance (short name, no providerID): it stands behind it.
        node("ip-10-0-0-1", "-", Some("10.0.0.1"), None),
        node("intruder", "-", Some("10.9.9.9"), None),
        // Names instance c, which has no Node of its own, under another name.
        node(
            "cordoned-forger",
            "aws:///us-east-1a/i-0000000000000000c",
            None,
            None,
        ),
        // Two Nodes claim instance b: neither is believed, neither is acted on.
        node(
            "ip-10-0-0-2.ec2.internal",
            "aws:///us-east-1a/i-0000000000000000b",
            Some("10.0.0.2"),
            None,
        ),
        node("ip-10-0-0-2", "-", None, None),
        node("other-group", "-", Some("10.0.0.9"), None),
        node("dead", "aws:///us-east-1a/i-0000000000000000d", None, None),
        node(
            "cp",
            "-",
            None,
            Some(("node-role.kubernetes.io/control-plane", "")),
        ),
        node(
            "excluded",
            "-",
            None,
            Some((crate::nodes::EXCLUDE_LABEL, "ignore")),
        ),
        young,
        node("kept-token", "-", None, None),
        node("earlier-revoked", "-", None, None),
    ];
    let joins = vec![
        join("leaked", "ip-10-0-0-1", true),
        join("leaked", "intruder", true),
        join("second", "intruder", false), // the same Node twice: reported once
        join("leaked", "cordoned-forger", true),
        join("leaked", "ip-10-0-0-2.ec2.internal", true),
        join("leaked", "other-group", true),
        join("leaked", "dead", true),
        join("leaked", "cp", true),
        join("leaked", "excluded", true),
        join("leaked", "young", true),
        join("leaked", "deleted-since", true), // no such Node any more
        join("kept00", "kept-token", true),    // the new token: not revoked
        join("gone00", "earlier-revoked", false), // gone before this run
    ];
    let found = suspects(&joins, &["leaked".to_owned()], &nodes, &fleet, now, grace);
    let table: Vec<(&str, &str, Plan)> = found
        .iter()
        .map(|s| (s.node.as_str(), s.token_id.as_str(), s.plan))
        .collect();
    assert_eq!(
        table,
        vec![
            ("intruder", "leaked", Plan::Act),
            ("cordoned-forger", "leaked", Plan::Act),
            ("ip-10-0-0-2.ec2.internal", "leaked", Plan::Hold),
            ("dead", "leaked", Plan::Act),
            ("cp", "leaked", Plan::Hold),
            ("excluded", "leaked", Plan::Hold),
            ("young", "leaked", Plan::Hold),
            ("earlier-revoked", "gone00", Plan::Act),
        ]
    );
    assert!(found[1].cordoned && !found[0].cordoned);
    assert!(
        found[1].reason.contains("i-0000000000000000c"),
        "{}",
        found[1].reason
    );
    assert!(found[2].reason.contains("i-0000000000000000b"));
    assert!(found[3].reason.contains("terminated"));
}

#[test]
fn nothing_joined_with_a_revoked_token_nothing_found() {
    let nodes = vec![node("intruder", "-", None, None)];
    let joins = vec![join("kept00", "intruder", true)];
    let found = suspects(
        &joins,
        &["leaked".to_owned()],
        &nodes,
        &Fleet::default(),
        datetime!(2026-11-27 12:00 UTC),
        Duration::from_secs(900),
    );
    assert!(found.is_empty());
}
