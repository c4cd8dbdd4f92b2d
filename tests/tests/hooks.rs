//! Launch and terminate lifecycle hooks against the emulator: real Auto Scaling wait states, real
//! Run Command execution of the node-status, drain and join-log documents, and workers that run
//! the real `joinkeeper-join` from user data against the stand-in control plane.

use std::time::Duration;

use joinkeeper::hooks::Hooks;
use joinkeeper::lifecycle::Transition;
use joinkeeper::names::ClusterName;
use joinkeeper::regenerate::Regenerator;
use joinkeeper_tests::*;
use serde_json::Value;

struct World {
    emulator: Emulator,
    clients: joinkeeper::aws::AwsClients,
    logs: LogCapture,
}

impl World {
    /// An emulator with the documents, one control plane for `cluster` and a fresh record.
    async fn new(cluster: &str, join_deadline: u64) -> (World, Hooks) {
        let emulator = Emulator::start();
        let clients = emulator.clients().await;
        create_documents(&clients).await;
        launch_instance(&clients, cluster, "control-plane", &[]).await;
        let regenerator = Regenerator::new(hook_config(join_deadline), &clients);
        regenerator
            .ensure_fresh(
                &ClusterName::parse(cluster).expect("name"),
                Duration::from_secs(3600),
            )
            .await
            .expect("initial record");
        let hooks = Hooks::new(regenerator, &clients);
        (
            World {
                emulator,
                clients,
                logs: LogCapture::default(),
            },
            hooks,
        )
    }

    fn actions(&self, action: &str) -> Vec<Value> {
        self.emulator
            .lifecycle_log()
            .into_iter()
            .filter(|a| a["action"] == action && a["result"] == "ok")
            .collect()
    }

    fn assert_no_secret_logged(&self) {
        let text = self.logs.text();
        for token in self.emulator.kube_state("demo")["tokens"]
            .as_object()
            .map(|t| t.values().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            if let Some(secret) = token["secret"].as_str() {
                assert!(!text.contains(secret), "a token secret reached the logs");
            }
        }
    }
}

async fn wait_for_events(w: &World, n: usize) -> Vec<Value> {
    let mut events = Vec::new();
    let ok = eventually(Duration::from_secs(20), || {
        events.extend(w.emulator.take_events());
        let done = events.len() >= n;
        async move { done }
    })
    .await;
    assert!(ok, "expected {n} lifecycle events, got {}", events.len());
    events
}

async fn handle_all(
    hooks: &Hooks,
    events: &[Value],
    transition: Transition,
) -> Vec<joinkeeper::hooks::HookReport> {
    // Polled together on this thread, so the log capture sees every line.
    let futures = events.iter().map(|e| hooks.handle_event(e, transition));
    futures_util::future::join_all(futures)
        .await
        .into_iter()
        .map(|r| r.expect("handled"))
        .collect()
}

#[tokio::test]
async fn scale_out_by_three_two_ready_continue_one_never_ready_abandoned_duplicates_change_nothing()
{
    let (w, hooks) = World::new("demo", 12).await;
    let _g = w.logs.install();
    create_worker_group(&w.clients, "demo", "demo-workers", 300, &[]).await;
    set_capacity(&w.clients, "demo-workers", 2).await;
    let mut events = wait_for_events(&w, 2).await;
    tag_group(&w.clients, "demo-workers", "emulator:join", "never-ready").await;
    set_capacity(&w.clients, "demo-workers", 3).await;
    events.extend(wait_for_events(&w, 1).await);
    assert!(group_states(&w.clients, "demo-workers")
        .await
        .iter()
        .all(|(_, s)| s == "Pending:Wait"));

    let reports = handle_all(&hooks, &events, Transition::Launching).await;
    let outcome = |o: &str| reports.iter().filter(|r| r.outcome == o).count();
    assert_eq!(
        (outcome("continue"), outcome("abandon")),
        (2, 1),
        "{reports:#?}\n{}",
        w.emulator.log()
    );
    let abandoned = reports
        .iter()
        .find(|r| r.outcome == "abandon")
        .expect("abandoned");
    assert!(
        abandoned.reason.contains("NotReady"),
        "{}",
        abandoned.reason
    );
    assert_eq!(w.actions("CONTINUE").len(), 2);
    assert_eq!(w.actions("ABANDON").len(), 1);
    // The reason and the worker's own join log reached the logs, without the token.
    let abandon_line = w
        .logs
        .lines()
        .into_iter()
        .find(|l| l["message"] == "abandoning a worker that could not join")
        .expect("abandon log line");
    assert!(
        abandon_line["join_log"]
            .as_str()
            .unwrap_or("")
            .contains("join"),
        "{abandon_line}"
    );

    // Every event delivered again: nothing is completed or abandoned a second time.
    let again = handle_all(&hooks, &events, Transition::Launching).await;
    assert!(again.iter().all(|r| r.outcome == "skipped"), "{again:#?}");
    assert_eq!(w.actions("CONTINUE").len(), 2);
    assert_eq!(w.actions("ABANDON").len(), 1);
    let states = group_states(&w.clients, "demo-workers").await;
    assert_eq!(
        states.iter().filter(|(_, s)| s == "InService").count(),
        2,
        "{states:?}"
    );
    w.assert_no_secret_logged();
}

