//! Cordoning (and deleting) a Node through the cordon document, and reading what it did.

use crate::aws::run_command::CommandRequest;
use crate::context::{Context, Invocation};
use crate::names::{ClusterName, InstanceId};

/// Sends the cordon document for `node` to `cp`; the result it printed, or `failed: …`.
pub(super) async fn cordon(
    ctx: &Context,
    cluster: &ClusterName,
    cp: &InstanceId,
    node: &str,
    delete: bool,
    inv: &Invocation,
) -> String {
    let request = CommandRequest {
        cluster: cluster.as_str(),
        instance: cp,
        document: &ctx.config.documents.cordon,
        parameters: vec![
            ("NodeName", node.to_owned()),
            ("Delete", delete.to_string()),
        ],
        comment: format!("joinkeeper: cordon a rogue Node of {cluster}"),
    };
    match ctx.run_command(request, &inv.deadline).await {
        Ok(out) => cordon_result(&out.stdout),
        Err(err) => format!("failed: {err}"),
    }
}

/// The result the cordon document printed (`cordon node=<n> result=<r>`, its last line).
fn cordon_result(stdout: &str) -> String {
    let result = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("cordon "))
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("result=")));
    match result {
        Some(r @ ("cordoned" | "already-cordoned" | "deleted" | "absent")) => r.to_owned(),
        Some(_) => {
            "failed: the control plane could not cordon it (see the command's output)".to_owned()
        }
        None => "failed: the cordon document printed no result".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cordon_results() {
        for (out, want) in [
            ("cordon node=a result=cordoned\n", "cordoned"),
            ("x\ncordon node=a result=deleted\n", "deleted"),
            ("cordon node=a result=absent\n", "absent"),
        ] {
            assert_eq!(super::cordon_result(out), want);
        }
        assert!(super::cordon_result("cordon node=a result=failed\n").starts_with("failed"));
        assert!(super::cordon_result("").starts_with("failed"));
    }
}
