use super::*;

fn host() -> HostKeys {
    HostKeys {
        id: InstanceId::parse("i-0123456789abcdef0").expect("id"),
        private_dns: "ip-10-0-0-9.ec2.internal".into(),
        private_ip: Some("10.0.0.9".into()),
    }
}

fn node(name: &str, provider: &str, ip: Option<&str>) -> NodeLine {
    NodeLine {
        name: name.into(),
        provider_id: provider.into(),
        created: None,
        ready: NodeState::Ready,
        cordoned: false,
        internal_ip: ip.map(Into::into),
        labels: Vec::new(),
    }
}

const OURS: &str = "aws:///us-east-1a/i-0123456789abcdef0";
const OTHER: &str = "aws:///us-east-1a/i-0fedcba987654321f";

#[test]
fn claim_table() {
    let h = host();
    let cases = [
        (
            "providerID and full name",
            node("ip-10-0-0-9.ec2.internal", OURS, None),
            Some(Claim::Genuine),
        ),
        (
            "providerID and short name",
            node("ip-10-0-0-9", OURS, None),
            Some(Claim::Genuine),
        ),
        (
            "providerID and address",
            node("worker-a", OURS, Some("10.0.0.9")),
            Some(Claim::Genuine),
        ),
        (
            "providerID, another name and address",
            node("evil", OURS, Some("10.6.6.6")),
            Some(Claim::Forged),
        ),
        (
            "providerID without zone",
            node("ip-10-0-0-9", "aws:///i-0123456789abcdef0", None),
            Some(Claim::Genuine),
        ),
        (
            "no providerID, short name",
            node("ip-10-0-0-9", "-", None),
            Some(Claim::Genuine),
        ),
        (
            "no providerID, address only",
            node("worker-a", "-", Some("10.0.0.9")),
            Some(Claim::Genuine),
        ),
        (
            "no providerID, nothing of ours",
            node("worker-a", "-", Some("10.0.0.8")),
            None,
        ),
        (
            "another instance's providerID, our name",
            node("ip-10-0-0-9", OTHER, Some("10.0.0.9")),
            None,
        ),
        (
            "unreadable providerID, our name",
            node("ip-10-0-0-9", "invalid", None),
            None,
        ),
        (
            "a longer name that starts like ours",
            node("ip-10-0-0-9x", "-", None),
            None,
        ),
    ];
    for (what, n, want) in cases {
        assert_eq!(claim(&n, &h), want, "{what}");
    }
}

#[test]
fn an_instance_without_a_dns_name_matches_by_address_only() {
    let h = HostKeys {
        private_dns: String::new(),
        ..host()
    };
    assert_eq!(claim(&node("", "-", None), &h), None);
    assert_eq!(
        claim(&node("x", "-", Some("10.0.0.9")), &h),
        Some(Claim::Genuine)
    );
}

#[test]
fn ownership_table() {
    let h = host();
    let real = node("ip-10-0-0-9.ec2.internal", OURS, Some("10.0.0.9"));
    // Named to sort first, as an attacker would.
    let forged = node("aaa", OURS, Some("10.6.6.6"));
    let twin = node("ip-10-0-0-9", OURS, Some("10.0.0.9"));
    let bystander = node("b", OTHER, Some("10.0.0.7"));
    let cases: Vec<(&str, Vec<&NodeLine>, Ownership)> = vec![
        ("nothing", vec![], Ownership::Absent),
        (
            "the real one",
            vec![&real, &bystander],
            Ownership::Owned(&real),
        ),
        (
            "a forged one alone owns nothing",
            vec![&forged],
            Ownership::Absent,
        ),
        (
            "a forged one beside the real one: both unknown",
            vec![&forged, &real],
            Ownership::Contested(vec!["aaa".into(), "ip-10-0-0-9.ec2.internal".into()]),
        ),
        (
            "two that both match: both unknown",
            vec![&real, &twin],
            Ownership::Contested(vec![
                "ip-10-0-0-9.ec2.internal".into(),
                "ip-10-0-0-9".into(),
            ]),
        ),
    ];
    for (what, nodes, want) in cases {
        assert_eq!(ownership(&h, &nodes), want, "{what}");
    }
    assert_eq!(Ownership::Owned(&real).state(), NodeState::Ready);
    assert_eq!(Ownership::Absent.state(), NodeState::Absent);
    assert_eq!(Ownership::Contested(vec![]).state(), NodeState::Contested);
    assert_eq!(
        Ownership::Owned(&real).node_name(),
        Some("ip-10-0-0-9.ec2.internal")
    );
}

#[test]
fn the_index_finds_every_candidate_once() {
    let h = host();
    let nodes = vec![
        node("aaa", OURS, Some("10.6.6.6")),
        node("ip-10-0-0-9", "-", Some("10.0.0.9")),
        node("zzz", OTHER, Some("10.0.0.7")),
    ];
    let index = NodeIndex::new(&nodes);
    let names: Vec<&str> = index
        .candidates(&h)
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"aaa") && names.contains(&"ip-10-0-0-9"));
    assert!(matches!(index.ownership(&h), Ownership::Contested(_)));
}
