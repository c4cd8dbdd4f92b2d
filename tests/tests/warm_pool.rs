//! Warm pools, other tools' hooks and failures, against the emulator: every warm-pool transition
//! through the reconciler, a launch out of a Running warm pool timed from when it left the pool,
//! a Node that belongs to another instance never lends its Ready condition, a pool stopping its
//! instances is no exit (their state changes and the schedule record none), and one failing
//! action does not stop the others.
#![recursion_limit = "256"] // the handlers' futures nest deeply; a clean build overflows the default

use std::time::Duration;

use joinkeeper::names::ClusterName;
use joinkeeper::reconcile::{reconcile, ActionOutcome, ReconcileOutcome, ReconcileReport};
use joinkeeper::{deadline::Deadline, Context, Invocation};
use joinkeeper_tests::*;

struct World {
    emulator: Emulator,
    clients: joinkeeper::aws::AwsClients,
    ctx: Context,
}

async fn world() -> World {
    world_with(600).await
}

async fn world_with(join_deadline: u64) -> World {
    let emulator = Emulator::start();
    let clients = emulator.clients().await;
    create_documents(&clients).await;
    launch_control_plane(&emulator, &clients, "demo", &[]).await;
    let ctx = Context::new(
        hook_config(join_deadline),
        &emulator.function_clients("launch-hook").await,
    );
    let cluster = ClusterName::parse("demo").expect("name");
    joinkeeper::regenerate::ensure_fresh(&ctx, &cluster, Duration::from_secs(3600), &inv(60))
        .await
        .expect("record");
    create_worker_group(
        &clients,
        "demo",
        "demo-workers",
        300,
        &[("emulator:user-data", "skip")],
    )
    .await;
    World {
        emulator,
        clients,
        ctx,
    }
}

fn inv(seconds: u64) -> Invocation {
    Invocation::new("test", Deadline::after(Duration::from_secs(seconds)))
}

async fn run(w: &World, seconds: u64) -> ReconcileReport {
    let cluster = ClusterName::parse("demo").expect("name");
    match reconcile(&w.ctx, &cluster, &inv(seconds))
        .await
        .expect("reconciled")
    {
        ReconcileOutcome::Ran(r) => r,
        other => panic!("{other:?}"),
    }
}

fn outcomes(r: &ReconcileReport, outcome: ActionOutcome) -> Vec<String> {
    r.actions
        .iter()
        .filter(|a| a.outcome == outcome)
        .map(|a| a.instance.clone())
        .collect()
}

async fn states_with(w: &World, state: &str, n: usize) -> Vec<String> {
    let mut found = Vec::new();
    let ok = eventually(Duration::from_secs(20), || {
        found = w
            .emulator
            .instance_states()
            .into_iter()
            .filter(|(_, s)| s == state)
            .map(|(i, _)| i)
            .collect();
        let done = found.len() >= n;
        async move { done }
    })
    .await;
    assert!(
        ok,
        "expected {n} instances in {state}: {:?}",
        w.emulator.instance_states()
    );
    found
}

/// The Node the instance's kubelet would register: its private DNS name, its providerID.
async fn node_of(w: &World, id: &str) -> (String, String) {
    let out = w
        .clients
        .ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .expect("describe");
    let dns = out.reservations()[0].instances()[0]
        .private_dns_name()
        .unwrap_or_default()
        .to_owned();
    (dns, format!("aws:///us-east-1a/{id}"))
}

/// Writes the line a worker's first boot, bound for the warm pool, ends with (node-scripts'
/// joinkeeper-join writes it; its own tests cover that side).
fn join_deferred(w: &World, id: &str, target: &str) {
    let log = w.emulator.state_dir().join("nodes").join(id).join("log");
    std::fs::create_dir_all(&log).expect("log dir");
    std::fs::write(
        log.join("joinkeeper-join.log"),
        format!("2026-11-27T00:00:00Z joinkeeper-join: join deferred cluster=demo node=ip-{} target={target}\n", &id[2..]),
    )
    .expect("join log");
}

