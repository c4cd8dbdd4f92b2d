//! Per-instance join tokens (join mode `per-instance`, chosen per cluster by the parameter
//! `<prefix>/<cluster>/join-mode`): instead of one shared record, each waiting worker gets a
//! bootstrap token of its own, readable only by its instance, and its Node's certificate request
//! is approved only under its own Node name. The work rides on the pass's node-status command
//! (no command per worker): the functions name the instances and their Node names, the control
//! plane mints, writes, approves, denies and revokes (`joinkeeper-instance-tokens`), and answers
//! with token ids only. Decisions here are pure.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use crate::aws::fleet::InstanceFacts;
use crate::context::Context;
use crate::lifecycle::WaitState;
use crate::names::{ClusterName, InstanceId};
use crate::reconcile::gather::Waiting;

mod report;
#[cfg(test)]
mod tests;

pub use report::{parse_report, TokenReport};

/// How a cluster's workers join.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JoinMode {
    /// One join record for every worker (`<prefix>/<cluster>/join-record`), the default.
    #[default]
    Shared,
    /// One token per waiting worker (`<prefix>/<cluster>/join/<instance-id>`).
    PerInstance,
}

impl JoinMode {
    pub fn parse(value: &str) -> Option<JoinMode> {
        match value.trim() {
            "shared" => Some(JoinMode::Shared),
            "per-instance" => Some(JoinMode::PerInstance),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JoinMode::Shared => "shared",
            JoinMode::PerInstance => "per-instance",
        }
    }
}

/// The cluster's join mode: `Some(Shared)` when the parameter is absent; `None` when it could not
/// be read or holds something else (no token is minted on a guess; asked again next pass).
pub async fn read_mode(ctx: &Context, cluster: &ClusterName) -> Option<JoinMode> {
    let name = ctx.config.join_mode_parameter(cluster);
    match ctx.parameters.get(&name, false).await {
        Ok(None) => Some(JoinMode::Shared),
        Ok(Some((value, _))) => {
            let mode = JoinMode::parse(&value);
            if mode.is_none() {
                tracing::warn!(cluster = %cluster, parameter = %name, "join-mode is not shared or per-instance; no per-instance token this pass");
            }
            mode
        }
        Err(err) => {
            tracing::warn!(cluster = %cluster, error = %err, "could not read the join mode; asked again next pass");
            None
        }
    }
}

/// What one pass asks of the control plane about tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenPlan {
    /// The workers waiting to join and the Node name each must register (its private DNS name).
    pub wanted: BTreeMap<InstanceId, String>,
    /// Instances whose tokens and records go: their wait ended, or a stray's instance waits no more.
    pub revoke: BTreeSet<InstanceId>,
}

impl TokenPlan {
    pub fn is_empty(&self) -> bool {
        self.wanted.is_empty() && self.revoke.is_empty()
    }
}

/// Pure: the workers that need a token this pass: launch waits (not warm-pool entries, which do
/// not join) whose private DNS name is known and acceptable as a Node name.
pub fn wanted(
    waiting: &[Waiting],
    facts: &HashMap<InstanceId, InstanceFacts>,
) -> BTreeMap<InstanceId, String> {
    waiting
        .iter()
        .filter(|w| w.state == WaitState::PendingWait)
        .filter_map(|w| {
            let dns = &facts.get(&w.instance)?.private_dns;
            crate::nodes::name_ok(dns).then(|| (w.instance.clone(), dns.to_ascii_lowercase()))
        })
        .collect()
}

/// Pure: what to revoke this pass: the instances whose wait this run ended, and strays (tokens
/// the control plane reported for instances it was not asked about) whose instance is not
/// waiting to join.
pub fn to_revoke(
    ended: &BTreeSet<InstanceId>,
    strays: &BTreeSet<InstanceId>,
    waiting: &HashSet<InstanceId>,
) -> BTreeSet<InstanceId> {
    ended
        .iter()
        .chain(strays.iter().filter(|i| !waiting.contains(*i)))
        .cloned()
        .collect()
}

/// The node-status document's token parameters for one batch: the batch's own wanted instances,
/// and the revocations with the first batch only.
pub fn parameters(
    cluster: &ClusterName,
    prefix: &str,
    ttl: Duration,
    plan: &TokenPlan,
    batch: &[InstanceId],
    first: bool,
) -> Vec<(&'static str, String)> {
    let words = |v: Vec<String>| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.join(" ")
        }
    };
    let wanted = batch
        .iter()
        .filter_map(|i| Some(format!("{i}={}", plan.wanted.get(i)?)))
        .collect();
    let revoke = if first {
        plan.revoke.iter().map(|i| i.to_string()).collect()
    } else {
        Vec::new()
    };
    vec![
        ("TokenCluster", cluster.to_string()),
        ("TokenPrefix", prefix.to_owned()),
        ("TokenTtl", ttl.as_secs().clamp(60, 86_400).to_string()),
        ("JoinTokens", words(wanted)),
        ("RevokeTokens", words(revoke)),
    ]
}

/// After a pass's commands: metrics and logs of what the control plane did, and what is left
/// to revoke (`waiting`: every instance of the pass still waiting, whichever batch asked).
pub fn settle(
    ctx: &Context,
    cluster: &ClusterName,
    pending: &mut BTreeSet<InstanceId>,
    report: &TokenReport,
    waiting: &HashSet<InstanceId>,
) {
    for (instance, csr, node) in &report.denied {
        tracing::warn!(cluster = %cluster, instance = %instance, csr = %csr, node = %node, "rogue certificate request: made with this instance's join token for another Node name (or after its wait); denied");
        let record =
            crate::metrics::rogue_certificate_request(cluster.as_str(), instance.as_str(), node);
        ctx.metrics.record(record);
    }
    for instance in &report.revoked {
        pending.remove(instance);
    }
    *pending = to_revoke(pending, &report.strays, waiting);
    if !report.minted.is_empty() || !report.revoked.is_empty() || report.failed > 0 {
        tracing::info!(cluster = %cluster, minted = report.minted.len(), approved = report.approved.len(), revoked = report.revoked.len(), failed = report.failed, "per-instance join tokens");
        let record = crate::metrics::join_tokens(
            cluster.as_str(),
            report.minted.len(),
            report.revoked.len(),
        );
        ctx.metrics.record(record);
    }
}

/// Pure: the instances whose per-instance record is still there (`names` under `path`) but that
/// no longer wait to join: their tokens are revoked, whatever run minted them and was lost before
/// revoking (a killed invocation, a run that hit its deadline).
pub fn leftover_records(
    names: &[String],
    path: &str,
    waiting: &HashSet<InstanceId>,
) -> BTreeSet<InstanceId> {
    names
        .iter()
        .filter_map(|n| n.strip_prefix(path)?.strip_prefix('/'))
        .filter_map(|id| InstanceId::parse(id).ok())
        .filter(|id| !waiting.contains(id))
        .collect()
}

/// The scheduled sweep of a per-instance cluster: the records of instances no longer waiting
/// join the revocations of this run (the pass's one command then deletes token and record).
/// Once per run; an error leaves it to the next schedule.
pub async fn sweep(
    ctx: &Context,
    cluster: &ClusterName,
    waiting: &HashSet<InstanceId>,
) -> BTreeSet<InstanceId> {
    let path = ctx.config.instance_records_path(cluster);
    match ctx.parameters.names_under(&path).await {
        Ok(names) => leftover_records(&names, &path, waiting),
        Err(err) => {
            tracing::warn!(cluster = %cluster, error = %err, "could not list the per-instance records; the next schedule sweeps them");
            BTreeSet::new()
        }
    }
}
