//! Lifecycle hooks: hold each new worker in `Pending:Wait` until its Node is Ready (CONTINUE), or
//! ABANDON it past the join deadline; drain and delete the Node on scale-in before the instance
//! goes. The same code serves the event-driven handlers and the scheduled sweep, which is the
//! level-triggered safety net for lost or timed-out events.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::aws::autoscaling::{AutoScaling, Completion};
use crate::aws::parameters::ParameterStore;
use crate::aws::run_command::{CommandRequest, Progress};
use crate::aws::{AwsCallError, AwsClients};
use crate::lifecycle::{
    decide_launch, heartbeat_due, parse_event, parse_node_status, LaunchDecision, LaunchFacts,
    LifecycleAction, LifecycleEvent, LifecycleEventError, NodeState, Transition,
};
use crate::names::{ClusterName, InstanceId};
use crate::regenerate::Regenerator;

pub const PENDING_WAIT: &str = "Pending:Wait";
pub const TERMINATING_WAIT: &str = "Terminating:Wait";

/// What happened to one lifecycle action; also the shape of its log line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HookReport {
    pub instance: String,
    pub group: String,
    pub cluster: String,
    /// `continue`, `abandon`, `waiting`, `skipped` (launch); `drained`, `completed`, `skipped` (terminate).
    pub outcome: &'static str,
    pub reason: String,
    pub heartbeats: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_pods: Vec<String>,
    /// For an abandoned worker: the last line of its own join log (tokens redacted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join_log_last_line: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("malformed lifecycle event: {0}")]
    Event(#[from] LifecycleEventError),
    #[error(transparent)]
    Aws(#[from] AwsCallError),
}

#[derive(Clone, Debug)]
pub struct Hooks {
    regenerator: Regenerator,
    asg: AutoScaling,
    parameters: ParameterStore,
}

/// Replaces anything shaped like a bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`) with a marker.
pub fn redact_tokens(text: &str) -> String {
    let bytes = text.as_bytes();
    let is_tok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !is_tok(bytes[i - 1]);
        if starts_word
            && i + 23 <= bytes.len()
            && bytes[i..i + 6].iter().all(|b| is_tok(*b))
            && bytes[i + 6] == b'.'
            && bytes[i + 7..i + 23].iter().all(|b| is_tok(*b))
        {
            out.push_str("<redacted-token>");
            i += 23;
            continue;
        }
        let ch = text[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8().max(1);
    }
    out
}

/// The drain document's result: its last `drain …` line and the `left <ns>/<pod>` lines.
pub fn parse_drain_output(output: &str) -> (String, Vec<String>) {
    let mut result = "unknown".to_owned();
    let mut left = Vec::new();
    for line in output.lines() {
        if let Some(pod) = line.strip_prefix("left ") {
            if left.len() < 50 {
                left.push(
                    crate::names::printable(pod.trim(), 120)
                        .trim_matches('"')
                        .to_owned(),
                );
            }
        } else if line.starts_with("drain ") {
            if let Some(r) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("result="))
            {
                result = r
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .take(20)
                    .collect();
            }
        }
    }
    (result, left)
}

impl Hooks {
    pub fn new(regenerator: Regenerator, clients: &AwsClients) -> Self {
        Hooks {
            regenerator,
            asg: AutoScaling::new(clients.autoscaling.clone()),
            parameters: ParameterStore::new(clients.ssm.clone()),
        }
    }

    fn config(&self) -> &crate::Config {
        self.regenerator.config()
    }

