//! The run's script: scripted changes of the world at given seconds (bursts, an agent offline,
//! instances terminated through EC2, a stale Node), with the seed's jitter and sizes.

use std::time::{Duration, Instant};

use joinkeeper::aws::AwsClients;
use joinkeeper::lease::now_ms;
use joinkeeper_tests::*;
use serde_json::json;

use crate::invariants::{param, Monitor};
use crate::rng::Rng;
use crate::world::World;

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
    terminate_through_ec2(setup, &dead).await;
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

/// The steps still to play, and the group whose draining instance is to be terminated once a
/// drain of it runs.
pub struct Script {
    /// Latest first: the next step is popped from the end.
    steps: Vec<(u64, Step)>,
    /// The second of the last step.
    pub last_step: u64,
    terminate_draining: Vec<(&'static str, Instant)>,
}

impl Script {
    pub fn new(seed: u64, sabotage: bool) -> Script {
        let mut steps = timeline(seed, sabotage);
        steps.reverse();
        let last_step = steps.first().map_or(0, |(t, _)| *t);
        Script {
            steps,
            last_step,
            terminate_draining: Vec::new(),
        }
    }

    /// Plays every step due at `now` (since the run began), then terminates an instance whose
    /// drain runs when a step asked for one.
    pub async fn play(
        &mut self,
        now: Duration,
        emulator: &Emulator,
        setup: &AwsClients,
        world: &World,
        monitor: &mut Monitor,
    ) {
        while self.steps.last().is_some_and(|(t, _)| now.as_secs() >= *t) {
            let (_, step) = self.steps.pop().expect("step");
            println!("  t+{:.0}s {step:?}", now.as_secs_f64());
            match step {
                Step::Capacity(g, n) => set_capacity(setup, g, n).await,
                Step::AgentOffline(c) => {
                    let id = world.first_cp[c].clone();
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
                    self.terminate_draining.push((g, Instant::now()));
                }
                Step::StaleNode(g) => {
                    if let Some(dead) = plant_stale_node(emulator, setup, g, &world.subnets).await {
                        monitor.terminated.insert(dead, now_ms());
                    }
                }
                Step::Sabotage(g, state) => {
                    let hook = if state.starts_with("Pending") {
                        "joinkeeper-launch"
                    } else {
                        "joinkeeper-terminate"
                    };
                    let victim = group_states(setup, g)
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
                    let victim = group_states(setup, g)
                        .await
                        .into_iter()
                        .find(|(_, s)| s == "InService");
                    if let Some((id, _)) = victim {
                        println!("    terminating in-service {id} through EC2");
                        terminate_through_ec2(setup, &id).await;
                    }
                }
            }
        }
        self.terminate_one_draining(emulator, setup).await;
    }

    /// An instance terminated through EC2 while its drain runs.
    async fn terminate_one_draining(&mut self, emulator: &Emulator, setup: &AwsClients) {
        let Some((g, since)) = self.terminate_draining.first().cloned() else {
            return;
        };
        let drains = emulator.commands(Some("joinkeeper-drain"));
        let waiting = group_states(setup, g).await;
        let victim = waiting.iter().find(|(i, s)| {
            s.starts_with("Terminating:Wait")
                && drains
                    .iter()
                    .any(|d| param(&d["parameters"], "InstanceId") == Some(i.as_str()))
        });
        if let Some((id, _)) = victim {
            println!("    terminating {id} through EC2 while its drain runs");
            terminate_through_ec2(setup, id).await;
            self.terminate_draining.remove(0);
        } else if since.elapsed() > Duration::from_secs(30) {
            println!("    no drain of {g} ran in 30 s: nothing terminated mid-drain");
            self.terminate_draining.remove(0);
        }
    }
}

/// Terminates `id` through EC2, as an operator would (no lifecycle hook runs).
async fn terminate_through_ec2(setup: &AwsClients, id: &str) {
    let _ = setup
        .ec2
        .terminate_instances()
        .instance_ids(id)
        .send()
        .await;
}
