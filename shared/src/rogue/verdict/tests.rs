use super::*;
use crate::lifecycle::NodeState;
use time::macros::datetime;

fn host(id: &str, n: u8) -> HostKeys {
    HostKeys {
        id: InstanceId::parse(id).expect("id"),
        private_dns: format!("ip-10-0-0-{n}.ec2.internal"),
        private_ip: Some(format!("10.0.0.{n}")),
    }
}

fn node(name: &str, provider: &str, ip: Option<&str>, labels: &[(&str, &str)]) -> NodeLine {
    NodeLine {
        name: name.into(),
        provider_id: provider.into(),
        created: Some(datetime!(2026-11-27 11:00 UTC)),
        ready: NodeState::Ready,
        cordoned: false,
        internal_ip: ip.map(Into::into),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
    }
}

const CP: &str = "node-role.kubernetes.io/control-plane";

#[test]
fn decision_table() {
    let now = datetime!(2026-11-27 12:00 UTC);
    let grace = Duration::from_secs(900);
    let ours = host("i-0000000000000000a", 1);
    let contested = host("i-0000000000000000b", 2);
    let forged_only = host("i-0000000000000000c", 3);
    let foreign = host("i-0000000000000000f", 9);
    let dead = InstanceId::parse("i-0000000000000000d").expect("id");
    let fleet = Fleet {
        members: vec![ours, contested, forged_only],
        foreign: vec![foreign],
        terminated: [dead.clone()].into_iter().collect(),
    };
    let nodes = vec![
        /* 0 */ node("ip-10-0-0-1", "-", Some("10.0.0.1"), &[]),
        /* 1 */
        node(
            "aaa",
            "aws:///us-east-1a/i-0000000000000000b",
            Some("10.6.6.6"),
            &[],
        ),
        /* 2 */
        node(
            "ip-10-0-0-2.ec2.internal",
            "aws:///us-east-1a/i-0000000000000000b",
            Some("10.0.0.2"),
            &[],
        ),
        /* 3 */ node("evil", "aws:///us-east-1a/i-0000000000000000c", None, &[]),
        /* 4 */ node("ip-10-0-0-9", "-", Some("10.0.0.9"), &[]),
        /* 5 */ node("master-x", "-", Some("10.1.1.1"), &[(CP, "")]),
        /* 6 */
        node(
            "stray",
            "-",
            Some("10.1.1.2"),
            &[(crate::nodes::EXCLUDE_LABEL, "ignore")],
        ),
        /* 7 */ node("gone", "aws:///us-east-1a/i-0000000000000000d", None, &[]),
        /* 8 */ node("other", "aws:///us-east-1a/i-0000000000000000e", None, &[]),
        /* 9 */ node("weird", "invalid", None, &[]),
        /* 10 */ node("nobody", "-", Some("10.1.1.3"), &[]),
        /* 11 */ node("stray2", "-", None, &[(crate::nodes::EXCLUDE_LABEL, "yes")]),
    ];
    let mut young = node("new", "-", None, &[]);
    young.created = Some(now - time::Duration::minutes(5));
    let index = NodeIndex::new(&nodes);
    let rogue = |r: &str| Verdict::Rogue { reason: r.into() };
    let want = [
        ("existing worker, short name, no providerID", Verdict::Belongs),
        (
            "an attacker's Node named to sort first",
            Verdict::Contested { instance: contested_id() },
        ),
        ("and the real one: both unknown", Verdict::Contested { instance: contested_id() }),
        (
            "a forged providerID alone",
            rogue("its providerID names i-0000000000000000c, but neither its name nor its address is that instance's"),
        ),
        (
            "an untagged instance's Node",
            Verdict::Foreign { instance: InstanceId::parse("i-0000000000000000f").expect("id") },
        ),
        ("a control plane by its label", Verdict::ControlPlane),
        ("excluded by an administrator", Verdict::Excluded),
        ("a terminated instance's Node", Verdict::Dead { instance: dead.clone() }),
        ("another instance's providerID", rogue("its providerID names i-0000000000000000e, no live instance of the cluster")),
        ("unreadable providerID", rogue("its providerID names no EC2 instance")),
        (
            "nothing of anyone's",
            rogue("it has no providerID, and neither its name nor its address is an instance's of the cluster"),
        ),
        (
            "only the exact label value excludes",
            rogue("it has no providerID, and neither its name nor its address is an instance's of the cluster"),
        ),
    ];
    for ((what, want), n) in want.into_iter().zip(&nodes) {
        assert_eq!(decide(n, &index, &fleet, now, grace), want, "{what}");
    }
    assert_eq!(
        decide(&young, &index, &fleet, now, grace),
        Verdict::TooYoung
    );
}

fn contested_id() -> InstanceId {
    InstanceId::parse("i-0000000000000000b").expect("id")
}

#[test]
fn modes_and_acts() {
    assert_eq!(
        Mode::default(),
        Mode::Report,
        "report-only until the operator turns action on"
    );
    assert_eq!(Mode::parse("cordon"), Some(Mode::Cordon));
    assert_eq!(Mode::parse("delete\n"), Some(Mode::Delete));
    assert_eq!(Mode::parse("report"), Some(Mode::Report));
    assert_eq!(Mode::parse("yes"), None);
    assert_eq!(act(Mode::Report, false), Act::Report);
    assert_eq!(act(Mode::Report, true), Act::Report);
    assert_eq!(act(Mode::Cordon, false), Act::Cordon);
    assert_eq!(act(Mode::Cordon, true), Act::AlreadyCordoned);
    assert_eq!(act(Mode::Delete, true), Act::Delete);
}
