//! Spot interruptions through the exits path, against the emulator: for each size, a cluster with
//! that many joined workers, every one interrupted at once (EC2's warning, the reclaim `notice`
//! later), each warning delivered to the terminate function's handler as its own invocation, as
//! EventBridge's rule does. Prints, per size, when the Nodes were cordoned, drained (no workload
//! pod left, or the Node deleted by the drain) and deleted, counted from the warnings, against the
//! reclaim. Figures, not a pass/fail test; it exits 1 only when an interruption was not drained
//! before its reclaim.
//!
//! Usage: cargo run -p joinkeeper-tests --example spot -- [SIZES...] [--notice-seconds N]
//! [--throttled] (default sizes 1 20, notice 120 s, EC2's; `--throttled`: AWS's default request
//! rates, the emulator's token buckets, from the warnings on). `JOINKEEPER_EXAMPLE_LOG=1`: the
//! functions' log lines on standard error.
#![recursion_limit = "256"] // the handlers' futures nest deeply; a clean build overflows the default

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use joinkeeper_tests::workers::{exits_config, inv, world, World};
use serde_json::json;

#[derive(Default, Clone, Copy)]
struct Times {
    cordoned: Option<Duration>,
    drained: Option<Duration>,
    deleted: Option<Duration>,
}

fn pct(mut v: Vec<Duration>, p: f64) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    format!("{:.1}", v[i].as_secs_f64())
}

async fn watch(w: &World, started: Instant, limit: Duration) -> BTreeMap<String, Times> {
    let mut times: BTreeMap<String, Times> = w
        .workers
        .iter()
        .map(|i| (i.clone(), Times::default()))
        .collect();
    while started.elapsed() < limit {
        for (id, t) in times.iter_mut() {
            let now = started.elapsed();
            let node = w.node_of(id);
            if t.cordoned.is_none() && (w.cordoned(id) || node.is_none()) {
                t.cordoned = Some(now);
            }
            if t.drained.is_none() && (node.is_none() || w.workload_pods(id) == 0) {
                t.drained = Some(now);
            }
            if t.deleted.is_none() && node.is_none() {
                t.deleted = Some(now);
            }
        }
        if times.values().all(|t| t.deleted.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    times
}

async fn run(n: i32, notice: u64, throttled: bool) -> bool {
    let w = world(n, exits_config(&[])).await;
    if throttled {
        // AWS's default request rates for the functions' calls (emulator/README.md, "Faults").
        w.emulator.control_send(
            "POST",
            "/_joinkeeper/faults",
            &json!({"token_buckets": true}),
        );
    }
    let started = Instant::now();
    w.emulator.control_send(
        "POST",
        "/_joinkeeper/spot-interruptions",
        &json!({"instance_ids": w.workers, "notice_seconds": notice}),
    );
    let warnings = w.exit_events();
    let deliveries = warnings.iter().enumerate().map(|(i, e)| {
        let w = &w;
        async move {
            let r = joinkeeper::handler::handle_lifecycle_delivery(
                &w.ctx,
                e,
                joinkeeper::lifecycle::Transition::Terminating,
                &inv(&format!("spot-{i}"), 895),
            )
            .await;
            if let Err(err) = r {
                eprintln!("warning {i} failed: {err}");
            }
        }
    });
    let limit = Duration::from_secs(notice + 90);
    let (_, times) = tokio::join!(
        futures_util::future::join_all(deliveries),
        watch(&w, started, limit)
    );
    let reclaim = Duration::from_secs(notice);
    let col = |f: fn(&Times) -> Option<Duration>| times.values().filter_map(f).collect::<Vec<_>>();
    let (cordoned, drained, deleted) =
        (col(|t| t.cordoned), col(|t| t.drained), col(|t| t.deleted));
    let late = times
        .values()
        .filter(|t| t.drained.is_none_or(|d| d > reclaim))
        .count();
    println!(
        "{n:>4} interruption(s), notice {notice} s{}: cordoned p50 {} s / max {} s; drained p50 {} s / max {} s; \
         Node deleted max {} s; {}/{n} drained before the reclaim",
        if throttled { ", AWS's default request rates" } else { "" },
        pct(cordoned.clone(), 0.5),
        pct(cordoned, 1.0),
        pct(drained.clone(), 0.5),
        pct(drained, 1.0),
        pct(deleted, 1.0),
        n as usize - late,
    );
    late == 0
}

#[tokio::main]
async fn main() {
    // The functions' own log lines, to see where a slow interruption's time went.
    if std::env::var_os("JOINKEEPER_EXAMPLE_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_max_level(tracing::Level::INFO)
            .init();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut sizes = Vec::new();
    let mut notice = 120;
    let throttled = args.iter().any(|a| a == "--throttled");
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--notice-seconds" {
            notice = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(120);
            i += 2;
            continue;
        }
        if let Ok(n) = args[i].parse::<i32>() {
            sizes.push(n);
        }
        i += 1;
    }
    if sizes.is_empty() {
        sizes = vec![1, 20];
    }
    let mut ok = true;
    for n in sizes {
        ok &= run(n, notice, throttled).await;
    }
    if !ok {
        std::process::exit(1);
    }
}