    /// Handles one EventBridge lifecycle event. Events that are not lifecycle actions of a
    /// joinkeeper group are logged and acknowledged without changing anything.
    pub async fn handle_event(
        &self,
        event: &Value,
        expected: Transition,
    ) -> Result<HookReport, HookError> {
        let action = match parse_event(event)? {
            LifecycleEvent::Ignored { reason } => {
                return Ok(skip(
                    None,
                    "",
                    format!("not a lifecycle action joinkeeper handles: {reason}"),
                ))
            }
            LifecycleEvent::Action(a) if a.transition != expected => {
                return Ok(skip(
                    Some(&a),
                    "",
                    format!(
                        "a {:?} action sent to the {expected:?} handler",
                        a.transition
                    ),
                ))
            }
            LifecycleEvent::Action(a) => a,
        };
        let span = tracing::info_span!("lifecycle", group = %action.group, instance = %action.instance, cluster = tracing::field::Empty);
        let _entered = span.enter();
        let report = match action.transition {
            Transition::Launching => self.launch(&action).await?,
            Transition::Terminating => self.terminate(&action).await?,
        };
        Ok(report)
    }

    /// The group's cluster, or a skip report when the group is unknown or not tagged.
    async fn cluster_of(
        &self,
        action: &LifecycleAction,
    ) -> Result<Result<ClusterName, HookReport>, AwsCallError> {
        match self.asg.group(&action.group).await? {
            None => Ok(Err(skip(
                Some(action),
                "",
                "unknown Auto Scaling group".into(),
            ))),
            Some(g) => match g.cluster {
                Ok(c) => Ok(Ok(c)),
                Err(e) => Ok(Err(skip(
                    Some(action),
                    "",
                    format!("group is not managed by joinkeeper: {e}"),
                ))),
            },
        }
    }

