//! What the drain document printed: its result line, and the pods that kept the drain from
//! ending clean, each with why (`joinkeeper-drain` reads kubectl's own messages).

use crate::reconcile::node_status::dns_name_ok;

/// Pods named at most (the script prints at most 50 too).
const MAX_PODS: usize = 50;

/// What the drain document printed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrainOutput {
    pub result: String,
    /// The pods left on the Node, `ns/pod (why)`.
    pub left: Vec<String>,
    /// The Node's name (`node=`), when the document found one.
    pub node: Option<String>,
}

/// The drain document's result: its last `drain …` line (`node=`, `result=`) and the
/// `left <ns>/<pod> [why]` lines, each pod as `ns/pod (why)`. Bounded and printable: a pod name
/// is at most 120 characters, `why` one word of at most 20 of `[a-z-]`.
pub fn parse_drain_output(output: &str) -> DrainOutput {
    let mut out = DrainOutput {
        result: "unknown".to_owned(),
        ..Default::default()
    };
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix("left ") {
            if out.left.len() < MAX_PODS {
                out.left.push(left_pod(rest));
            }
        } else if line.starts_with("drain ") {
            for w in line.split_whitespace() {
                if let Some(r) = w.strip_prefix("result=") {
                    out.result = r
                        .chars()
                        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                        .take(20)
                        .collect();
                } else if let Some(n) = w.strip_prefix("node=") {
                    out.node = dns_name_ok(n).then(|| n.to_owned());
                }
            }
        }
    }
    out
}

/// One `left` line's pod, `ns/pod (why)` (`ns/pod` when the script said no why).
fn left_pod(rest: &str) -> String {
    let mut words = rest.split_whitespace();
    let pod = crate::names::printable(words.next().unwrap_or_default(), 120)
        .trim_matches('"')
        .to_owned();
    let why: String = words
        .next()
        .unwrap_or_default()
        .chars()
        .take_while(|c| c.is_ascii_lowercase() || *c == '-')
        .take(20)
        .collect();
    if why.is_empty() {
        pod
    } else {
        format!("{pod} ({why})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_output() {
        let out = "cordoned\nleft default/web-1 pdb\nleft kube-system/x\nleft a/b $(reboot)\ndrain i-0000000a node=ip-1 result=timeout\n";
        let parsed = parse_drain_output(out);
        assert_eq!(parsed.result, "timeout");
        assert_eq!(
            parsed.left,
            vec!["default/web-1 (pdb)", "kube-system/x", "a/b"],
            "why is one word of [a-z-] or nothing"
        );
        let many: String = (0..80).map(|i| format!("left ns/p-{i} pdb\n")).collect();
        assert_eq!(parse_drain_output(&many).left.len(), MAX_PODS, "bounded");
        assert_eq!(parsed.node.as_deref(), Some("ip-1"));
        assert_eq!(parse_drain_output("garbage").result, "unknown");
        assert_eq!(
            parse_drain_output("drain i-0000000a node=- result=absent").node,
            None
        );
        assert_eq!(
            parse_drain_output("drain i-0000000a node=A;reboot result=failed").node,
            None,
            "a hostile name is never carried to a command"
        );
    }
}
