//! joinkeeper's invariants, checked while the run goes (every second, from the emulator's
//! lifecycle actions and completion log, the stand-in control planes' Nodes, the group instances
//! and the join records) and at its end. The checks of each completed action are in `actions`,
//! the lease's in `leases`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use joinkeeper::aws::AwsClients;
use joinkeeper::lease::now_ms;
use joinkeeper_tests::*;
use serde_json::Value;

use crate::world::{World, CLUSTERS};
use crate::HEARTBEAT;

mod actions;
pub mod leases;

#[derive(Clone, Debug)]
pub struct Violation {
    pub invariant: &'static str,
    pub instance: String,
    pub at_ms: i64,
    pub evidence: String,
}

#[derive(Clone, Debug, Default)]
pub struct NodeSeen {
    pub cluster: String,
    pub name: String,
    pub ready: bool,
    /// When the stand-in registered it (whole seconds, as it stores it).
    pub created_s: i64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub gone_ms: Option<i64>,
}

pub struct Monitor {
    pub t0_ms: i64,
    pub cluster_of_group: HashMap<String, String>,
    pub cluster_of_cp: HashMap<String, String>,
    /// The latest Node seen per instance (by the providerID naming it).
    pub nodes: HashMap<String, NodeSeen>,
    pub alive: HashMap<String, String>,
    pub terminated: BTreeMap<String, i64>,
    pub checked: BTreeSet<String>,
    pub flagged: BTreeSet<String>,
    pub violations: Vec<Violation>,
    pub notes: Vec<String>,
    pub ready_to_continue: Vec<f64>,
    pub terminate_to_complete: Vec<f64>,
    pub record_expiry: HashMap<String, i64>,
    pub last_record_read: i64,
    pub actions: Value,
    pub slow_terminates: Vec<(f64, String)>,
    /// Ready → CONTINUE, with the instance and when the Node was created (for the report).
    pub slow_continues: Vec<(f64, String)>,
}

fn ms_of(text: &str) -> Option<i64> {
    Some((joinkeeper::timefmt::parse(text)?.unix_timestamp_nanos() / 1_000_000) as i64)
}

pub fn ms(v: &Value) -> Option<i64> {
    ms_of(v.as_str()?)
}

fn instance_of_provider(provider: &str) -> Option<String> {
    let id = provider.rsplit('/').next()?;
    id.starts_with("i-").then(|| id.to_owned())
}

impl Monitor {
    pub fn new(world: &World) -> Monitor {
        Monitor {
            t0_ms: now_ms(),
            cluster_of_group: world.cluster_of_group.clone(),
            cluster_of_cp: world.cluster_of_cp.clone(),
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
            slow_continues: Vec::new(),
        }
    }

    pub fn rel(&self, t: i64) -> String {
        format!("t+{:.1}s", (t - self.t0_ms) as f64 / 1000.0)
    }

    pub fn violate(&mut self, key: String, v: Violation) {
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

    /// Actions still open at the end: a violation unless still heartbeated (cut by the run's
    /// bound, not forgotten).
    pub fn check_open_at_end(&mut self) {
        let end = now_ms();
        for a in self.actions.as_array().cloned().unwrap_or_default() {
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
                // forgotten one by its timeout, caught by `tick`).
                let beat = ms(&a["last_heartbeat"]).unwrap_or(started);
                if end - beat > HEARTBEAT as i64 * 1000 {
                    self.violate(key, v);
                } else {
                    self.notes
                        .push(format!("open when the run ended: {}", v.evidence));
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
pub fn param<'a>(params: &'a Value, name: &str) -> Option<&'a str> {
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