    /// Asks the control plane, in one Run Command, for the Node state of every id. `None` when no
    /// control plane could answer.
    pub async fn node_states(
        &self,
        cluster: &ClusterName,
        ids: &[InstanceId],
    ) -> Option<HashMap<InstanceId, NodeState>> {
        let candidates = match self
            .regenerator
            .fleet()
            .control_plane_candidates(cluster)
            .await
        {
            Ok(c) => c,
            Err(err) => {
                warn!(cluster = %cluster, error = %err, "could not list control-plane instances");
                return None;
            }
        };
        let mut states = HashMap::new();
        for chunk in ids.chunks(100) {
            let joined = chunk
                .iter()
                .map(|i| i.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let mut answered = false;
            for cp in &candidates {
                let request = CommandRequest {
                    instance: cp,
                    document: &self.config().documents.node_status,
                    parameters: vec![("InstanceIds", joined.clone())],
                    comment: format!("joinkeeper: node status for {cluster}"),
                };
                match self.regenerator.runner().run(request).await {
                    Ok(out) => {
                        states.extend(parse_node_status(&out.stdout, chunk));
                        answered = true;
                        break;
                    }
                    Err(err) => {
                        warn!(cluster = %cluster, control_plane = %cp, error = %err, "node status failed on this control plane")
                    }
                }
            }
            if !answered {
                return None;
            }
        }
        Some(states)
    }

    async fn launch_time(
        &self,
        instance: &InstanceId,
    ) -> Result<Option<OffsetDateTime>, AwsCallError> {
        let times = self
            .regenerator
            .fleet()
            .launch_times(std::slice::from_ref(instance))
            .await?;
        Ok(times.get(instance.as_str()).copied())
    }

    /// Launch: keep the record valid for the join, then check the Node until Ready (CONTINUE),
    /// past the deadline (ABANDON), or the invocation's bound (left to the sweep).
    pub async fn launch(&self, action: &LifecycleAction) -> Result<HookReport, HookError> {
        let cluster = match self.cluster_of(action).await? {
            Ok(c) => c,
            Err(report) => return Ok(log_report(report)),
        };
        tracing::Span::current().record("cluster", cluster.as_str());
        if let Err(err) = self
            .regenerator
            .ensure_fresh(&cluster, self.config().join_deadline)
            .await
        {
            warn!(cluster = %cluster, error = %err, "could not make sure the join record outlives the join deadline");
        }
        let heartbeat_timeout = self
            .asg
            .hook(&action.group, Transition::Launching)
            .await?
            .map(|h| h.1)
            .unwrap_or(Duration::from_secs(3600));
        let started = Instant::now();
        let mut last_heartbeat = Instant::now();
        let mut heartbeats = 0;
        let mut launched: Option<Option<OffsetDateTime>> = None;
        loop {
            let waiting =
                self.asg.lifecycle_state(&action.instance).await?.as_deref() == Some(PENDING_WAIT);
            // The launch time never changes: read it once, not on every poll.
            if waiting && launched.is_none() {
                launched = Some(self.launch_time(&action.instance).await?);
            }
            let age = match (waiting, launched) {
                (false, _) => Some(Duration::ZERO),
                (true, Some(Some(t))) => Some(age(t)),
                (true, _) => None,
            };
            let Some(age) = age else {
                return Ok(log_report(skip(
                    Some(action),
                    cluster.as_str(),
                    "instance no longer exists".into(),
                )));
            };
            let node = if waiting {
                self.node_states(&cluster, std::slice::from_ref(&action.instance))
                    .await
                    .and_then(|m| m.get(&action.instance).copied())
            } else {
                None
            };
            let facts = LaunchFacts {
                node,
                waiting,
                age,
                join_deadline: self.config().join_deadline,
            };
            let mut report = match decide_launch(facts) {
                LaunchDecision::Wait => {
                    if started.elapsed() + self.config().node_poll > self.config().hook_check {
                        let mut r = report(
                            action,
                            cluster.as_str(),
                            "waiting",
                            format!(
                                "node {:?} after {} s; the scheduled sweep will check again",
                                node,
                                age.as_secs()
                            ),
                        );
                        r.heartbeats = heartbeats;
                        return Ok(log_report(r));
                    }
                    if heartbeat_due(last_heartbeat.elapsed(), heartbeat_timeout) {
                        self.asg.heartbeat(action).await?;
                        heartbeats += 1;
                        last_heartbeat = Instant::now();
                    }
                    tokio::time::sleep(self.config().node_poll).await;
                    continue;
                }
                decision => {
                    self.apply_launch_decision(action, &cluster, decision)
                        .await?
                }
            };
            report.heartbeats = heartbeats;
            return Ok(log_report(report));
        }
    }

    async fn apply_launch_decision(
        &self,
        action: &LifecycleAction,
        cluster: &ClusterName,
        decision: LaunchDecision,
    ) -> Result<HookReport, AwsCallError> {
        Ok(match decision {
            LaunchDecision::Continue => match self.asg.complete(action, "CONTINUE").await? {
                Completion::Completed => {
                    report(action, cluster.as_str(), "continue", "Node is Ready".into())
                }
                Completion::AlreadyDone => skip(
                    Some(action),
                    cluster.as_str(),
                    "already completed by another invocation".into(),
                ),
            },
            LaunchDecision::Abandon { reason } => {
                let tail = self.join_log_tail(&action.instance).await;
                match self.asg.complete(action, "ABANDON").await? {
                    Completion::Completed => {
                        warn!(cluster = %cluster, instance = %action.instance, reason = %reason, join_log = %tail, "abandoning a worker that could not join");
                        let mut r = report(action, cluster.as_str(), "abandon", reason);
                        r.join_log_last_line = tail
                            .lines()
                            .rev()
                            .find(|l| !l.trim().is_empty())
                            .map(|l| l.chars().take(300).collect());
                        r
                    }
                    Completion::AlreadyDone => skip(
                        Some(action),
                        cluster.as_str(),
                        "already completed by another invocation".into(),
                    ),
                }
            }
            LaunchDecision::Skip { reason } => skip(Some(action), cluster.as_str(), reason),
            LaunchDecision::Wait => {
                report(action, cluster.as_str(), "waiting", "not Ready yet".into())
            }
        })
    }

    /// The tail of the worker's own join log, fetched through Run Command, tokens redacted.
    async fn join_log_tail(&self, instance: &InstanceId) -> String {
        let request = CommandRequest {
            instance,
            document: &self.config().documents.join_log,
            parameters: vec![("Lines", "20".into())],
            comment: "joinkeeper: join log of a worker that did not join".into(),
        };
        match self.regenerator.runner().run(request).await {
            Ok(out) => {
                let redacted = redact_tokens(&out.stdout);
                let tail: String = redacted
                    .chars()
                    .rev()
                    .take(2000)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                tail
            }
            Err(err) => format!("(join log unavailable: {err})"),
        }
    }

    /// Terminate: drain and delete the Node (with heartbeats), then CONTINUE. A Node that never
    /// joined is completed at once; a drain that fails still completes, naming what was left.
    pub async fn terminate(&self, action: &LifecycleAction) -> Result<HookReport, HookError> {
        let cluster = match self.cluster_of(action).await? {
            Ok(c) => c,
            Err(report) => return Ok(log_report(report)),
        };
        tracing::Span::current().record("cluster", cluster.as_str());
        if self.asg.lifecycle_state(&action.instance).await?.as_deref() != Some(TERMINATING_WAIT) {
            return Ok(log_report(skip(
                Some(action),
                cluster.as_str(),
                "no terminate action is pending (already completed): no second drain".into(),
            )));
        }
        // One drain per instance, however many invocations race for it.
        let lock = format!(
            "{}/{}/drain-lock-{}",
            self.config().parameter_prefix,
            cluster,
            action.instance
        );
        let expires = crate::timefmt::rfc3339(
            OffsetDateTime::now_utc()
                + self.config().drain_timeout
                + self.config().command_deadline * 2,
        );
        if !self.parameters.create_only(&lock, &expires).await? {
            let stale = self
                .parameters
                .get(&lock, false)
                .await?
                .and_then(|(v, _)| crate::timefmt::parse(&v))
                .is_none_or(|t| t <= OffsetDateTime::now_utc());
            if !stale {
                return Ok(log_report(skip(
                    Some(action),
                    cluster.as_str(),
                    "another invocation is draining this instance".into(),
                )));
            }
            self.parameters.overwrite(&lock, &expires).await?;
        }
        let result = self.drain_and_complete(action, &cluster).await;
        if let Err(err) = self.parameters.delete(&lock).await {
            warn!(error = %err, "could not remove the drain lock; it expires by itself");
        }
        Ok(log_report(result?))
    }

    async fn drain_and_complete(
        &self,
        action: &LifecycleAction,
        cluster: &ClusterName,
    ) -> Result<HookReport, AwsCallError> {
        let heartbeat_timeout = self
            .asg
            .hook(&action.group, Transition::Terminating)
            .await?
            .map(|h| h.1)
            .unwrap_or(Duration::from_secs(3600));
        let deadline = self.config().drain_timeout + self.config().command_deadline;
        let started = Instant::now();
        let mut last_heartbeat = Instant::now();
        let mut heartbeats = 0u32;
        let beat = |last: &mut Instant, n: &mut u32| {
            let due = heartbeat_due(last.elapsed(), heartbeat_timeout);
            if due {
                *last = Instant::now();
                *n += 1;
            }
            due
        };

        // Does the instance have a Node at all? Retry (with heartbeats) while no control plane answers.
        let node = loop {
            if let Some(states) = self
                .node_states(cluster, std::slice::from_ref(&action.instance))
                .await
            {
                break states.get(&action.instance).copied();
            }
            if started.elapsed() > deadline {
                break None;
            }
            if beat(&mut last_heartbeat, &mut heartbeats) {
                self.asg.heartbeat(action).await?;
            }
            tokio::time::sleep(self.config().node_poll).await;
        };
        let (outcome, reason, left) = match node {
            Some(NodeState::Absent) => (
                "completed",
                "instance never joined: nothing to drain".to_owned(),
                Vec::new(),
            ),
            None => (
                "completed",
                "control plane unreachable until the drain deadline: Node left in place".to_owned(),
                Vec::new(),
            ),
            Some(_) => {
                let (result, left) = self
                    .run_drain(
                        action,
                        cluster,
                        started,
                        deadline,
                        &mut last_heartbeat,
                        &mut heartbeats,
                        heartbeat_timeout,
                    )
                    .await?;
                let outcome = if result == "drained" || result == "absent" {
                    "drained"
                } else {
                    "completed"
                };
                (outcome, format!("drain result: {result}"), left)
            }
        };
        let completion = self.asg.complete(action, "CONTINUE").await?;
        let mut r = report(action, cluster.as_str(), outcome, reason);
        if completion == Completion::AlreadyDone {
            r.reason
                .push_str(" (the action had already been completed)");
        }
        r.heartbeats = heartbeats;
        r.left_pods = left;
        Ok(r)
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_drain(
        &self,
        action: &LifecycleAction,
        cluster: &ClusterName,
        started: Instant,
        deadline: Duration,
        last_heartbeat: &mut Instant,
        heartbeats: &mut u32,
        heartbeat_timeout: Duration,
    ) -> Result<(String, Vec<String>), AwsCallError> {
        let candidates = self
            .regenerator
            .fleet()
            .control_plane_candidates(cluster)
            .await?;
        let runner = self.regenerator.runner();
        for cp in &candidates {
            let request = CommandRequest {
                instance: cp,
                document: &self.config().documents.drain,
                parameters: vec![
                    ("InstanceId", action.instance.to_string()),
                    (
                        "DrainTimeoutSeconds",
                        self.config().drain_timeout.as_secs().to_string(),
                    ),
                ],
                comment: format!("joinkeeper: drain {}", action.instance),
            };
            let command_id = match runner.send(&request).await {
                Ok(id) => id,
                Err(err) => {
                    warn!(control_plane = %cp, error = %err, "could not send the drain command");
                    continue;
                }
            };
            loop {
                let (progress, stdout) = match runner.poll_once(cp, &command_id).await {
                    Ok(p) => p,
                    Err(err) => {
                        warn!(error = %err, "drain status unavailable");
                        (Progress::Waiting, String::new())
                    }
                };
                match progress {
                    Progress::Waiting => {}
                    Progress::Succeeded | Progress::Failed(_) => {
                        return Ok(parse_drain_output(&stdout))
                    }
                    other => {
                        warn!(control_plane = %cp, status = ?other, "drain command did not run; trying the next control plane");
                        break;
                    }
                }
                if started.elapsed() > deadline {
                    return Ok(("timeout".into(), Vec::new()));
                }
                if heartbeat_due(last_heartbeat.elapsed(), heartbeat_timeout) {
                    self.asg.heartbeat(action).await?;
                    *heartbeats += 1;
                    *last_heartbeat = Instant::now();
                }
                tokio::time::sleep(self.config().command_poll).await;
            }
        }
        Ok(("failed".into(), Vec::new()))
    }

    /// The level-triggered safety net: every managed group's instances in `Pending:Wait` get the
    /// launch decision (one node-status command per cluster, however many wait), and every
    /// instance in `Terminating:Wait` the terminate path.
    pub async fn sweep(&self) -> Result<Vec<HookReport>, AwsCallError> {
        let mut reports = Vec::new();
        let mut launching: HashMap<ClusterName, Vec<LifecycleAction>> = HashMap::new();
        let mut terminating = Vec::new();
        for group in self.asg.managed_groups().await? {
            let Ok(cluster) = group.cluster else { continue };
            // One DescribeLifecycleHooks per group and transition, however many instances wait.
            let mut hooks: HashMap<bool, Option<crate::names::HookName>> = HashMap::new();
            for (instance, state) in &group.instances {
                let transition = match state.as_str() {
                    PENDING_WAIT => Transition::Launching,
                    TERMINATING_WAIT => Transition::Terminating,
                    _ => continue,
                };
                let key = transition == Transition::Launching;
                if !hooks.contains_key(&key) {
                    let found = self.asg.hook(&group.name, transition).await?.map(|h| h.0);
                    hooks.insert(key, found);
                }
                let Some(hook) = hooks.get(&key).cloned().flatten() else {
                    continue;
                };
                let action = LifecycleAction {
                    transition,
                    group: group.name.clone(),
                    hook,
                    instance: instance.clone(),
                    token: None,
                };
                match transition {
                    Transition::Launching => {
                        launching.entry(cluster.clone()).or_default().push(action)
                    }
                    Transition::Terminating => terminating.push(action),
                }
            }
        }
        for (cluster, actions) in launching {
            let ids: Vec<InstanceId> = actions.iter().map(|a| a.instance.clone()).collect();
            let states = self.node_states(&cluster, &ids).await;
            let launched = self.regenerator.fleet().launch_times(&ids).await?;
            for action in actions {
                let Some(launch_time) = launched.get(action.instance.as_str()) else {
                    reports.push(log_report(skip(
                        Some(&action),
                        cluster.as_str(),
                        "instance no longer exists".into(),
                    )));
                    continue;
                };
                let facts = LaunchFacts {
                    node: states
                        .as_ref()
                        .and_then(|s| s.get(&action.instance).copied()),
                    waiting: true,
                    age: age(*launch_time),
                    join_deadline: self.config().join_deadline,
                };
                let decision = decide_launch(facts);
                if decision == LaunchDecision::Wait {
                    self.asg.heartbeat(&action).await?;
                }
                let mut r = self
                    .apply_launch_decision(&action, &cluster, decision)
                    .await?;
                r.reason = format!("sweep: {}", r.reason);
                reports.push(log_report(r));
            }
        }
        for action in terminating {
            match self.terminate(&action).await {
                Ok(r) => reports.push(r),
                Err(HookError::Aws(e)) => return Err(e),
                Err(HookError::Event(e)) => warn!(error = %e, "unexpected"),
            }
        }
        Ok(reports)
    }
}

fn age(launched: OffsetDateTime) -> Duration {
    Duration::try_from(OffsetDateTime::now_utc() - launched).unwrap_or(Duration::ZERO)
}

fn report(
    action: &LifecycleAction,
    cluster: &str,
    outcome: &'static str,
    reason: String,
) -> HookReport {
    HookReport {
        instance: action.instance.to_string(),
        group: action.group.to_string(),
        cluster: cluster.to_owned(),
        outcome,
        reason,
        heartbeats: 0,
        left_pods: Vec::new(),
        join_log_last_line: None,
    }
}

fn skip(action: Option<&LifecycleAction>, cluster: &str, reason: String) -> HookReport {
    match action {
        Some(a) => report(a, cluster, "skipped", reason),
        None => HookReport {
            instance: String::new(),
            group: String::new(),
            cluster: cluster.to_owned(),
            outcome: "skipped",
            reason,
            heartbeats: 0,
            left_pods: Vec::new(),
            join_log_last_line: None,
        },
    }
}

/// One structured line per decision: the fields the alarms' metric filters read.
fn log_report(r: HookReport) -> HookReport {
    info!(
        cluster = %r.cluster,
        group = %r.group,
        instance = %r.instance,
        outcome = r.outcome,
        reason = %r.reason,
        heartbeats = r.heartbeats,
        left_pods = ?r.left_pods,
        "lifecycle action decided"
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_redacted_from_join_logs() {
        let text = "running kubeadm join 10.0.0.1:6443 --token abcdef.0123456789abcdef ok\nid=abcdef.0123456789abcdefX keep? x";
        let out = redact_tokens(text);
        assert!(!out.contains("0123456789abcdef ok"), "{out}");
        assert!(out.contains("--token <redacted-token> ok"));
        assert_eq!(redact_tokens("é plain ascii"), "é plain ascii");
    }

    #[test]
    fn drain_output() {
        let out = "cordoned\nleft default/web-1\nleft kube-system/x\ndrain i-0000000a node=ip-1 result=timeout\n";
        let (result, left) = parse_drain_output(out);
        assert_eq!(result, "timeout");
        assert_eq!(left, vec!["default/web-1", "kube-system/x"]);
        assert_eq!(parse_drain_output("garbage").0, "unknown");
    }
}
