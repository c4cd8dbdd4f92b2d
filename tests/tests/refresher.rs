//! The scheduled refresh against the local AWS API emulator: real HTTP, real Run Command
//! execution of the regenerate document with the stand-in control plane.
#![recursion_limit = "256"] // the handlers' futures nest deeply; a clean build overflows the default

use std::time::Duration;

use joinkeeper::deadline::Deadline;
use joinkeeper::names::ClusterName;
use joinkeeper::record::JoinRecord;
use joinkeeper::refresh::{refresh_all, Outcome};
use joinkeeper::regenerate::{ensure_fresh, Ensured, RegenerateError};
use joinkeeper::{Context, Invocation};
use joinkeeper_tests::*;

const H: u64 = 3600;

struct World {
    emulator: Emulator,
    clients: joinkeeper::aws::AwsClients,
    function: joinkeeper::aws::AwsClients,
    logs: LogCapture,
    /// The capture stays installed on the test's thread while the world lives.
    _capture: tracing::subscriber::DefaultGuard,
}

fn inv() -> Invocation {
    Invocation::new("test-request", Deadline::after(Duration::from_secs(120)))
}

impl World {
    /// An emulator with the documents, and the code's log lines captured from now on.
    async fn new() -> World {
        let (emulator, clients) = Emulator::with_documents().await;
        let logs = LogCapture::default();
        World {
            function: emulator.function_clients("token-refresher").await,
            emulator,
            clients,
            _capture: logs.install(),
            logs,
        }
    }

    fn ctx(&self) -> Context {
        Context::new(test_config(), &self.function)
    }

    fn regenerations(&self) -> usize {
        self.emulator.commands(Some("joinkeeper-regenerate")).len()
    }

    /// No log line and no emulator-visible command output carries the planted or a new secret.
    async fn assert_no_secret_logged(&self, cluster: &str) {
        let text = self.logs.text();
        assert!(
            !text.contains(PLANTED_SECRET),
            "planted secret leaked into logs"
        );
        if let Some((value, _)) = get_record(&self.clients, cluster).await {
            if let Ok(record) = JoinRecord::from_json(&value) {
                assert!(
                    !text.contains(record.token_secret.expose()),
                    "new secret leaked into logs"
                );
            }
        }
    }
}

fn cluster(name: &str) -> ClusterName {
    ClusterName::parse(name).expect("valid")
}

#[tokio::test]
async fn rotates_a_record_older_than_ttl_minus_margin_and_leaves_a_fresh_one() {
    let w = World::new().await;
    launch_control_plane(&w.emulator, &w.clients, "old", &[]).await;
    put_aged_record(&w.clients, "old", "aaaaaa", 23 * H).await;
    launch_control_plane(&w.emulator, &w.clients, "young", &[]).await;
    put_aged_record(&w.clients, "young", "bbbbbb", H).await;
    let (_, young_version) = get_record(&w.clients, "young").await.expect("young record");

    let summary = refresh_all(&w.ctx(), &inv()).await.expect("refresh");

    let by_name = |n: &str| {
        summary
            .clusters
            .iter()
            .find(|c| c.cluster == n)
            .cloned()
            .expect("report")
    };
    let old = by_name("old");
    assert_eq!(
        old.outcome,
        Outcome::Rotated,
        "{old:?}\n{}",
        w.emulator.log()
    );
    assert_eq!(old.reason.as_deref(), Some("expires-soon"));
    let (value, _) = get_record(&w.clients, "old").await.expect("record");
    let record = JoinRecord::from_json(&value).expect("new record parses");
    assert_ne!(record.token_id, "aaaaaa");
    assert_eq!(old.token_id.as_deref(), Some(record.token_id.as_str()));
    assert!(
        old.remaining_seconds.unwrap_or(0) > H,
        "a new record with the 2 h TTL"
    );

    let young = by_name("young");
    assert_eq!(young.outcome, Outcome::Fresh);
    assert_eq!(
        get_record(&w.clients, "young").await.map(|r| r.1),
        Some(young_version),
        "fresh record untouched"
    );
    assert_eq!(w.regenerations(), 1, "only the old cluster was regenerated");

    // One structured line per cluster, with outcome and token id, never the secret.
    let lines = w.logs.lines();
    let line_for = |c: &str| {
        lines
            .iter()
            .find(|l| l["cluster"] == c && l["message"] == "cluster refreshed")
            .cloned()
    };
    let old_line = line_for("old").expect("log line for old");
    assert_eq!(old_line["outcome"], "rotated");
    assert_eq!(old_line["token_id"], record.token_id.as_str());
    assert_eq!(
        line_for("young").expect("log line for young")["outcome"],
        "fresh"
    );
    w.assert_no_secret_logged("old").await;
}

