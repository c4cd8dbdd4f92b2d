//! Several Nodes of a cluster leaving at once: all are cordoned first, by one command
//! (`joinkeeper-cordon` with the names joined by commas), before the drains start at most
//! `JOINKEEPER_DRAIN_CONCURRENCY` at a time. A pod evicted from one leaving Node is then never
//! scheduled on another that is about to leave, to be evicted a second time.

use std::collections::{HashMap, HashSet};

use tracing::{info, warn};

use super::DrainRecord;
use crate::aws::run_command::CommandRequest;
use crate::context::Context;
use crate::deadline::Deadline;
use crate::lifecycle::{NodeState, WaitState};
use crate::names::{ClusterName, InstanceId};

/// Names in one command (the document's pattern allows 50).
const PER_COMMAND: usize = 50;

/// One action of the pass that leaves service, as the pure choice sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaving {
    pub instance: InstanceId,
    pub state: WaitState,
    pub node: Option<NodeState>,
}

/// Pure: the Nodes to cordon before any drain of this pass starts: those of leaving actions
/// whose drain has not begun, that own a Node the run knows by name and has not cordoned yet;
/// only when two or more actions leave (one alone is cordoned by its own drain).
pub fn to_cordon(
    leaving: &[Leaving],
    drains: &HashMap<InstanceId, DrainRecord>,
    node_names: &HashMap<InstanceId, String>,
    cordoned: &HashSet<String>,
) -> Vec<String> {
    let leaves = |l: &&Leaving| {
        matches!(
            l.state,
            WaitState::TerminatingWait | WaitState::WarmedPendingWait
        )
    };
    let draining = |l: &&Leaving| {
        drains
            .get(&l.instance)
            .is_some_and(|r| r.left_node.is_none())
    };
    let all: Vec<&Leaving> = leaving.iter().filter(leaves).collect();
    let mut names: Vec<String> = all
        .iter()
        .filter(|l| !draining(l))
        .filter(|l| matches!(l.node, Some(NodeState::Ready | NodeState::NotReady)))
        .filter_map(|l| node_names.get(&l.instance))
        .filter(|n| !cordoned.contains(*n))
        .cloned()
        .collect();
    if all.len() < 2 {
        return Vec::new();
    }
    names.sort();
    names.dedup();
    names
}

/// Cordons `names` on the first control plane that runs the command; returns the Nodes it
/// reported cordoned (or already cordoned). A failure is no reason to hold a drain: each drain
/// cordons its own Node first anyway.
pub async fn cordon_all(
    ctx: &Context,
    cluster: &ClusterName,
    candidates: &[InstanceId],
    names: &[String],
    deadline: &Deadline,
) -> Vec<String> {
    let mut done = Vec::new();
    for chunk in names.chunks(PER_COMMAND) {
        for (n, cp) in candidates.iter().enumerate() {
            let request = CommandRequest {
                cluster: cluster.as_str(),
                instance: cp,
                document: &ctx.config.documents.cordon,
                parameters: vec![
                    ("NodeName", chunk.join(",")),
                    ("Delete", "false".to_owned()),
                ],
                comment: format!("joinkeeper: cordon the Nodes leaving {cluster}"),
            };
            // Passed over when its agent has not taken the command by the next poll (offline,
            // busy) while another control plane is left.
            let pickup = ctx.pickup_before_next(n, candidates.len());
            match ctx.run_command_picked_up(request, deadline, pickup).await {
                Ok(out) => {
                    done.extend(cordoned_in(&out.stdout, chunk));
                    break;
                }
                Err(err) => {
                    warn!(cluster = %cluster, control_plane = %cp, error = %err, "could not cordon the leaving Nodes; each drain cordons its own")
                }
            }
        }
    }
    info!(cluster = %cluster, nodes = ?done, "Nodes leaving together cordoned before their drains");
    done
}

/// Pure: the names among `asked` that the output reports cordoned.
pub fn cordoned_in(stdout: &str, asked: &[String]) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("cordon node=")?;
            let (name, result) = rest.split_once(" result=")?;
            matches!(result.trim(), "cordoned" | "already-cordoned").then_some(name)
        })
        .filter(|n| asked.iter().any(|a| a == n))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::id;

    fn leaving(n: u8, state: WaitState, node: Option<NodeState>) -> Leaving {
        Leaving {
            instance: id(&format!("i-0000000{n}")),
            state,
            node,
        }
    }

    #[test]
    fn several_leaving_are_cordoned_first_one_alone_is_not() {
        use NodeState::*;
        use WaitState::*;
        let names: HashMap<InstanceId, String> = (1..=6)
            .map(|n| (id(&format!("i-0000000{n}")), format!("ip-10-0-0-{n}")))
            .collect();
        let none = HashMap::new();
        let mut cordoned = HashSet::new();
        let pass = vec![
            leaving(1, TerminatingWait, Some(Ready)),
            leaving(2, TerminatingWait, Some(NotReady)),
            leaving(3, WarmedPendingWait, Some(Ready)),
            leaving(4, TerminatingWait, Some(Absent)),
            leaving(5, PendingWait, Some(Ready)),
            leaving(6, TerminatingWait, None),
        ];
        assert_eq!(
            to_cordon(&pass, &none, &names, &cordoned),
            ["ip-10-0-0-1", "ip-10-0-0-2", "ip-10-0-0-3"],
            "the Nodes of leaving actions, not launches, not unknown or absent ones"
        );
        assert!(
            to_cordon(&pass[..1], &none, &names, &cordoned).is_empty(),
            "one alone: its drain cordons it"
        );
        cordoned.insert("ip-10-0-0-1".to_owned());
        let drains: HashMap<InstanceId, DrainRecord> = [(
            id("i-00000002"),
            DrainRecord {
                command_id: "c".into(),
                control_plane: None,
                started_at_ms: 0,
                left_node: None,
                node: None,
                blocked: Vec::new(),
            },
        )]
        .into_iter()
        .collect();
        assert_eq!(
            to_cordon(&pass, &drains, &names, &cordoned),
            ["ip-10-0-0-3"],
            "already cordoned, or its drain runs: not again"
        );
    }

    #[test]
    fn only_the_asked_nodes_reported_cordoned_count() {
        let asked = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let out = "cordon node=a result=cordoned\ncordon node=b result=absent\ncordon node=c result=already-cordoned\ncordon node=z result=cordoned\n";
        assert_eq!(cordoned_in(out, &asked), ["a", "c"]);
    }
}
