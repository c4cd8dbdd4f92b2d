//! Every door a worker leaves by without a terminate hook, end to end against the emulator: the
//! emulator emits the events as EC2 and AWS Health would (or, for Standby and detach, which emit
//! none, the schedule finds them), the terminate function's handler takes them, and the stand-in
//! control plane's Nodes show what was done.
#![recursion_limit = "256"] // the handlers' futures nest deeply; a clean build overflows the default

use std::time::{Duration, Instant};

use joinkeeper_tests::workers::{exits_config as config, world};
use joinkeeper_tests::*;
use serde_json::{json, Value};

#[tokio::test]
async fn spot_warning_cordons_at_once_drains_within_the_notice_and_deletes_the_node() {
    let w = world(1, config(&[])).await;
    let id = w.workers[0].clone();
    let started = Instant::now();
    let answer = w.emulator.control_send(
        "POST",
        "/_joinkeeper/spot-interruptions",
        &json!({"instance_ids": [id], "notice_seconds": 30}),
    );
    assert!(answer["reclaimed_at"].is_string(), "{answer}");
    let warning = w.exit_events().pop().expect("the warning");
    assert_eq!(
        warning["detail-type"],
        "EC2 Spot Instance Interruption Warning"
    );
    // The terminate function takes the warning; its reconcile follows the exit to the end.
    let run = w.deliver(&warning);
    let watch = async {
        let (mut cordoned_at, mut drained_at, mut deleted_at) = (None, None, None);
        while started.elapsed() < Duration::from_secs(60) {
            let node = w.node_of(&id);
            if node.is_none() {
                deleted_at = Some(started.elapsed());
                break;
            }
            if cordoned_at.is_none() && w.cordoned(&id) {
                cordoned_at = Some(started.elapsed());
            }
            if drained_at.is_none() && w.workload_pods(&id) == 0 {
                drained_at = Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (cordoned_at, drained_at, deleted_at)
    };
    let (answer, (cordoned_at, drained_at, deleted_at)) = tokio::join!(run, watch);
    let answer = answer.expect("handled");
    assert_eq!(answer["door"], "spot", "{answer}");
    let cordoned_at = cordoned_at.expect("cordoned");
    assert!(cordoned_at < Duration::from_secs(5), "{cordoned_at:?}");
    let drained_at = drained_at.expect("drained, the Node kept");
    assert!(drained_at < Duration::from_secs(30), "{drained_at:?}");
    let deleted_at = deleted_at.expect("the Node deleted");
    assert!(
        deleted_at >= Duration::from_secs(30),
        "deleted once the instance is gone, not before: {deleted_at:?}"
    );
    let drains = w.emulator.commands(Some("joinkeeper-drain"));
    assert_eq!(drains.len(), 1, "{drains:?}");
    let budget: u64 = drains[0]["parameters"]["DrainTimeoutSeconds"][0]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("budget");
    assert!(
        budget <= 15,
        "fits the 30 s notice less the margin: {budget}"
    );
    // The run lasted until the reclaim, and left no Node and no record behind.
    assert!(started.elapsed() >= Duration::from_secs(30));
    assert!(w.node_of(&id).is_none(), "the Node is deleted");
    assert_eq!(w.exit_record(&id).await, None, "the record is forgotten");
    // The termination's state changes, then the warning again (late, duplicated): nothing
    // comes back, no Node is touched.
    let cordons = w.emulator.commands(Some("joinkeeper-cordon")).len();
    for e in w.exit_events() {
        w.deliver(&e).await.expect("state change handled");
    }
    let late = w.deliver(&warning).await.expect("late warning handled");
    assert_eq!(late["instances"][&id], "already gone", "{late}");
    assert_eq!(w.exit_record(&id).await, None, "not resurrected");
    assert!(w.emulator.commands(Some("joinkeeper-drain")).len() == 1);
    assert!(w.emulator.commands(Some("joinkeeper-cordon")).len() <= cordons + 2);
}

#[tokio::test]
async fn a_worker_stopped_outside_any_hook_is_cordoned_then_its_node_deleted_once_terminated() {
    let w = world(1, config(&[])).await;
    let id = w.workers[0].clone();
    w.clients
        .ec2
        .stop_instances()
        .instance_ids(&id)
        .send()
        .await
        .expect("stop");
    let events = w.exit_events();
    let states: Vec<&str> = events
        .iter()
        .filter_map(|e| e["detail"]["state"].as_str())
        .collect();
    assert_eq!(states, ["stopping", "stopped"]);
    for e in &events {
        w.deliver(e).await.expect("handled");
    }
    assert!(w.cordoned(&id), "cordoned, not deleted: it may start again");
    assert!(w.emulator.commands(Some("joinkeeper-drain")).is_empty());
    w.clients
        .ec2
        .terminate_instances()
        .instance_ids(&id)
        .send()
        .await
        .expect("terminate");
    for e in w.exit_events() {
        w.deliver(&e).await.expect("handled");
    }
    assert!(
        w.node_of(&id).is_none(),
        "the Node of a terminated instance is deleted"
    );
    assert_eq!(w.exit_record(&id).await, None);
}

#[tokio::test]
async fn standby_is_found_by_the_schedule_drained_keeping_the_node_and_undone_on_return() {
    let w = world(2, config(&[])).await;
    let (id, other) = (w.workers[0].clone(), w.workers[1].clone());
    w.clients
        .autoscaling
        .enter_standby()
        .auto_scaling_group_name("demo-workers")
        .instance_ids(&id)
        .should_decrement_desired_capacity(true)
        .send()
        .await
        .expect("standby");
    assert!(w.exit_events().is_empty(), "Standby emits no event");
    w.schedule().await;
    assert!(w.cordoned(&id), "cordoned");
    assert_eq!(w.workload_pods(&id), 0, "drained");
    assert!(w.node_of(&id).is_some(), "the Node stays for the return");
    let drain = w.emulator.commands(Some("joinkeeper-drain"));
    assert_eq!(drain[0]["parameters"]["KeepNode"][0], "true", "{drain:?}");
    assert!(!w.cordoned(&other), "the worker in service is untouched");
    w.clients
        .autoscaling
        .exit_standby()
        .auto_scaling_group_name("demo-workers")
        .instance_ids(&id)
        .send()
        .await
        .expect("exit standby");
    w.schedule().await;
    assert!(!w.cordoned(&id), "uncordoned once back in service");
    assert_eq!(w.exit_record(&id).await, None);
}

#[tokio::test]
async fn a_detached_worker_is_drained_and_given_back_when_attached_again() {
    let w = world(1, config(&[("JOINKEEPER_STANDBY_ACTION", "cordon")])).await;
    let id = w.workers[0].clone();
    w.clients
        .autoscaling
        .detach_instances()
        .auto_scaling_group_name("demo-workers")
        .instance_ids(&id)
        .should_decrement_desired_capacity(true)
        .send()
        .await
        .expect("detach");
    w.schedule().await;
    assert!(w.cordoned(&id), "cordoned (the setting says cordon)");
    assert!(w.emulator.commands(Some("joinkeeper-drain")).is_empty());
    let record = w.exit_record(&id).await.expect("recorded");
    assert!(record.contains("\"door\":\"detached\""), "{record}");
    w.clients
        .autoscaling
        .attach_instances()
        .auto_scaling_group_name("demo-workers")
        .instance_ids(&id)
        .send()
        .await
        .expect("attach");
    w.schedule().await;
    assert!(!w.cordoned(&id), "uncordoned once attached again");
}

#[tokio::test]
async fn a_rebalance_recommendation_cordons_by_default() {
    let w = world(1, config(&[])).await;
    let id = w.workers[0].clone();
    w.emulator.control_send(
        "POST",
        "/_joinkeeper/rebalance-recommendations",
        &json!({"instance_ids": [id]}),
    );
    let event = w.exit_events().pop().expect("recommendation");
    let answer = w.deliver(&event).await.expect("handled");
    assert_eq!(answer["instances"][&id], "demo", "{answer}");
    assert!(w.cordoned(&id));
    assert!(
        w.workload_pods(&id) > 0,
        "not drained: the setting is cordon"
    );
    // Delivered twice: nothing more.
    let cordons = w.emulator.commands(Some("joinkeeper-cordon")).len();
    w.deliver(&event).await.expect("duplicate handled");
    assert_eq!(
        w.emulator.commands(Some("joinkeeper-cordon")).len(),
        cordons
    );
}

#[tokio::test]
async fn scheduled_maintenance_drains_within_the_lead_time_and_replaces_when_set() {
    let w = world(
        2,
        config(&[
            ("JOINKEEPER_MAINTENANCE_LEAD_SECONDS", "600"),
            ("JOINKEEPER_MAINTENANCE_REPLACE", "true"),
        ]),
    )
    .await;
    let (soon, later) = (w.workers[0].clone(), w.workers[1].clone());
    for (id, start) in [(&soon, 300), (&later, 7200)] {
        w.emulator.control_send(
            "POST",
            "/_joinkeeper/health-events",
            &json!({"instance_ids": [id], "start_in_seconds": start}),
        );
    }
    for e in w.exit_events() {
        assert_eq!(e["source"], "aws.health");
        w.deliver(&e).await.expect("handled");
    }
    assert!(
        w.cordoned(&soon) && w.workload_pods(&soon) == 0,
        "drained ahead of the window"
    );
    assert!(
        w.node_of(&soon).is_some(),
        "kept: the group replaces it through its hooks"
    );
    assert!(!w.cordoned(&later), "its window is beyond the lead time");
    assert!(w.exit_record(&later).await.is_some(), "but recorded");
    let health = w
        .clients
        .autoscaling
        .describe_auto_scaling_instances()
        .instance_ids(&soon)
        .send()
        .await
        .expect("describe");
    let status = health.auto_scaling_instances()[0].health_status();
    assert!(
        status.is_some_and(|s| s.eq_ignore_ascii_case("unhealthy")),
        "marked unhealthy: {status:?}"
    );
}

#[tokio::test]
async fn events_for_instances_that_are_no_workers_or_malformed_change_nothing() {
    let w = world(1, config(&[])).await;
    let control_plane = launch_control_plane(&w.emulator, &w.clients, "demo", &[]).await;
    let stranger = launch_instance(&w.clients, "demo", "bastion", &[]).await;
    let spot = |id: &str| {
        let mut e: Value = serde_json::from_str(
            &std::fs::read_to_string(repo_root().join("events/spot-interruption-warning.json"))
                .expect("fixture"),
        )
        .expect("json");
        e["detail"]["instance-id"] = json!(id);
        e
    };
    for id in [
        control_plane.as_str(),
        stranger.as_str(),
        "i-0000000000000beef",
    ] {
        let answer = w.deliver(&spot(id)).await.expect("handled");
        assert!(answer["instances"][id].is_string(), "{answer}");
        assert_ne!(answer["instances"][id], "demo", "{answer}");
    }
    let mut bad = spot(&w.workers[0]);
    bad["detail"]["instance-id"] = json!("i-1; reboot");
    let err = w.deliver(&bad).await.expect_err("refused");
    assert_eq!(err.error_type(), "joinkeeper.BadEvent");
    assert!(w.emulator.commands(Some("joinkeeper-cordon")).is_empty());
    assert!(!w.cordoned(&w.workers[0]));
}