#[tokio::test]
async fn missing_and_corrupt_records_are_regenerated_with_the_reason_logged() {
    let w = World::new().await;
    launch_control_plane(&w.emulator, &w.clients, "missing", &[]).await;
    launch_control_plane(&w.emulator, &w.clients, "corrupt", &[]).await;
    put_record(
        &w.clients,
        "corrupt",
        &format!("kubeadm join nonsense --token x.{PLANTED_SECRET}"),
    )
    .await;

    let summary = refresh_all(&w.ctx(), &inv()).await.expect("refresh");
    for c in &summary.clusters {
        assert_eq!(c.outcome, Outcome::Rotated, "{c:?}\n{}", w.emulator.log());
        let (value, _) = get_record(&w.clients, &c.cluster).await.expect("record");
        JoinRecord::from_json(&value).expect("valid record now");
    }
    let reasons: Vec<String> = w
        .logs
        .lines()
        .iter()
        .filter(|l| l["message"] == "join record needs regeneration")
        .map(|l| {
            format!(
                "{}={}",
                l["cluster"].as_str().unwrap_or(""),
                l["reason"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(
        reasons.contains(&"missing=missing".to_owned()),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"corrupt=corrupt".to_owned()),
        "{reasons:?}"
    );
    w.assert_no_secret_logged("corrupt").await;
}

#[tokio::test]
async fn no_control_plane_online_is_a_clear_error_and_the_record_is_left_alone() {
    let w = World::new().await;
    launch_control_plane(&w.emulator, &w.clients, "dark", &[AGENT_OFFLINE]).await;
    put_aged_record(&w.clients, "dark", "cccccc", 23 * H).await;
    let before = get_record(&w.clients, "dark").await;

    let err = ensure_fresh(&w.ctx(), &cluster("dark"), Duration::from_secs(H), &inv())
        .await
        .expect_err("no control plane");
    assert!(
        matches!(err, RegenerateError::NoControlPlane { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("cluster dark"), "{err}");
    assert_eq!(
        get_record(&w.clients, "dark").await,
        before,
        "record unchanged"
    );
    assert_eq!(w.regenerations(), 0);

    let summary = refresh_all(&w.ctx(), &inv()).await.expect("refresh runs");
    assert_eq!(summary.failed(), 1);
    assert!(summary.clusters[0]
        .error
        .as_deref()
        .unwrap_or("")
        .contains("no control-plane instance"));
    // The lock was released: a later attempt is not blocked by it.
    assert!(w
        .clients
        .ssm
        .get_parameter()
        .name("/joinkeeper/dark/leases/regenerate")
        .send()
        .await
        .is_err());
    w.assert_no_secret_logged("dark").await;
}

#[tokio::test]
async fn fails_over_to_the_next_control_plane_when_one_cannot_take_the_command() {
    let w = World::new().await;
    let undeliverable = [("emulator:agent", "undeliverable")];
    let a = launch_control_plane(&w.emulator, &w.clients, "ha", &undeliverable).await;
    let b = launch_control_plane(&w.emulator, &w.clients, "ha", &[]).await;
    let c = launch_control_plane(&w.emulator, &w.clients, "ha", &undeliverable).await;
    put_aged_record(&w.clients, "ha", "dddddd", 25 * H).await;

    let ensured = ensure_fresh(&w.ctx(), &cluster("ha"), Duration::from_secs(H), &inv())
        .await
        .expect("regenerated");
    match ensured {
        Ensured::Regenerated { instance, .. } => {
            assert_eq!(instance.as_str(), b, "the one healthy control plane did it")
        }
        other => panic!("expected a regeneration, got {other:?}"),
    }
    let mut targets: Vec<String> = w
        .emulator
        .commands(Some("joinkeeper-regenerate"))
        .iter()
        .flat_map(|c| c["instance_ids"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    // Tried in instance-id order until one succeeded.
    let mut order = [a.clone(), b.clone(), c.clone()];
    order.sort();
    let upto = order
        .iter()
        .position(|i| *i == b)
        .map(|p| p + 1)
        .unwrap_or(0);
    targets.dedup();
    assert_eq!(targets, order[..upto].to_vec());
    w.assert_no_secret_logged("ha").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_refreshes_run_exactly_one_regeneration() {
    let w = World::new().await;
    launch_control_plane(&w.emulator, &w.clients, "busy", &[]).await;
    put_aged_record(&w.clients, "busy", "eeeeee", 23 * H).await;
    let ctx = std::sync::Arc::new(w.ctx());

    let mut tasks = Vec::new();
    for _ in 0..20 {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            ensure_fresh(&ctx, &cluster("busy"), Duration::from_secs(H), &inv()).await
        }));
    }
    let mut regenerated_here = 0;
    let mut token_ids = std::collections::BTreeSet::new();
    for t in tasks {
        let ensured = t.await.expect("task").expect("fresh in the end");
        if matches!(ensured, Ensured::Regenerated { .. }) {
            regenerated_here += 1;
        }
        token_ids.insert(ensured.summary().token_id.clone());
    }
    assert_eq!(regenerated_here, 1, "one caller regenerated");
    assert_eq!(
        w.regenerations(),
        1,
        "one regenerate command reached the control plane"
    );
    assert_eq!(
        token_ids.len(),
        1,
        "every caller saw the same new token: {token_ids:?}"
    );
    assert!(!token_ids.contains("eeeeee"));
}