#[tokio::test]
async fn events_for_other_groups_and_hostile_fields_change_nothing() {
    let (w, hooks) = World::new("demo", 12).await;
    let _g = w.logs.install();
    create_worker_group(&w.clients, "demo", "demo-workers", 300, &[]).await;
    set_capacity(&w.clients, "demo-workers", 1).await;
    let event = wait_for_events(&w, 1).await.remove(0);

    let mut unknown = event.clone();
    unknown["detail"]["AutoScalingGroupName"] = "someone-elses-group".into();
    let r = hooks
        .handle_event(&unknown, Transition::Launching)
        .await
        .expect("skipped");
    assert_eq!(r.outcome, "skipped");

    let mut hostile = event.clone();
    hostile["detail"]["EC2InstanceId"] = "i-0000000a; shutdown -h now".into();
    let err = hooks
        .handle_event(&hostile, Transition::Launching)
        .await
        .expect_err("rejected");
    assert!(err.to_string().contains("instance id"), "{err}");

    let mut missing = event.clone();
    missing["detail"]
        .as_object_mut()
        .map(|d| d.remove("LifecycleHookName"));
    assert!(hooks
        .handle_event(&missing, Transition::Launching)
        .await
        .is_err());

    let r = hooks
        .handle_event(&event, Transition::Terminating)
        .await
        .expect("skipped");
    assert_eq!(
        r.outcome, "skipped",
        "a launch event sent to the terminate handler is not acted on"
    );

    assert!(
        w.emulator.lifecycle_log().is_empty(),
        "nothing completed: {:?}",
        w.emulator.lifecycle_log()
    );
    assert!(w.emulator.commands(Some("joinkeeper-drain")).is_empty());
}

#[tokio::test]
async fn a_sweep_over_fifty_waiting_instances_sends_one_node_status_command() {
    let (w, hooks) = World::new("demo", 600).await;
    create_worker_group(
        &w.clients,
        "demo",
        "demo-workers",
        300,
        &[("emulator:user-data", "skip")],
    )
    .await;
    set_capacity(&w.clients, "demo-workers", 50).await;
    assert_eq!(
        group_states(&w.clients, "demo-workers")
            .await
            .iter()
            .filter(|(_, s)| s == "Pending:Wait")
            .count(),
        50
    );
    let before = w.emulator.commands(Some("joinkeeper-node-status")).len();

    let reports = hooks.sweep().await.expect("sweep");

    assert_eq!(reports.len(), 50);
    assert!(
        reports.iter().all(|r| r.outcome == "waiting"),
        "{:?}",
        reports.first()
    );
    assert_eq!(
        w.emulator.commands(Some("joinkeeper-node-status")).len() - before,
        1,
        "one Run Command for the whole cluster"
    );
    assert_eq!(
        w.emulator
            .lifecycle_log()
            .iter()
            .filter(|a| a["action"] == "HEARTBEAT")
            .count(),
        50
    );
}

