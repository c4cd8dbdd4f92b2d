//! Nodes matched to their instance, end to end against the emulator: a Node forging a worker's
//! providerID gets no CONTINUE and no drain decided from it, and a cluster that joinkeeper meets
//! already running (short Node names, no providerIDs, untagged workers, another tool's node
//! group, a control plane) has nothing healthy cordoned.
#![recursion_limit = "256"] // the handlers' futures nest deeply; a clean build overflows the default

use std::time::Duration;

use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
use joinkeeper::handler::{handle_lifecycle, handle_schedule, LifecycleResponse};
use joinkeeper::lifecycle::Transition;
use joinkeeper::names::ClusterName;
use joinkeeper::reconcile::{ActionOutcome, ReconcileOutcome};
use joinkeeper::{deadline::Deadline, Context, Invocation};
use joinkeeper_tests::*;
use serde_json::{json, Value};

fn inv(name: &str, seconds: u64) -> Invocation {
    Invocation::new(name, Deadline::after(Duration::from_secs(seconds)))
}

async fn world(join_deadline: u64) -> (Emulator, joinkeeper::aws::AwsClients, Context) {
    let (emulator, clients) = Emulator::with_documents().await;
    launch_control_plane(&emulator, &clients, "demo", &[]).await;
    let ctx = Context::new(
        hook_config(join_deadline),
        &emulator.function_clients("launch-hook").await,
    );
    joinkeeper::regenerate::ensure_fresh(
        &ctx,
        &ClusterName::parse("demo").expect("name"),
        Duration::from_secs(3600),
        &inv("setup", 120),
    )
    .await
    .expect("initial record");
    (emulator, clients, ctx)
}

async fn events(e: &Emulator, n: usize) -> Vec<Value> {
    let mut found = Vec::new();
    let ok = eventually(Duration::from_secs(20), || {
        found.extend(e.take_events());
        let done = found.len() >= n;
        async move { done }
    })
    .await;
    assert!(ok, "expected {n} lifecycle events");
    found
}

/// (private DNS name, private IP) of an instance.
async fn host_of(clients: &joinkeeper::aws::AwsClients, id: &str) -> (String, String) {
    let out = clients
        .ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .expect("describe");
    let i = &out.reservations()[0].instances()[0];
    (
        i.private_dns_name().expect("dns").to_owned(),
        i.private_ip_address().expect("ip").to_owned(),
    )
}

fn completions(e: &Emulator, result: &str) -> usize {
    e.lifecycle_log()
        .iter()
        .filter(|a| a["action"] == result && a["result"] == "ok")
        .count()
}

fn node(e: &Emulator, name: &str) -> Value {
    e.kube_state("demo")["nodes"][name].clone()
}

#[tokio::test]
async fn a_forged_provider_id_never_earns_a_continue_nor_a_drain() {
    let (e, clients, ctx) = world(600).await;
    // The worker never joins by itself: the test registers its Nodes.
    create_worker_group(
        &clients,
        "demo",
        "demo-workers",
        300,
        &[("emulator:user-data", "skip")],
    )
    .await;
    set_capacity(&clients, "demo-workers", 1).await;
    let launch = events(&e, 1).await;
    let id = launch[0]["detail"]["EC2InstanceId"]
        .as_str()
        .expect("id")
        .to_owned();
    let (dns, ip) = host_of(&clients, &id).await;
    let provider = format!("aws:///us-east-1a/{id}");
    let run = |name: &'static str, seconds: u64| {
        let ctx = &ctx;
        let event = launch[0].clone();
        async move {
            match handle_lifecycle(ctx, &event, Transition::Launching, &inv(name, seconds)).await {
                Ok(LifecycleResponse::Reconciled {
                    outcome: ReconcileOutcome::Ran(r),
                    ..
                }) => r.actions,
                other => panic!("{other:?}"),
            }
        }
    };

    // An attacker's Node, named to sort first, naming the worker: believed by nobody.
    e.add_nodes(
        "demo",
        &json!([{"name": "aaa", "provider_id": provider, "internal_ip": "10.250.0.9"}]),
    );
    let reports = run("forged", 6).await;
    assert!(
        reports.iter().all(|r| r.outcome != ActionOutcome::Continue),
        "{reports:#?}"
    );
    assert_eq!(completions(&e, "CONTINUE"), 0);

    // The real Node registers too: two claimants, neither believed.
    e.add_nodes(
        "demo",
        &json!([{"name": dns, "provider_id": provider, "internal_ip": ip}]),
    );
    let reports = run("contested", 6).await;
    assert!(
        reports.iter().all(|r| r.outcome != ActionOutcome::Continue),
        "{reports:#?}"
    );
    assert_eq!(
        completions(&e, "CONTINUE"),
        0,
        "no CONTINUE from a contested answer"
    );

    // The forgery removed, the real Node alone is believed.
    e.remove_node("demo", "aaa");
    let reports = run("real", 30).await;
    assert_eq!(
        reports
            .iter()
            .filter(|r| r.outcome == ActionOutcome::Continue)
            .count(),
        1,
        "{reports:#?}\n{:?}\n{}",
        e.lifecycle_log(),
        e.log()
    );

    // Scale-in while a second claimant is back: the terminate completes without a drain.
    e.add_nodes(
        "demo",
        &json!([{"name": "ip-forged", "provider_id": provider, "internal_ip": ip}]),
    );
    set_capacity(&clients, "demo-workers", 0).await;
    let terminate = events(&e, 1).await;
    let out = handle_lifecycle(
        &ctx,
        &terminate[0],
        Transition::Terminating,
        &inv("scale-in", 30),
    )
    .await
    .expect("handled");
    let LifecycleResponse::Reconciled {
        outcome: ReconcileOutcome::Ran(r),
        ..
    } = out
    else {
        panic!("{out:?}")
    };
    assert!(
        r.actions
            .iter()
            .any(|a| a.reason.contains("claim the instance")),
        "{:#?}",
        r.actions
    );
    assert!(
        e.commands(Some("joinkeeper-drain")).is_empty(),
        "no drain in either Node's place"
    );
    for name in [dns.as_str(), "ip-forged"] {
        assert_eq!(node(&e, name)["unschedulable"], false, "{name} untouched");
    }
}

