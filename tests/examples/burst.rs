//! Benchmark: a burst of N workers launched together, every launch event put into the lifecycle
//! queue as EventBridge would and delivered in batches by the local event source mapping (each
//! invocation with its own 895 s deadline), Nodes becoming Ready J seconds after the events.
//! `--throttled`: AWS's default request rates (the emulator's token buckets). `--per-instance`:
//! join mode per-instance: from J seconds on, each worker waits for its own record (minted by the
//! functions' pass), asks for its certificate with that token, and registers its Node once the
//! functions approved it. Prints figures; asserts nothing.
//!
//! Run: `cargo run -p joinkeeper-tests --example burst -- [N ...] [--join-seconds J]
//! [--arrival-seconds A] [--throttled] [--per-instance]` (default N = 10 100 500, J = 20, A = 3,
//! node poll 5 s). `JOINKEEPER_EXAMPLE_LOG=1`: the functions' log lines on standard error.
#![recursion_limit = "256"] // the handlers' futures nest deeply; a clean build overflows the default

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use joinkeeper::handler::{handle_lifecycle_delivery, HandlerError, LifecycleDelivery};
use joinkeeper::lifecycle::Transition;
use joinkeeper::names::ClusterName;
use joinkeeper::reconcile::ReconcileOutcome;
use joinkeeper::{deadline::Deadline, Config, Context, Invocation};
use joinkeeper_tests::event_source::{self, Mapping};
use joinkeeper_tests::*;
use serde_json::Value;

const POLL_SECONDS: u64 = 5;

/// One invocation: its duration, the time it waited for the emulator, its answer.
type Invoked = (Duration, Duration, Result<LifecycleDelivery, HandlerError>);

/// The account stack's event source mapping settings (infra/lib/event-source.json).
fn mapping_settings() -> Mapping {
    event_source::stack_settings().mapping
}

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

