//! A cluster with joined workers, for the exits' tests and the Spot example: one control plane,
//! a worker group whose launches were completed by the launch handler, and the stand-in control
//! plane's Nodes read back by instance.

use std::collections::HashMap;
use std::time::Duration;

use joinkeeper::handler::{handle_lifecycle_delivery, handle_schedule, HandlerError};
use joinkeeper::lifecycle::Transition;
use joinkeeper::names::ClusterName;
use joinkeeper::{deadline::Deadline, Config, Context, Invocation};
use serde_json::Value;

use crate::*;

pub fn inv(name: &str, seconds: u64) -> Invocation {
    Invocation::new(name, Deadline::after(Duration::from_secs(seconds)))
}

/// The tests' configuration (short polls and deadlines) with `extra` variables.
pub fn exits_config(extra: &'static [(&'static str, &'static str)]) -> Config {
    Config::from_lookup(move |name| match name {
        "JOINKEEPER_COMMAND_POLL_MILLIS" => Some("100".into()),
        "JOINKEEPER_COMMAND_DEADLINE_SECONDS" => Some("30".into()),
        "JOINKEEPER_JOIN_DEADLINE_SECONDS" => Some("60".into()),
        "JOINKEEPER_NODE_POLL_SECONDS" => Some("1".into()),
        "JOINKEEPER_DRAIN_TIMEOUT_SECONDS" => Some("60".into()),
        other => extra
            .iter()
            .find(|(k, _)| *k == other)
            .map(|(_, v)| (*v).to_owned()),
    })
    .expect("config")
}

pub struct World {
    pub emulator: Emulator,
    pub clients: joinkeeper::aws::AwsClients,
    pub ctx: Context,
    pub workers: Vec<String>,
    /// Private IP of each worker (its Node's InternalIP).
    pub ips: HashMap<String, String>,
}

/// A cluster `demo` with one control plane and `n` workers that joined (their launches
/// completed), under `config`.
pub async fn world(n: i32, config: Config) -> World {
    let (emulator, clients) = Emulator::with_documents().await;
    launch_control_plane(&emulator, &clients, "demo", &[]).await;
    // Metrics kept in memory: the example prints its own figures.
    let ctx = Context::new(config, &emulator.function_clients("terminate-hook").await)
        .with_metrics(joinkeeper::metrics::Metrics::captured());
    let demo = ClusterName::parse("demo").expect("name");
    joinkeeper::regenerate::ensure_fresh(&ctx, &demo, Duration::from_secs(3600), &inv("s", 120))
        .await
        .expect("record");
    create_worker_group(&clients, "demo", "demo-workers", 300, &[]).await;
    set_capacity(&clients, "demo-workers", n).await;
    let mut launches = Vec::new();
    assert!(
        eventually(Duration::from_secs(30), || {
            launches.extend(emulator.take_events());
            let done = launches.len() >= n as usize;
            async move { done }
        })
        .await
    );
    for (i, e) in launches.iter().enumerate() {
        handle_lifecycle_delivery(&ctx, e, Transition::Launching, &inv(&format!("l{i}"), 120))
            .await
            .expect("launch handled");
    }
    let workers: Vec<String> = group_states(&clients, "demo-workers")
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    emulator.control("/_joinkeeper/exit-events"); // the launches' own state changes
    let described = clients
        .ec2
        .describe_instances()
        .set_instance_ids(Some(workers.clone()))
        .send()
        .await
        .expect("describe");
    let ips = described
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| {
            Some((
                i.instance_id()?.to_owned(),
                i.private_ip_address()?.to_owned(),
            ))
        })
        .collect();
    let w = World {
        emulator,
        clients,
        ctx,
        workers,
        ips,
    };
    for id in &w.workers {
        assert!(w.node_of(id).is_some(), "{id} joined");
    }
    w
}

impl World {
    /// The Node of `instance` (by its InternalIP), with its fields.
    pub fn node_of(&self, instance: &str) -> Option<(String, Value)> {
        let ip = self.ips.get(instance)?;
        let state = self.emulator.kube_state("demo");
        state["nodes"]
            .as_object()?
            .iter()
            .find(|(_, n)| n["internal_ip"] == ip.as_str())
            .map(|(k, v)| (k.clone(), v.clone()))
    }

    pub fn cordoned(&self, instance: &str) -> bool {
        self.node_of(instance)
            .is_some_and(|(_, n)| n["unschedulable"] == true)
    }

    /// Workload pods still on the Node of `instance`.
    pub fn workload_pods(&self, instance: &str) -> usize {
        let Some((name, _)) = self.node_of(instance) else {
            return 0;
        };
        self.emulator.kube_state("demo")["pods"]
            .as_array()
            .map(|p| {
                p.iter()
                    .filter(|p| p["node"] == name.as_str() && p["daemonset"] != true)
                    .count()
            })
            .unwrap_or(0)
    }

    pub fn exit_events(&self) -> Vec<Value> {
        self.emulator
            .control("/_joinkeeper/exit-events")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub async fn deliver(&self, event: &Value) -> Result<Value, HandlerError> {
        let answer =
            handle_lifecycle_delivery(&self.ctx, event, Transition::Terminating, &inv("x", 120))
                .await?;
        Ok(serde_json::to_value(answer).expect("json"))
    }

    pub async fn schedule(&self) {
        handle_schedule(&self.ctx, &scheduled_event(), &inv("sched", 120))
            .await
            .expect("scheduled run");
    }

    pub async fn exit_record(&self, instance: &str) -> Option<String> {
        self.clients
            .ssm
            .get_parameter()
            .name(format!("/joinkeeper/demo/exits/{instance}"))
            .send()
            .await
            .ok()
            .and_then(|o| o.parameter()?.value().map(str::to_owned))
    }
}
