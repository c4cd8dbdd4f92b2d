//! Node states from the control plane, one node-status command per batch of waiting instances.
//!
//! The script reports facts about the Nodes that could claim each instance; which Node is the
//! instance's is decided here ([`crate::nodes::matching`]). `GetCommandInvocation` returns at
//! most 24,000 characters of stdout: the script stops at a budget under it, batches are sized
//! so a usual answer fits, and ids missing from an answer are asked again once, alone.

use std::collections::HashMap;
use std::time::Duration;

use tracing::warn;

use crate::aws::run_command::CommandRequest;
use crate::context::Context;
use crate::deadline::Deadline;
use crate::lifecycle::NodeState;
use crate::names::{ClusterName, InstanceId};
use crate::nodes::ip_ok;
use crate::nodes::matching::{HostKeys, NodeIndex};
use crate::reconcile::tokens::{self, TokenPlan, TokenReport};

mod packing;
use packing::{batches, facts_text};

/// SSM's cap on the stdout that `GetCommandInvocation` returns.
pub const OUTPUT_LIMIT: usize = 24_000;
/// What the script may print at most (`--max-chars`), a margin under [`OUTPUT_LIMIT`]; it
/// prints whole blocks only, so ids left out are simply not answered (asked again).
pub const SCRIPT_BUDGET: usize = OUTPUT_LIMIT - 100;
/// The usual size of one id's block with `Output=facts`: its Node's line (name as EC2 names
/// it, providerID, creation, state, address, labels) and the `id` line. Longer names or
/// several claimants make a batch's answer longer; the script then stops at its budget.
pub const TYPICAL_BLOCK: usize = 200;
/// What the node-status document accepts in one `InstanceIds` parameter.
pub const DOCUMENT_MAX_IDS: usize = 600;
/// Node-status commands sent to the control plane at once.
pub const COMMANDS_IN_FLIGHT: usize = 3;

/// An instance's Node state and, when one Node is the instance's, that Node's name.
pub type Answer = (InstanceId, (NodeState, Option<String>));

/// Parses the node-status document's facts (`Output=zfacts` unpacked first): `node <fields>` lines (every Node
/// that could claim an asked instance, each once) and, after the Nodes of each id, `id <id>`
/// (`id <id> many` when more Nodes could claim it than the script prints). Each answered id's
/// state comes from [`crate::nodes::matching`]; ids without an `id` line are left out (the
/// caller treats that as "could not ask").
pub fn parse_node_status(output: &str, asked: &[HostKeys]) -> Vec<Answer> {
    let mut nodes = Vec::new();
    let mut answered: Vec<(&HostKeys, bool)> = Vec::new();
    for line in facts_text(output).lines().take(asked.len() * 8 + 10) {
        let words: Vec<&str> = line.split_whitespace().take(9).collect();
        match words.as_slice() {
            ["node", rest @ ..] => nodes.extend(crate::nodes::parse_node_words(rest)),
            ["id", id, more @ ..] => {
                let Some(host) = asked.iter().find(|h| h.id.as_str() == *id) else {
                    continue;
                };
                if !answered.iter().any(|(h, _)| h.id == host.id) {
                    answered.push((host, more == ["many"]));
                }
            }
            _ => {}
        }
    }
    let index = NodeIndex::new(&nodes);
    answered
        .into_iter()
        .map(|(host, many)| {
            if many {
                return (host.id.clone(), (NodeState::Contested, None));
            }
            let owner = index.ownership(host);
            let name = owner.node_name().map(str::to_owned);
            (host.id.clone(), (owner.state(), name))
        })
        .collect()
}

/// Node states by instance, and what the control plane did about per-instance tokens.
pub type Answers = (
    HashMap<InstanceId, (NodeState, Option<String>)>,
    TokenReport,
);

/// One question's answer, and the control planes passed over before one answered (an agent
/// offline or busy, a failed command): the pass asks them last next time.
type Asked = (Vec<Answer>, TokenReport, Vec<InstanceId>);