/// The workers of join mode per-instance, from the moment they could join: each sees its own
/// record (one read of `<prefix>/demo/join/` a second stands for their polls), its kubelet asks
/// for a certificate with its token (a pending request under its own Node name), and its Node
/// registers once the request is approved. Returns when every Node registered, or after 600 s.
async fn per_instance_workers(
    emulator: &Emulator,
    ssm: &aws_sdk_ssm::Client,
    nodes: &[(String, String)],
) {
    let node_of: BTreeMap<String, (String, String)> = nodes
        .iter()
        .map(|(name, provider)| {
            let id = provider.rsplit('/').next().unwrap_or_default().to_owned();
            (id, (name.clone(), provider.clone()))
        })
        .collect();
    let (mut asked, mut joined) = (BTreeMap::new(), std::collections::BTreeSet::new());
    let until = Instant::now() + Duration::from_secs(600);
    while joined.len() < nodes.len() && Instant::now() < until {
        let mut pages = ssm
            .get_parameters_by_path()
            .path("/joinkeeper/demo/join")
            .with_decryption(true)
            .into_paginator()
            .send();
        let mut new = Vec::new();
        while let Some(Ok(page)) = pages.next().await {
            for p in page.parameters() {
                let id = p
                    .name()
                    .unwrap_or_default()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default();
                let record: Value =
                    serde_json::from_str(p.value().unwrap_or("{}")).unwrap_or_default();
                let (Some((name, _)), Some(token)) = (node_of.get(id), record["token_id"].as_str())
                else {
                    continue;
                };
                if asked.insert(token.to_owned(), id.to_owned()).is_none() {
                    new.push((name.clone(), token.to_owned()));
                }
            }
        }
        if !new.is_empty() {
            emulator.add_pending_csrs("demo", &new);
        }
        let state = emulator.kube_state("demo");
        let approved: Vec<(String, String)> = state["csrs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["status"] == "KubectlApprove")
            .filter_map(|c| asked.get(c["username"].as_str()?.strip_prefix("system:bootstrap:")?))
            .filter(|id| joined.insert((*id).clone()))
            .filter_map(|id| node_of.get(id).cloned())
            .collect();
        if !approved.is_empty() {
            emulator.add_ready_nodes("demo", &approved);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn run(n: usize, join_seconds: u64, arrival: Duration, throttled: bool, per_instance: bool) {
    let emulator = Emulator::start();
    let setup = emulator.clients().await;
    create_documents(&setup).await;
    launch_control_plane(&emulator, &setup, "demo", &[]).await;
    let counter = CallCounter::default();
    let clients = emulator.counted_clients_as(&counter, "launch-hook").await;
    let ctx = Context::new(config(), &clients).with_metrics(joinkeeper::metrics::Metrics::Off);
    let cluster = ClusterName::parse("demo").expect("name");
    let setup_inv = Invocation::new("setup", Deadline::after(Duration::from_secs(120)));
    joinkeeper::regenerate::ensure_fresh(&ctx, &cluster, Duration::from_secs(3600), &setup_inv)
        .await
        .expect("record");
    if per_instance {
        put_join_mode(&setup.ssm, "demo", "per-instance").await;
    }
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
    // The Nodes the workers' kubelets would register: private DNS name and providerID.
    let mut nodes: Vec<(String, String)> = Vec::new();
    for chunk in ids.chunks(100) {
        let out = setup
            .ec2
            .describe_instances()
            .set_instance_ids(Some(chunk.to_vec()))
            .send()
            .await
            .expect("describe");
        for i in out.reservations().iter().flat_map(|r| r.instances()) {
            let id = i.instance_id().unwrap_or_default();
            nodes.push((
                i.private_dns_name().unwrap_or_default().to_owned(),
                format!("aws:///us-east-1a/{id}"),
            ));
        }
    }
    let before_commands = emulator.commands(Some("joinkeeper-node-status")).len();
    let queue = event_source::create_queue(
        &aws_sdk_sqs::Client::new(&emulator.sdk_config(None).await),
        "joinkeeper-lifecycle-events",
        // The deployed function timeout (15 minutes) times the stack's factor.
        Duration::from_secs(900 * u64::from(event_source::stack_settings().visibility_factor)),
        event_source::stack_settings().max_receive,
    )
    .await;
    // Auto Scaling's bucket as the emulator enforces it (rate a second, burst): every completion
    // draws from it, so N completions need at least (N - burst) / rate seconds.
    let mut autoscaling_bucket = None;
    if throttled {
        // AWS's default request rates for the functions' calls (emulator/README.md, "Faults").
        let faults = emulator.control_send(
            "POST",
            "/_joinkeeper/faults",
            &serde_json::json!({"token_buckets": true}),
        );
        autoscaling_bucket = faults["token_buckets"]["autoscaling:*"]
            .as_array()
            .and_then(|b| Some((b.first()?.as_f64()?, b.get(1)?.as_f64()?)));
    }
    counter.reset();
    let started = Instant::now();
    let started_ms = joinkeeper::lease::now_ms();

    // EventBridge's rule puts each event into the queue as it comes; the local event source
    // mapping (`joinkeeper_tests::event_source`) polls, batches and invokes, each invocation in
    // a container of its own, as Lambda's concurrent invocations run: its own clients
    // (connection pool), counted, and timed to tell the emulator's answer time from the
    // function's own.
    let bridge = aws_sdk_sqs::Client::new(&emulator.sdk_config(None).await);
    let esm_sqs = aws_sdk_sqs::Client::new(&emulator.sdk_config(Some("launch-hook")).await);
    let base = emulator.function_clients("launch-hook").await;
    let results: Arc<Mutex<Vec<Invoked>>> = Arc::default();
    let seq = Arc::new(AtomicUsize::new(0));
    let invoke = {
        let (results, counter) = (results.clone(), counter.clone());
        move |event: Value| {
            let (base, results, counter, seq) =
                (base.clone(), results.clone(), counter.clone(), seq.clone());
            async move {
                let timer = CallTimer::default();
                let ctx = Context::new(config(), &container_clients(&base, &counter, &timer))
                    .with_metrics(joinkeeper::metrics::Metrics::Off);
                let t = Instant::now();
                let i = seq.fetch_add(1, Ordering::SeqCst);
                let inv = Invocation::new(
                    format!("req-{i}"),
                    Deadline::after(Duration::from_secs(895)),
                );
                let r = handle_lifecycle_delivery(&ctx, &event, Transition::Launching, &inv).await;
                let answer = match &r {
                    Ok(LifecycleDelivery::Batch(b)) => Ok(b
                        .response
                        .batch_item_failures
                        .iter()
                        .map(|f| f.item_identifier.clone())
                        .collect()),
                    Ok(LifecycleDelivery::Event(_) | LifecycleDelivery::Exit(_)) => Ok(Vec::new()),
                    Err(e) => Err(e.to_string()),
                };
                results
                    .lock()
                    .expect("results")
                    .push((t.elapsed(), timer.waited(), r));
                answer
            }
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mapping = event_source::run_mapping(
        esm_sqs,
        queue.clone(),
        mapping_settings(),
        stop.clone(),
        invoke,
    );
    let deliveries = events.iter().enumerate().map(|(i, e)| {
        let (bridge, queue) = (&bridge, &queue);
        async move {
            // Events arrive spread over a few seconds, as a group's launches are.
            let spread = arrival.as_millis() as u64 * (i as u64 * 7919 % n as u64) / n as u64;
            tokio::time::sleep(Duration::from_millis(spread)).await;
            event_source::send_event(bridge, queue, e).await;
        }
    });
    let ready_at = async {
        tokio::time::sleep(Duration::from_secs(join_seconds)).await;
        let could_join = joinkeeper::lease::now_ms();
        if per_instance {
            per_instance_workers(&emulator, &setup.ssm, &nodes).await;
        } else {
            emulator.add_ready_nodes("demo", &nodes);
        }
        could_join
    };
    let burst = async {
        let delivered = async {
            futures_util::future::join_all(deliveries).await;
            joinkeeper::lease::now_ms()
        };
        let (delivered_ms, ready_ms) = tokio::join!(delivered, ready_at);
        // Until every action is completed (or long past the deadline); then the mapping winds
        // down.
        while emulator
            .lifecycle_log()
            .iter()
            .filter(|a| a["action"] == "CONTINUE" || a["action"] == "ABANDON")
            .count()
            < n
            && started.elapsed() < Duration::from_secs(join_seconds + 600)
        {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        stop.store(true, Ordering::SeqCst);
        (ready_ms, delivered_ms)
    };
    let (esm, (ready_ms, delivered_ms)) = tokio::join!(mapping, burst);
    let wall = started.elapsed();
    let results = std::mem::take(&mut *results.lock().expect("results"));
    let dead_letters = event_source::depth(&bridge, &queue.dead_letter_url, false).await;
    let left = event_source::depth(&bridge, &queue.url, false).await
        + event_source::depth(&bridge, &queue.url, true).await;

    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut elsewhere = 0;
    for (_, _, r) in &results {
        match r {
            Ok(LifecycleDelivery::Batch(b)) => {
                for o in &b.reconciled {
                    match o {
                        ReconcileOutcome::Ran(run) => {
                            for a in &run.actions {
                                *outcomes.entry(a.outcome.label().to_owned()).or_default() += 1;
                            }
                        }
                        ReconcileOutcome::HeldElsewhere { .. } => elsewhere += 1,
                    }
                }
            }
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
        "\nN = {n} workers, events arriving over {:.0} s, Nodes Ready {join_seconds} s after the first, node poll {POLL_SECONDS} s{}{}",
        arrival.as_secs_f64(),
        if throttled { ", AWS's default request rates (token buckets)" } else { "" },
        if per_instance { ", join mode per-instance (Nodes join from then on, each with its own token once approved)" } else { "" }
    );
    // The emulator's queue takes the events more slowly than they are sent when it is busy
    // (N = 2,000): the functions cannot act on an event before it is in the queue.
    println!(
        "  events in the queue                     over {:.1} s (sent over {:.0} s), the last {:.1} s after the Nodes could join",
        (delivered_ms - started_ms) as f64 / 1000.0,
        arrival.as_secs_f64(),
        ((delivered_ms - ready_ms) as f64 / 1000.0).max(0.0)
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
        "  Lambda invocations                      {} ({} failed; batches of at most {}, {} at once at most; {} messages reported failed, {} in the dead-letter queue, {} left in the queue)",
        esm.invocations, esm.failed_invocations, mapping_settings().batch_size, esm.peak_batches, esm.messages_failed, dead_letters, left
    );
    let writes: usize = calls
        .iter()
        .filter(|(k, _)| k.ends_with(":PutParameter") || k.ends_with(":DeleteParameter"))
        .map(|(_, v)| v)
        .sum();
    println!("  Parameter Store writes                  {writes}");
    println!(
        "  AWS calls per worker                    {:.2} ({total} in all; the mapping's SQS calls not counted)",
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
            "  could join -> last CONTINUE             {:.1} s (first event -> last CONTINUE {:.1} s)",
            (c - ready_ms) as f64 / 1000.0,
            (c - started_ms) as f64 / 1000.0
        ),
        None => println!("  Node Ready -> last CONTINUE             (no CONTINUE)"),
    }
    if let (Some((rate, burst)), Some(c)) = (autoscaling_bucket, last_continue) {
        let floor = (n as f64 - burst).max(0.0) / rate.max(f64::EPSILON);
        println!(
            "  Auto Scaling's bucket ({rate}/s, burst {burst}) alone needs {floor:.1} s for {n} completions; could join -> last CONTINUE beyond that: {:.1} s",
            (c - ready_ms) as f64 / 1000.0 - floor
        );
    }
    println!(
        "  wall time until all completed           {:.1} s",
        wall.as_secs_f64()
    );
    println!("  calls by operation                      {calls:?}");
}

#[tokio::main]
async fn main() {
    // The functions' own log lines, to see where a slow burst's time went.
    if std::env::var_os("JOINKEEPER_EXAMPLE_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_max_level(tracing::Level::INFO)
            .init();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut sizes = Vec::new();
    let mut join_seconds = 20;
    let mut arrival = Duration::from_secs(3);
    let mut throttled = false;
    let per_instance = args.iter().any(|a| a == "--per-instance");
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
        run(n, join_seconds, arrival, throttled, per_instance).await;
    }
}
