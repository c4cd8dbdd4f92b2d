//! Chaos suite: several clusters in the local emulator, bursts of scale-out and scale-in, warm
//! pools, workers that never join, reused private IPs, AWS faults and killed invocations, with
//! joinkeeper's invariants checked while it runs and at the end. Exit status 1 on any violation.
//!
//! One seeded run (at most `--minutes`, default 5):
//!     cargo run -p joinkeeper-tests --example chaos -- --seed 7
//! Soak (the goal: 0 violations over at least 20 seeds):
//!     cargo run -p joinkeeper-tests --example chaos -- --seeds 1..20
//! Flags: `--seed N` | `--seeds A..B` (inclusive), `--minutes M`, `--throttle P` (default 0.10),
//! `--lost P` (lost answers, 0.02), `--kill P` (killed invocations, 0.01), `--errors P` (5xx, 0),
//! `--lost-mode reset|hold`, `--latency-ms MIN,MAX` (0,0), `--no-faults`, `--sabotage` (the
//! harness itself completes a launch without a Ready Node and a terminate before its drain: the
//! run must then report both and exit 1, a check of the checks).
//!
//! The seed picks the world's sizes, the timeline's jitter, each invocation's deadline, which
//! invocations are killed and when, and the emulator's faults (its own seed). A run is
//! reproducible from the seed as far as the wall clock allows: the emulator's timers (hook
//! timeouts, Run Command durations), thread scheduling and the order in which concurrent
//! invocations reach the emulator are not seeded, so two runs of one seed make the same
//! choices but need not interleave alike.
//!
//! The world (timings scaled down from production so that everything happens within minutes):
//! - cluster `alpha`: one control plane; group `alpha-w` (no warm pool, drains take 8 s) and
//!   group `alpha-bad` (workers whose Node never becomes Ready), both in one small subnet whose
//!   freed private IPs (and so Node names) are handed to the next launch;
//! - cluster `beta`: three control planes (HA), the first one's SSM agent goes offline
//!   mid-run; group `beta-w` with a Stopped warm pool; group `beta-bad` (joins fail: no Node);
//! - cluster `gamma`: one control plane and a join record that expires ~150 s into the run
//!   unless the schedule rotates it; group `gamma-w` with a Running warm pool, one pod a
//!   PodDisruptionBudget keeps (its drains time out).
//! - every worker runs the real `joinkeeper-join` and boot unit from user data; hooks have a
//!   90 s heartbeat timeout, so a forgotten action ends by timeout within the run.
//! - timeline: a scale-out burst, a scale-in burst (one instance terminated through EC2 while
//!   its drain runs), an agent offline, an in-service instance terminated outside the hooks
//!   (its IP goes to its replacement), a second scale-out, a scale-in to zero, then a settling
//!   phase.
//!
//! Delivery, as Lambda does it: every lifecycle event from the emulator's outbox goes to
//! `handle_lifecycle` in a task of its own (concurrent invocations, each with its own clients
//! and a deadline of 60–120 s); the schedule (`handle_schedule`) every 20 s. With probability
//! `--kill` an invocation is killed at a random one of its first 30 AWS requests, 0–400 ms after
//! that request leaves (its future dropped at an await point: between calls or with one in
//! flight, which is what a killed process looks like to AWS; an invocation that makes fewer
//! requests survives); a killed, failed or timed-out invocation is delivered again up to 2
//! times, 6 s and 12 s later (Lambda's asynchronous retries come after about 1 and 2 minutes;
//! scaled down by 10). Auto Scaling's own upkeep is played too: warm pools refilled and
//! ABANDONed instances replaced every 15 s.
//!
//! Invariants, checked every second (from the emulator's lifecycle actions and completion log,
//! the stand-in control planes' Nodes, the group instances, the join records) and at the end:
//! - a launch completed CONTINUE into service had a Ready Node whose providerID names it,
//!   registered before the completion call;
//! - no ABANDON of a worker whose Node was Ready before the last node-status command joinkeeper
//!   sent its cluster ahead of the ABANDON (a Node Ready after it is a race, noted), and no
//!   ABANDON before the join deadline counted from when the wait began;
//! - a terminate completed while the instance's Node stood only after a drain of it ended, or
//!   one was sent at least the drain timeout before;
//! - no Node of a terminated instance outlives it by more than `NODE_BOUND` (2 minutes, the
//!   exits goal: a Node left by a completed action, or named by the record of a drain whose
//!   instance went away mid-drain, is deleted by the next pass holding the records or the next
//!   scheduled run; one with no record (an instance terminated in service, a worker ABANDONed
//!   with a NotReady Node) by the scheduled Node check, which comes after that run's own
//!   reconciles: measured up to 75 s with 20 s periods);
//! - every action ended by joinkeeper's call: none by the hook's timeout (one still open when
//!   the run ends, heartbeated within its timeout, is noted, not counted);
//! - no lease held by two invocations at once: every lease write (create, overwrite, delete) of
//!   every invocation is recorded by an SDK interceptor with its holder, expiry and answer; a
//!   holder holds from the answer to its first write that took effect until it sent its
//!   release, its invocation ended (returned or killed), or the latest expiry it wrote
//!   successfully passed; two holders of one lease whose spans intersect are a violation;
//! - no launch waits while its cluster's join record has expired.
//!
//! The harness by concern: `world` (clusters, control planes, groups), `timeline` (the script),
//! `delivery` and `journal` (invocations as Lambda makes them, kills, lease writes),
//! `invariants` (the checks), `report`.
#![recursion_limit = "256"] // the handlers' futures nest deeply; a clean build overflows the default