#[tokio::test]
async fn scale_in_drains_and_deletes_the_node_then_completes_and_a_duplicate_does_not_drain_again()
{
    let (w, hooks) = World::new("demo", 12).await;
    let _g = w.logs.install();
    create_worker_group(&w.clients, "demo", "demo-workers", 300, &[]).await;
    set_capacity(&w.clients, "demo-workers", 2).await;
    let launches = wait_for_events(&w, 2).await;
    let reports = handle_all(&hooks, &launches, Transition::Launching).await;
    assert!(
        reports.iter().all(|r| r.outcome == "continue"),
        "{reports:#?}"
    );
    assert_eq!(
        w.emulator.kube_state("demo")["nodes"]
            .as_object()
            .map(|n| n.len()),
        Some(2)
    );

    set_capacity(&w.clients, "demo-workers", 1).await;
    let terminates = wait_for_events(&w, 1).await;
    let report = hooks
        .handle_event(&terminates[0], Transition::Terminating)
        .await
        .expect("terminated");
    assert_eq!(
        report.outcome,
        "drained",
        "{report:?}\n{}",
        w.emulator.log()
    );
    assert_eq!(
        w.emulator.kube_state("demo")["nodes"]
            .as_object()
            .map(|n| n.len()),
        Some(1),
        "Node deleted"
    );
    // Drained before the hook completed.
    let drain = w.emulator.commands(Some("joinkeeper-drain"));
    assert_eq!(drain.len(), 1);
    let completes: Vec<Value> = w
        .emulator
        .lifecycle_log()
        .into_iter()
        .filter(|a| a["action"] == "CONTINUE" && a["hook"] == "joinkeeper-terminate")
        .collect();
    assert_eq!(completes.len(), 1);
    assert!(
        drain[0]["time"].as_str() < completes[0]["time"].as_str(),
        "drain {:?} before complete {:?}",
        drain[0]["time"],
        completes[0]["time"]
    );

    let dup = hooks
        .handle_event(&terminates[0], Transition::Terminating)
        .await
        .expect("duplicate");
    assert_eq!(dup.outcome, "skipped");
    assert_eq!(
        w.emulator.commands(Some("joinkeeper-drain")).len(),
        1,
        "no second drain"
    );
    w.assert_no_secret_logged();
}

#[tokio::test]
async fn a_worker_that_never_joined_is_completed_at_once_without_a_drain() {
    let (w, hooks) = World::new("demo", 600).await;
    create_worker_group(
        &w.clients,
        "demo",
        "demo-workers",
        300,
        &[("emulator:user-data", "skip")],
    )
    .await;
    set_capacity(&w.clients, "demo-workers", 1).await;
    let launch = wait_for_events(&w, 1).await;
    let instance = launch[0]["detail"]["EC2InstanceId"]
        .as_str()
        .expect("id")
        .to_owned();
    // Let it in without joining, then scale in.
    w.clients
        .autoscaling
        .complete_lifecycle_action()
        .auto_scaling_group_name("demo-workers")
        .lifecycle_hook_name("joinkeeper-launch")
        .instance_id(&instance)
        .lifecycle_action_result("CONTINUE")
        .send()
        .await
        .expect("continue");
    set_capacity(&w.clients, "demo-workers", 0).await;
    let terminate = wait_for_events(&w, 1).await;
    let report = hooks
        .handle_event(&terminate[0], Transition::Terminating)
        .await
        .expect("completed");
    assert_eq!(report.outcome, "completed");
    assert!(report.reason.contains("never joined"), "{}", report.reason);
    assert!(w.emulator.commands(Some("joinkeeper-drain")).is_empty());
}

#[tokio::test]
async fn a_drain_longer_than_a_heartbeat_interval_records_heartbeats_then_completes() {
    let (w, hooks) = World::new("demo", 12).await;
    // Heartbeat timeout 30 s (AWS's minimum): a heartbeat is due every 15 s.
    create_worker_group(
        &w.clients,
        "demo",
        "demo-workers",
        30,
        &[("emulator:drain-seconds", "18")],
    )
    .await;
    set_capacity(&w.clients, "demo-workers", 1).await;
    let launch = wait_for_events(&w, 1).await;
    assert_eq!(
        hooks
            .handle_event(&launch[0], Transition::Launching)
            .await
            .expect("launched")
            .outcome,
        "continue"
    );
    set_capacity(&w.clients, "demo-workers", 0).await;
    let terminate = wait_for_events(&w, 1).await;

    let report = hooks
        .handle_event(&terminate[0], Transition::Terminating)
        .await
        .expect("terminated");

    assert_eq!(report.outcome, "drained", "{report:?}");
    assert!(report.heartbeats >= 1, "{report:?}");
    let log = w.emulator.lifecycle_log();
    let beats = log
        .iter()
        .filter(|a| a["action"] == "HEARTBEAT" && a["hook"] == "joinkeeper-terminate")
        .count();
    assert!(beats >= 1, "{log:?}");
    let last = log.last().expect("entries");
    assert_eq!(last["action"], "CONTINUE", "completed after the heartbeats");
}