/// The pool stopped `stopped` by design: their state changes (as EventBridge delivers them to
/// the terminate function) and the scheduled run record no exit and send no Node command.
async fn a_warm_pool_stopping_its_instances_is_no_exit(w: &World, stopped: &[String]) {
    let terminate = Context::new(
        hook_config(600),
        &w.emulator.function_clients("terminate-hook").await,
    );
    let fixture =
        std::fs::read_to_string(repo_root().join("events/instance-state-change-stopping.json"))
            .expect("fixture");
    for (id, state) in stopped
        .iter()
        .flat_map(|i| [(i, "stopping"), (i, "stopped")])
    {
        let mut event: serde_json::Value = serde_json::from_str(&fixture).expect("json");
        event["detail"]["instance-id"] = serde_json::json!(id);
        event["detail"]["state"] = serde_json::json!(state);
        event["resources"] =
            serde_json::json!([format!("arn:aws:ec2:us-east-1:123456789012:instance/{id}")]);
        let answer = Box::pin(joinkeeper::handler::handle_lifecycle_delivery(
            &terminate,
            &event,
            joinkeeper::lifecycle::Transition::Terminating,
            &inv(30),
        ))
        .await
        .expect("handled");
        let answer = serde_json::to_value(&answer).expect("answer");
        assert!(answer.to_string().contains("in the warm pool"), "{answer}");
    }
    let refresher = Context::new(
        hook_config(600),
        &w.emulator.function_clients("token-refresher").await,
    );
    Box::pin(joinkeeper::handler::handle_schedule(
        &refresher,
        &scheduled_event(),
        &inv(60),
    ))
    .await
    .expect("scheduled run");
    let exits = w
        .clients
        .ssm
        .get_parameters_by_path()
        .path("/joinkeeper/demo/exits")
        .recursive(true)
        .send()
        .await
        .expect("exits");
    assert!(exits.parameters().is_empty(), "{:?}", exits.parameters());
    assert!(
        w.emulator.commands(Some("joinkeeper-cordon")).is_empty(),
        "no Node command for a warm pool's instances"
    );
}

/// A warm pool for the workers: `min` .. `prepared` instances in `state`.
async fn put_warm_pool(
    w: &World,
    min: i32,
    prepared: i32,
    state: aws_sdk_autoscaling::types::WarmPoolState,
    reuse_on_scale_in: bool,
) {
    w.clients
        .autoscaling
        .put_warm_pool()
        .auto_scaling_group_name("demo-workers")
        .min_size(min)
        .max_group_prepared_capacity(prepared)
        .pool_state(state)
        .instance_reuse_policy(
            aws_sdk_autoscaling::types::InstanceReusePolicy::builder()
                .reuse_on_scale_in(reuse_on_scale_in)
                .build(),
        )
        .send()
        .await
        .expect("warm pool");
}

