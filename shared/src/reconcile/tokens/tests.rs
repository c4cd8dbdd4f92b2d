use super::*;
use crate::testing::{group, id};

fn waiting(i: &str, state: WaitState) -> Waiting {
    Waiting {
        group: group("workers"),
        instance: id(i),
        state,
    }
}

fn facts(i: &str, dns: &str) -> (InstanceId, InstanceFacts) {
    let f = InstanceFacts {
        id: id(i),
        launched: None,
        private_dns: dns.into(),
        private_ip: None,
    };
    (id(i), f)
}

#[test]
fn only_launch_waits_with_a_usable_node_name_get_a_token() {
    let w = vec![
        waiting("i-0000000a", WaitState::PendingWait),
        waiting("i-0000000b", WaitState::WarmedPendingWait),
        waiting("i-0000000c", WaitState::PendingWait),
        waiting("i-0000000d", WaitState::PendingWait),
        waiting("i-0000000e", WaitState::TerminatingWait),
    ];
    let f = HashMap::from([
        facts("i-0000000a", "ip-10-0-0-1.ec2.internal"),
        facts("i-0000000b", "ip-10-0-0-2.ec2.internal"),
        facts("i-0000000c", "ip-10-0-0-3.ec2.internal;reboot"),
        facts("i-0000000e", "ip-10-0-0-5.ec2.internal"),
    ]);
    let got = wanted(&w, &f);
    assert_eq!(
        got,
        BTreeMap::from([(id("i-0000000a"), "ip-10-0-0-1.ec2.internal".to_owned())])
    );
}

#[test]
fn ended_waits_and_strays_of_instances_no_longer_waiting_are_revoked() {
    let ended = BTreeSet::from([id("i-0000000a")]);
    let strays = BTreeSet::from([id("i-0000000b"), id("i-0000000c")]);
    let waiting = HashSet::from([id("i-0000000c")]);
    assert_eq!(
        to_revoke(&ended, &strays, &waiting),
        BTreeSet::from([id("i-0000000a"), id("i-0000000b")]),
        "c's token is another batch's: it still waits"
    );
}

#[test]
fn each_batch_names_its_own_instances_and_the_first_carries_the_revocations() {
    let plan = TokenPlan {
        wanted: BTreeMap::from([
            (id("i-0000000a"), "ip-a".into()),
            (id("i-0000000b"), "ip-b".into()),
        ]),
        revoke: BTreeSet::from([id("i-0000000c")]),
    };
    let c = ClusterName::parse("demo").expect("name");
    let ttl = Duration::from_secs(900);
    let first = parameters(
        &c,
        "/joinkeeper",
        ttl,
        &plan,
        &[id("i-0000000a"), id("i-0000000f")],
        true,
    );
    assert_eq!(first[0], ("TokenCluster", "demo".to_owned()));
    assert_eq!(first[2], ("TokenTtl", "900".to_owned()));
    assert_eq!(first[3], ("JoinTokens", "i-0000000a=ip-a".to_owned()));
    assert_eq!(first[4], ("RevokeTokens", "i-0000000c".to_owned()));
    let second = parameters(&c, "/joinkeeper", ttl, &plan, &[id("i-0000000b")], false);
    assert_eq!(second[3], ("JoinTokens", "i-0000000b=ip-b".to_owned()));
    assert_eq!(second[4], ("RevokeTokens", "-".to_owned()));
}

#[test]
fn the_report_keeps_well_formed_lines_only() {
    let out = "\
token i-0000000a abc123 minted
token i-0000000b xyz789 held
token i-0000000c abc124 revoked
token i-0000000d - revoked
token i-0000000e - failed
csr i-0000000a csr-x1y2z approved ip-a.ec2.internal
csr i-0000000b csr-abcde denied ip-evil.ec2.internal
csr i-0000000b csr-fghij denied -
stray i-0000000f def456
token i-0000000a abc123.0123456789abcdef minted
token not-an-id abc123 minted
csr i-0000000a CSR;reboot approved x
node ip-a - - Ready no - -
";
    let r = parse_report(out);
    assert_eq!(r.minted, vec![(id("i-0000000a"), "abc123".to_owned())]);
    assert_eq!(r.revoked, vec![id("i-0000000c"), id("i-0000000d")]);
    assert_eq!(
        r.approved,
        vec![(id("i-0000000a"), "ip-a.ec2.internal".to_owned())]
    );
    assert_eq!(r.denied.len(), 2);
    assert_eq!(r.denied[0].2, "ip-evil.ec2.internal");
    assert_eq!(r.strays, BTreeSet::from([id("i-0000000f")]));
    assert_eq!(r.failed, 1);
}

#[test]
fn the_sweep_revokes_the_records_of_instances_no_longer_waiting_to_join() {
    let path = "/joinkeeper/demo/join";
    let names: Vec<String> = [
        "/joinkeeper/demo/join/i-0000000a",
        "/joinkeeper/demo/join/i-0000000b",
        "/joinkeeper/demo/join/not-an-instance",
        "/joinkeeper/demo/joinx/i-0000000c",
        "/joinkeeper/other/join/i-0000000d",
    ]
    .map(String::from)
    .to_vec();
    let waiting: HashSet<InstanceId> = [id("i-0000000a")].into();
    assert_eq!(
        leftover_records(&names, path, &waiting),
        [id("i-0000000b")].into(),
        "the waiting worker keeps its token; names that are not its cluster's records are ignored"
    );
    assert!(leftover_records(&[], path, &HashSet::new()).is_empty());
}
