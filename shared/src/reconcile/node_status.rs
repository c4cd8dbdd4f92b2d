//! Node states from the control plane, one node-status command per batch of waiting instances.
//!
//! `GetCommandInvocation` returns at most 24,000 characters of stdout, so batches are sized to
//! stay under it, and ids missing from a (truncated) answer are asked again once, alone.

use std::collections::HashMap;
use std::time::Duration;

use tracing::warn;

use crate::aws::run_command::CommandRequest;
use crate::context::Context;
use crate::deadline::Deadline;
use crate::lifecycle::NodeState;
use crate::names::{ClusterName, InstanceId};

/// SSM's cap on the stdout that `GetCommandInvocation` returns.
pub const OUTPUT_LIMIT: usize = 24_000;
/// The longest line the node-status script prints for one id with `Output=brief`: the id (19),
/// the state (8), separators.
pub const MAX_LINE: usize = 19 + 1 + 8 + 1;
/// What the node-status document accepts in one `InstanceIds` parameter (ids and DNS names of
/// 600 instances stay well inside SSM's 64 KB for a document and its parameters).
pub const DOCUMENT_MAX_IDS: usize = 600;

/// Node-status commands sent to the control plane at once.
pub const COMMANDS_IN_FLIGHT: usize = 3;

/// How many ids one command may ask about so that its answer fits in the output limit.
pub fn batch_size() -> usize {
    (OUTPUT_LIMIT / MAX_LINE).min(DOCUMENT_MAX_IDS)
}

/// Parses the node-status document's output: one `<instance-id> <node-name|-> <state>` line per
/// requested id. Lines for other ids and malformed lines are ignored; ids missing from the
/// output are absent from the result (the caller treats that as "could not ask").
pub fn parse_node_status(output: &str, asked: &[InstanceId]) -> Vec<(InstanceId, NodeState)> {
    let mut found = Vec::new();
    for line in output.lines().take(asked.len() * 2 + 10) {
        // `<id> <name> <state>` (full) or `<id> <state>` (brief).
        let words: Vec<&str> = line.split_whitespace().take(4).collect();
        let (id, state) = match words.as_slice() {
            [id, _name, state] => (*id, *state),
            [id, state] => (*id, *state),
            _ => continue,
        };
        let Some(instance) = asked.iter().find(|a| a.as_str() == id) else {
            continue;
        };
        let state = match state {
            "Ready" => NodeState::Ready,
            "NotReady" => NodeState::NotReady,
            "Unknown" => NodeState::Unknown,
            "Absent" => NodeState::Absent,
            _ => continue,
        };
        if !found.iter().any(|(i, _)| i == instance) {
            found.push((instance.clone(), state));
        }
    }
    found
}

/// Asks the control plane about every id, in as few commands as the output limit allows.
/// `None` when no control plane could answer. Ids missing from the answers are left out of the
/// map (the caller treats them as "could not ask").
pub async fn node_states(
    ctx: &Context,
    cluster: &ClusterName,
    candidates: &[InstanceId],
    ids: &[InstanceId],
    dns: &HashMap<InstanceId, String>,
    deadline: &Deadline,
) -> Option<HashMap<InstanceId, NodeState>> {
    let mut states = HashMap::new();
    if ids.is_empty() {
        return Some(states);
    }
    // Batches go out together, at most COMMANDS_IN_FLIGHT at once: the control plane's SSM
    // agent runs 5 commands at a time by default, and a drain or regeneration may need a slot.
    let batches = ids.chunks(batch_size()).map(|chunk| async move {
        let mut answered: HashMap<InstanceId, NodeState> =
            ask(ctx, cluster, candidates, chunk, dns, deadline)
                .await?
                .into_iter()
                .collect();
        // A truncated answer: ask once more for exactly the ids it did not cover.
        let missing: Vec<InstanceId> = chunk
            .iter()
            .filter(|i| !answered.contains_key(*i))
            .cloned()
            .collect();
        if !missing.is_empty() && missing.len() < chunk.len() {
            if let Some(more) = ask(ctx, cluster, candidates, &missing, dns, deadline).await {
                answered.extend(more);
            }
        }
        Some(answered)
    });
    use futures_util::StreamExt;
    let answers: Vec<Option<HashMap<InstanceId, NodeState>>> = futures_util::stream::iter(batches)
        .buffer_unordered(COMMANDS_IN_FLIGHT)
        .collect()
        .await;
    for answer in answers {
        states.extend(answer?);
    }
    Some(states)
}

async fn ask(
    ctx: &Context,
    cluster: &ClusterName,
    candidates: &[InstanceId],
    ids: &[InstanceId],
    dns: &HashMap<InstanceId, String>,
    deadline: &Deadline,
) -> Option<Vec<(InstanceId, NodeState)>> {
    let joined = ids.iter().map(|i| i.as_str()).collect::<Vec<_>>().join(" ");
    // The private DNS names let the script match a Node without a providerID with no EC2 call.
    let pairs: Vec<String> = ids
        .iter()
        .filter_map(|i| {
            let name = dns.get(i)?;
            dns_name_ok(name).then(|| format!("{i}={name}"))
        })
        .collect();
    let pairs = if pairs.is_empty() {
        "-".to_owned()
    } else {
        pairs.join(" ")
    };
    for (n, cp) in candidates.iter().enumerate() {
        if deadline.is_near(Duration::from_secs(2)) {
            return None;
        }
        // While another control plane is left to ask, one whose agent has not taken the
        // question by the next poll (offline, busy) is passed over rather than waited on.
        let pickup = (n + 1 < candidates.len()).then_some(ctx.config.node_poll);
        let request = CommandRequest {
            cluster: cluster.as_str(),
            instance: cp,
            document: &ctx.config.documents.node_status,
            parameters: vec![
                ("InstanceIds", joined.clone()),
                ("PrivateDnsNames", pairs.clone()),
                ("Output", "brief".to_owned()),
            ],
            comment: format!("joinkeeper: node status for {cluster}"),
        };
        match ctx.run_command_picked_up(request, deadline, pickup).await {
            Ok(out) => return Some(parse_node_status(&out.stdout, ids)),
            Err(err) => {
                warn!(cluster = %cluster, control_plane = %cp, error = %err, "node status failed on this control plane")
            }
        }
    }
    None
}

/// A DNS (or Node) name the documents' patterns accept (anything else is left out, not sent).
pub fn dns_name_ok(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=253).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'.')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_batch_answer_fits_the_output_limit() {
        let n = batch_size();
        assert_eq!(n, 600, "one command for a burst of 500");
        assert!(dns_name_ok("ip-10-1-2-3.ec2.internal"));
        assert!(!dns_name_ok("ip-10-1-2-3.ec2.internal;reboot"));
        assert!(!dns_name_ok(""));
        assert!(n * MAX_LINE <= OUTPUT_LIMIT);
    }

    #[test]
    fn node_status_output_is_parsed_for_asked_ids_only() {
        let a = InstanceId::parse("i-0000000a").expect("id");
        let b = InstanceId::parse("i-0000000b").expect("id");
        let c = InstanceId::parse("i-0000000c").expect("id");
        let out = "i-0000000a ip-10-0-0-1.ec2.internal Ready\ni-0000000b Absent\ni-0000000f x Ready\ngarbage\ni-0000000a x NotReady\ni-0000000c a b c\n";
        assert_eq!(
            parse_node_status(out, &[a.clone(), b.clone(), c]),
            vec![(a, NodeState::Ready), (b, NodeState::Absent)]
        );
    }
}
