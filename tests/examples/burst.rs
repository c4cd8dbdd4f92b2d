//! Benchmark: a burst of N workers launched together, every launch event delivered at once as
//! Lambda would (one concurrent invocation per event, each with its own 895 s deadline), Nodes
//! becoming Ready J seconds after the events. Prints figures; asserts nothing.
//!
//! Run: `cargo run -p joinkeeper-tests --example burst -- [N ...] [--join-seconds J]
//! [--arrival-seconds A]` (default N = 10 100 500, J = 20, A = 3, node poll 5 s).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use joinkeeper::handler::{handle_lifecycle, LifecycleResponse};
use joinkeeper::lifecycle::Transition;
use joinkeeper::names::ClusterName;
use joinkeeper::reconcile::ReconcileOutcome;
use joinkeeper::{deadline::Deadline, Config, Context, Invocation};
use joinkeeper_tests::*;
use serde_json::Value;

const POLL_SECONDS: u64 = 5;

fn config() -> Config {
    Config::from_lookup(|name| match name {
        "JOINKEEPER_COMMAND_POLL_MILLIS" => Some("250".into()),
        "JOINKEEPER_NODE_POLL_SECONDS" => Some(POLL_SECONDS.to_string()),
        "JOINKEEPER_JOIN_DEADLINE_SECONDS" => Some("600".into()),
        _ => None,
    })
    .expect("config")
}

fn ms_of(text: &str) -> Option<i64> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn ms(v: &Value) -> Option<i64> {
    ms_of(v.as_str()?)
}

