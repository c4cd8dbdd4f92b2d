//! After a leak, against the emulator: `joinkeeper rotate --revoke-all` reports the Node that
//! registered with the leaked token and that no instance stands behind, and cordons or deletes it
//! on request; the Node of a real worker that joined with the same token is never acted on.
#![recursion_limit = "256"] // the handlers' futures nest deeply; a clean build overflows the default

use std::process::Command as Process;
use std::time::Duration;

use joinkeeper_cli::exit;
use joinkeeper_tests::cli::{cli, kube_dir};
use joinkeeper_tests::*;
use serde_json::Value;

/// The stand-in kubectl on the cluster's control plane, as its administrator.
fn kubectl(e: &Emulator, cluster: &str, args: &[&str]) {
    let out = Process::new(repo_root().join("node-scripts/standins/kubectl"))
        .args(args)
        .env("JOINKEEPER_KUBE_STATE", kube_dir(e, cluster))
        .output()
        .expect("stand-in kubectl");
    assert!(out.status.success(), "{out:?}");
}

fn nodes(e: &Emulator) -> serde_json::Map<String, Value> {
    e.kube_state("leak")["nodes"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_node_joined_with_a_revoked_token_and_no_instance_is_reported_then_cordoned_then_deleted()
{
    let (e, clients) = Emulator::with_documents().await;
    launch_control_plane(&e, &clients, "leak", &[]).await;
    let first = cli(&e, &["rotate", "--cluster", "leak", "--json"]).await;
    assert_eq!(first.code, exit::OK, "{}\n{}", first.err, e.log());
    let leaked = first.json()["token_id"].as_str().expect("token").to_owned();

    // A real worker joins with that token (user data runs joinkeeper-join, the kubelet's TLS
    // bootstrap leaves its CSR).
    create_worker_group(&clients, "leak", "leak-workers", 300, &[]).await;
    set_capacity(&clients, "leak-workers", 1).await;
    let joined = eventually(Duration::from_secs(60), || {
        let found = nodes(&e).values().any(|n| n["role"] == "worker");
        async move { found }
    })
    .await;
    assert!(joined, "the worker joined: {:?}\n{}", nodes(&e), e.log());
    let worker = nodes(&e)
        .into_iter()
        .find(|(_, n)| n["role"] == "worker")
        .map(|(name, _)| name)
        .expect("the worker's Node");
    // Someone holding the leaked token registered a Node of their own an hour ago.
    kubectl(
        &e,
        "leak",
        &[
            "x-standin",
            "add-node",
            "intruder",
            "--age-seconds",
            "3600",
            "--internal-ip",
            "10.250.0.9",
        ],
    );
    kubectl(
        &e,
        "leak",
        &["x-standin", "add-csr", "intruder", "--token-id", &leaked],
    );

    // Report only, by default.
    let ran = cli(
        &e,
        &["rotate", "--cluster", "leak", "--revoke-all", "--json"],
    )
    .await;
    assert_eq!(ran.code, exit::OK, "{}\n{}", ran.err, e.log());
    let report = ran.json();
    assert!(
        report["revoked"]
            .as_array()
            .expect("revoked")
            .iter()
            .any(|t| t == leaked.as_str()),
        "{report}"
    );
    let check = &report["leaked_nodes"];
    assert_eq!(check["joins_known"], true, "{report}");
    assert_eq!(check["joins_with_revoked_tokens"], 2, "worker and intruder");
    assert_eq!(check["mode"], "report");
    assert_eq!(check["nodes"].as_array().map(Vec::len), Some(1), "{report}");
    assert_eq!(check["nodes"][0]["node"], "intruder");
    assert_eq!(check["nodes"][0]["token_id"], leaked.as_str());
    assert_eq!(check["nodes"][0]["action"], "reported");
    assert!(
        !ran.out.contains(&worker),
        "the worker is not reported: {}",
        ran.out
    );
    assert_eq!(nodes(&e)["intruder"]["unschedulable"], false);

    // Cordon: the token is gone by now, the join is still on record.
    let text = cli(
        &e,
        &[
            "rotate",
            "--cluster",
            "leak",
            "--revoke-all",
            "--cordon-leaked",
        ],
    )
    .await;
    assert_eq!(text.code, exit::OK, "{}\n{}", text.err, e.log());
    assert!(
        text.out
            .contains(&format!("intruder  token {leaked}  cordoned")),
        "{}",
        text.out
    );
    assert_eq!(nodes(&e)["intruder"]["unschedulable"], true);
    assert_eq!(nodes(&e)[&worker]["unschedulable"], false);

    // Delete.
    let ran = cli(
        &e,
        &[
            "rotate",
            "--cluster",
            "leak",
            "--revoke-all",
            "--delete-leaked",
            "--json",
        ],
    )
    .await;
    assert_eq!(ran.code, exit::OK, "{}\n{}", ran.err, e.log());
    assert_eq!(ran.json()["leaked_nodes"]["nodes"][0]["action"], "deleted");
    let left = nodes(&e);
    assert!(!left.contains_key("intruder"), "{left:?}");
    assert_eq!(
        left[&worker]["unschedulable"], false,
        "the worker is untouched"
    );
    let cordons = e.commands(Some("joinkeeper-cordon"));
    assert_eq!(cordons.len(), 2, "one cordon, one delete: {cordons:?}");
}
