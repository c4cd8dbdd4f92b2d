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
//! - no Node of a terminated instance outlives it by more than `NODE_BOUND` (drain timeout + 2
//!   node polls + one schedule period = 70 s);
//! - every action ended by joinkeeper's call: none by the hook's timeout (one still open when
//!   the run ends, heartbeated within its timeout, is noted, not counted);
//! - no lease held by two invocations at once: every lease write (create, overwrite, delete) of
//!   every invocation is recorded by an SDK interceptor with its holder, expiry and answer; a
//!   holder holds from the answer to its first write that took effect until it sent its
//!   release, its invocation ended (returned or killed), or the latest expiry it wrote
//!   successfully passed; two holders of one lease whose spans intersect are a violation;
//! - no launch waits while its cluster's join record has expired.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_autoscaling::types::{InstanceReusePolicy, WarmPoolState};
use aws_sdk_ec2::types::RequestLaunchTemplateData;
use aws_sdk_ssm::operation::delete_parameter::DeleteParameterInput;
use aws_sdk_ssm::operation::put_parameter::PutParameterInput;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use joinkeeper::aws::AwsClients;
use joinkeeper::handler::{handle_lifecycle, handle_schedule, LifecycleResponse};
use joinkeeper::lease::now_ms;
use joinkeeper::lifecycle::Transition;
use joinkeeper::names::ClusterName;
use joinkeeper::reconcile::ReconcileOutcome;
use joinkeeper::{deadline::Deadline, Config, Context, Invocation};
use joinkeeper_tests::*;
use serde_json::{json, Value};

// ---- timings of the world (seconds) ------------------------------------------------------------

const NODE_POLL: u64 = 5;
const DRAIN_TIMEOUT: u64 = 40;
const JOIN_DEADLINE: u64 = 60;
const HEARTBEAT: i32 = 90;
const SCHEDULE_PERIOD: u64 = 20;
const FUNCTION_TIMEOUT: u64 = 120;
/// Lambda's asynchronous retries (about 1 and 2 minutes), scaled down by 10.
const RETRY_DELAYS: [u64; 2] = [6, 12];
/// A Node may outlive its terminated instance by at most this: a drain given up at its timeout,
/// two node polls to notice, one scheduled sweep.
const NODE_BOUND: u64 = DRAIN_TIMEOUT + 2 * NODE_POLL + SCHEDULE_PERIOD;
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

// ---- options -----------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Opts {
    seeds: Vec<u64>,
    minutes: f64,
    throttle: f64,
    lost: f64,
    kill: f64,
    errors: f64,
    lost_mode: String,
    latency_ms: (u64, u64),
    faults: bool,
    sabotage: bool,
}

