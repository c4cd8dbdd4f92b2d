//! Join mode per-instance against the emulator: the functions' node-status command mints one
//! token per waiting worker and writes it to a parameter of that instance, workers (the real
//! `joinkeeper-join --join-mode per-instance`) join with it while the cluster has no shared
//! record at all, their certificate requests are approved only under their own Node names, and
//! every token and parameter is gone once the waits end.
#![recursion_limit = "256"] // the handlers' futures nest deeply; a clean build overflows the default

use std::time::Duration;

use joinkeeper::lifecycle::Transition;
use joinkeeper::reconcile::ActionOutcome;
use joinkeeper::Context;
use joinkeeper_tests::delivery::handle_all;
use joinkeeper_tests::*;
use serde_json::Value;

async fn world(join_deadline: u64) -> (Emulator, joinkeeper::aws::AwsClients, Context) {
    let (emulator, clients) = Emulator::with_documents().await;
    launch_control_plane(&emulator, &clients, "demo", &[]).await;
    put_join_mode(&clients.ssm, "demo", "per-instance").await;
    let ctx = Context::new(
        hook_config(join_deadline),
        &emulator.function_clients("launch-hook").await,
    );
    (emulator, clients, ctx)
}

async fn events(emulator: &Emulator, n: usize) -> Vec<Value> {
    let mut events = Vec::new();
    let ok = eventually(Duration::from_secs(20), || {
        events.extend(emulator.take_events());
        let done = events.len() >= n;
        async move { done }
    })
    .await;
    assert!(ok, "expected {n} lifecycle events, got {}", events.len());
    events
}

/// The names of the parameters under `<prefix>/demo/join/`.
async fn instance_records(clients: &joinkeeper::aws::AwsClients) -> Vec<String> {
    let out = clients
        .ssm
        .get_parameters_by_path()
        .path("/joinkeeper/demo/join")
        .send()
        .await
        .expect("by path");
    out.parameters()
        .iter()
        .filter_map(|p| p.name().map(str::to_owned))
        .collect()
}