/// Asks the control plane about every id, in as few commands as the output limit allows, and
/// (join mode per-instance) has it act on `tokens` in the same commands. `None` when no control
/// plane could answer, with the control planes passed over on the way. Ids missing from the answers are left out of the map (the caller treats
/// them as "could not ask").
pub async fn node_states(
    ctx: &Context,
    cluster: &ClusterName,
    candidates: &[InstanceId],
    ids: &[InstanceId],
    hosts: &HashMap<InstanceId, HostKeys>,
    tokens: Option<&TokenPlan>,
    deadline: &Deadline,
) -> (Option<Answers>, Vec<InstanceId>) {
    let mut states = HashMap::new();
    let mut report = TokenReport::default();
    let mut passed_over = Vec::new();
    if ids.is_empty() {
        return (Some((states, report)), passed_over);
    }
    // Batches go out together, at most COMMANDS_IN_FLIGHT at once: the control plane's SSM
    // agent runs 5 commands at a time by default, and a drain or regeneration may need a slot.
    let batches = batches(ids, hosts, tokens.is_some());
    let batches = batches.iter().enumerate().map(|(n, chunk)| async move {
        let plan = tokens.map(|t| (t, n == 0));
        let (answers, mut report, mut skipped) =
            ask(ctx, cluster, candidates, chunk, hosts, plan, deadline).await?;
        let mut answered: HashMap<InstanceId, (NodeState, Option<String>)> =
            answers.into_iter().collect();
        // A truncated answer: ask once more for exactly the ids it did not cover.
        let missing: Vec<InstanceId> = chunk
            .iter()
            .filter(|i| !answered.contains_key(*i))
            .cloned()
            .collect();
        if !missing.is_empty() && missing.len() < chunk.len() {
            let plan = tokens.map(|t| (t, false));
            if let Some((more, again, also)) =
                ask(ctx, cluster, candidates, &missing, hosts, plan, deadline).await
            {
                answered.extend(more);
                report.extend(again);
                skipped.extend(also);
            }
        }
        Some((answered, report, skipped))
    });
    use futures_util::StreamExt;
    type Batch = (
        HashMap<InstanceId, (NodeState, Option<String>)>,
        TokenReport,
        Vec<InstanceId>,
    );
    let answers: Vec<Option<Batch>> = futures_util::stream::iter(batches)
        .buffer_unordered(COMMANDS_IN_FLIGHT)
        .collect()
        .await;
    let mut all_answered = true;
    for answer in answers {
        let Some((batch, tokens, skipped)) = answer else {
            all_answered = false;
            continue;
        };
        states.extend(batch);
        report.extend(tokens);
        for cp in skipped {
            if !passed_over.contains(&cp) {
                passed_over.push(cp);
            }
        }
    }
    (all_answered.then_some((states, report)), passed_over)
}

async fn ask(
    ctx: &Context,
    cluster: &ClusterName,
    candidates: &[InstanceId],
    ids: &[InstanceId],
    hosts: &HashMap<InstanceId, HostKeys>,
    tokens: Option<(&TokenPlan, bool)>,
    deadline: &Deadline,
) -> Option<Asked> {
    let asked: Vec<HostKeys> = ids
        .iter()
        .map(|i| {
            hosts.get(i).cloned().unwrap_or_else(|| HostKeys {
                id: i.clone(),
                private_dns: String::new(),
                private_ip: None,
            })
        })
        .collect();
    let mut parameters = parameters(&asked);
    if let Some((plan, first)) = tokens {
        let (prefix, ttl) = (&ctx.config.parameter_prefix, ctx.config.join_deadline);
        parameters.extend(tokens::parameters(cluster, prefix, ttl, plan, ids, first));
    }
    let mut passed_over = Vec::new();
    for (n, cp) in candidates.iter().enumerate() {
        if deadline.is_near(Duration::from_secs(2)) {
            return None;
        }
        // While another control plane is left to ask, one whose agent has not taken the
        // question by the next poll (offline, busy) is passed over rather than waited on.
        let pickup = ctx.pickup_before_next(n, candidates.len());
        let request = CommandRequest {
            cluster: cluster.as_str(),
            instance: cp,
            document: &ctx.config.documents.node_status,
            parameters: parameters.clone(),
            comment: format!("joinkeeper: node status for {cluster}"),
        };
        match ctx.run_command_picked_up(request, deadline, pickup).await {
            Ok(out) => {
                let report = tokens.map(|_| tokens::parse_report(&out.stdout));
                return Some((
                    parse_node_status(&out.stdout, &asked),
                    report.unwrap_or_default(),
                    passed_over,
                ));
            }
            Err(err) => {
                warn!(cluster = %cluster, control_plane = %cp, error = %err, "node status failed on this control plane");
                passed_over.push(cp.clone());
            }
        }
    }
    None
}

/// The document's parameters for these instances: ids, and the names and addresses their Nodes
/// may carry, so the script prints only the Nodes that could claim them (and makes no EC2 call).
pub fn parameters(asked: &[HostKeys]) -> Vec<(&'static str, String)> {
    let pairs = |f: &dyn Fn(&HostKeys) -> Option<String>| {
        let p: Vec<String> = asked
            .iter()
            .filter_map(|h| Some(format!("{}={}", h.id, f(h)?)))
            .collect();
        if p.is_empty() {
            "-".to_owned()
        } else {
            p.join(" ")
        }
    };
    let ids = asked.iter().map(|h| h.id.as_str()).collect::<Vec<_>>();
    vec![
        ("InstanceIds", ids.join(" ")),
        (
            "PrivateDnsNames",
            pairs(&|h| sent_dns(h).map(str::to_owned)),
        ),
        ("PrivateIps", pairs(&|h| sent_ip(h).map(str::to_owned))),
        ("Output", "zfacts".to_owned()),
    ]
}

