//! An impostor control plane against the emulator: an instance tagged
//! `joinkeeper:cluster=demo`, `joinkeeper:role=control-plane` with another instance profile, whose
//! agent is online and whose (forged) cluster says every worker is Ready and drains at once. The
//! cluster's genuine control plane is offline, so the impostor is the only tagged instance Run
//! Command could reach: believing tags would send it node-status and drain and take its answers.
//! It gets no command; the worker whose Node is absent is not CONTINUEd; no drain is decided;
//! the impostor is logged, counted and shown by `joinkeeper status`.
#![recursion_limit = "256"] // the handlers' futures nest deeply; a clean build overflows the default

use std::time::Duration;

use joinkeeper::metrics::Metrics;
use joinkeeper::names::ClusterName;
use joinkeeper::reconcile::{reconcile, ReconcileOutcome};
use joinkeeper::{deadline::Deadline, Context, Invocation};
use joinkeeper_tests::*;
use serde_json::Value;

fn demo() -> ClusterName {
    ClusterName::parse("demo").expect("name")
}

fn inv(seconds: u64) -> Invocation {
    Invocation::new(
        "impostor-test",
        Deadline::after(Duration::from_secs(seconds)),
    )
}

/// Instance ids any command the emulator received was sent to.
fn targets(e: &Emulator) -> Vec<String> {
    e.commands(None)
        .iter()
        .flat_map(|c| c["instance_ids"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

async fn wait_for_state(clients: &joinkeeper::aws::AwsClients, state: &str) -> String {
    for _ in 0..100 {
        let found = group_states(clients, "demo-workers")
            .await
            .into_iter()
            .find(|(_, s)| s == state);
        if let Some((id, _)) = found {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no instance reached {state}")
}

#[tokio::test]
async fn an_impostor_control_plane_is_sent_nothing_and_believed_in_nothing() {
    let (e, clients) = Emulator::with_documents().await;
    let genuine = launch_control_plane(&e, &clients, "demo", &[AGENT_OFFLINE]).await;
    e.create_instance_profile("ops-admin");
    let impostor = launch_with_profile(
        &clients,
        "demo",
        "control-plane",
        &[("emulator:kube-state", "forged")],
        Some("ops-admin"),
    )
    .await;
    put_aged_record(&clients, "demo", "abcdef", 60).await;
    create_worker_group(
        &clients,
        "demo",
        "demo-workers",
        300,
        &[("emulator:user-data", "skip")],
    )
    .await;
    set_capacity(&clients, "demo-workers", 1).await;
    let worker = wait_for_state(&clients, "Pending:Wait").await;
    // The forged cluster answers for a worker that never joined: Ready.
    e.add_ready_nodes(
        "forged",
        &[(
            "ip-10-0-0-99.ec2.internal".to_owned(),
            format!("aws:///us-east-1a/{worker}"),
        )],
    );

    // Launch: the only reachable tagged instance is the impostor.
    let launch = Context::new(hook_config(600), &e.function_clients("launch-hook").await)
        .with_metrics(Metrics::captured());
    let outcome = reconcile(&launch, &demo(), &inv(8))
        .await
        .expect("reconciled");
    assert!(matches!(outcome, ReconcileOutcome::Ran(_)), "{outcome:?}");
    assert!(
        !targets(&e).contains(&impostor),
        "a command went to the impostor: {:?}",
        e.commands(None)
    );
    assert!(!targets(&e).contains(&genuine), "the offline one was asked");
    let completed = |result: &str| {
        e.lifecycle_log()
            .into_iter()
            .filter(|a| a["action"] == result && a["result"] == "ok")
            .count()
    };
    assert_eq!(completed("CONTINUE"), 0, "{:?}", e.lifecycle_log());
    assert_eq!(completed("ABANDON"), 0, "{:?}", e.lifecycle_log());
    assert_eq!(
        group_states(&clients, "demo-workers").await,
        vec![(worker.clone(), "Pending:Wait".to_owned())],
        "held, not CONTINUEd from a forged answer nor ABANDONed for want of one"
    );
    let impostor_lines: Vec<Value> = launch
        .metrics
        .lines()
        .into_iter()
        .filter(|l| l.get("ImpostorControlPlanes").is_some())
        .collect();
    assert!(!impostor_lines.is_empty(), "{:?}", launch.metrics.lines());
    assert_eq!(impostor_lines[0]["Instance"], impostor.as_str());
    assert_eq!(impostor_lines[0]["Cluster"], "demo");
    assert!(impostor_lines[0]["Profile"]
        .as_str()
        .is_some_and(|p| p.contains("instance-profile/ops-admin")));

    // Terminate: the worker leaves (an operator lets its launch go on), and must be drained.
    clients
        .autoscaling
        .complete_lifecycle_action()
        .auto_scaling_group_name("demo-workers")
        .lifecycle_hook_name("joinkeeper-launch")
        .instance_id(&worker)
        .lifecycle_action_result("CONTINUE")
        .send()
        .await
        .expect("operator completes the launch");
    wait_for_state(&clients, "InService").await;
    set_capacity(&clients, "demo-workers", 0).await;
    wait_for_state(&clients, "Terminating:Wait").await;
    let terminate = Context::new(
        hook_config(600),
        &e.function_clients("terminate-hook").await,
    )
    .with_metrics(Metrics::captured());
    reconcile(&terminate, &demo(), &inv(8))
        .await
        .expect("reconciled");
    assert!(!targets(&e).contains(&impostor), "{:?}", e.commands(None));
    assert!(e.commands(Some("joinkeeper-drain")).is_empty());
    assert_eq!(
        group_states(&clients, "demo-workers").await,
        vec![(worker.clone(), "Terminating:Wait".to_owned())],
        "no drain decided from the impostor's word"
    );
    assert!(!terminate
        .metrics
        .lines()
        .iter()
        .any(|l| l.get("Drains").is_some()));

    // The scheduled run's rogue check asks no impostor either; status shows it.
    let schedule = Context::new(
        hook_config(600),
        &e.function_clients("token-refresher").await,
    )
    .with_metrics(Metrics::captured());
    joinkeeper::handler::handle_schedule(&schedule, &scheduled_event(), &inv(20))
        .await
        .expect("scheduled run");
    assert!(!targets(&e).contains(&impostor), "{:?}", e.commands(None));
    let report = joinkeeper_cli::status::gather(&schedule, &[demo()])
        .await
        .expect("status");
    let c = &report.clusters[0];
    assert_eq!(c.impostors.len(), 1);
    assert_eq!(c.impostors[0].instance, impostor);
    assert_eq!(
        c.control_planes
            .iter()
            .map(|p| p.instance.clone())
            .collect::<Vec<_>>(),
        vec![genuine]
    );
    assert!(!c.reachable);
    let mut human = Vec::new();
    joinkeeper_cli::status::render(&report, false, &mut human).expect("render");
    let human = String::from_utf8(human).expect("utf-8");
    assert!(human.contains("IMPOSTORS"), "{human}");
    assert!(human.contains(&impostor), "{human}");
}