async fn run(n: usize, join_seconds: u64, arrival: Duration, throttled: bool) {
    let emulator = Emulator::start();
    let setup = emulator.clients().await;
    create_documents(&setup).await;
    launch_instance(&setup, "demo", "control-plane", &[]).await;
    let counter = CallCounter::default();
    let clients = emulator.counted_clients_as(&counter, "launch-hook").await;
    let ctx = Context::new(config(), &clients).with_metrics(joinkeeper::metrics::Metrics::Off);
    let cluster = ClusterName::parse("demo").expect("name");
    let setup_inv = Invocation::new("setup", Deadline::after(Duration::from_secs(120)));
    joinkeeper::regenerate::ensure_fresh(&ctx, &cluster, Duration::from_secs(3600), &setup_inv)
        .await
        .expect("record");
    create_worker_group(
        &setup,
        "demo",
        "demo-workers",
        3600,
        &[("emulator:user-data", "skip")],
    )
    .await;
    set_capacity(&setup, "demo-workers", n as i32).await;
    let mut events: Vec<Value> = Vec::new();
    while events.len() < n {
        events.extend(emulator.take_events());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ids: Vec<String> = events
        .iter()
        .filter_map(|e| e["detail"]["EC2InstanceId"].as_str().map(str::to_owned))
        .collect();
    let before_commands = emulator.commands(Some("joinkeeper-node-status")).len();
    if throttled {
        // AWS's default request rates for the functions' calls (emulator/README.md, "Faults").
        emulator.control_send(
            "POST",
            "/_joinkeeper/faults",
            &serde_json::json!({"token_buckets": true}),
        );
    }
    counter.reset();
    let started = Instant::now();
    let started_ms = joinkeeper::lease::now_ms();

    // Every invocation runs in a container of its own, as Lambda's concurrent invocations do:
    // its own clients (connection pool), counted, and timed to tell the emulator's answer time
    // from the function's own.
    let base = emulator.function_clients("launch-hook").await;
    let base = &base;
    let counter = &counter;
    let invocations = events.iter().enumerate().map(|(i, e)| async move {
        // Events arrive spread over a few seconds, as a group's launches are; the local
        // emulator also cannot take hundreds of new connections in the same instant.
        let spread = arrival.as_millis() as u64 * (i as u64 * 7919 % n as u64) / n as u64;
        tokio::time::sleep(Duration::from_millis(spread)).await;
        let timer = CallTimer::default();
        let ctx = Context::new(config(), &container_clients(base, counter, &timer))
            .with_metrics(joinkeeper::metrics::Metrics::Off);
        let t = Instant::now();
        let inv = Invocation::new(
            format!("req-{i}"),
            Deadline::after(Duration::from_secs(895)),
        );
        let r = handle_lifecycle(&ctx, e, Transition::Launching, &inv).await;
        (t.elapsed(), timer.waited(), r)
    });
    let ready_at = async {
        tokio::time::sleep(Duration::from_secs(join_seconds)).await;
        let nodes: Vec<(String, String)> = ids
            .iter()
            .map(|i| {
                (
                    format!("ip-{}.ec2.internal", &i[2..]),
                    format!("aws:///us-east-1a/{i}"),
                )
            })
            .collect();
        emulator.add_ready_nodes("demo", &nodes);
        joinkeeper::lease::now_ms()
    };
    let (results, ready_ms) = tokio::join!(futures_util::future::join_all(invocations), ready_at);
    let wall = started.elapsed();

    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut elsewhere = 0;
    for (_, _, r) in &results {
        match r {
            Ok(LifecycleResponse::Reconciled {
                outcome: ReconcileOutcome::Ran(run),
                ..
            }) => {
                for a in &run.actions {
                    *outcomes.entry(a.outcome.label().to_owned()).or_default() += 1;
                }
            }
            Ok(LifecycleResponse::Reconciled {
                outcome: ReconcileOutcome::HeldElsewhere { .. },
                ..
            }) => elsewhere += 1,
            Ok(other) => *outcomes.entry(format!("{other:?}")).or_default() += 1,
            Err(e) => *outcomes.entry(format!("error {e}")).or_default() += 1,
        }
    }
    let invocation_seconds: f64 = results.iter().map(|(d, _, _)| d.as_secs_f64()).sum();
    let aws_seconds: f64 = results.iter().map(|(_, w, _)| w.as_secs_f64()).sum();
    let longest = results.iter().map(|(d, _, _)| *d).max().unwrap_or_default();

    // node-status commands per poll interval, and in flight at once on the control plane.
    let commands: Vec<Value> =
        emulator.commands(Some("joinkeeper-node-status"))[before_commands..].to_vec();
    let mut per_interval: BTreeMap<i64, usize> = BTreeMap::new();
    let mut spans: Vec<(i64, i64)> = Vec::new();
    for c in &commands {
        let Some(t) = ms(&c["time"]) else { continue };
        *per_interval
            .entry((t - started_ms) / (POLL_SECONDS as i64 * 1000))
            .or_default() += 1;
        let cp = c["instance_ids"][0].as_str().unwrap_or_default().to_owned();
        let id = c["command_id"].as_str().unwrap_or_default();
        if let Ok(out) = setup
            .ssm
            .get_command_invocation()
            .command_id(id)
            .instance_id(&cp)
            .send()
            .await
        {
            let end = out.execution_end_date_time().and_then(ms_of).unwrap_or(t);
            spans.push((t, end.max(t)));
        }
    }
    let peak_in_flight = spans
        .iter()
        .map(|(s, _)| spans.iter().filter(|(a, b)| a <= s && s < b).count())
        .max()
        .unwrap_or(0);
    let last_continue = emulator
        .lifecycle_log()
        .iter()
        .filter(|a| a["action"] == "CONTINUE")
        .filter_map(|a| ms(&a["time"]))
        .max();
    let calls = counter.snapshot();
    let total: usize = calls.values().sum();
    let send: usize = calls
        .iter()
        .filter(|(k, _)| k.ends_with(":SendCommand"))
        .map(|(_, v)| v)
        .sum();
    let per = |x: usize| x as f64 / n as f64;

    println!(
        "\nN = {n} workers, events arriving over {:.0} s, Nodes Ready {join_seconds} s after the first, node poll {POLL_SECONDS} s{}",
        arrival.as_secs_f64(),
        if throttled { ", AWS's default request rates (token buckets)" } else { "" }
    );
    println!("  outcomes                                {outcomes:?}; {elsewhere} invocations found the cluster reconciled elsewhere");
    println!(
        "  node-status commands per poll interval  max {} (per interval: {:?})",
        per_interval.values().max().unwrap_or(&0),
        per_interval.values().collect::<Vec<_>>()
    );
    println!(
        "  node-status commands in flight at once  peak {peak_in_flight} on the control plane"
    );
    println!(
        "  AWS calls per worker                    {:.2} ({total} in all)",
        per(total)
    );
    println!(
        "  SendCommand per worker                  {:.3} ({send} in all)",
        per(send)
    );
    println!(
        "  invocation-seconds per worker           {:.3} (longest invocation {:.1} s), of which waiting for the emulator's answers {:.3} ({:.0}%)",
        invocation_seconds / n as f64,
        longest.as_secs_f64(),
        aws_seconds / n as f64,
        100.0 * aws_seconds / invocation_seconds.max(f64::EPSILON)
    );
    match last_continue {
        Some(c) => println!(
            "  Node Ready -> last CONTINUE             {:.1} s",
            (c - ready_ms) as f64 / 1000.0
        ),
        None => println!("  Node Ready -> last CONTINUE             (no CONTINUE)"),
    }
    println!(
        "  wall time until all completed           {:.1} s",
        wall.as_secs_f64()
    );
    println!("  calls by operation                      {calls:?}");
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut sizes = Vec::new();
    let mut join_seconds = 20;
    let mut arrival = Duration::from_secs(3);
    let mut throttled = false;
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--throttled" {
            throttled = true;
            i += 1;
            continue;
        }
        if args[i] == "--arrival-seconds" {
            arrival =
                Duration::from_secs(args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(3));
            i += 2;
            continue;
        }
        if args[i] == "--join-seconds" {
            join_seconds = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(20);
            i += 2;
            continue;
        }
        if let Ok(n) = args[i].parse() {
            sizes.push(n);
        }
        i += 1;
    }
    if sizes.is_empty() {
        sizes = vec![10, 100, 500];
    }
    for n in sizes {
        run(n, join_seconds, arrival, throttled).await;
    }
}