mod delivery;
mod invariants;
mod journal;
mod opts;
mod report;
mod rng;
mod timeline;
mod world;

use std::sync::Arc;
use std::time::{Duration, Instant};

use joinkeeper::lease::now_ms;
use joinkeeper::lifecycle::Transition;
use joinkeeper::Config;
use joinkeeper_tests::*;
use serde_json::json;

use delivery::{Delivery, Trigger};
use invariants::Monitor;
use journal::Shared;
use opts::{parse_args, Opts};
use report::{report, RunSummary};
use timeline::Script;
use world::World;

// ---- timings of the world (seconds) ------------------------------------------------------------

const DRAIN_TIMEOUT: u64 = 40;
const JOIN_DEADLINE: u64 = 60;
const HEARTBEAT: i32 = 90;
const SCHEDULE_PERIOD: u64 = 20;
const FUNCTION_TIMEOUT: u64 = 120;
/// Lambda's asynchronous retries (about 1 and 2 minutes), scaled down by 10.
const RETRY_DELAYS: [u64; 2] = [6, 12];
/// A Node may outlive its terminated instance by at most this: the exits goal (no Node left for
/// a terminated instance 2 minutes after termination). Two node polls notice a Node left by an
/// action; a Node with no record waits for a scheduled Node check, which may come a period or
/// two late when the scheduled run spends its time reconciling first.
const NODE_BOUND: u64 = 120;
/// A killed invocation dies at one of its first this many AWS requests.
const KILL_WINDOW: u64 = 30;
/// How far into the run the planted join record of `gamma` expires.
const GAMMA_RECORD_LIFE: u64 = 150;

fn config() -> Config {
    Config::from_lookup(|name| {
        Some(
            match name {
                "JOINKEEPER_COMMAND_POLL_MILLIS" => "250",
                "JOINKEEPER_COMMAND_DEADLINE_SECONDS" => "30",
                "JOINKEEPER_NODE_POLL_SECONDS" => "5",
                "JOINKEEPER_JOIN_DEADLINE_SECONDS" => "60",
                "JOINKEEPER_DRAIN_TIMEOUT_SECONDS" => "40",
                "JOINKEEPER_FUNCTION_TIMEOUT_SECONDS" => "120",
                "JOINKEEPER_ROGUE_NODE_GRACE_SECONDS" => "60",
                _ => return None,
            }
            .to_owned(),
        )
    })
    .expect("chaos config")
}

/// Faults, from now on, for the functions' calls only (when this emulator has them and they are
/// not off).
fn start_faults(emulator: &Emulator, seed: u64, o: &Opts) {
    let on = o.faults
        && emulator.control_opt("/_joinkeeper/faults").is_object()
        && !emulator.control_opt("/_joinkeeper/faults")["error"].is_string();
    if on {
        let body = json!({
            "seed": seed,
            "throttle_probability": o.throttle,
            "token_buckets": true,
            "error_5xx_probability": o.errors,
            "lost_answer_probability": o.lost,
            "lost_answer_mode": o.lost_mode,
            "latency_ms": [o.latency_ms.0, o.latency_ms.1],
            "callers": "functions",
            "agent_workers": 5,
            "agent_buffer": 5,
        });
        let answer = emulator.control_send("POST", "/_joinkeeper/faults", &body);
        println!("faults: {body} -> {answer}");
    } else {
        println!(
            "faults: {} (killed invocations still at {})",
            if o.faults {
                "this emulator has no /_joinkeeper/faults yet; running without"
            } else {
                "off (--no-faults)"
            },
            o.kill
        );
    }
}