/// Launches an instance with exactly these tags (none: an untagged, pre-existing worker).
async fn instance_with_tags(
    clients: &joinkeeper::aws::AwsClients,
    tags: &[(&str, &str)],
) -> String {
    let mut req = clients
        .ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .min_count(1)
        .max_count(1)
        .instance_type(InstanceType::T3Medium);
    if !tags.is_empty() {
        let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
        for (k, v) in tags {
            spec = spec.tags(Tag::builder().key(*k).value(*v).build());
        }
        req = req.tag_specifications(spec.build());
    }
    let out = req.send().await.expect("run instance");
    out.instances()[0].instance_id().expect("id").to_owned()
}

fn short(dns: &str) -> String {
    dns.split('.').next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn an_existing_cluster_has_nothing_healthy_cordoned_and_starts_report_only() {
    let (e, clients, _) = world(600).await;
    let ctx = Context::new(
        hook_config(600),
        &e.function_clients("token-refresher").await,
    );
    let tagged = instance_with_tags(
        &clients,
        &[
            ("joinkeeper:cluster", "demo"),
            ("joinkeeper:role", "worker"),
        ],
    )
    .await;
    let old = instance_with_tags(&clients, &[]).await;
    let other_group = instance_with_tags(&clients, &[("eks:nodegroup-name", "other")]).await;
    let (tagged_dns, tagged_ip) = host_of(&clients, &tagged).await;
    let (old_dns, old_ip) = host_of(&clients, &old).await;
    let (other_dns, other_ip) = host_of(&clients, &other_group).await;
    let hour = 3600;
    e.add_nodes(
        "demo",
        &json!([
            // Ubuntu's default Node names, no providerIDs (no cloud provider configured).
            {"name": short(&tagged_dns), "internal_ip": tagged_ip, "age_seconds": hour},
            {"name": short(&old_dns), "internal_ip": old_ip, "age_seconds": hour},
            // Another tool's node group, with the cloud provider's providerID.
            {"name": other_dns, "provider_id": format!("aws:///us-east-1a/{other_group}"), "internal_ip": other_ip, "age_seconds": hour},
            // A control plane whose name matches nothing, labelled by kubeadm.
            {"name": "master-1", "internal_ip": "10.99.0.1", "labels": {"node-role.kubernetes.io/control-plane": ""}, "age_seconds": hour},
            // Excluded by an administrator.
            {"name": "bare-metal-1", "internal_ip": "10.99.0.2", "labels": {"node-restriction.kubernetes.io/joinkeeper-rogue-check": "ignore"}, "age_seconds": hour},
            // A Node no instance stands behind.
            {"name": "rogue-1", "internal_ip": "10.99.0.3", "age_seconds": hour},
        ]),
    );
    let schedule = scheduled_event();
    let out = serde_json::to_value(
        handle_schedule(&ctx, &schedule, &inv("first", 120))
            .await
            .expect("run"),
    )
    .expect("JSON");
    let check = &out["rogue_checks"][0];
    assert_eq!(check["mode"], "report", "{out:#}");
    assert_eq!(check["complete"], true, "{out:#}");
    let reported: Vec<(&str, &str)> = check["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap_or(""),
                n["action"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(reported, [("rogue-1", "reported")], "{out:#}");
    assert!(
        e.commands(Some("joinkeeper-cordon")).is_empty(),
        "report-only: nothing cordoned"
    );

    // The operator turns action on: only the rogue is cordoned.
    clients
        .ssm
        .put_parameter()
        .name("/joinkeeper/demo/rogue-nodes")
        .value("cordon")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .expect("put mode");
    let out = serde_json::to_value(
        handle_schedule(&ctx, &schedule, &inv("second", 120))
            .await
            .expect("run"),
    )
    .expect("JSON");
    assert_eq!(out["rogue_checks"][0]["mode"], "cordon", "{out:#}");
    let state = e.kube_state("demo")["nodes"].clone();
    let cordoned: Vec<&String> = state
        .as_object()
        .expect("nodes")
        .iter()
        .filter(|(_, n)| n["unschedulable"] == true)
        .map(|(name, _)| name)
        .collect();
    assert_eq!(cordoned, ["rogue-1"], "{out:#}");
}