#[tokio::test]
async fn warm_pool_instances_enter_leave_return_and_retire_through_the_reconciler() {
    let w = world().await;
    put_warm_pool(
        &w,
        1,
        2,
        aws_sdk_autoscaling::types::WarmPoolState::Stopped,
        true,
    )
    .await;

    // EC2 -> WarmPool: CONTINUE once the worker is prepared, never waiting for a Node.
    let mut warming = states_with(&w, "Warmed:Pending:Wait", 2).await;
    warming.sort();
    // Still preparing (no join log yet): held, so Auto Scaling does not stop it mid-install.
    let early = run(&w, 4).await;
    assert_eq!(early.pending, 2, "{early:#?}");
    assert!(early.actions.is_empty());
    // Each worker's first boot, bound for the pool, ends by deferring its join.
    for id in &warming {
        join_deferred(&w, id, "Warmed:Stopped");
    }
    let r = run(&w, 20).await;
    let mut continued = outcomes(&r, ActionOutcome::Continue);
    continued.sort();
    assert_eq!(continued, warming, "{r:#?}");
    assert!(
        r.actions.iter().all(|a| a.reason.contains("prepared")),
        "completed because the workers said they were prepared: {r:#?}"
    );
    assert!(
        w.emulator.kube_state("demo")["nodes"]
            .as_object()
            .is_none_or(|n| n.is_empty()),
        "no worker joined"
    );
    let stopped = states_with(&w, "Warmed:Stopped", 2).await;
    // Boxed: the handlers' futures are large in a debug build, the test's stack is not.
    Box::pin(a_warm_pool_stopping_its_instances_is_no_exit(&w, &stopped)).await;

    // WarmPool -> AutoScalingGroup: a launch like any other, CONTINUE once its Node is Ready.
    set_capacity(&w.clients, "demo-workers", 1).await;
    let serving = states_with(&w, "Pending:Wait", 1).await;
    let waiting = run(&w, 4).await;
    assert_eq!(waiting.pending, 1, "no Node yet: {waiting:#?}");
    w.emulator
        .add_ready_nodes("demo", &[node_of(&w, &serving[0]).await]);
    let r = run(&w, 20).await;
    assert_eq!(outcomes(&r, ActionOutcome::Continue), serving, "{r:#?}");
    states_with(&w, "InService", 1).await;

    // AutoScalingGroup -> WarmPool (scale-in with reuse): drained and deleted, then completed.
    set_capacity(&w.clients, "demo-workers", 0).await;
    assert_eq!(states_with(&w, "Warmed:Pending:Wait", 1).await, serving);
    let r = run(&w, 30).await;
    assert_eq!(
        outcomes(&r, ActionOutcome::Drained),
        serving,
        "{r:#?}\n{}",
        w.emulator.log()
    );
    assert_eq!(w.emulator.commands(Some("joinkeeper-drain")).len(), 1);
    let nodes = w.emulator.kube_state("demo")["nodes"].clone();
    assert!(
        nodes.as_object().is_none_or(|n| n.is_empty()),
        "Node deleted: {nodes}"
    );
    let log = w.emulator.lifecycle_log();
    assert!(
        log.iter().any(|a| a["hook"] == "joinkeeper-terminate"
            && a["action"] == "CONTINUE"
            && a["result"] == "ok"),
        "completed on the terminate hook: {log:?}"
    );
    states_with(&w, "Warmed:Stopped", 2).await;

    // WarmPool -> terminated: nothing to drain, completed at once.
    w.clients
        .autoscaling
        .delete_warm_pool()
        .auto_scaling_group_name("demo-workers")
        .send()
        .await
        .expect("delete pool");
    let mut retiring = states_with(&w, "Warmed:Terminating:Wait", 2).await;
    retiring.sort();
    let r = run(&w, 20).await;
    let mut done = outcomes(&r, ActionOutcome::Drained);
    done.sort();
    assert_eq!(done, retiring, "{r:#?}");
    assert_eq!(
        w.emulator.commands(Some("joinkeeper-drain")).len(),
        1,
        "no second drain"
    );
}

