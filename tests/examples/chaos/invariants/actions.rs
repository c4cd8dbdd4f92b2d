//! The checks of each lifecycle action as it ends (CONTINUE with a Ready Node, no early or
//! uninformed ABANDON, a terminate after its drain, completed by joinkeeper and not by the hook's
//! timeout, no wait on an expired record), and of Nodes that outlive their instance.

use joinkeeper::aws::AwsClients;
use joinkeeper::lease::now_ms;
use joinkeeper_tests::*;
use serde_json::Value;

use super::{command_end, deleted_by, describe_node, ms, param, Monitor, NodeSeen, Violation};
use crate::{DRAIN_TIMEOUT, JOIN_DEADLINE, NODE_BOUND};

impl Monitor {
    /// One look at the world: every invariant on what changed since the last.
    pub async fn tick(&mut self, emulator: &Emulator, setup: &AwsClients) {
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
                        let took = (t_c - n.created_s * 1000) as f64 / 1000.0;
                        self.ready_to_continue.push(took);
                        let (created, done) = (self.rel(n.created_s * 1000), self.rel(t_c));
                        self.slow_continues.push((
                            took,
                            format!(
                                "{instance} {}: Node at {created}, CONTINUE at {done}",
                                a["group"]
                            ),
                        ));
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
}