async fn run(seed: u64, o: &Opts) -> RunSummary {
    println!("\n=== chaos seed {seed} ===");
    let started = Instant::now();
    let cap = Duration::from_secs_f64(o.minutes * 60.0);
    let emulator = Emulator::start();
    println!("emulator state: {}", emulator.state_dir().display());
    let setup = emulator.clients().await;
    create_documents(&setup).await;
    let world = World::build(&emulator, &setup).await;
    start_faults(&emulator, seed, o);

    let journal: Shared = Arc::default();
    let delivery = Delivery::new(&emulator, seed, o.kill, journal.clone()).await;
    let t0 = Instant::now();
    let mut monitor = Monitor::new(&world);
    let mut script = Script::new(seed, o.sabotage);
    let mut tasks = tokio::task::JoinSet::new();
    let mut delivered = 0u64;
    let mut schedules = 0u64;
    let mut next_schedule = Duration::from_secs(3);
    let mut next_upkeep = Duration::from_secs(15);
    let mut tick = 0u64;
    let mut settled_since: Option<Instant> = None;
    loop {
        let now = t0.elapsed();
        // Lifecycle events, each to an invocation of its own.
        for e in emulator.take_events() {
            let transition = if e["detail-type"]
                .as_str()
                .is_some_and(|d| d.contains("launch"))
            {
                Transition::Launching
            } else {
                Transition::Terminating
            };
            tasks.spawn_local(delivery.clone().deliver(
                Trigger::Lifecycle(e, transition),
                "ev".into(),
                delivered,
            ));
            delivered += 1;
        }
        if now >= next_schedule {
            tasks.spawn_local(delivery.clone().deliver(
                Trigger::Schedule(scheduled_event()),
                "sched".into(),
                schedules,
            ));
            schedules += 1;
            next_schedule += Duration::from_secs(SCHEDULE_PERIOD);
        }
        if now >= next_upkeep {
            next_upkeep += Duration::from_secs(15);
            world.upkeep(&emulator, &setup).await;
        }
        script
            .play(now, &emulator, &setup, &world, &mut monitor)
            .await;
        tick += 1;
        if tick.is_multiple_of(2) {
            monitor.tick(&emulator, &setup).await;
        }
        if tick.is_multiple_of(20) {
            monitor.check_leases(&journal);
        }
        // Settled: the script ran, nothing is pending, every terminated instance's bound passed.
        let pending = monitor
            .actions
            .as_array()
            .map_or(0, |a| a.iter().filter(|x| x["result"].is_null()).count());
        let last_death = monitor.terminated.values().max().copied().unwrap_or(0);
        let quiet = now.as_secs() > script.last_step + 10
            && pending == 0
            && now_ms() > last_death + (NODE_BOUND as i64 + 5) * 1000;
        settled_since = if quiet {
            settled_since.or(Some(Instant::now()))
        } else {
            None
        };
        if settled_since.is_some_and(|s| s.elapsed() > Duration::from_secs(5)) {
            println!("  t+{:.0}s settled", now.as_secs_f64());
            break;
        }
        if started.elapsed() + Duration::from_secs(5) >= cap {
            println!(
                "  t+{:.0}s the run's bound ({:.1} min) reached: {pending} actions open, last instance seen terminated at {}",
                now.as_secs_f64(),
                o.minutes,
                monitor.rel(last_death)
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    {
        // Invocations cut by the run's end: ended now, neither killed nor failed.
        let mut j = journal.lock().expect("journal");
        let end = now_ms();
        for r in j.invocations.iter_mut().filter(|r| r.end_ms.is_none()) {
            r.end_ms = Some(end);
            r.outcome = "cut by the run's end".into();
        }
    }
    monitor.tick(&emulator, &setup).await;
    monitor.check_leases(&journal);
    monitor.check_open_at_end();
    report(
        seed,
        started,
        delivered,
        schedules,
        &emulator,
        &journal,
        &mut monitor,
    )
}

fn main() {
    let opts = parse_args();
    // The functions' metric lines (EMF on stdout in Lambda) would drown the report.
    joinkeeper::metrics::disable_stdout();
    println!(
        "chaos: seeds {:?}, throttle {}, lost answers {} ({}), 5xx {}, killed invocations {}, bound {} min per seed",
        opts.seeds, opts.throttle, opts.lost, opts.lost_mode, opts.errors, opts.kill, opts.minutes
    );
    // The functions' log lines (JSON, one file per process) for tracing a violation back.
    let log_path =
        std::env::temp_dir().join(format!("joinkeeper-chaos-{}.log", std::process::id()));
    if let Ok(file) = std::fs::File::create(&log_path) {
        let file = Arc::new(file);
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || file.clone())
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        println!("functions' logs: {}", log_path.display());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut summaries = Vec::new();
    for &seed in &opts.seeds {
        // The handlers' futures are not provably Send (higher-ranked lifetimes in the core's
        // join_all); the invocations run as local tasks of one thread, their I/O on the runtime.
        let local = tokio::task::LocalSet::new();
        summaries.push(runtime.block_on(local.run_until(run(seed, &opts))));
    }
    println!("\n=== summary ===");
    for s in &summaries {
        println!("  {}", s.line);
    }
    println!("  {}", report::pooled(&summaries));
    // One line per seed for soaks run as separate processes (pooled afterwards).
    for s in &summaries {
        println!("  samples seed {}: {:?}", s.seed, s.ready_to_continue);
    }
    let bad: Vec<u64> = summaries
        .iter()
        .filter(|s| s.violations > 0)
        .map(|s| s.seed)
        .collect();
    if bad.is_empty() {
        println!("no invariant violations");
    } else {
        println!("violations in seeds {bad:?}");
        std::process::exit(1);
    }
}
