//! Drains users can trust, and no Node outlives its instance, against the emulator: real Auto
//! Scaling wait states, the real drain and cordon documents run on the stand-in control plane
//! (whose kubectl refuses evictions a PodDisruptionBudget protects as kubectl does), EC2
//! terminating instances on completion or on request.
#![recursion_limit = "256"] // the handlers' futures nest deeply; a clean build overflows the default

use std::time::Duration;

use joinkeeper::handler::{handle_lifecycle, handle_schedule};
use joinkeeper::lifecycle::Transition;
use joinkeeper::metrics::Metrics;
use joinkeeper::reconcile::ActionOutcome;
use joinkeeper::{Config, Context};
use joinkeeper_tests::delivery::{handle_all, inv};
use joinkeeper_tests::*;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers=true";

struct World {
    emulator: Emulator,
    clients: joinkeeper::aws::AwsClients,
}

/// The hooks' test settings, with `extra` on top.
fn config(extra: &'static [(&'static str, &'static str)]) -> Config {
    Config::from_lookup(move |name| {
        if let Some((_, v)) = extra.iter().find(|(k, _)| *k == name) {
            return Some((*v).to_owned());
        }
        match name {
            "JOINKEEPER_COMMAND_POLL_MILLIS" => Some("100".into()),
            "JOINKEEPER_COMMAND_DEADLINE_SECONDS" => Some("30".into()),
            "JOINKEEPER_JOIN_DEADLINE_SECONDS" => Some("60".into()),
            "JOINKEEPER_NODE_POLL_SECONDS" => Some("1".into()),
            "JOINKEEPER_DRAIN_TIMEOUT_SECONDS" => Some("10".into()),
            "JOINKEEPER_ROGUE_NODE_GRACE_SECONDS" => Some("60".into()),
            _ => None,
        }
    })
    .expect("config")
}

impl World {
    /// An emulator with the documents, one control plane for `demo` and a fresh record; the
    /// group `demo-workers` (heartbeat timeout 300 s, `tags` on its workers) scaled out to `n`,
    /// every launch completed CONTINUE once its Node is Ready.
    async fn with_workers(cfg: Config, tags: &[(&str, &str)], n: i32) -> (World, Context) {
        let (emulator, clients) = Emulator::with_documents().await;
        launch_control_plane(&emulator, &clients, "demo", &[]).await;
        let ctx = Context::new(cfg, &emulator.function_clients("launch-hook").await)
            .with_metrics(Metrics::captured());
        joinkeeper::regenerate::ensure_fresh(
            &ctx,
            &joinkeeper::names::ClusterName::parse("demo").expect("name"),
            Duration::from_secs(3600),
            &inv("setup", 120),
        )
        .await
        .expect("initial record");
        let w = World { emulator, clients };
        create_worker_group(&w.clients, "demo", "demo-workers", 300, tags).await;
        set_capacity(&w.clients, "demo-workers", n).await;
        let launches = w.events(n as usize).await;
        let reports = handle_all(&ctx, &launches, Transition::Launching).await;
        let continued = reports
            .iter()
            .filter(|r| r.outcome == ActionOutcome::Continue)
            .count();
        assert_eq!(continued, n as usize, "{reports:#?}\n{}", w.emulator.log());
        (w, ctx)
    }

    async fn events(&self, n: usize) -> Vec<Value> {
        let mut events = Vec::new();
        let ok = eventually(Duration::from_secs(20), || {
            events.extend(self.emulator.take_events());
            let done = events.len() >= n;
            async move { done }
        })
        .await;
        assert!(ok, "expected {n} lifecycle events, got {}", events.len());
        events
    }

