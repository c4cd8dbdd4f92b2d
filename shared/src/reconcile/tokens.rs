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
        (
            "TokenTtlSeconds",
            ttl.as_secs().clamp(60, 86_400).to_string(),
        ),
        ("JoinTokens", words(wanted)),
        ("RevokeTokens", words(revoke)),
    ]
}

/// What the control plane did about tokens in one command (token ids only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenReport {
    pub minted: Vec<(InstanceId, String)>,
    pub revoked: Vec<InstanceId>,
    pub approved: Vec<(InstanceId, String)>,
    /// Certificate requests made with an instance's token under another name (or after its wait):
    /// (instance, request name, the Node name it asked for or `-`).
    pub denied: Vec<(InstanceId, String, String)>,
    pub strays: BTreeSet<InstanceId>,
    pub failed: usize,
}

impl TokenReport {
    pub fn extend(&mut self, other: TokenReport) {
        self.minted.extend(other.minted);
        self.revoked.extend(other.revoked);
        self.approved.extend(other.approved);
        self.denied.extend(other.denied);
        self.strays.extend(other.strays);
        self.failed += other.failed;
    }
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

/// Pure: the `token`, `csr` and `stray` lines of a node-status answer. Anything malformed (an id
/// that is not an instance id, a word that is not a token id or a name) is left out.
pub fn parse_report(output: &str) -> TokenReport {
    let mut r = TokenReport::default();
    let token_id = |t: &str| {
        t.len() == 6
            && t.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    let name = |n: &str| n == "-" || crate::nodes::name_ok(n);
    for line in output.lines() {
        let words: Vec<&str> = line.split_whitespace().take(6).collect();
        let Some(id) = words.get(1).and_then(|w| InstanceId::parse(w).ok()) else {
            continue;
        };
        match words.as_slice() {
            ["token", _, t, "minted"] if token_id(t) => r.minted.push((id, (*t).to_owned())),
            ["token", _, t, "revoked"] if token_id(t) || *t == "-" => r.revoked.push(id),
            ["token", _, _, "failed"] => r.failed += 1,
            ["csr", _, c, "approved", n] if name(c) && name(n) => {
                r.approved.push((id, (*n).to_owned()))
            }
            ["csr", _, c, "denied", n] if name(c) && name(n) => {
                r.denied.push((id, (*c).to_owned(), (*n).to_owned()))
            }
            ["csr", _, _, "failed", _] => r.failed += 1,
            ["stray", _, t] if token_id(t) => {
                r.strays.insert(id);
            }
            _ => {}
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{group, id};

    fn waiting(i: &str, state: WaitState) -> Waiting {
        Waiting {
            group: group("workers"),
            instance: id(i),
            state,
        }
    }

    fn facts(i: &str, dns: &str) -> (InstanceId, InstanceFacts) {
        let f = InstanceFacts {
            id: id(i),
            launched: None,
            private_dns: dns.into(),
            private_ip: None,
        };
        (id(i), f)
    }

    #[test]
    fn only_launch_waits_with_a_usable_node_name_get_a_token() {
        let w = vec![
            waiting("i-0000000a", WaitState::PendingWait),
            waiting("i-0000000b", WaitState::WarmedPendingWait),
            waiting("i-0000000c", WaitState::PendingWait),
            waiting("i-0000000d", WaitState::PendingWait),
            waiting("i-0000000e", WaitState::TerminatingWait),
        ];
        let f = HashMap::from([
            facts("i-0000000a", "ip-10-0-0-1.ec2.internal"),
            facts("i-0000000b", "ip-10-0-0-2.ec2.internal"),
            facts("i-0000000c", "ip-10-0-0-3.ec2.internal;reboot"),
            facts("i-0000000e", "ip-10-0-0-5.ec2.internal"),
        ]);
        let got = wanted(&w, &f);
        assert_eq!(
            got,
            BTreeMap::from([(id("i-0000000a"), "ip-10-0-0-1.ec2.internal".to_owned())])
        );
    }

    #[test]
    fn ended_waits_and_strays_of_instances_no_longer_waiting_are_revoked() {
        let ended = BTreeSet::from([id("i-0000000a")]);
        let strays = BTreeSet::from([id("i-0000000b"), id("i-0000000c")]);
        let waiting = HashSet::from([id("i-0000000c")]);
        assert_eq!(
            to_revoke(&ended, &strays, &waiting),
            BTreeSet::from([id("i-0000000a"), id("i-0000000b")]),
            "c's token is another batch's: it still waits"
        );
    }

    #[test]
    fn each_batch_names_its_own_instances_and_the_first_carries_the_revocations() {
        let plan = TokenPlan {
            wanted: BTreeMap::from([
                (id("i-0000000a"), "ip-a".into()),
                (id("i-0000000b"), "ip-b".into()),
            ]),
            revoke: BTreeSet::from([id("i-0000000c")]),
        };
        let c = ClusterName::parse("demo").expect("name");
        let ttl = Duration::from_secs(900);
        let first = parameters(
            &c,
            "/joinkeeper",
            ttl,
            &plan,
            &[id("i-0000000a"), id("i-0000000f")],
            true,
        );
        assert_eq!(first[0], ("TokenCluster", "demo".to_owned()));
        assert_eq!(first[2], ("TokenTtl", "900".to_owned()));
        assert_eq!(first[3], ("JoinTokens", "i-0000000a=ip-a".to_owned()));
        assert_eq!(first[4], ("RevokeTokens", "i-0000000c".to_owned()));
        let second = parameters(&c, "/joinkeeper", ttl, &plan, &[id("i-0000000b")], false);
        assert_eq!(second[3], ("JoinTokens", "i-0000000b=ip-b".to_owned()));
        assert_eq!(second[4], ("RevokeTokens", "-".to_owned()));
    }

    #[test]
    fn the_report_keeps_well_formed_lines_only() {
        let out = "\
token i-0000000a abc123 minted
token i-0000000b xyz789 held
token i-0000000c abc124 revoked
token i-0000000d - revoked
token i-0000000e - failed
csr i-0000000a csr-x1y2z approved ip-a.ec2.internal
csr i-0000000b csr-abcde denied ip-evil.ec2.internal
csr i-0000000b csr-fghij denied -
stray i-0000000f def456
token i-0000000a abc123.0123456789abcdef minted
token not-an-id abc123 minted
csr i-0000000a CSR;reboot approved x
node ip-a - - Ready no - -
";
        let r = parse_report(out);
        assert_eq!(r.minted, vec![(id("i-0000000a"), "abc123".to_owned())]);
        assert_eq!(r.revoked, vec![id("i-0000000c"), id("i-0000000d")]);
        assert_eq!(
            r.approved,
            vec![(id("i-0000000a"), "ip-a.ec2.internal".to_owned())]
        );
        assert_eq!(r.denied.len(), 2);
        assert_eq!(r.denied[0].2, "ip-evil.ec2.internal");
        assert_eq!(r.strays, BTreeSet::from([id("i-0000000f")]));
        assert_eq!(r.failed, 1);
    }
}