fn per_instance_tokens(state: &Value) -> Vec<Value> {
    state["tokens"]
        .as_object()
        .map(|t| {
            t.values()
                .filter(|v| {
                    v["description"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("joinkeeper per-instance")
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn each_worker_joins_with_its_own_token_approved_for_its_own_name_and_the_tokens_go() {
    let (emulator, clients, ctx) = world(30).await;
    let logs = LogCapture::default();
    let _g = logs.install();
    create_worker_group_joining(&clients, "demo", "demo-workers", 300, &[], "per-instance").await;
    set_capacity(&clients, "demo-workers", 2).await;
    let evs = events(&emulator, 2).await;

    let reports = handle_all(&ctx, &evs, Transition::Launching).await;
    let continued = reports
        .iter()
        .filter(|r| r.outcome == ActionOutcome::Continue)
        .count();
    assert_eq!(continued, 2, "{reports:#?}\n{}", emulator.log());

    // The cluster never had a shared record: the workers joined with their own tokens.
    let shared = clients
        .ssm
        .get_parameter()
        .name("/joinkeeper/demo/join-record")
        .send()
        .await;
    assert!(shared.is_err(), "no shared record was needed");
    let state = emulator.kube_state("demo");
    let csrs = state["csrs"].as_array().cloned().unwrap_or_default();
    assert_eq!(csrs.len(), 2, "{csrs:#?}");
    for csr in &csrs {
        assert_eq!(
            csr["status"], "KubectlApprove",
            "approved by joinkeeper, not auto-approved: {csr}"
        );
        assert_eq!(
            csr["groups"],
            serde_json::json!(["system:bootstrappers:joinkeeper:per-instance"])
        );
    }
    let nodes: Vec<&String> = state["nodes"]
        .as_object()
        .map(|n| n.keys().collect())
        .unwrap_or_default();
    assert_eq!(
        nodes.len(),
        2,
        "the two workers (the control plane is no Node here): {nodes:?}"
    );

    // Revoked by the pass after the completions: no token, no parameter left.
    assert!(
        per_instance_tokens(&state).is_empty(),
        "{:#?}",
        state["tokens"]
    );
    assert!(instance_records(&clients).await.is_empty());
    let lines = logs.lines();
    let minted: u64 = lines
        .iter()
        .filter(|l| l["message"] == "per-instance join tokens")
        .map(|l| l["minted"].as_u64().unwrap_or(0))
        .sum();
    let revoked: u64 = lines
        .iter()
        .filter(|l| l["message"] == "per-instance join tokens")
        .map(|l| l["revoked"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        (minted, revoked),
        (2, 2),
        "one token per worker, each revoked"
    );
    // One node-status command per pass, not one per worker.
    let sent = emulator.commands(Some("joinkeeper-node-status"));
    let passes = lines
        .iter()
        .filter(|l| l["message"] == "reconcile run ended")
        .map(|l| l["passes"].as_u64().unwrap_or(0))
        .sum::<u64>();
    assert!(
        sent.len() as u64 <= passes,
        "{} commands in {passes} passes",
        sent.len()
    );
    // Token ids only: no secret in a log line or a command's output.
    for token in state["tokens"]
        .as_object()
        .into_iter()
        .flat_map(|t| t.values())
    {
        let secret = token["secret"].as_str().unwrap_or("-");
        assert!(!logs.text().contains(secret));
    }
}

#[tokio::test]
async fn a_node_registering_with_its_token_under_another_name_is_denied_and_never_approved() {
    let (emulator, clients, ctx) = world(20).await;
    let logs = LogCapture::default();
    let _g = logs.install();
    create_worker_group_joining(
        &clients,
        "demo",
        "demo-workers",
        300,
        &[("emulator:node-name", "ip-10-9-9-9.ec2.internal")],
        "per-instance",
    )
    .await;
    set_capacity(&clients, "demo-workers", 1).await;
    let evs = events(&emulator, 1).await;

    let reports = handle_all(&ctx, &evs, Transition::Launching).await;
    assert_eq!(reports.len(), 1, "{reports:#?}\n{}", emulator.log());
    assert_eq!(reports[0].outcome, ActionOutcome::Abandon, "{reports:#?}");

    let state = emulator.kube_state("demo");
    let csrs = state["csrs"].as_array().cloned().unwrap_or_default();
    assert!(!csrs.is_empty(), "the impostor asked for a certificate");
    assert!(
        csrs.iter().all(|c| c["status"] == "KubectlDeny"),
        "every request under the other name was denied: {csrs:#?}"
    );
    assert!(
        state["nodes"].get("ip-10-9-9-9.ec2.internal").is_none(),
        "no Node registered under the other name"
    );
    let rogue = logs
        .lines()
        .into_iter()
        .find(|l| {
            l["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("rogue certificate request")
        })
        .expect("reported as rogue");
    assert_eq!(rogue["node"], "ip-10-9-9-9.ec2.internal");
    assert!(
        per_instance_tokens(&state).is_empty(),
        "revoked after the ABANDON"
    );
    assert!(instance_records(&clients).await.is_empty());
}

#[tokio::test]
async fn a_token_left_by_a_run_that_ended_before_revoking_it_is_swept_by_the_schedule() {
    use joinkeeper::names::ClusterName;
    use joinkeeper::reconcile::tokens::TokenPlan;
    let (emulator, clients, ctx) = world(30).await;
    create_worker_group_joining(&clients, "demo", "demo-workers", 300, &[], "per-instance").await;
    set_capacity(&clients, "demo-workers", 1).await;
    let evs = events(&emulator, 1).await;
    let reports = handle_all(&ctx, &evs, Transition::Launching).await;
    assert_eq!(reports[0].outcome, ActionOutcome::Continue, "{reports:#?}");
    let worker = joinkeeper::names::InstanceId::parse(&reports[0].instance).expect("id");
    assert!(
        instance_records(&clients).await.is_empty(),
        "revoked by its run"
    );

    // A token minted for it by a run that was lost before revoking it: the pass's own command.
    let cluster = ClusterName::parse("demo").expect("cluster");
    let candidates = ctx
        .control_plane_candidates(&cluster)
        .await
        .expect("control planes");
    let plan = TokenPlan {
        wanted: [(worker.clone(), "ip-10-0-9-9.ec2.internal".to_owned())].into(),
        revoke: Default::default(),
    };
    let bound = joinkeeper::deadline::Deadline::after(Duration::from_secs(60));
    let hosts = Default::default();
    joinkeeper::reconcile::node_status::node_states(
        &ctx,
        &cluster,
        &candidates,
        std::slice::from_ref(&worker),
        &hosts,
        Some(&plan),
        &bound,
    )
    .await;
    assert_eq!(instance_records(&clients).await.len(), 1);
    assert_eq!(per_instance_tokens(&emulator.kube_state("demo")).len(), 1);

    // Nothing waits in the cluster, so no pass would send a command: the schedule sweeps it.
    let inv = joinkeeper::Invocation::new(
        "sweep",
        joinkeeper::deadline::Deadline::after(Duration::from_secs(120)),
    );
    Box::pin(joinkeeper::handler::handle_schedule(
        &ctx,
        &scheduled_event(),
        &inv,
    ))
    .await
    .expect("scheduled run");
    assert!(
        instance_records(&clients).await.is_empty(),
        "the record is gone"
    );
    assert!(
        per_instance_tokens(&emulator.kube_state("demo")).is_empty(),
        "the token is gone"
    );
}