fn parse_args() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut o = Opts {
        seeds: Vec::new(),
        minutes: 5.0,
        throttle: 0.10,
        lost: 0.02,
        kill: 0.01,
        errors: 0.0,
        lost_mode: "reset".into(),
        latency_ms: (0, 0),
        faults: true,
        sabotage: false,
    };
    let mut i = 0;
    let value = |i: usize| -> String {
        args.get(i + 1)
            .cloned()
            .unwrap_or_else(|| panic!("{} needs a value", args[i]))
    };
    while i < args.len() {
        let f = |s: String| -> f64 { s.parse().unwrap_or_else(|_| panic!("not a number: {s}")) };
        match args[i].as_str() {
            "--seed" => o.seeds = vec![value(i).parse().expect("seed")],
            "--seeds" => {
                let v = value(i);
                let (a, b) = v.split_once("..").expect("--seeds A..B");
                let (a, b): (u64, u64) = (a.parse().expect("A"), b.parse().expect("B"));
                o.seeds = (a..=b).collect();
            }
            "--minutes" => o.minutes = f(value(i)),
            "--throttle" => o.throttle = f(value(i)),
            "--lost" => o.lost = f(value(i)),
            "--kill" => o.kill = f(value(i)),
            "--errors" => o.errors = f(value(i)),
            "--lost-mode" => o.lost_mode = value(i),
            "--latency-ms" => {
                let v = value(i);
                let (a, b) = v.split_once(',').expect("--latency-ms MIN,MAX");
                o.latency_ms = (a.parse().expect("MIN"), b.parse().expect("MAX"));
            }
            "--sabotage" => {
                o.sabotage = true;
                i += 1;
                continue;
            }
            "--no-faults" => {
                o.faults = false;
                i += 1;
                continue;
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    if o.seeds.is_empty() {
        o.seeds = vec![SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() % 100_000)
            .unwrap_or(1)];
    }
    o
}

// ---- a small seeded generator (SplitMix64) ------------------------------------------------------

#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    /// A stream of its own for each (seed, purpose, index), so choices do not depend on the
    /// order in which tasks draw them.
    fn of(seed: u64, purpose: &str, index: u64) -> Rng {
        let mut h = seed ^ 0x9e37_79b9_7f4a_7c15;
        for b in purpose.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
        let mut r = Rng(h ^ index.wrapping_mul(0xbf58_476d_1ce4_e5b9));
        r.next();
        r
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// lo..=hi
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

// ---- what the functions did, as seen from inside the harness ----------------------------------

tokio::task_local! {
    /// The invocation a task runs (the interceptor reads it to attribute each call and to
    /// pull the kill switch).
    static INVOCATION: Running;
}

/// What the interceptor knows of the invocation whose task makes a call.
#[derive(Clone, Debug)]
struct Running {
    id: String,
    /// Killed when its AWS request number `.0` leaves (1-based); `.1` is told then.
    kill_at_call: Option<(usize, Arc<tokio::sync::Notify>)>,
    calls: Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LeaseOp {
    Create,
    Overwrite,
    Delete,
}

/// One write to a lease parameter by a function.
#[derive(Clone, Debug)]
struct LeaseWrite {
    invocation: String,
    name: String,
    op: LeaseOp,
    holder: String,
    expires_at_ms: i64,
    sent_ms: i64,
    /// When the answer came back, and whether it said the write took effect.
    answered: Option<(i64, bool)>,
}

#[derive(Clone, Debug, Default)]
struct InvocationRecord {
    id: String,
    function: &'static str,
    start_ms: i64,
    end_ms: Option<i64>,
    /// "ok", "error: …", "killed" (the harness), "timed out" (Lambda's deadline).
    outcome: String,
    summary: String,
    /// AWS requests it sent, and the one it was to be killed at.
    calls: usize,
    kill_planned: Option<usize>,
}

#[derive(Debug, Default)]
struct Journal {
    lease: Vec<LeaseWrite>,
    invocations: Vec<InvocationRecord>,
}

type Shared = Arc<Mutex<Journal>>;

#[derive(Clone, Debug)]
struct LeaseSlot(usize);
impl Storable for LeaseSlot {
    type Storer = StoreReplace<Self>;
}

/// Records every write to a lease parameter (`…/leases/…`, takeover markers aside): which
/// invocation sent it, the holder and expiry in its value, when it left, and whether its answer
/// said it took effect.
#[derive(Clone, Debug)]
struct LeaseWatch(Shared);

impl Intercept for LeaseWatch {
    fn name(&self) -> &'static str {
        "LeaseWatch"
    }

    fn read_before_execution(
        &self,
        ctx: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = ctx.input();
        let lease = |name: &str| name.contains("/leases/") && !name.contains(".takeover.");
        let (name, op, value) = if let Some(p) = input.downcast_ref::<PutParameterInput>() {
            let name = p.name().unwrap_or_default().to_owned();
            let op = if p.overwrite() == Some(true) {
                LeaseOp::Overwrite
            } else {
                LeaseOp::Create
            };
            (name, op, p.value().unwrap_or_default().to_owned())
        } else if let Some(d) = input.downcast_ref::<DeleteParameterInput>() {
            (
                d.name().unwrap_or_default().to_owned(),
                LeaseOp::Delete,
                String::new(),
            )
        } else {
            return Ok(());
        };
        if !lease(&name) {
            return Ok(());
        }
        let parsed: Value = serde_json::from_str(&value).unwrap_or(Value::Null);
        let write = LeaseWrite {
            invocation: INVOCATION
                .try_with(|r| r.id.clone())
                .unwrap_or_else(|_| "?".into()),
            name,
            op,
            holder: parsed["holder"].as_str().unwrap_or_default().to_owned(),
            expires_at_ms: parsed["expires_at_ms"].as_i64().unwrap_or(0),
            sent_ms: now_ms(),
            answered: None,
        };
        if let Ok(mut j) = self.0.lock() {
            j.lease.push(write);
            cfg.interceptor_state()
                .store_put(LeaseSlot(j.lease.len() - 1));
        }
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _ctx: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let _ = INVOCATION.try_with(|r| {
            let n = r.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if let Some((at, switch)) = &r.kill_at_call {
                if n == *at {
                    switch.notify_one();
                }
            }
        });
        Ok(())
    }

    fn read_after_execution(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(LeaseSlot(i)) = cfg.load::<LeaseSlot>().cloned() {
            let ok = matches!(ctx.output_or_error(), Some(Ok(_)));
            if let Ok(mut j) = self.0.lock() {
                if let Some(w) = j.lease.get_mut(i) {
                    w.answered = Some((now_ms(), ok));
                }
            }
        }
        Ok(())
    }
}

/// One holder's time with a lease, as its invocation believed it: from the answer to its first
/// write that took effect until it sent the release, was killed or returned, or the latest
/// expiry it wrote successfully passed (the guard before the expiry is not subtracted, so an
/// overlap found here is one for any guard).
#[derive(Clone, Debug)]
struct Holding {
    name: String,
    holder: String,
    invocation: String,
    start_ms: i64,
    end_ms: i64,
    end_reason: &'static str,
}

fn holdings(j: &Journal, now: i64) -> Vec<Holding> {
    let ends: HashMap<&str, i64> = j
        .invocations
        .iter()
        .filter_map(|r| Some((r.id.as_str(), r.end_ms?)))
        .collect();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for w in &j.lease {
        if w.op == LeaseOp::Delete || w.holder.is_empty() {
            continue;
        }
        if !seen.insert((w.name.clone(), w.holder.clone())) {
            continue;
        }
        let mine: Vec<&LeaseWrite> = j
            .lease
            .iter()
            .filter(|x| x.name == w.name && x.holder == w.holder && x.op != LeaseOp::Delete)
            .collect();
        let Some(start) = mine
            .iter()
            .filter_map(|x| match x.answered {
                Some((t, true)) => Some(t),
                _ => None,
            })
            .min()
        else {
            continue;
        };
        let expiry = mine
            .iter()
            .filter(|x| matches!(x.answered, Some((_, true))))
            .map(|x| x.expires_at_ms)
            .max()
            .unwrap_or(start);
        let mut end = (expiry, "expiry written");
        if let Some(d) = j
            .lease
            .iter()
            .filter(|x| {
                x.op == LeaseOp::Delete
                    && x.name == w.name
                    && x.invocation == w.invocation
                    && x.sent_ms >= start
            })
            .map(|x| x.sent_ms)
            .min()
        {
            if d < end.0 {
                end = (d, "release sent");
            }
        }
        let inv_end = ends.get(w.invocation.as_str()).copied().unwrap_or(now);
        if inv_end < end.0 {
            end = (inv_end, "invocation ended");
        }
        out.push(Holding {
            name: w.name.clone(),
            holder: w.holder.clone(),
            invocation: w.invocation.clone(),
            start_ms: start,
            end_ms: end.0,
            end_reason: end.1,
        });
    }
    out
}

// ---- the world ----------------------------------------------------------------------------------

struct GroupSpec {
    name: &'static str,
    cluster: &'static str,
    pool: Option<WarmPoolState>,
    tags: Vec<(&'static str, &'static str)>,
}

fn groups() -> Vec<GroupSpec> {
    vec![
        GroupSpec {
            name: "alpha-w",
            cluster: "alpha",
            pool: None,
            tags: vec![("emulator:drain-seconds", "8")],
        },
        GroupSpec {
            name: "alpha-bad",
            cluster: "alpha",
            pool: None,
            tags: vec![("emulator:join", "never-ready")],
        },
        GroupSpec {
            name: "beta-w",
            cluster: "beta",
            pool: Some(WarmPoolState::Stopped),
            tags: vec![("emulator:drain-seconds", "3")],
        },
        GroupSpec {
            name: "beta-bad",
            cluster: "beta",
            pool: None,
            tags: vec![("emulator:join", "fail")],
        },
        GroupSpec {
            name: "gamma-w",
            cluster: "gamma",
            pool: Some(WarmPoolState::Running),
            tags: vec![("emulator:stuck-pods", "1")],
        },
    ]
}

const CLUSTERS: [&str; 3] = ["alpha", "beta", "gamma"];

async fn subnet_for(setup: &AwsClients, cidr: &str) -> String {
    let vpcs = setup
        .ec2
        .describe_vpcs()
        .send()
        .await
        .expect("describe vpcs");
    let vpc = vpcs
        .vpcs()
        .iter()
        .find(|v| v.is_default() == Some(true))
        .or_else(|| vpcs.vpcs().first())
        .and_then(|v| v.vpc_id())
        .expect("a VPC")
        .to_owned();
    setup
        .ec2
        .create_subnet()
        .vpc_id(vpc)
        .cidr_block(cidr)
        .availability_zone("us-east-1a")
        .send()
        .await
        .expect("subnet")
        .subnet()
        .and_then(|s| s.subnet_id())
        .expect("subnet id")
        .to_owned()
}

/// A worker group of `spec.cluster` (the harness's group with its launch and terminate hooks),
/// moved into `subnet`, whose launches run the real boot unit and join from user data.
async fn create_group(setup: &AwsClients, spec: &GroupSpec, subnet: &str) {
    create_worker_group(setup, spec.cluster, spec.name, HEARTBEAT, &spec.tags).await;
    let args = format!(
        "--cluster {} --prefix /joinkeeper --deadline-seconds {JOIN_DEADLINE}",
        spec.cluster
    );
    let user_data = format!(
        "#!/bin/bash\nset -euo pipefail\nexport JOINKEEPER_JOIN_TARGET_POLL_SECONDS=1 JOINKEEPER_JOIN_SERVICE_POLL_SECONDS=1\n/opt/joinkeeper/bin/joinkeeper-boot-unit {args}\n/opt/joinkeeper/bin/joinkeeper-join {args}\n"
    );
    // A launch template of its own (the emulator's moto cannot launch from a version added
    // later), and the group moved to it and into its subnet.
    let template = format!("{}-chaos", spec.name);
    let data = RequestLaunchTemplateData::builder()
        .image_id("ami-12c6146b")
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Medium)
        .user_data(aws_smithy_types::base64::encode(user_data.as_bytes()));
    let made = setup
        .ec2
        .create_launch_template()
        .launch_template_name(&template);
    made.launch_template_data(data.build())
        .send()
        .await
        .expect("launch template");
    let spec_lt = aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
        .launch_template_name(template)
        .version("$Latest")
        .build();
    setup
        .autoscaling
        .update_auto_scaling_group()
        .auto_scaling_group_name(spec.name)
        .launch_template(spec_lt)
        .vpc_zone_identifier(subnet)
        .send()
        .await
        .expect("group on its template, in its subnet");
    if let Some(state) = &spec.pool {
        setup
            .autoscaling
            .put_warm_pool()
            .auto_scaling_group_name(spec.name)
            .min_size(2)
            .max_group_prepared_capacity(2)
            .pool_state(state.clone())
            .instance_reuse_policy(
                InstanceReusePolicy::builder()
                    .reuse_on_scale_in(true)
                    .build(),
            )
            .send()
            .await
            .expect("warm pool");
    }
}

/// A scripted change of the world, at a second of the run.
#[derive(Clone, Debug)]
enum Step {
    Capacity(&'static str, i32),
    /// The first control plane of the cluster: its SSM agent goes offline.
    AgentOffline(&'static str),
    /// An instance of the group whose drain runs, terminated through EC2.
    TerminateDraining(&'static str),
    /// An in-service instance of the group terminated through EC2 (no hook runs): its Node is
    /// left and its private IP goes to the next launch in the subnet.
    TerminateInService(&'static str),
    /// The Node a dead instance of the cluster left, NotReady, under the name the next launch
    /// in the group's subnet will get (see `plant_stale_node`).
    StaleNode(&'static str),
    /// `--sabotage`: a waiting instance of the group completed by the harness itself with
    /// CONTINUE (a launch without a Ready Node, a terminate before its drain), to show the
    /// checks catch it.
    Sabotage(&'static str, &'static str),
}

fn timeline(seed: u64, sabotage: bool) -> Vec<(u64, Step)> {
    let mut r = Rng::of(seed, "timeline", 0);
    let mut j = |base: u64| base + r.range(0, 6);
    let mut n = Rng::of(seed, "sizes", 0);
    let mut steps = vec![
        (0, Step::Capacity("alpha-w", n.range(3, 5) as i32)),
        (0, Step::Capacity("alpha-bad", n.range(1, 2) as i32)),
        (j(0), Step::Capacity("beta-w", n.range(2, 4) as i32)),
        (j(0), Step::Capacity("beta-bad", 1)),
        (j(0), Step::Capacity("gamma-w", n.range(2, 3) as i32)),
        (j(40), Step::Capacity("alpha-w", 1)),
        (j(40), Step::Capacity("beta-w", 1)),
        (j(40), Step::Capacity("gamma-w", n.range(0, 1) as i32)),
        (46, Step::TerminateDraining("alpha-w")),
        (j(55), Step::AgentOffline("beta")),
        (j(62), Step::TerminateInService("alpha-w")),
        (69, Step::StaleNode("alpha-w")),
        (j(72), Step::Capacity("alpha-w", n.range(3, 5) as i32)),
        (j(72), Step::Capacity("beta-w", n.range(2, 4) as i32)),
        (j(72), Step::Capacity("gamma-w", n.range(2, 3) as i32)),
        (j(72), Step::Capacity("alpha-bad", 1)),
        (j(115), Step::Capacity("alpha-w", 0)),
        (j(115), Step::Capacity("beta-w", 0)),
        (j(115), Step::Capacity("gamma-w", 0)),
        (j(115), Step::Capacity("alpha-bad", 0)),
        (j(115), Step::Capacity("beta-bad", 0)),
    ];
    if sabotage {
        steps.push((12, Step::Sabotage("alpha-bad", "Pending:Wait")));
        steps.push((47, Step::Sabotage("alpha-w", "Terminating:Wait")));
    }
    steps.sort_by_key(|(t, _)| *t);
    steps
}

/// EC2 hands a terminated instance's private IP to a later launch in its subnet, and with it the
/// Node name (`ip-<a>-<b>-<c>-<d>.ec2.internal`). The emulator (moto) never frees a terminated
/// instance's address: it gives each subnet's addresses in order. So the harness plays the dead
/// instance: it launches an instance of the cluster outside any group, terminates it, and
/// registers the Node it would have left (NotReady, its providerID) under the name of the next
/// address the group's subnet will hand out.
async fn plant_stale_node(
    emulator: &Emulator,
    setup: &AwsClients,
    group: &str,
    subnets: &[(&str, String)],
) -> Option<String> {
    let cluster = group.split('-').next().unwrap_or_default();
    let (_, subnet) = subnets.iter().find(|(c, _)| *c == cluster)?;
    let Ok(out) = setup
        .ec2
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("subnet-id")
                .values(subnet)
                .build(),
        )
        .send()
        .await
    else {
        return None;
    };
    let highest = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.private_ip_address()?.parse::<std::net::Ipv4Addr>().ok())
        .max();
    let highest = highest?;
    let next = std::net::Ipv4Addr::from(u32::from(highest) + 1);
    let dead = launch_instance(setup, cluster, "worker", &[("emulator:user-data", "skip")]).await;
    let _ = setup
        .ec2
        .terminate_instances()
        .instance_ids(&dead)
        .send()
        .await;
    let name = format!("ip-{}.ec2.internal", next.to_string().replace('.', "-"));
    let script = format!(
        "import sys; sys.path.insert(0, {standins:?})\nimport joinkeeper_standin as s\nwith s.locked_state() as st:\n    s.add_node(st, {name:?}, provider_id={provider:?}, ready='False')\n",
        standins = repo_root().join("node-scripts/standins").display().to_string(),
        provider = format!("aws:///us-east-1a/{dead}"),
    );
    let status = std::process::Command::new(repo_root().join(".venv/bin/python"))
        .env(
            "JOINKEEPER_KUBE_STATE",
            emulator.state_dir().join("clusters").join(cluster),
        )
        .args(["-c", &script])
        .status();
    println!("    stale Node {name} of dead {dead} planted ({status:?})");
    Some(dead)
}

// ---- delivery -----------------------------------------------------------------------------------

#[derive(Clone)]
struct Delivery {
    seed: u64,
    kill: f64,
    journal: Shared,
    launch: AwsClients,
    terminate: AwsClients,
    schedule: AwsClients,
}

/// What one invocation may be: a lifecycle event or the schedule.
#[derive(Clone)]
enum Trigger {
    Lifecycle(Value, Transition),
    Schedule(Value),
}

impl Delivery {
    /// Delivers `trigger` as Lambda does an asynchronous invocation: the first attempt, and up to
    /// 2 retries when an attempt fails or is killed.
    async fn deliver(self, trigger: Trigger, label: String, index: u64) {
        for attempt in 0..3u64 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(RETRY_DELAYS[attempt as usize - 1])).await;
            }
            let mut rng = Rng::of(self.seed, &label, index * 4 + attempt);
            let budget = Duration::from_secs(rng.range(60, FUNCTION_TIMEOUT));
            // Killed at a random one of its first KILL_WINDOW requests (as it leaves: the request
            // may or may not reach AWS), plus 0-400 ms (between two calls, or while one is in
            // flight). An invocation that makes fewer requests returns unharmed.
            let kill_after = rng.chance(self.kill).then(|| {
                (
                    rng.range(1, KILL_WINDOW) as usize,
                    Duration::from_millis(rng.range(0, 400)),
                )
            });
            let id = format!("{label}-{index}-a{attempt}");
            if self.invoke(&trigger, &id, budget, kill_after).await {
                return;
            }
        }
    }

    /// One invocation; true when it returned a result (no retry).
    async fn invoke(
        &self,
        trigger: &Trigger,
        id: &str,
        budget: Duration,
        kill_after: Option<(usize, Duration)>,
    ) -> bool {
        let (function, base) = match trigger {
            Trigger::Lifecycle(_, Transition::Launching) => ("launch-hook", &self.launch),
            Trigger::Lifecycle(_, _) => ("terminate-hook", &self.terminate),
            Trigger::Schedule(_) => ("token-refresher", &self.schedule),
        };
        let clients = intercepted_clients(base, LeaseWatch(self.journal.clone()));
        let index = {
            let mut j = self.journal.lock().expect("journal");
            j.invocations.push(InvocationRecord {
                id: id.to_owned(),
                function,
                start_ms: now_ms(),
                ..Default::default()
            });
            j.invocations.len() - 1
        };
        let trigger = trigger.clone();
        let request_id = id.to_owned();
        let work = async move {
            let ctx = Context::new(config(), &clients);
            let inv = Invocation::new(
                request_id,
                Deadline::for_invocation(
                    SystemTime::now() + budget,
                    Duration::from_secs(FUNCTION_TIMEOUT),
                ),
            );
            match &trigger {
                Trigger::Lifecycle(event, t) => handle_lifecycle(&ctx, event, *t, &inv)
                    .await
                    .map(|r| summarize(&r))
                    .map_err(|e| e.to_string()),
                Trigger::Schedule(event) => handle_schedule(&ctx, event, &inv)
                    .await
                    .map(|r| {
                        format!(
                            "schedule: {} reconciled, {} rogue",
                            r.reconcile.len(),
                            r.rogue_nodes.len()
                        )
                    })
                    .map_err(|e| e.to_string()),
            }
        };
        let switch = Arc::new(tokio::sync::Notify::new());
        let calls: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let running = Running {
            id: id.to_owned(),
            kill_at_call: kill_after.map(|(n, _)| (n, switch.clone())),
            calls: calls.clone(),
        };
        let span = tracing::info_span!("invocation", id = %id, function);
        let work = tracing::Instrument::instrument(INVOCATION.scope(running, work), span);
        let kill = async {
            match kill_after {
                Some((_, extra)) => {
                    switch.notified().await;
                    tokio::time::sleep(extra).await;
                }
                None => std::future::pending().await,
            }
        };
        // Lambda ends the invocation at its deadline whatever it is doing.
        let result = tokio::time::timeout(budget, async {
            tokio::select! {
                r = work => Some(r),
                () = kill => None,
            }
        })
        .await;
        let (outcome, summary, done) = match result {
            Ok(Some(Ok(s))) => ("ok".to_owned(), s, true),
            Ok(Some(Err(e))) => (format!("error: {e}"), String::new(), false),
            Ok(None) => ("killed".to_owned(), String::new(), false),
            Err(_) => ("timed out".to_owned(), String::new(), false),
        };
        let mut j = self.journal.lock().expect("journal");
        let r = &mut j.invocations[index];
        r.end_ms = Some(now_ms());
        r.outcome = outcome;
        r.summary = summary;
        r.calls = calls.load(std::sync::atomic::Ordering::Relaxed);
        r.kill_planned = kill_after.map(|(n, _)| n);
        done
    }
}

fn summarize(r: &LifecycleResponse) -> String {
    match r {
        LifecycleResponse::Ignored { reason } => format!("ignored: {reason}"),
        LifecycleResponse::Reconciled {
            outcome: ReconcileOutcome::Ran(run),
            ..
        } => format!(
            "ran {} passes, {} final actions, {} pending, {:?}",
            run.passes,
            run.actions.len(),
            run.pending,
            run.stopped
        ),
        LifecycleResponse::Reconciled {
            outcome: ReconcileOutcome::HeldElsewhere { request_id, .. },
            ..
        } => format!("held elsewhere by {request_id}"),
    }
}

// ---- invariants ---------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Violation {
    invariant: &'static str,
    instance: String,
    at_ms: i64,
    evidence: String,
}

