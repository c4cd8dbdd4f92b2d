//! The Node commands of the exits, through the `joinkeeper-cordon` document on a control plane:
//! cordon (the Node found from the instance id when its name is not known yet), uncordon, delete.

use tracing::warn;

use crate::aws::run_command::CommandRequest;
use crate::context::Context;
use crate::deadline::Deadline;
use crate::names::{ClusterName, InstanceId};
use crate::reconcile::node_status::dns_name_ok;

/// What to do to the Node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeOp {
    Cordon,
    Uncordon,
    Delete,
}

/// What the document printed: `cordon node=<name or -> result=<...>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeResult {
    pub node: Option<String>,
    pub result: String,
}

impl NodeResult {
    /// The operation took effect, or there was no Node to act on.
    pub fn settled(&self) -> bool {
        matches!(
            self.result.as_str(),
            "cordoned" | "already-cordoned" | "uncordoned" | "deleted" | "absent"
        )
    }
}

/// Pure: the document's last `cordon ...` line.
pub fn parse_output(stdout: &str) -> NodeResult {
    let mut out = NodeResult {
        node: None,
        result: "unknown".into(),
    };
    for line in stdout.lines().filter(|l| l.starts_with("cordon ")) {
        for w in line.split_whitespace() {
            if let Some(n) = w.strip_prefix("node=") {
                out.node = dns_name_ok(n).then(|| n.to_owned());
            } else if let Some(r) = w.strip_prefix("result=") {
                out.result = r
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .take(20)
                    .collect();
            }
        }
    }
    out
}

/// Which Node: the instance's, by name when known, else found by the script (from the instance's
/// private DNS name when given, which spares it an EC2 call).
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    pub instance: &'a InstanceId,
    pub node: Option<&'a str>,
    pub private_dns: Option<&'a str>,
}

/// Runs `op` on the target's Node on the first control plane that runs it; `None` when none did.
pub async fn run(
    ctx: &Context,
    cluster: &ClusterName,
    candidates: &[InstanceId],
    target: Target<'_>,
    op: NodeOp,
    deadline: &Deadline,
) -> Option<NodeResult> {
    let instance = target.instance;
    let flag = |b: bool| if b { "true" } else { "false" }.to_owned();
    let order = spread(candidates, instance);
    let last = order.len().saturating_sub(1);
    for (n, cp) in order.into_iter().enumerate() {
        let request = CommandRequest {
            cluster: cluster.as_str(),
            instance: cp,
            document: &ctx.config.documents.cordon,
            parameters: vec![
                ("NodeName", target.node.unwrap_or("-").to_owned()),
                ("InstanceId", instance.to_string()),
                (
                    "PrivateDnsName",
                    target.private_dns.unwrap_or("-").to_owned(),
                ),
                ("Delete", flag(op == NodeOp::Delete)),
                ("Uncordon", flag(op == NodeOp::Uncordon)),
            ],
            comment: format!("joinkeeper: {op:?} the Node of {instance} (exit)").to_lowercase(),
        };
        // While another control plane is left, one whose agent has not taken the command by the
        // next poll (offline, busy) is passed over rather than waited on until the deadline.
        let pickup = ctx.pickup_before_next(n, last + 1);
        match ctx.run_command_picked_up(request, deadline, pickup).await {
            Ok(out) => return Some(parse_output(&out.stdout)),
            Err(err) => {
                warn!(cluster = %cluster, control_plane = %cp, instance = %instance, error = %err, "could not run the Node command")
            }
        }
    }
    None
}

/// The control planes in the order this instance's command tries them: starting at one chosen
/// by the instance id, so that many exits at once (Spot interruptions come in waves) spread
/// over the control planes' agents, each of which runs only a few commands at a time.
pub fn spread<'a>(candidates: &'a [InstanceId], instance: &InstanceId) -> Vec<&'a InstanceId> {
    let n = candidates.len().max(1);
    let start = instance
        .as_str()
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize))
        % n;
    candidates[start..]
        .iter()
        .chain(candidates[..start].iter())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_control_plane_is_tried_once_from_a_start_the_instance_chooses() {
        let cps: Vec<InstanceId> = ["i-0000000a", "i-0000000b", "i-0000000c"]
            .iter()
            .map(|s| InstanceId::parse(s).expect("id"))
            .collect();
        let mut starts = std::collections::HashSet::new();
        for i in 0..40 {
            let id = InstanceId::parse(&format!("i-{i:08x}")).expect("id");
            let order = spread(&cps, &id);
            let mut sorted: Vec<_> = order.iter().map(|c| c.as_str()).collect();
            sorted.sort();
            assert_eq!(sorted, ["i-0000000a", "i-0000000b", "i-0000000c"]);
            starts.insert(order[0].clone());
        }
        assert_eq!(starts.len(), 3, "the exits spread over every control plane");
        assert!(spread(&[], &cps[0]).is_empty());
    }

    #[test]
    fn output_lines() {
        let r = parse_output("note\ncordon node=ip-10-0-0-1.ec2.internal result=cordoned\n");
        assert_eq!(r.node.as_deref(), Some("ip-10-0-0-1.ec2.internal"));
        assert!(r.settled());
        let absent = parse_output("cordon node=- result=absent");
        assert_eq!(absent.node, None);
        assert!(absent.settled());
        assert!(!parse_output("cordon node=- result=contested").settled());
        assert!(!parse_output("garbage").settled());
        assert_eq!(
            parse_output("cordon node=A;reboot result=cordoned").node,
            None,
            "a hostile name is never carried to a later command"
        );
    }
}