    fn nodes(&self) -> serde_json::Map<String, Value> {
        self.emulator.kube_state("demo")["nodes"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    fn workers(&self) -> Vec<String> {
        self.nodes()
            .into_iter()
            .filter(|(_, n)| n["role"] == "worker")
            .map(|(name, _)| name)
            .collect()
    }

    /// Every kubectl command line the control plane's scripts ran, in order.
    fn kubectl_calls(&self) -> Vec<Vec<String>> {
        let path = self.emulator.state_dir().join("clusters/demo/calls.jsonl");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|c| c["tool"] == "kubectl" && c["caller"] != "")
            .map(|c| {
                c["argv"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect()
    }

    async fn ec2_state(&self, id: &str) -> String {
        let out = self
            .clients
            .ec2
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .expect("described");
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(|i| Some(i.state()?.name()?.as_str().to_owned()))
            .next()
            .unwrap_or_default()
    }

    /// Completions of the terminate hook.
    fn terminate_completions(&self) -> Vec<Value> {
        self.emulator
            .lifecycle_log()
            .into_iter()
            .filter(|a| a["action"] == "CONTINUE" && a["hook"] == "joinkeeper-terminate")
            .collect()
    }
}

fn at(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().unwrap_or_default(), &Rfc3339).expect("an RFC 3339 time")
}

#[tokio::test]
async fn a_drain_a_disruption_budget_blocks_names_the_pod_and_the_node_goes_with_the_instance() {
    let (w, ctx) = World::with_workers(config(&[]), &[("emulator:stuck-pods", "1")], 1).await;
    let node = w.workers().pop().expect("the worker's Node");
    let guarded: Vec<String> = w.emulator.kube_state("demo")["pods"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p["pdb_blocked"] == true)
        .map(|p| {
            format!(
                "{}/{} (pdb)",
                p["namespace"].as_str().unwrap_or_default(),
                p["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(guarded.len(), 1);

    set_capacity(&w.clients, "demo-workers", 0).await;
    let terminate = w.events(1).await;
    let reports = handle_all(&ctx, &terminate, Transition::Terminating).await;
    let r = reports
        .iter()
        .find(|r| r.outcome == ActionOutcome::Completed)
        .unwrap_or_else(|| panic!("completed after the drain timed out: {reports:#?}"));
    assert!(r.reason.contains("timeout"), "{}", r.reason);
    assert_eq!(
        r.left_pods, guarded,
        "the pod the budget kept, by name, with why"
    );
    let blocked: Vec<Value> = ctx
        .metrics
        .lines()
        .into_iter()
        .filter(|l| l.get("DrainBlockedPods").is_some())
        .collect();
    assert_eq!(blocked.len(), 1, "{blocked:?}");
    assert_eq!(blocked[0]["DrainBlockedPods"], 1.0);
    assert_eq!(blocked[0]["Pods"], guarded[0].as_str());

    // The instance terminated on completion; the run that completed it deleted its Node.
    assert_eq!(w.ec2_state(&r.instance).await, "terminated");
    assert!(
        !w.nodes().contains_key(&node),
        "the Node of the terminated instance is deleted: {:?}\n{}",
        w.nodes().keys(),
        w.emulator.log()
    );
    let deletes = w.emulator.commands(Some("joinkeeper-cordon"));
    assert_eq!(deletes.len(), 1, "one Node deletion: {deletes:?}");
    assert!(
        at(&deletes[0]["time"]) >= at(&w.terminate_completions()[0]["time"]),
        "deleted after the action completed, never before"
    );
}

#[tokio::test]
async fn the_node_of_an_instance_gone_without_its_action_or_any_record_is_deleted_by_the_schedule()
{
    // Two workers: one's drain runs (30 s) when EC2 terminates it (its action goes with it);
    // the other is terminated through EC2 in service, no hook, no record.
    let (w, ctx) = World::with_workers(config(&[]), &[("emulator:drain-seconds", "30")], 2).await;
    let nodes_before = w.workers();
    assert_eq!(nodes_before.len(), 2);
    let instances: Vec<String> = group_states(&w.clients, "demo-workers")
        .await
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    let (draining, in_service) = (instances[0].clone(), instances[1].clone());

    w.clients
        .autoscaling
        .terminate_instance_in_auto_scaling_group()
        .instance_id(&draining)
        .should_decrement_desired_capacity(true)
        .send()
        .await
        .expect("scale in one");
    let terminate = w.events(1).await;
    // A short invocation (8 s, 3 of them kept for the hand-over): it starts the drain and stops
    // while the drain runs.
    let _ = handle_lifecycle(
        &ctx,
        &terminate[0],
        Transition::Terminating,
        &inv("short", 8),
    )
    .await
    .expect("handled");
    assert_eq!(w.emulator.commands(Some("joinkeeper-drain")).len(), 1);
    for id in [&draining, &in_service] {
        w.clients
            .ec2
            .terminate_instances()
            .instance_ids(id)
            .send()
            .await
            .expect("terminated through EC2");
    }

    let ran = handle_schedule(&ctx, &scheduled_event(), &inv("schedule", 120))
        .await
        .expect("scheduled run");
    let left: Vec<String> = w
        .workers()
        .into_iter()
        .filter(|n| nodes_before.contains(n))
        .collect();
    assert!(
        left.is_empty(),
        "no Node outlives its instance: {left:?}\n{ran:?}\n{}",
        w.emulator.log()
    );
    // The group replaced the instance terminated in service: its new Node is never touched.
    assert!(
        w.workers().iter().any(|n| !nodes_before.contains(n)),
        "the replacement's Node stays: {:?}",
        w.nodes().keys()
    );
    let deletions = w.emulator.commands(Some("joinkeeper-cordon"));
    assert_eq!(
        deletions.len(),
        2,
        "one deletion per dead Node: {deletions:?}"
    );
}

#[tokio::test]
async fn the_node_leaves_external_load_balancers_first_and_the_instance_outlives_the_delay() {
    const DELAY: i64 = 6;
    let (w, ctx) = World::with_workers(
        config(&[("JOINKEEPER_DEREGISTRATION_DELAY_SECONDS", "6")]),
        &[("emulator:drain-seconds", "1")],
        1,
    )
    .await;
    let node = w.workers().pop().expect("the worker's Node");
    set_capacity(&w.clients, "demo-workers", 0).await;
    let terminate = w.events(1).await;
    let reports = handle_all(&ctx, &terminate, Transition::Terminating).await;
    assert!(
        reports.iter().any(|r| r.outcome == ActionOutcome::Drained),
        "{reports:#?}"
    );
    // Labelled out of load balancers, then cordoned, then drained, then deleted.
    let calls = w.kubectl_calls();
    let step = |verb: &str| {
        calls
            .iter()
            .position(|c| c.first().map(String::as_str) == Some(verb) && c.contains(&node))
            .unwrap_or_else(|| panic!("no kubectl {verb} of {node}: {calls:?}"))
    };
    let label = step("label");
    assert!(
        calls[label].iter().any(|a| a == LB_LABEL),
        "{:?}",
        calls[label]
    );
    assert!(label < step("cordon") && step("cordon") < step("drain"));
    assert!(step("drain") < step("delete"));
    // The action completed no sooner than the delay after the drain (and its label) began.
    let drain = w.emulator.commands(Some("joinkeeper-drain"));
    let done = w.terminate_completions();
    assert_eq!((drain.len(), done.len()), (1, 1));
    let waited = at(&done[0]["time"]) - at(&drain[0]["time"]);
    assert!(
        waited >= time::Duration::seconds(DELAY),
        "completed {waited} after the drain was sent (delay {DELAY} s)"
    );
}

#[tokio::test]
async fn several_leaving_at_once_are_all_cordoned_first_then_drained_one_at_a_time() {
    let (w, ctx) = World::with_workers(
        config(&[("JOINKEEPER_DRAIN_CONCURRENCY", "1")]),
        &[("emulator:drain-seconds", "2")],
        3,
    )
    .await;
    let mut nodes = w.workers();
    nodes.sort();
    set_capacity(&w.clients, "demo-workers", 0).await;
    let terminates = w.events(3).await;
    let reports = handle_all(&ctx, &terminates, Transition::Terminating).await;
    let drained = reports
        .iter()
        .filter(|r| r.outcome == ActionOutcome::Drained)
        .count();
    assert_eq!(drained, 3, "{reports:#?}\n{}", w.emulator.log());
    assert!(w.workers().is_empty());

    let calls = w.kubectl_calls();
    let first_drain = calls
        .iter()
        .position(|c| c.first().map(String::as_str) == Some("drain"))
        .expect("drains ran");
    let cordon_all = calls
        .iter()
        .position(|c| {
            c.first().map(String::as_str) == Some("cordon") && nodes.iter().all(|n| c.contains(n))
        })
        .unwrap_or_else(|| panic!("no one cordon of all three Nodes: {calls:?}"));
    assert!(cordon_all < first_drain, "all cordoned before any drain");
    // One drain at a time: each Node's drain ends (its delete) before the next drain begins.
    let order: Vec<&str> = calls
        .iter()
        .filter_map(|c| match c.first().map(String::as_str) {
            Some("drain") => Some("drain"),
            Some("delete") => Some("delete"),
            _ => None,
        })
        .collect();
    assert_eq!(
        order,
        ["drain", "delete", "drain", "delete", "drain", "delete"],
        "{calls:?}"
    );
}
