//! The per-cluster reconciler against the emulator: real Auto Scaling wait states, real Run
//! Command execution of the node-status, drain and join-log documents, and workers that run the
//! real `joinkeeper-join` from user data against the stand-in control plane.
#![recursion_limit = "256"] // the handlers' futures nest deeply; a clean build overflows the default

use std::time::Duration;

use joinkeeper::handler::{handle_lifecycle, LifecycleResponse};
use joinkeeper::lifecycle::Transition;
use joinkeeper::names::ClusterName;
use joinkeeper::reconcile::{
    reconcile, ActionOutcome, ActionReport, ReconcileOutcome, ReconcileReport,
};
use joinkeeper::{Context, Invocation};
use joinkeeper_tests::delivery::{handle_all, inv};
use joinkeeper_tests::*;
use serde_json::Value;

struct World {
    emulator: Emulator,
    clients: joinkeeper::aws::AwsClients,
    logs: LogCapture,
}

fn demo() -> ClusterName {
    ClusterName::parse("demo").expect("name")
}

impl World {
    /// An emulator with the documents, one control plane for `cluster` and a fresh record.
    async fn new(cluster: &str, join_deadline: u64) -> (World, Context) {
        let (emulator, clients) = Emulator::with_documents().await;
        launch_control_plane(&emulator, &clients, cluster, &[]).await;
        let ctx = Context::new(
            hook_config(join_deadline),
            &emulator.function_clients("launch-hook").await,
        );
        joinkeeper::regenerate::ensure_fresh(
            &ctx,
            &ClusterName::parse(cluster).expect("name"),
            Duration::from_secs(3600),
            &inv("setup", 120),
        )
        .await
        .expect("initial record");
        (
            World {
                emulator,
                clients,
                logs: LogCapture::default(),
            },
            ctx,
        )
    }

