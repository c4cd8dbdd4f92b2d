//! The embedded metric lines the functions print, against the emulator: a refresh that fails
//! still reports what is left of the record; a schedule run that regenerates, lets a worker join
//! and drains one reports each with the cluster as dimension.
#![recursion_limit = "256"] // the handlers' futures nest deeply; a clean build overflows the default

use std::time::Duration;

use joinkeeper::handler::handle_schedule;
use joinkeeper::metrics::Metrics;
use joinkeeper::refresh::{refresh_all, Outcome};
use joinkeeper::{deadline::Deadline, Context, Invocation};
use joinkeeper_tests::*;
use serde_json::Value;

const H: u64 = 3600;

fn inv(seconds: u64) -> Invocation {
    Invocation::new(
        "metrics-test",
        Deadline::after(Duration::from_secs(seconds)),
    )
}

/// The lines that carry `metric`, with their directive checked: namespace joinkeeper, the
/// metric's unit, and `Cluster` in every dimension set.
fn with_metric<'a>(lines: &'a [Value], metric: &str, unit: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| {
            let d = &l["_aws"]["CloudWatchMetrics"][0];
            let declared = d["Metrics"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["Name"] == metric);
            let Some(declared) = declared else {
                return false;
            };
            assert_eq!(d["Namespace"], "joinkeeper", "{l}");
            assert_eq!(declared["Unit"], unit, "{l}");
            for set in d["Dimensions"].as_array().expect("dimension sets") {
                assert_eq!(set[0], "Cluster", "{l}");
            }
            assert!(l[metric].is_number(), "{l}");
            true
        })
        .collect()
}

#[tokio::test]
async fn a_failed_refresh_still_reports_the_seconds_left_of_the_last_record() {
    let (e, clients) = Emulator::with_documents().await;
    launch_control_plane(&e, &clients, "stuck", &[AGENT_OFFLINE]).await;
    put_aged_record(&clients, "stuck", "ssssss", 23 * H + 1800).await;
    let ctx = Context::new(test_config(), &e.function_clients("token-refresher").await)
        .with_metrics(Metrics::captured());

    let summary = refresh_all(&ctx, &inv(60)).await.expect("refresh");

    assert_eq!(summary.clusters[0].outcome, Outcome::Failed);
    let lines = ctx.metrics.lines();
    let remaining = with_metric(&lines, "RecordRemainingSeconds", "Seconds");
    assert_eq!(remaining.len(), 1, "{lines:#?}");
    let left = remaining[0]["RecordRemainingSeconds"]
        .as_f64()
        .expect("seconds");
    assert!((1700.0..=1800.0).contains(&left), "{left}");
    assert_eq!(remaining[0]["Cluster"], "stuck");
    assert_eq!(remaining[0]["RefreshFailures"], 1.0);
    assert_eq!(remaining[0]["Outcome"], "failed");
    assert_eq!(
        with_metric(&lines, "RegenerationFailures", "Count").len(),
        1,
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.to_string().contains(PLANTED_SECRET)));
}

#[tokio::test]
async fn a_schedule_run_reports_regeneration_join_drain_and_sweep_per_cluster() {
    let (e, clients) = Emulator::with_documents().await;
    launch_control_plane(&e, &clients, "demo", &[]).await;
    create_worker_group(&clients, "demo", "demo-workers", 300, &[]).await;
    let ctx = Context::new(
        hook_config(60),
        &e.function_clients("token-refresher").await,
    )
    .with_metrics(Metrics::captured());
    let schedule = scheduled_event();

    // No record yet: the run regenerates it. A worker launched afterwards joins.
    handle_schedule(&ctx, &schedule, &inv(120))
        .await
        .expect("first run");
    set_capacity(&clients, "demo-workers", 1).await;
    let joined = eventually(Duration::from_secs(30), || {
        let e = &e;
        async move {
            e.kube_state("demo")["nodes"]
                .as_object()
                .is_some_and(|n| !n.is_empty())
        }
    })
    .await;
    assert!(joined, "the worker's Node registered\n{}", e.log());
    handle_schedule(&ctx, &schedule, &inv(120))
        .await
        .expect("second run");
    set_capacity(&clients, "demo-workers", 0).await;
    handle_schedule(&ctx, &schedule, &inv(120))
        .await
        .expect("third run");

    let lines = ctx.metrics.lines();
    let regenerated = with_metric(&lines, "Regenerations", "Count");
    assert_eq!(regenerated.len(), 1, "{lines:#?}");
    assert_eq!(regenerated[0]["Cluster"], "demo");
    assert_eq!(regenerated[0]["Trigger"], "schedule");
    assert_eq!(regenerated[0]["Reason"], "missing");
    assert_eq!(
        with_metric(&lines, "RegenerationDuration", "Milliseconds").len(),
        1
    );
    assert_eq!(
        with_metric(&lines, "RecordRemainingSeconds", "Seconds").len(),
        3,
        "one per pass"
    );

    let continued = with_metric(&lines, "LaunchesContinued", "Count");
    assert_eq!(continued.len(), 1, "{lines:#?}");
    let launch = continued[0];
    assert_eq!(launch["Reason"], "node-ready");
    let dims = &launch["_aws"]["CloudWatchMetrics"][0]["Dimensions"];
    assert_eq!(
        dims,
        &serde_json::json!([["Cluster"], ["Cluster", "Reason"]])
    );
    let join = launch["JoinSeconds"].as_f64().expect("join seconds");
    assert!((0.0..60.0).contains(&join), "{join}");
    assert_eq!(with_metric(&lines, "JoinSeconds", "Seconds").len(), 1);

    let drains = with_metric(&lines, "Drains", "Count");
    assert_eq!(drains.len(), 1, "{lines:#?}\n{}", e.log());
    assert_eq!(drains[0]["Result"], "drained");
    assert!(drains[0]["DrainSeconds"].as_f64().is_some());

    // Both completions came from the schedule's reconcile, not from their events.
    let swept = with_metric(&lines, "ActionsCompletedBySweep", "Count");
    let outcomes: Vec<&str> = swept.iter().filter_map(|l| l["Outcome"].as_str()).collect();
    assert_eq!(outcomes, ["continue", "drained"], "{lines:#?}");

    let sent = with_metric(&lines, "CommandsSent", "Count");
    let documents: Vec<&str> = sent.iter().filter_map(|l| l["Document"].as_str()).collect();
    for document in [
        "joinkeeper-regenerate",
        "joinkeeper-node-status",
        "joinkeeper-drain",
    ] {
        assert!(documents.contains(&document), "{documents:?}");
    }
    assert_eq!(
        sent.len(),
        e.commands(None).len(),
        "one line per command the emulator received"
    );
}