#[tokio::test]
async fn a_launch_out_of_a_running_warm_pool_is_timed_from_leaving_it_not_from_launch_time() {
    const JOIN_DEADLINE: u64 = 20;
    let w = world_with(JOIN_DEADLINE).await;
    // One prepared worker, none left in the pool once it serves (no refill to wait on).
    put_warm_pool(
        &w,
        0,
        1,
        aws_sdk_autoscaling::types::WarmPoolState::Running,
        false,
    )
    .await;
    let pooled = states_with(&w, "Warmed:Pending:Wait", 1).await;
    join_deferred(&w, &pooled[0], "Warmed:Running");
    let r = run(&w, 20).await;
    assert_eq!(outcomes(&r, ActionOutcome::Continue), pooled, "{r:#?}");
    states_with(&w, "Warmed:Running", 1).await;

    // It sits in the Running pool past the join deadline: EC2's LaunchTime keeps its first start.
    tokio::time::sleep(Duration::from_secs(JOIN_DEADLINE + 3)).await;
    set_capacity(&w.clients, "demo-workers", 1).await;
    let serving = states_with(&w, "Pending:Wait", 1).await;
    assert_eq!(serving, pooled, "the pool's instance left it for service");

    // Just out of the pool, no Node yet: held, not ABANDONed for its time in the pool.
    let held = run(&w, 4).await;
    assert!(
        outcomes(&held, ActionOutcome::Abandon).is_empty(),
        "abandoned for its time in the pool: {held:#?}"
    );
    assert_eq!(held.pending, 1, "{held:#?}");

    // Its Node becomes Ready a few seconds after it left the pool: CONTINUE.
    tokio::time::sleep(Duration::from_secs(3)).await;
    w.emulator
        .add_ready_nodes("demo", &[node_of(&w, &serving[0]).await]);
    let r = run(&w, 20).await;
    assert_eq!(outcomes(&r, ActionOutcome::Continue), serving, "{r:#?}");
    states_with(&w, "InService", 1).await;
    let log = w.emulator.lifecycle_log();
    assert!(
        log.iter().all(|a| a["action"] != "ABANDON"),
        "never ABANDON: {log:?}"
    );
}

#[tokio::test]
async fn a_node_whose_provider_id_names_another_instance_never_lends_its_ready_condition() {
    let w = world().await;
    set_capacity(&w.clients, "demo-workers", 1).await;
    let ids = states_with(&w, "Pending:Wait", 1).await;
    let dns = w
        .clients
        .ec2
        .describe_instances()
        .instance_ids(&ids[0])
        .send()
        .await
        .expect("describe")
        .reservations()[0]
        .instances()[0]
        .private_dns_name()
        .unwrap_or_default()
        .to_owned();
    // A Node named like our instance (its IP reused), but registered by another instance.
    w.emulator.add_ready_nodes(
        "demo",
        &[(dns.clone(), "aws:///us-east-1a/i-0fedcba987654321f".into())],
    );
    let r = run(&w, 4).await;
    assert_eq!(r.pending, 1, "still waiting: {r:#?}");
    assert!(outcomes(&r, ActionOutcome::Continue).is_empty());
    // The same name without a providerID is the instance's own Node (DNS fallback).
    w.emulator.add_ready_nodes("demo", &[(dns, String::new())]);
    let r = run(&w, 20).await;
    assert_eq!(outcomes(&r, ActionOutcome::Continue), ids, "{r:#?}");
}

#[tokio::test]
async fn one_failing_action_is_reported_and_the_others_are_still_served() {
    let w = world().await;
    set_capacity(&w.clients, "demo-workers", 2).await;
    let good = states_with(&w, "Pending:Wait", 2).await;
    tag_group(&w.clients, "demo-workers", "emulator:lifecycle-api", "fail").await;
    set_capacity(&w.clients, "demo-workers", 3).await;
    let all = states_with(&w, "Pending:Wait", 3).await;
    let bad: Vec<String> = all.iter().filter(|i| !good.contains(i)).cloned().collect();
    let mut nodes: Vec<(String, String)> = Vec::new();
    for i in &all {
        nodes.push(node_of(&w, i).await);
    }
    w.emulator.add_ready_nodes("demo", &nodes);

    // Time for the first record's regeneration and a pass after it, on a loaded machine too.
    let r = run(&w, 15).await;

    let mut continued = outcomes(&r, ActionOutcome::Continue);
    continued.sort();
    let mut good = good;
    good.sort();
    assert_eq!(continued, good, "{r:#?}");
    assert_eq!(r.pending, 1, "the failing one is still pending: {r:#?}");
    let states = w.emulator.instance_states();
    assert_eq!(
        states.get(&bad[0]).map(String::as_str),
        Some("Pending:Wait")
    );
}