    /// The group `demo-workers` of `demo` (hooks whose heartbeat timeout is `heartbeat` s,
    /// `tags` as [`create_worker_group`] takes them), scaled out to `n`.
    async fn scale_out(&self, heartbeat: i32, tags: &[(&str, &str)], n: i32) {
        create_worker_group(&self.clients, "demo", "demo-workers", heartbeat, tags).await;
        set_capacity(&self.clients, "demo-workers", n).await;
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

/// The report of a reconcile of `demo` that ran (not one held elsewhere).
async fn reconcile_demo(ctx: &Context, inv: &Invocation) -> ReconcileReport {
    match reconcile(ctx, &demo(), inv).await.expect("reconciled") {
        ReconcileOutcome::Ran(run) => run,
        other => panic!("{other:?}"),
    }
}

/// The report of a handled event that reconciled.
fn reconciled(response: LifecycleResponse) -> ReconcileReport {
    match response {
        LifecycleResponse::Reconciled {
            outcome: ReconcileOutcome::Ran(run),
            ..
        } => run,
        other => panic!("did not reconcile: {other:?}"),
    }
}

fn count(reports: &[ActionReport], outcome: ActionOutcome) -> usize {
    reports.iter().filter(|r| r.outcome == outcome).count()
}

#[tokio::test]
async fn scale_out_by_three_two_ready_continue_one_never_ready_abandoned_duplicates_change_nothing()
{
    let (w, ctx) = World::new("demo", 12).await;
    let _g = w.logs.install();
    w.scale_out(300, &[], 2).await;
    let mut events = wait_for_events(&w, 2).await;
    tag_group(&w.clients, "demo-workers", "emulator:join", "never-ready").await;
    set_capacity(&w.clients, "demo-workers", 3).await;
    events.extend(wait_for_events(&w, 1).await);

    let reports = handle_all(&ctx, &events, Transition::Launching).await;
    assert_eq!(
        (
            count(&reports, ActionOutcome::Continue),
            count(&reports, ActionOutcome::Abandon)
        ),
        (2, 1),
        "{reports:#?}\n{}",
        w.emulator.log()
    );
    let abandoned = reports
        .iter()
        .find(|r| r.outcome == ActionOutcome::Abandon)
        .expect("abandoned");
    assert!(
        abandoned.reason.contains("NotReady"),
        "{}",
        abandoned.reason
    );
    assert_eq!(w.actions("CONTINUE").len(), 2);
    assert_eq!(w.actions("ABANDON").len(), 1);
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
    let again = handle_all(&ctx, &events, Transition::Launching).await;
    assert!(again.is_empty(), "{again:#?}");
    assert_eq!(w.actions("CONTINUE").len(), 2);
    assert_eq!(w.actions("ABANDON").len(), 1);
    w.assert_no_secret_logged();
}

#[tokio::test]
async fn events_for_other_groups_foreign_hooks_and_hostile_fields_change_nothing() {
    let (w, ctx) = World::new("demo", 12).await;
    w.scale_out(300, &[], 1).await;
    let event = wait_for_events(&w, 1).await.remove(0);
    let call = |e: Value, t| {
        let ctx = &ctx;
        async move { handle_lifecycle(ctx, &e, t, &inv("req", 30)).await }
    };

    let mut unknown = event.clone();
    unknown["detail"]["AutoScalingGroupName"] = "someone-elses-group".into();
    let r = call(unknown, Transition::Launching).await.expect("ignored");
    assert!(matches!(r, LifecycleResponse::Ignored { .. }), "{r:?}");

    let mut foreign = event.clone();
    foreign["detail"]["LifecycleHookName"] = "log-shipper-launch".into();
    let r = call(foreign, Transition::Launching).await.expect("ignored");
    assert!(
        matches!(r, LifecycleResponse::Ignored { ref reason } if reason.contains("not joinkeeper's")),
        "{r:?}"
    );

    let mut hostile = event.clone();
    hostile["detail"]["EC2InstanceId"] = "i-0000000a; shutdown -h now".into();
    let err = call(hostile, Transition::Launching)
        .await
        .expect_err("rejected");
    assert!(err.to_string().contains("instance id"), "{err}");
    assert_eq!(err.error_type(), "joinkeeper.BadEvent");

    let mut missing = event.clone();
    missing["detail"]
        .as_object_mut()
        .map(|d| d.remove("LifecycleHookName"));
    assert!(call(missing, Transition::Launching).await.is_err());

    let err = call(event.clone(), Transition::Terminating)
        .await
        .expect_err("wrong handler");
    assert!(err.to_string().contains("handler"), "{err}");

    assert!(
        w.emulator.lifecycle_log().is_empty(),
        "nothing completed: {:?}",
        w.emulator.lifecycle_log()
    );
    assert!(w.emulator.commands(Some("joinkeeper-drain")).is_empty());
}

#[tokio::test]
async fn a_foreign_hook_on_the_same_group_is_never_completed_or_heartbeated() {
    let (w, ctx) = World::new("demo", 600).await;
    create_worker_group(&w.clients, "demo", "demo-workers", 300, &[]).await;
    w.clients
        .autoscaling
        .put_lifecycle_hook()
        .auto_scaling_group_name("demo-workers")
        .lifecycle_hook_name("log-shipper-launch")
        .lifecycle_transition("autoscaling:EC2_INSTANCE_LAUNCHING")
        .heartbeat_timeout(300)
        .default_result("ABANDON")
        .send()
        .await
        .expect("foreign hook");
    set_capacity(&w.clients, "demo-workers", 1).await;
    wait_for_events(&w, 2).await;
    let run = reconcile_demo(&ctx, &inv("req", 20)).await;
    assert_eq!(count(&run.actions, ActionOutcome::Continue), 1, "{run:#?}");
    let log = w.emulator.lifecycle_log();
    assert!(
        log.iter().all(|a| a["hook"] != "log-shipper-launch"),
        "{log:?}"
    );
    // Still held by the other tool's hook, and joinkeeper does not ask about it again.
    let states = group_states(&w.clients, "demo-workers").await;
    assert!(
        states.iter().all(|(_, s)| s == "Pending:Wait"),
        "{states:?}"
    );
}

#[tokio::test]
async fn fifty_waiting_instances_cost_one_node_status_command_per_pass_and_no_early_heartbeats() {
    let (w, ctx) = World::new("demo", 600).await;
    w.scale_out(300, &[("emulator:user-data", "skip")], 50)
        .await;
    let before = w.emulator.commands(Some("joinkeeper-node-status")).len();
    let started = std::time::Instant::now();

    let run = reconcile_demo(&ctx, &inv("req", 16)).await;

    assert!(
        started.elapsed() < Duration::from_secs(16),
        "ran past its deadline: {:?}",
        started.elapsed()
    );
    assert_eq!(run.pending, 50);
    assert!(run.passes >= 2, "{run:?}");
    assert_eq!(
        w.emulator.commands(Some("joinkeeper-node-status")).len() - before,
        run.passes as usize,
        "one Run Command per pass for the whole cluster"
    );
    assert!(
        w.emulator
            .lifecycle_log()
            .iter()
            .all(|a| a["action"] != "HEARTBEAT"),
        "no heartbeat before half the hook's timeout"
    );
}

#[tokio::test]
async fn scale_in_drains_and_deletes_the_node_then_completes_and_a_duplicate_does_not_drain_again()
{
    let (w, ctx) = World::new("demo", 12).await;
    let _g = w.logs.install();
    w.scale_out(300, &[], 2).await;
    let launches = wait_for_events(&w, 2).await;
    let reports = handle_all(&ctx, &launches, Transition::Launching).await;
    assert_eq!(count(&reports, ActionOutcome::Continue), 2, "{reports:#?}");
    let nodes = |w: &World| {
        w.emulator.kube_state("demo")["nodes"]
            .as_object()
            .map(|n| n.len())
    };
    assert_eq!(nodes(&w), Some(2));

    set_capacity(&w.clients, "demo-workers", 1).await;
    let terminates = wait_for_events(&w, 1).await;
    let reports = handle_all(&ctx, &terminates, Transition::Terminating).await;
    assert_eq!(
        count(&reports, ActionOutcome::Drained),
        1,
        "{reports:#?}\n{}",
        w.emulator.log()
    );
    assert_eq!(nodes(&w), Some(1), "Node deleted");
    let drain = w.emulator.commands(Some("joinkeeper-drain"));
    assert_eq!(drain.len(), 1);
    let completes: Vec<Value> = w
        .emulator
        .lifecycle_log()
        .into_iter()
        .filter(|a| a["action"] == "CONTINUE" && a["hook"] == "joinkeeper-terminate")
        .collect();
    assert_eq!(completes.len(), 1);
    assert!(drain[0]["time"].as_str() < completes[0]["time"].as_str());

    let dup = handle_all(&ctx, &terminates, Transition::Terminating).await;
    assert!(dup.is_empty(), "{dup:?}");
    assert_eq!(
        w.emulator.commands(Some("joinkeeper-drain")).len(),
        1,
        "no second drain"
    );
    w.assert_no_secret_logged();
}

#[tokio::test]
async fn a_worker_that_never_joined_is_completed_at_once_without_a_drain() {
    let (w, ctx) = World::new("demo", 600).await;
    w.scale_out(300, &[("emulator:user-data", "skip")], 1).await;
    let launch = wait_for_events(&w, 1).await;
    let instance = launch[0]["detail"]["EC2InstanceId"]
        .as_str()
        .expect("id")
        .to_owned();
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
    let reports = handle_all(&ctx, &terminate, Transition::Terminating).await;
    let r = reports.first().expect("decided");
    assert_eq!(r.outcome, ActionOutcome::Drained, "{r:?}");
    assert!(r.reason.contains("no Node"), "{}", r.reason);
    assert!(w.emulator.commands(Some("joinkeeper-drain")).is_empty());
}

#[tokio::test]
async fn a_drain_outlives_its_invocation_and_the_next_one_follows_it_by_command_id() {
    let (w, ctx) = World::new("demo", 12).await;
    // Heartbeat timeout 30 s (AWS's minimum); the drain takes 8 s.
    w.scale_out(30, &[("emulator:drain-seconds", "8")], 1).await;
    let launch = wait_for_events(&w, 1).await;
    assert_eq!(
        count(
            &handle_all(&ctx, &launch, Transition::Launching).await,
            ActionOutcome::Continue
        ),
        1
    );
    set_capacity(&w.clients, "demo-workers", 0).await;
    let terminate = wait_for_events(&w, 1).await;

    // First invocation: 4 s to live. It starts the drain, heartbeats, and stops in time.
    let started = std::time::Instant::now();
    let first = handle_lifecycle(
        &ctx,
        &terminate[0],
        Transition::Terminating,
        &inv("first", 4),
    )
    .await
    .expect("handled");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let run = reconciled(first);
    assert_eq!(run.pending, 1, "{run:?}");
    assert_eq!(w.emulator.commands(Some("joinkeeper-drain")).len(), 1);
    assert!(
        !w.actions("HEARTBEAT").is_empty(),
        "heartbeated while the drain runs"
    );

    // A later invocation (the retried event, or the schedule) follows the same command.
    let run = reconcile_demo(&ctx, &inv("later", 30)).await;
    assert_eq!(count(&run.actions, ActionOutcome::Drained), 1, "{run:#?}");
    assert_eq!(
        w.emulator.commands(Some("joinkeeper-drain")).len(),
        1,
        "not drained twice"
    );
    let log = w.emulator.lifecycle_log();
    assert_eq!(
        log.last().map(|a| a["action"].clone()),
        Some("CONTINUE".into()),
        "{log:?}"
    );
}

#[tokio::test]
async fn a_caller_that_finds_a_holder_about_to_stop_takes_over_so_no_action_waits_for_the_schedule()
{
    let (w, ctx) = World::new("demo", 600).await;
    w.scale_out(300, &[], 1).await;
    let first = wait_for_events(&w, 1).await;
    // The first holder has only 3 s: it stops (deadline) before its worker is Ready.
    let short = inv("short", 3);
    let holder = handle_lifecycle(&ctx, &first[0], Transition::Launching, &short);
    let late = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        set_capacity(&w.clients, "demo-workers", 2).await;
        let second = wait_for_events(&w, 1).await;
        handle_lifecycle(&ctx, &second[0], Transition::Launching, &inv("late", 60)).await
    };
    let (_, late) = tokio::join!(holder, late);
    let run = reconciled(late.expect("handled"));
    assert_eq!(count(&run.actions, ActionOutcome::Continue), 2, "{run:#?}");
    assert!(group_states(&w.clients, "demo-workers")
        .await
        .iter()
        .all(|(_, s)| s == "InService"));
}