/// The host's private DNS name when the document accepts it (else it is not sent).
fn sent_dns(host: &HostKeys) -> Option<&str> {
    dns_name_ok(&host.private_dns).then_some(host.private_dns.as_str())
}

/// The host's private IPv4 address when the document accepts it (else it is not sent).
fn sent_ip(host: &HostKeys) -> Option<&str> {
    host.private_ip
        .as_deref()
        .filter(|ip| ip_ok(ip) && !ip.contains(':'))
}

/// A DNS (or Node) name the documents' patterns accept (anything else is left out, not sent).
pub fn dns_name_ok(name: &str) -> bool {
    crate::nodes::name_ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn host(id: &str, dns: &str, ip: &str) -> HostKeys {
        HostKeys {
            id: InstanceId::parse(id).expect("id"),
            private_dns: dns.into(),
            private_ip: Some(ip.into()),
        }
    }

    #[test]
    fn a_plain_batch_of_usual_blocks_fits_the_output_limit() {
        // Plain facts (kept for people at a shell) fit 120 usual blocks.
        let n = OUTPUT_LIMIT / TYPICAL_BLOCK;
        assert_eq!(n, 120);
        assert!(dns_name_ok("ip-10-1-2-3.ec2.internal"));
        assert!(!dns_name_ok("ip-10-1-2-3.ec2.internal;reboot"));
        assert!(!dns_name_ok(""));
        // The usual block: a regional name (the longest EC2 gives), a providerID, an address.
        let line = format!(
            "node {} aws:///ap-southeast-2a/i-0123456789abcdef0 2026-11-27T10:00:00Z NotReady yes 10.123.123.123 -\nid i-0123456789abcdef0\n",
            "ip-10-123-123-123.ap-southeast-2.compute.internal"
        );
        assert!(line.len() <= TYPICAL_BLOCK, "{}", line.len());
        assert!(n * TYPICAL_BLOCK <= OUTPUT_LIMIT);
    }

    #[test]
    fn states_come_from_matching_not_from_the_script() {
        let a = host("i-0000000a", "ip-10-0-0-1.ec2.internal", "10.0.0.1");
        let b = host("i-0000000b", "ip-10-0-0-2.ec2.internal", "10.0.0.2");
        let c = host("i-0000000c", "ip-10-0-0-3.ec2.internal", "10.0.0.3");
        let d = host("i-0000000d", "ip-10-0-0-4.ec2.internal", "10.0.0.4");
        let e = host("i-0000000e", "ip-10-0-0-5.ec2.internal", "10.0.0.5");
        let f = host("i-0000000f", "ip-10-0-0-6.ec2.internal", "10.0.0.6");
        let out = "\
node ip-10-0-0-1 - - Ready no 10.0.0.1 -
id i-0000000a
id i-0000000b
node aaa aws:///us-east-1a/i-0000000c - Ready no 10.6.6.6 -
node ip-10-0-0-3.ec2.internal aws:///us-east-1a/i-0000000c - Ready no 10.0.0.3 -
id i-0000000c
node evil aws:///us-east-1a/i-0000000d - Ready no - -
id i-0000000d
id i-0000000e many
node ip-10-0-0-6.ec2.internal aws:///us-east-1a/i-0000000f - NotReady no 10.0.0.6 -
garbage
id i-00000099
";
        let got = parse_node_status(
            out,
            &[a.clone(), b.clone(), c.clone(), d.clone(), e.clone(), f],
        );
        assert_eq!(
            got,
            vec![
                (a.id, (NodeState::Ready, Some("ip-10-0-0-1".to_owned()))),
                (b.id, (NodeState::Absent, None)),
                (c.id, (NodeState::Contested, None)),
                (d.id, (NodeState::Absent, None)),
                (e.id, (NodeState::Contested, None)),
            ],
            "f has no id line: not answered"
        );
    }

    #[test]
    fn parameters_carry_names_and_addresses_that_the_document_accepts() {
        let mut h = host("i-0000000a", "ip-10-0-0-1.ec2.internal", "10.0.0.1");
        let p = parameters(std::slice::from_ref(&h));
        assert_eq!(p[1].1, "i-0000000a=ip-10-0-0-1.ec2.internal");
        assert_eq!(p[2].1, "i-0000000a=10.0.0.1");
        assert_eq!(p[3].1, "zfacts");
        h.private_dns = "x;reboot".into();
        h.private_ip = Some("1.2.3.4;reboot".into());
        let p = parameters(&[h]);
        assert_eq!((p[1].1.as_str(), p[2].1.as_str()), ("-", "-"));
    }
}