#[derive(Clone, Debug, Default)]
struct NodeSeen {
    cluster: String,
    name: String,
    ready: bool,
    /// When the stand-in registered it (whole seconds, as it stores it).
    created_s: i64,
    first_seen_ms: i64,
    last_seen_ms: i64,
    gone_ms: Option<i64>,
}

struct Monitor {
    t0_ms: i64,
    cluster_of_group: HashMap<String, String>,
    cluster_of_cp: HashMap<String, String>,
    /// The latest Node seen per instance (by the providerID naming it).
    nodes: HashMap<String, NodeSeen>,
    alive: HashMap<String, String>,
    terminated: BTreeMap<String, i64>,
    checked: BTreeSet<String>,
    flagged: BTreeSet<String>,
    violations: Vec<Violation>,
    notes: Vec<String>,
    ready_to_continue: Vec<f64>,
    terminate_to_complete: Vec<f64>,
    record_expiry: HashMap<String, i64>,
    last_record_read: i64,
    actions: Value,
    slow_terminates: Vec<(f64, String)>,
}

fn ms_of(text: &str) -> Option<i64> {
    Some((joinkeeper::timefmt::parse(text)?.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn ms(v: &Value) -> Option<i64> {
    ms_of(v.as_str()?)
}

fn instance_of_provider(provider: &str) -> Option<String> {
    let id = provider.rsplit('/').next()?;
    id.starts_with("i-").then(|| id.to_owned())
}

impl Monitor {
    fn rel(&self, t: i64) -> String {
        format!("t+{:.1}s", (t - self.t0_ms) as f64 / 1000.0)
    }

    fn violate(&mut self, key: String, v: Violation) {
        if self.flagged.insert(key) {
            println!(
                "  VIOLATION [{}] {} at {}: {}",
                v.invariant,
                v.instance,
                self.rel(v.at_ms),
                v.evidence
            );
            self.violations.push(v);
        }
    }

    fn poll_nodes(&mut self, emulator: &Emulator) {
        let now = now_ms();
        let mut present = BTreeSet::new();
        for c in CLUSTERS {
            let state = emulator.kube_state(c);
            let Some(nodes) = state["nodes"].as_object() else {
                continue;
            };
            for (name, n) in nodes {
                let Some(i) = n["providerID"].as_str().and_then(instance_of_provider) else {
                    continue;
                };
                present.insert(i.clone());
                let created_s = n["created"].as_i64().unwrap_or(0);
                let e = self.nodes.entry(i).or_insert_with(|| NodeSeen {
                    first_seen_ms: now,
                    ..Default::default()
                });
                if e.gone_ms.is_some() || e.created_s != created_s {
                    e.first_seen_ms = now;
                    e.gone_ms = None;
                }
                e.cluster = c.to_owned();
                e.name = name.clone();
                e.ready = n["ready"] == "True";
                e.created_s = created_s;
                e.last_seen_ms = now;
            }
        }
        for (i, n) in self.nodes.iter_mut() {
            if n.gone_ms.is_none() && !present.contains(i) {
                n.gone_ms = Some(now);
            }
        }
    }

    async fn poll_instances(&mut self, emulator: &Emulator, setup: &AwsClients) {
        let now = now_ms();
        let rows = emulator.control("/_joinkeeper/instances");
        let mut seen = HashMap::new();
        for r in rows.as_array().cloned().unwrap_or_default() {
            if let (Some(i), Some(g)) = (r["instance_id"].as_str(), r["group"].as_str()) {
                if r["ec2_state"] != "terminated" {
                    seen.insert(i.to_owned(), g.to_owned());
                }
            }
        }
        let gone: Vec<String> = self
            .alive
            .keys()
            .filter(|i| !seen.contains_key(*i))
            .cloned()
            .collect();
        if !gone.is_empty() {
            if let Ok(out) = setup
                .ec2
                .describe_instances()
                .set_instance_ids(Some(gone.clone()))
                .send()
                .await
            {
                for r in out.reservations() {
                    for i in r.instances() {
                        let terminated = i.state().and_then(|s| s.name()).is_some_and(|n| {
                            matches!(
                                n,
                                aws_sdk_ec2::types::InstanceStateName::Terminated
                                    | aws_sdk_ec2::types::InstanceStateName::ShuttingDown
                            )
                        });
                        if terminated {
                            if let Some(id) = i.instance_id() {
                                self.terminated.entry(id.to_owned()).or_insert(now);
                            }
                        }
                    }
                }
            }
        }
        self.alive = seen;
    }

    async fn poll_records(&mut self, setup: &AwsClients) {
        let now = now_ms();
        if now - self.last_record_read < 2000 {
            return;
        }
        self.last_record_read = now;
        for c in CLUSTERS {
            let got = joinkeeper::aws::parameters::ParameterStore::new(setup.ssm.clone())
                .get(&format!("/joinkeeper/{c}/join-record"), true)
                .await;
            if let Ok(Some((v, _))) = got {
                if let Ok(r) = joinkeeper::record::JoinRecord::from_json(&v) {
                    self.record_expiry.insert(
                        c.to_owned(),
                        (r.expires_at.unix_timestamp_nanos() / 1_000_000) as i64,
                    );
                }
            }
        }
    }

    /// One look at the world: every invariant on what changed since the last.
    async fn tick(&mut self, emulator: &Emulator, setup: &AwsClients) {
        self.actions = emulator.control("/_joinkeeper/lifecycle-actions");
        let actions = self.actions.as_array().cloned().unwrap_or_default();
        self.poll_nodes(emulator);
        self.poll_instances(emulator, setup).await;
        self.poll_records(setup).await;
        let now = now_ms();
        let log = emulator.lifecycle_log();
        let mut commands: Option<Vec<Value>> = None;
        for a in &actions {
            let token = a["token"].as_str().unwrap_or_default().to_owned();
            let instance = a["instance_id"].as_str().unwrap_or_default().to_owned();
            let launch = a["transition"]
                .as_str()
                .is_some_and(|t| t.ends_with("LAUNCHING"));
            // No worker waits on an expired join record.
            if a["result"].is_null() && launch && a["destination"] == "AutoScalingGroup" {
                let cluster = self
                    .cluster_of_group
                    .get(a["group"].as_str().unwrap_or_default())
                    .cloned()
                    .unwrap_or_default();
                if let Some(&exp) = self.record_expiry.get(&cluster) {
                    if now >= exp {
                        self.violate(
                            format!("expired {cluster} {exp}"),
                            Violation {
                                invariant: "waits on an expired join record",
                                instance: instance.clone(),
                                at_ms: now,
                                evidence: format!(
                                    "cluster {cluster}: the join record expired at {} while this launch waits (started {})",
                                    self.rel(exp),
                                    a["started"]
                                ),
                            },
                        );
                    }
                }
            }
            if a["result"].is_null() || self.checked.contains(&token) {
                continue;
            }
            self.checked.insert(token.clone());
            let result = a["result"].as_str().unwrap_or_default();
            let by = a["ended_by"].as_str().unwrap_or_default();
            let ended_s = ms(&a["ended"]).unwrap_or(now);
            // The completion call's own time (milliseconds), when joinkeeper made it.
            let t_c = log
                .iter()
                .filter(|l| {
                    l["instance_id"] == instance.as_str()
                        && l["hook"] == a["hook"]
                        && l["action"] == result
                        && l["result"] == "ok"
                })
                .filter_map(|l| ms(&l["time"]))
                .filter(|t| (t - ended_s).abs() <= 1500)
                .min()
                .unwrap_or(ended_s);
            if by == "timeout" {
                self.violate(
                    format!("timeout {token}"),
                    Violation {
                        invariant: "completed by joinkeeper",
                        instance: instance.clone(),
                        at_ms: ended_s,
                        evidence: format!(
                            "{} {}->{} in {} ended by the hook's timeout with {result} (started {}, last heartbeat {})",
                            a["hook"], a["origin"], a["destination"], a["group"], a["started"], a["last_heartbeat"]
                        ),
                    },
                );
            }
            if by != "api" {
                continue;
            }
            let node = self.nodes.get(&instance).cloned();
            if launch && result == "CONTINUE" && a["destination"] == "AutoScalingGroup" {
                match &node {
                    Some(n) if n.ready && n.created_s * 1000 <= t_c => {
                        self.ready_to_continue
                            .push((t_c - n.created_s * 1000) as f64 / 1000.0);
                    }
                    _ => self.violate(
                        format!("continue {token}"),
                        Violation {
                            invariant: "CONTINUE without a Ready Node",
                            instance: instance.clone(),
                            at_ms: t_c,
                            evidence: format!(
                                "launch of {} completed CONTINUE; Node naming the instance: {}",
                                a["group"],
                                describe_node(&node)
                            ),
                        },
                    ),
                }
            }
            if launch && result == "ABANDON" {
                // Counted from when the wait began (the action's start, whole seconds).
                let waited = t_c - ms(&a["started"]).unwrap_or(t_c);
                if waited + 1000 < JOIN_DEADLINE as i64 * 1000 {
                    self.violate(
                        format!("early {token}"),
                        Violation {
                            invariant: "ABANDON before the join deadline",
                            instance: instance.clone(),
                            at_ms: t_c,
                            evidence: format!(
                                "{} {}->{} in {} began {} and was ABANDONed at {}, {:.1} s into its wait (join deadline {JOIN_DEADLINE} s); Node: {}",
                                a["hook"], a["origin"], a["destination"], a["group"], a["started"], self.rel(t_c),
                                waited as f64 / 1000.0, describe_node(&node)
                            ),
                        },
                    );
                }
            }
            if result == "ABANDON" {
                if let Some(n) = node
                    .as_ref()
                    .filter(|n| n.ready && n.created_s * 1000 <= t_c)
                {
                    // Ready before the last node-status command joinkeeper sent the cluster
                    // ahead of the ABANDON: it knew, or could have.
                    let cmds = commands.get_or_insert_with(|| emulator.commands(None));
                    let last_status = cmds
                        .iter()
                        .filter(|c| c["document"] == "joinkeeper-node-status")
                        .filter(|c| {
                            c["instance_ids"][0]
                                .as_str()
                                .and_then(|cp| self.cluster_of_cp.get(cp))
                                == Some(&n.cluster)
                        })
                        .filter_map(|c| ms(&c["time"]))
                        .filter(|t| *t <= t_c)
                        .max();
                    let evidence = format!(
                        "{} completed ABANDON at {}; its Node {} was Ready since {}; last node-status command before it: {}",
                        a["hook"],
                        self.rel(t_c),
                        n.name,
                        self.rel(n.created_s * 1000),
                        last_status.map_or("none".into(), |t| self.rel(t))
                    );
                    if last_status.is_some_and(|t| n.created_s * 1000 + 1000 <= t) {
                        self.violate(
                            format!("abandon {token}"),
                            Violation {
                                invariant: "Ready worker ABANDONed",
                                instance: instance.clone(),
                                at_ms: t_c,
                                evidence,
                            },
                        );
                    } else {
                        self.notes
                            .push(format!("{instance}: race, not counted: {evidence}"));
                    }
                }
            }
            if !launch {
                let took = (t_c - ms(&a["started"]).unwrap_or(t_c)) as f64 / 1000.0;
                self.terminate_to_complete.push(took);
                self.slow_terminates.push((
                    took,
                    format!(
                        "{instance} {} {}->{}",
                        a["group"], a["origin"], a["destination"]
                    ),
                ));
                if let Some(n) = &node {
                    let present_at_completion = n.first_seen_ms <= t_c
                        && (n.gone_ms.is_none() || n.last_seen_ms >= t_c || {
                            // Gone between two looks: the stand-in's record of the delete says when.
                            !deleted_by(emulator, &n.cluster, &n.name, t_c)
                        });
                    if present_at_completion {
                        let cmds = commands.get_or_insert_with(|| emulator.commands(None));
                        let drains: Vec<&Value> = cmds
                            .iter()
                            .filter(|c| c["document"] == "joinkeeper-drain")
                            .filter(|c| {
                                param(&c["parameters"], "InstanceId") == Some(instance.as_str())
                            })
                            .filter(|c| ms(&c["time"]).is_some_and(|t| t <= t_c))
                            .collect();
                        let mut ok = false;
                        let mut seen = Vec::new();
                        for d in drains {
                            let sent = ms(&d["time"]).unwrap_or(0);
                            let (status, end) = command_end(setup, d).await;
                            seen.push(format!(
                                "drain {} sent {} {status} ended {}",
                                d["command_id"].as_str().unwrap_or("?"),
                                self.rel(sent),
                                end.map_or("-".into(), |e| self.rel(e))
                            ));
                            if end.is_some_and(|e| e <= t_c + 1000)
                                || sent + DRAIN_TIMEOUT as i64 * 1000 <= t_c
                            {
                                ok = true;
                            }
                        }
                        if !ok {
                            self.violate(
                                format!("drain {token}"),
                                Violation {
                                    invariant: "terminate completed before the drain",
                                    instance: instance.clone(),
                                    at_ms: t_c,
                                    evidence: format!(
                                        "{} {}->{} completed at {} while its Node {} stood ({}); drains: [{}]",
                                        a["hook"],
                                        a["origin"],
                                        a["destination"],
                                        self.rel(t_c),
                                        n.name,
                                        if n.ready { "Ready" } else { "NotReady" },
                                        seen.join("; ")
                                    ),
                                },
                            );
                        }
                    }
                }
            }
        }
        // No Node outlives its instance by more than NODE_BOUND.
        let late: Vec<(String, i64, NodeSeen)> = self
            .terminated
            .iter()
            .filter_map(|(i, t)| {
                let n = self.nodes.get(i)?;
                (n.gone_ms.is_none() && now > t + NODE_BOUND as i64 * 1000)
                    .then(|| (i.clone(), *t, n.clone()))
            })
            .collect();
        for (i, t, n) in late {
            self.violate(
                format!("outlives {i}"),
                Violation {
                    invariant: "Node outlives its instance",
                    instance: i.clone(),
                    at_ms: now,
                    evidence: format!(
                        "Node {} of cluster {} ({}) still there {:.0} s after the instance was seen terminated at {} (bound {NODE_BOUND} s)",
                        n.name,
                        n.cluster,
                        if n.ready { "Ready" } else { "NotReady" },
                        (now - t) as f64 / 1000.0,
                        self.rel(t)
                    ),
                },
            );
        }
    }

    fn check_leases(&mut self, journal: &Shared) {
        let hs = {
            let j = journal.lock().expect("journal");
            holdings(&j, now_ms())
        };
        for (k, a) in hs.iter().enumerate() {
            for b in hs.iter().skip(k + 1) {
                if a.name != b.name || a.holder == b.holder {
                    continue;
                }
                if a.start_ms < b.end_ms && b.start_ms < a.end_ms {
                    let (first, second) = if a.start_ms <= b.start_ms {
                        (a, b)
                    } else {
                        (b, a)
                    };
                    self.violate(
                        format!("lease {} {} {}", a.name, a.holder, b.holder),
                        Violation {
                            invariant: "lease held twice",
                            instance: first.name.clone(),
                            at_ms: second.start_ms,
                            evidence: format!(
                                "{} held by {} ({}) from {} to {} ({}), and by {} ({}) from {} to {} ({})",
                                first.name,
                                first.invocation,
                                first.holder,
                                self.rel(first.start_ms),
                                self.rel(first.end_ms),
                                first.end_reason,
                                second.invocation,
                                second.holder,
                                self.rel(second.start_ms),
                                self.rel(second.end_ms),
                                second.end_reason
                            ),
                        },
                    );
                }
            }
        }
    }
}

fn describe_node(n: &Option<NodeSeen>) -> String {
    match n {
        None => "none ever seen".into(),
        Some(n) => format!(
            "{} ready={} registered at {} (unix s){}",
            n.name,
            n.ready,
            n.created_s,
            if n.gone_ms.is_some() { ", gone" } else { "" }
        ),
    }
}

/// A command parameter's first value (the control API keeps them as SendCommand got them).
fn param<'a>(params: &'a Value, name: &str) -> Option<&'a str> {
    let v = &params[name];
    v.as_str().or_else(|| v[0].as_str())
}

/// Whether the stand-in's call record shows `kubectl delete node <name>` at or before `t_ms`.
fn deleted_by(emulator: &Emulator, cluster: &str, name: &str, t_ms: i64) -> bool {
    let path = emulator
        .state_dir()
        .join("clusters")
        .join(cluster)
        .join("calls.jsonl");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|c| c["tool"] == "kubectl")
        .filter(|c| {
            let argv: Vec<&str> = c["argv"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            argv.contains(&"delete") && argv.contains(&name)
        })
        .filter_map(|c| c["time"].as_f64())
        .any(|t| (t * 1000.0) as i64 <= t_ms + 500)
}

/// A command's status and end (on its first instance), asked with the set-up clients.
async fn command_end(setup: &AwsClients, c: &Value) -> (String, Option<i64>) {
    let (Some(id), Some(cp)) = (c["command_id"].as_str(), c["instance_ids"][0].as_str()) else {
        return ("?".into(), None);
    };
    match setup
        .ssm
        .get_command_invocation()
        .command_id(id)
        .instance_id(cp)
        .send()
        .await
    {
        Ok(out) => (
            format!(
                "{}/{}",
                out.status().map(|s| s.as_str()).unwrap_or("?"),
                out.status_details().unwrap_or("?")
            ),
            out.execution_end_date_time()
                .filter(|e| !e.is_empty())
                .and_then(ms_of),
        ),
        Err(e) => (format!("unknown ({e})"), None),
    }
}

fn percentile(v: &[f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let i = ((p / 100.0) * (s.len() as f64 - 1.0)).round() as usize;
    Some(s[i.min(s.len() - 1)])
}

fn fmt_p(v: &[f64]) -> String {
    match (percentile(v, 50.0), percentile(v, 99.0)) {
        (Some(a), Some(b)) => format!("p50 {a:.1} s, p99 {b:.1} s (n = {})", v.len()),
        _ => "no samples".into(),
    }
}

// ---- one run ------------------------------------------------------------------------------------

struct RunSummary {
    seed: u64,
    violations: usize,
    line: String,
}

async fn run(seed: u64, o: &Opts) -> RunSummary {
    println!("\n=== chaos seed {seed} ===");
    let started = Instant::now();
    let cap = Duration::from_secs_f64(o.minutes * 60.0);
    let emulator = Emulator::start();
    println!("emulator state: {}", emulator.state_dir().display());
    let setup = emulator.clients().await;
    create_documents(&setup).await;

    // Control planes and join records (set-up clients: no faults).
    let mut cluster_of_cp = HashMap::new();
    let mut first_cp = HashMap::new();
    for c in CLUSTERS {
        let n = if c == "beta" { 3 } else { 1 };
        for k in 0..n {
            let id = launch_instance(&setup, c, "control-plane", &[]).await;
            cluster_of_cp.insert(id.clone(), c.to_owned());
            if k == 0 {
                first_cp.insert(c, id);
            }
        }
    }
    let setup_ctx = Context::new(config(), &setup);
    for c in ["alpha", "beta"] {
        joinkeeper::regenerate::ensure_fresh(
            &setup_ctx,
            &ClusterName::parse(c).expect("name"),
            Duration::from_secs(3600),
            &Invocation::new("setup", Deadline::after(Duration::from_secs(120))),
        )
        .await
        .expect("record");
    }
    put_record(
        &setup,
        "gamma",
        &record_json(
            "gamma",
            "gam123",
            Duration::from_secs(86_400 - GAMMA_RECORD_LIFE - 20),
        ),
    )
    .await;

    let subnets = [
        ("alpha", subnet_for(&setup, "172.31.200.0/26").await),
        ("beta", subnet_for(&setup, "172.31.201.0/26").await),
        ("gamma", subnet_for(&setup, "172.31.202.0/26").await),
    ];
    let specs = groups();
    let mut cluster_of_group = HashMap::new();
    for s in &specs {
        let subnet = &subnets
            .iter()
            .find(|(c, _)| *c == s.cluster)
            .expect("subnet")
            .1;
        create_group(&setup, s, subnet).await;
        cluster_of_group.insert(s.name.to_owned(), s.cluster.to_owned());
    }

    // Faults, from now on, for the functions' calls only.
    let faults_on = o.faults
        && emulator.control_opt("/_joinkeeper/faults").is_object()
        && !emulator.control_opt("/_joinkeeper/faults")["error"].is_string();
    if faults_on {
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

    let journal: Shared = Arc::default();
    let delivery = Delivery {
        seed,
        kill: o.kill,
        journal: journal.clone(),
        launch: emulator.function_clients("launch-hook").await,
        terminate: emulator.function_clients("terminate-hook").await,
        schedule: emulator.function_clients("token-refresher").await,
    };
    let t0 = Instant::now();
    let mut monitor = Monitor {
        t0_ms: now_ms(),
        cluster_of_group,
        cluster_of_cp,
        nodes: HashMap::new(),
        alive: HashMap::new(),
        terminated: BTreeMap::new(),
        checked: BTreeSet::new(),
        flagged: BTreeSet::new(),
        violations: Vec::new(),
        notes: Vec::new(),
        ready_to_continue: Vec::new(),
        terminate_to_complete: Vec::new(),
        record_expiry: HashMap::new(),
        last_record_read: 0,
        actions: Value::Null,
        slow_terminates: Vec::new(),
    };
    let mut steps = timeline(seed, o.sabotage);
    steps.reverse();
    let last_step = steps.first().map_or(0, |(t, _)| *t);
    let mut tasks = tokio::task::JoinSet::new();
    let mut delivered = 0u64;
    let mut schedules = 0u64;
    let mut next_schedule = Duration::from_secs(3);
    let mut next_upkeep = Duration::from_secs(15);
    let mut pending_terminate_draining: Vec<(&'static str, Instant)> = Vec::new();
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
        // Auto Scaling's upkeep: pools refilled, ABANDONed instances replaced.
        if now >= next_upkeep {
            next_upkeep += Duration::from_secs(15);
            emulator.control_send("POST", "/_joinkeeper/warm-pools/maintain", &json!({}));
            for s in &specs {
                if let Ok(out) = setup
                    .autoscaling
                    .describe_auto_scaling_groups()
                    .auto_scaling_group_names(s.name)
                    .send()
                    .await
                {
                    if let Some(d) = out
                        .auto_scaling_groups()
                        .first()
                        .and_then(|g| g.desired_capacity())
                    {
                        set_capacity(&setup, s.name, d).await;
                    }
                }
            }
        }
        // The script.
        while steps.last().is_some_and(|(t, _)| now.as_secs() >= *t) {
            let (_, step) = steps.pop().expect("step");
            println!("  t+{:.0}s {step:?}", now.as_secs_f64());
            match step {
                Step::Capacity(g, n) => set_capacity(&setup, g, n).await,
                Step::AgentOffline(c) => {
                    let id = first_cp[c].clone();
                    let answer = emulator.control_send(
                        "POST",
                        &format!("/_joinkeeper/agents/{id}"),
                        &json!({"state": "offline", "ping_lag_seconds": 30}),
                    );
                    if answer.is_null() || answer["error"].is_string() {
                        // No agent control yet: the tag the emulator already knows.
                        setup
                            .ec2
                            .create_tags()
                            .resources(&id)
                            .tags(
                                aws_sdk_ec2::types::Tag::builder()
                                    .key("emulator:agent")
                                    .value("offline")
                                    .build(),
                            )
                            .send()
                            .await
                            .expect("tag");
                    }
                }
                Step::TerminateDraining(g) => {
                    pending_terminate_draining.push((g, Instant::now()));
                }
                Step::StaleNode(g) => {
                    if let Some(dead) = plant_stale_node(&emulator, &setup, g, &subnets).await {
                        monitor.terminated.insert(dead, now_ms());
                    }
                }
                Step::Sabotage(g, state) => {
                    let hook = if state.starts_with("Pending") {
                        "joinkeeper-launch"
                    } else {
                        "joinkeeper-terminate"
                    };
                    let victim = group_states(&setup, g)
                        .await
                        .into_iter()
                        .find(|(_, s)| s == state);
                    if let Some((id, _)) = victim {
                        let r = setup
                            .autoscaling
                            .complete_lifecycle_action()
                            .auto_scaling_group_name(g)
                            .lifecycle_hook_name(hook)
                            .instance_id(&id)
                            .lifecycle_action_result("CONTINUE")
                            .send()
                            .await;
                        println!("    sabotage: {id} {hook} CONTINUE ({})", r.is_ok());
                    }
                }
                Step::TerminateInService(g) => {
                    let victim = group_states(&setup, g)
                        .await
                        .into_iter()
                        .find(|(_, s)| s == "InService");
                    if let Some((id, _)) = victim {
                        println!("    terminating in-service {id} through EC2");
                        let _ = setup
                            .ec2
                            .terminate_instances()
                            .instance_ids(id)
                            .send()
                            .await;
                    }
                }
            }
        }
        // An instance terminated through EC2 while its drain runs.
        if let Some((g, since)) = pending_terminate_draining.first().cloned() {
            let drains = emulator.commands(Some("joinkeeper-drain"));
            let waiting = group_states(&setup, g).await;
            let victim = waiting.iter().find(|(i, s)| {
                s.starts_with("Terminating:Wait")
                    && drains
                        .iter()
                        .any(|d| param(&d["parameters"], "InstanceId") == Some(i.as_str()))
            });
            if let Some((id, _)) = victim {
                println!("    terminating {id} through EC2 while its drain runs");
                let _ = setup
                    .ec2
                    .terminate_instances()
                    .instance_ids(id)
                    .send()
                    .await;
                pending_terminate_draining.remove(0);
            } else if since.elapsed() > Duration::from_secs(30) {
                println!("    no drain of {g} ran in 30 s: nothing terminated mid-drain");
                pending_terminate_draining.remove(0);
            }
        }
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
        let quiet = now.as_secs() > last_step + 10
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

    // Actions still open at the end.
    let end = now_ms();
    for a in monitor.actions.as_array().cloned().unwrap_or_default() {
        if a["result"].is_null() {
            let started = ms(&a["started"]).unwrap_or(end);
            let key = format!("open {}", a["token"]);
            let v = Violation {
                invariant: "completed by joinkeeper",
                instance: a["instance_id"].as_str().unwrap_or_default().to_owned(),
                at_ms: end,
                evidence: format!(
                    "{} {}->{} in {} still open at the end, {:.0} s after it began (last heartbeat {})",
                    a["hook"],
                    a["origin"],
                    a["destination"],
                    a["group"],
                    (end - started) as f64 / 1000.0,
                    a["last_heartbeat"]
                ),
            };
            // Still heartbeated: cut by the run's bound, not forgotten (the emulator ends a
            // forgotten one by its timeout, caught above).
            let beat = ms(&a["last_heartbeat"]).unwrap_or(started);
            if end - beat > HEARTBEAT as i64 * 1000 {
                monitor.violate(key, v);
            } else {
                monitor
                    .notes
                    .push(format!("open when the run ended: {}", v.evidence));
            }
        }
    }

    // ---- report ----
    let faults = emulator.control_opt("/_joinkeeper/faults");
    let j = journal.lock().expect("journal");
    let mut by_outcome: BTreeMap<String, usize> = BTreeMap::new();
    for r in &j.invocations {
        let k = if r.outcome.starts_with("error") {
            "error"
        } else {
            r.outcome.as_str()
        };
        *by_outcome.entry(format!("{} {k}", r.function)).or_default() += 1;
    }
    let kills = j
        .invocations
        .iter()
        .filter(|r| r.outcome == "killed")
        .count();
    let mut actions: BTreeMap<String, usize> = BTreeMap::new();
    for a in monitor.actions.as_array().cloned().unwrap_or_default() {
        let kind = if a["transition"]
            .as_str()
            .is_some_and(|t| t.ends_with("LAUNCHING"))
        {
            "launch"
        } else {
            "terminate"
        };
        *actions
            .entry(format!(
                "{kind} {}->{} {} by {}",
                a["origin"].as_str().unwrap_or("?"),
                a["destination"].as_str().unwrap_or("?"),
                a["result"].as_str().unwrap_or("open"),
                a["ended_by"].as_str().unwrap_or("-")
            ))
            .or_default() += 1;
    }
    println!("\nseed {seed}: {:.0} s", started.elapsed().as_secs_f64());
    println!(
        "  faults injected        {}",
        if faults.is_object() && !faults["error"].is_string() {
            faults["injected"].to_string()
        } else {
            "none (no fault control in this emulator)".into()
        }
    );
    if faults["by_operation"].is_object() {
        println!("  faults by operation    {}", faults["by_operation"]);
    }
    println!(
        "  invocations            {} ({} events delivered, {schedules} schedules); {kills} killed; {by_outcome:?}",
        j.invocations.len(),
        delivered
    );
    println!("  actions by outcome     {actions:?}");
    println!(
        "  Node Ready -> CONTINUE {}",
        fmt_p(&monitor.ready_to_continue)
    );
    println!(
        "  terminate -> completed {}",
        fmt_p(&monitor.terminate_to_complete)
    );
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for r in j
        .invocations
        .iter()
        .filter(|r| r.outcome.starts_with("error"))
    {
        let short: String = r.outcome.chars().take(160).collect();
        *errors.entry(short).or_default() += 1;
    }
    for r in j.invocations.iter().filter(|r| r.outcome == "killed") {
        println!(
            "  killed                 {} at {} ({:.1} s in)",
            r.id,
            monitor.rel(r.end_ms.unwrap_or(0)),
            (r.end_ms.unwrap_or(0) - r.start_ms) as f64 / 1000.0
        );
    }
    for f in ["launch-hook", "terminate-hook", "token-refresher"] {
        let calls: Vec<f64> = j
            .invocations
            .iter()
            .filter(|r| r.function == f)
            .map(|r| r.calls as f64)
            .collect();
        let planned = j
            .invocations
            .iter()
            .filter(|r| r.function == f && r.kill_planned.is_some())
            .count();
        println!(
            "  {f:<22} AWS requests per invocation p50 {:.0}, max {:.0}; kills planned {planned}",
            percentile(&calls, 50.0).unwrap_or(0.0),
            calls.iter().copied().fold(0.0, f64::max)
        );
    }
    for (e, n) in &errors {
        println!("  invocation {e} (x{n})");
    }
    let hs = holdings(&j, now_ms());
    println!(
        "  lease writes           {} ({} holdings on {} leases)",
        j.lease.len(),
        hs.len(),
        hs.iter().map(|h| &h.name).collect::<BTreeSet<_>>().len()
    );
    monitor.slow_terminates.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (took, what) in monitor.slow_terminates.iter().take(3) {
        println!("  slowest terminate      {took:.1} s {what}");
    }
    for n in &monitor.notes {
        println!("  note: {n}");
    }
    println!("  invariant violations   {}", monitor.violations.len());
    for v in &monitor.violations {
        println!(
            "    [{}] {} at {}: {}",
            v.invariant,
            v.instance,
            monitor.rel(v.at_ms),
            v.evidence
        );
    }
    let line = format!(
        "seed {seed}: {} violations; kills {kills}; Ready->CONTINUE {}; terminate->completed {}; faults {}",
        monitor.violations.len(),
        fmt_p(&monitor.ready_to_continue),
        fmt_p(&monitor.terminate_to_complete),
        if faults.is_object() { faults["injected"].to_string() } else { "none".into() }
    );
    RunSummary {
        seed,
        violations: monitor.violations.len(),
        line,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn write(
        inv: &str,
        op: LeaseOp,
        holder: &str,
        expires: i64,
        sent: i64,
        ok: bool,
    ) -> LeaseWrite {
        LeaseWrite {
            invocation: inv.into(),
            name: "/joinkeeper/c/leases/reconcile".into(),
            op,
            holder: holder.into(),
            expires_at_ms: expires,
            sent_ms: sent,
            answered: Some((sent + 10, ok)),
        }
    }

    fn overlaps(j: &Journal) -> usize {
        let hs = holdings(j, 100_000);
        let mut n = 0;
        for (k, a) in hs.iter().enumerate() {
            for b in hs.iter().skip(k + 1) {
                if a.name == b.name && a.start_ms < b.end_ms && b.start_ms < a.end_ms {
                    n += 1;
                }
            }
        }
        n
    }

    #[test]
    fn a_release_then_a_create_and_an_expiry_then_a_takeover_are_not_overlaps() {
        let j = Journal {
            lease: vec![
                write("a", LeaseOp::Create, "h1", 5_000, 1_000, true),
                write("a", LeaseOp::Delete, "", 0, 2_000, true),
                write("b", LeaseOp::Create, "h2", 9_000, 2_100, true),
                // b is killed at 3 s; c takes over once h2's expiry has passed.
                write("c", LeaseOp::Overwrite, "h3", 20_000, 9_000, true),
                // A create whose answer said it failed holds nothing.
                write("d", LeaseOp::Create, "h4", 30_000, 9_500, false),
            ],
            invocations: vec![InvocationRecord {
                id: "b".into(),
                end_ms: Some(3_000),
                ..Default::default()
            }],
        };
        assert_eq!(overlaps(&j), 0, "{:?}", holdings(&j, 100_000));
    }

    #[test]
    fn a_late_renewal_after_a_takeover_is_an_overlap() {
        let j = Journal {
            lease: vec![
                write("a", LeaseOp::Create, "h1", 5_000, 1_000, true),
                write("b", LeaseOp::Overwrite, "h2", 20_000, 5_100, true),
                // a's renewal, sent before its expiry, answered after b took over.
                LeaseWrite {
                    answered: Some((6_000, true)),
                    ..write("a", LeaseOp::Overwrite, "h1", 15_000, 4_000, true)
                },
            ],
            invocations: Vec::new(),
        };
        assert_eq!(overlaps(&j), 1, "{:?}", holdings(&j, 100_000));
    }
}
