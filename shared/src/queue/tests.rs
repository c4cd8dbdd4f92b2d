//! Grouping a batch by cluster, and what is acknowledged without a reconcile.
use super::*;
use serde_json::json;

fn event(group: &str, hook: &str, instance: &str) -> String {
    json!({
        "version": "0", "id": "e", "detail-type": "EC2 Instance-launch Lifecycle Action",
        "source": "aws.autoscaling", "account": "123456789012", "time": "2026-11-27T00:00:00Z",
        "region": "us-east-1", "resources": [],
        "detail": {
            "LifecycleActionToken": "87654321-4321-4321-4321-210987654321",
            "AutoScalingGroupName": group, "LifecycleHookName": hook,
            "EC2InstanceId": instance, "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING"
        }
    })
    .to_string()
}

fn group(name: &str) -> GroupName {
    GroupName::parse(name).expect("group")
}

fn cluster(name: &str) -> ClusterName {
    ClusterName::parse(name).expect("cluster")
}

#[test]
fn reads_lifecycle_events_and_drops_what_can_never_be_handled() {
    let ok = event("a-workers", "joinkeeper-launch", "i-0123456789abcdef0");
    assert_eq!(
        read_message(Some(&ok), "joinkeeper-"),
        Message::Group(group("a-workers"))
    );
    let other_hook = event("a-workers", "other-launch", "i-0123456789abcdef0");
    let bad_instance = event("a-workers", "joinkeeper-launch", "i-$(reboot)");
    for body in [
        None,
        Some("not json"),
        Some("[]"),
        Some(other_hook.as_str()),
        Some(bad_instance.as_str()),
    ] {
        assert!(
            matches!(read_message(body, "joinkeeper-"), Message::Drop(_)),
            "{body:?}"
        );
    }
}

#[test]
fn each_cluster_once_with_its_messages() {
    let messages = vec![
        ("m1".to_owned(), Message::Group(group("a-workers"))),
        ("m2".to_owned(), Message::Group(group("b-workers"))),
        ("m3".to_owned(), Message::Group(group("a-spot"))),
        ("m4".to_owned(), Message::Drop("bad event".into())),
        ("m5".to_owned(), Message::Group(group("gone"))),
        ("m6".to_owned(), Message::Group(group("unlooked"))),
    ];
    assert_eq!(
        groups_of(&messages),
        ["a-spot", "a-workers", "b-workers", "gone", "unlooked"].map(group)
    );
    let standings = BTreeMap::from([
        (group("a-workers"), GroupStanding::Cluster(cluster("a"))),
        (group("a-spot"), GroupStanding::Cluster(cluster("a"))),
        (group("b-workers"), GroupStanding::Cluster(cluster("b"))),
        (
            group("gone"),
            GroupStanding::NotManaged("unknown group".into()),
        ),
    ]);
    let plan = plan_batch(&messages, &standings);
    assert_eq!(
        plan.clusters,
        BTreeMap::from([
            (cluster("a"), vec!["m1".to_owned(), "m3".to_owned()]),
            (cluster("b"), vec!["m2".to_owned()]),
        ])
    );
    assert_eq!(
        plan.dropped,
        vec![
            ("m4".to_owned(), "bad event".to_owned()),
            ("m5".to_owned(), "unknown group".to_owned())
        ]
    );
    assert_eq!(plan.unanswered, vec!["m6".to_owned()]);
}

#[test]
fn tells_a_batch_from_a_bare_event_and_answers_in_lambdas_shape() {
    let batch = json!({"Records": [{"messageId": "m1", "eventSource": "aws:sqs", "body": "{}"}]});
    assert!(is_sqs_batch(&batch));
    assert_eq!(parse_batch(&batch).expect("batch").records.len(), 1);
    assert!(!is_sqs_batch(&json!({"source": "aws.autoscaling"})));
    assert!(!is_sqs_batch(
        &json!({"Records": [{"eventSource": "aws:sns"}]})
    ));
    assert_eq!(
        serde_json::to_value(batch_response(["m2".to_owned()])).expect("json"),
        json!({"batchItemFailures": [{"itemIdentifier": "m2"}]})
    );
}

#[test]
fn the_sqs_fixtures_are_batches_of_the_bare_fixtures() {
    for (batch, bare) in [
        (
            include_str!("../../../events/launch-lifecycle-action-sqs.json"),
            include_str!("../../../events/launch-lifecycle-action.json"),
        ),
        (
            include_str!("../../../events/terminate-lifecycle-action-sqs.json"),
            include_str!("../../../events/terminate-lifecycle-action.json"),
        ),
    ] {
        let batch: Value = serde_json::from_str(batch).expect("json");
        assert!(is_sqs_batch(&batch));
        let records = parse_batch(&batch).expect("batch").records;
        let body: Value =
            serde_json::from_str(records[0].body.as_deref().unwrap_or_default()).expect("body");
        assert_eq!(body, serde_json::from_str::<Value>(bare).expect("json"));
        assert!(matches!(
            read_message(records[0].body.as_deref(), "joinkeeper-"),
            Message::Group(_)
        ));
    }
}
