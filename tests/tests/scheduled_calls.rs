//! What a scheduled run asks AWS, counted against the emulator: the tagged groups and the tagged
//! instances are each listed once, and serve discovery, the reconcilers and the rogue-Node check.
#![recursion_limit = "256"] // the handlers' futures nest deeply; a clean build overflows the default

use std::collections::BTreeMap;
use std::time::Duration;

use joinkeeper::handler::handle_schedule;
use joinkeeper::{deadline::Deadline, Context, Invocation};
use joinkeeper_tests::*;

fn inv() -> Invocation {
    Invocation::new("calls-test", Deadline::after(Duration::from_secs(120)))
}

/// Calls of `operation` (any service), retries included.
fn count(calls: &BTreeMap<String, usize>, operation: &str) -> usize {
    calls
        .iter()
        .filter(|(k, _)| k.ends_with(&format!(":{operation}")))
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test]
async fn a_scheduled_run_lists_the_groups_and_the_instances_once_each() {
    let (e, clients) = Emulator::with_documents().await;
    // A cluster with no worker group: nothing to reconcile, so every listing counted below is
    // the scheduled run's own.
    launch_control_plane(&e, &clients, "demo", &[]).await;
    let counter = CallCounter::default();
    let ctx = Context::new(
        hook_config(60),
        &e.counted_clients_as(&counter, "token-refresher").await,
    );
    let schedule = scheduled_event();
    // The first run writes the record; the second finds it fresh, as most scheduled runs do.
    handle_schedule(&ctx, &schedule, &inv())
        .await
        .expect("first run");
    counter.reset();
    let out = serde_json::to_value(
        handle_schedule(&ctx, &schedule, &inv())
            .await
            .expect("second run"),
    )
    .expect("JSON");
    let calls = counter.snapshot();

    assert_eq!(out["refresh"]["clusters"][0]["outcome"], "fresh", "{out:#}");
    assert_eq!(count(&calls, "DescribeTags"), 0, "{calls:?}");
    // Once, for discovery and the choice of clusters to reconcile.
    assert_eq!(count(&calls, "DescribeAutoScalingGroups"), 1, "{calls:?}");
    // Discovery (which also yields the running control planes), then the rogue check's listing
    // of the cluster's instances after the Nodes; the control plane is not listed a third time.
    assert_eq!(count(&calls, "DescribeInstances"), 2, "{calls:?}");
    assert!(
        count(&calls, "DescribeInstanceInformation") >= 1,
        "{calls:?}"
    );
    assert!(
        out["rogue_checks"][0]["nodes"]
            .as_array()
            .is_some_and(|r| r.is_empty())
            && out["rogue_checks"][0]["complete"] == true
            && out["rogue_checks"][0]["mode"] == "report",
        "the Nodes were listed, completely, and none is rogue: {out:#}"
    );
}
