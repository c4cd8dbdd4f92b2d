//! Benchmark: AWS API calls made per launched worker and per sweep, counted at the SDK (every
//! HTTP request, retries included) against the local emulator. Prints figures; asserts nothing.
//!
//! Run: `cargo run -p joinkeeper-tests --example aws_calls`

use std::time::Duration;

use joinkeeper::hooks::Hooks;
use joinkeeper::lifecycle::Transition;
use joinkeeper::names::ClusterName;
use joinkeeper::regenerate::Regenerator;
use joinkeeper_tests::*;

fn print(title: &str, counter: &CallCounter, per: usize) {
    let calls = counter.snapshot();
    let total: usize = calls.values().sum();
    println!(
        "\n{title}: {total} calls in all, {:.1} per unit ({per} units)",
        total as f64 / per.max(1) as f64
    );
    for (op, n) in calls {
        println!(
            "  {op:<48} {n:>5}  ({:.2} per unit)",
            n as f64 / per.max(1) as f64
        );
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let emulator = Emulator::start();
    let plain = emulator.clients().await;
    create_documents(&plain).await;
    launch_instance(&plain, "demo", "control-plane", &[]).await;
    let counter = CallCounter::default();
    let clients = emulator.counted_clients(&counter).await;
    let regenerator = Regenerator::new(hook_config(600), &clients);
    regenerator
        .ensure_fresh(
            &ClusterName::parse("demo").expect("name"),
            Duration::from_secs(3600),
        )
        .await
        .expect("record");
    let hooks = Hooks::new(regenerator, &clients);

    // Launch: 5 workers that join; one launch-hook invocation each.
    create_worker_group(&plain, "demo", "demo-workers", 300, &[]).await;
    set_capacity(&plain, "demo-workers", 5).await;
    let mut events = Vec::new();
    while events.len() < 5 {
        events.extend(emulator.take_events());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let the workers' user data join first, so each invocation shows the common path.
    tokio::time::sleep(Duration::from_secs(3)).await;
    counter.reset();
    for e in &events {
        let r = hooks
            .handle_event(e, Transition::Launching)
            .await
            .expect("launch");
        assert_eq!(r.outcome, "continue", "{r:?}");
    }
    print("launch hook, worker already Ready", &counter, events.len());

    // Sweep: 50 instances waiting in Pending:Wait, one scheduled sweep.
    create_worker_group(
        &plain,
        "demo",
        "demo-sweep",
        300,
        &[("emulator:user-data", "skip")],
    )
    .await;
    set_capacity(&plain, "demo-sweep", 50).await;
    emulator.take_events();
    counter.reset();
    let reports = hooks.sweep().await.expect("sweep");
    print(
        &format!("sweep over {} waiting instances", reports.len()),
        &counter,
        reports.len(),
    );
}
