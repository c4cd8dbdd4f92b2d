//! The `joinkeeper` command-line tool against the emulator: status of two clusters, rotation with
//! revocation checked on the stand-in control plane, and each error's exit code.
#![recursion_limit = "256"] // the handlers' futures nest deeply; a clean build overflows the default

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command as Process;
use std::time::Duration;

use joinkeeper_cli::{exit, parse, run};
use joinkeeper_tests::cli::{cli, cli_with, kube_dir};
use joinkeeper_tests::*;
use serde_json::Value;

const H: u64 = 3600;

/// Creates a token directly on the stand-in control plane; returns its id.
fn create_token(e: &Emulator, cluster: &str, description: &str) -> String {
    let out = Process::new(repo_root().join("node-scripts/standins/kubeadm"))
        .args([
            "token",
            "create",
            "--ttl",
            "2h",
            "--description",
            description,
        ])
        .env("JOINKEEPER_KUBE_STATE", kube_dir(e, cluster))
        .output()
        .expect("stand-in kubeadm");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .split('.')
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn tokens(e: &Emulator, cluster: &str) -> Vec<String> {
    let mut ids: Vec<String> = e.kube_state(cluster)["tokens"]
        .as_object()
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

#[tokio::test]
async fn status_of_two_clusters_for_people_and_scripts() {
    let (e, clients) = Emulator::with_documents().await;
    // alpha: a reachable control plane, a record an hour old, a worker waiting to join.
    let alpha_cp = launch_control_plane(&e, &clients, "alpha", &[]).await;
    put_aged_record(&clients, "alpha", "aaaaaa", H).await;
    create_worker_group(&clients, "alpha", "alpha-workers", 300, &[]).await;
    set_capacity(&clients, "alpha-workers", 1).await;
    // beta: its only control plane's agent is offline, its record expires in half an hour.
    let beta_cp = launch_control_plane(&e, &clients, "beta", &[AGENT_OFFLINE]).await;
    put_aged_record(&clients, "beta", "bbbbbb", 23 * H + 1800).await;
    let waiting_seen = eventually(Duration::from_secs(20), || {
        let clients = &clients;
        async move {
            group_states(clients, "alpha-workers")
                .await
                .iter()
                .any(|(_, s)| s == "Pending:Wait")
        }
    })
    .await;
    assert!(waiting_seen, "a worker waits in Pending:Wait");

    let ran = cli(&e, &["status", "--json"]).await;
    assert_eq!(ran.code, exit::OK, "{}", ran.err);
    let report = ran.json();
    let clusters = report["clusters"].as_array().expect("clusters");
    let names: Vec<&str> = clusters
        .iter()
        .filter_map(|c| c["cluster"].as_str())
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    let (alpha, beta) = (&clusters[0], &clusters[1]);

    assert_eq!(alpha["reachable"], true);
    assert_eq!(alpha["control_planes"][0]["instance"], alpha_cp.as_str());
    assert_eq!(alpha["control_planes"][0]["ssm_online"], true);
    assert_eq!(alpha["record"]["state"], "fresh");
    assert_eq!(alpha["record"]["token_id"], "aaaaaa");
    let age = alpha["record"]["age_seconds"].as_u64().expect("age");
    assert!((H..H + 120).contains(&age), "record age {age}");
    let left = alpha["record"]["remaining_seconds"].as_u64().expect("left");
    assert!((23 * H - 120..=23 * H).contains(&left), "remaining {left}");
    let waiting = alpha["waiting"].as_array().expect("waiting");
    assert_eq!(waiting.len(), 1, "{alpha}");
    assert_eq!(waiting[0]["state"], "Pending:Wait");
    assert_eq!(waiting[0]["group"], "alpha-workers");
    assert!(waiting[0]["age_seconds"].as_u64().is_some_and(|a| a < 120));

    assert_eq!(beta["reachable"], false);
    assert_eq!(beta["control_planes"][0]["instance"], beta_cp.as_str());
    assert_eq!(beta["control_planes"][0]["state"], "running");
    assert_eq!(beta["control_planes"][0]["ssm_online"], false);
    assert_eq!(beta["record"]["state"], "expires-soon");
    assert_eq!(beta["waiting"].as_array().map(Vec::len), Some(0));

    // Never the secret, in either form.
    let text = cli(&e, &["status"]).await;
    assert_eq!(text.code, exit::OK, "{}", text.err);
    for out in [&ran.out, &text.out] {
        assert!(!out.contains(PLANTED_SECRET), "the secret was printed");
    }
    assert!(text.out.contains("cluster alpha"), "{}", text.out);
    assert!(text.out.contains("token aaaaaa"), "{}", text.out);
    assert!(text.out.contains("Pending:Wait"), "{}", text.out);
    let one = cli(&e, &["status", "--cluster", "beta"]).await;
    assert_eq!(one.code, exit::OK, "{}", one.err);
    assert!(!one.out.contains("cluster alpha"), "{}", one.out);
    assert!(
        one.out.contains("expires-soon: token bbbbbb"),
        "{}",
        one.out
    );
    assert!(
        one.out.contains("no control plane reachable"),
        "{}",
        one.out
    );
}

#[tokio::test]
async fn rotate_with_revoke_all_leaves_only_the_new_token_of_the_cluster() {
    let (e, clients) = Emulator::with_documents().await;
    let cp = launch_control_plane(&e, &clients, "gamma", &[]).await;
    put_aged_record(&clients, "gamma", "aaaaaa", H).await;

    // Two plain rotations: a fresh record is regenerated anyway.
    let first = cli(&e, &["rotate", "--cluster", "gamma", "--json"]).await;
    assert_eq!(first.code, exit::OK, "{}\n{}", first.err, e.log());
    let first = first.json();
    assert_eq!(first["previous_state"], "fresh");
    assert_eq!(first["control_plane"], cp.as_str());
    assert!(first.get("revoked").is_none());
    let second = cli(&e, &["rotate", "--cluster", "gamma", "--json"])
        .await
        .json();
    let (t1, t2) = (
        first["token_id"].as_str().expect("t1").to_owned(),
        second["token_id"].as_str().expect("t2").to_owned(),
    );
    assert_ne!(t1, t2);
    // regenerate's own grace period keeps the previous record's token.
    assert_eq!(tokens(&e, "gamma"), {
        let mut v = vec![t1.clone(), t2.clone()];
        v.sort();
        v
    });
    // A joinkeeper token minted meanwhile (so past regenerate's grace rule), an operator's own
    // token, and another cluster's joinkeeper token on the same stand-in state.
    let now = joinkeeper::timefmt::rfc3339(time::OffsetDateTime::now_utc());
    let stray = create_token(&e, "gamma", &format!("joinkeeper:gamma created_at={now}"));
    let operator = create_token(&e, "gamma", "break-glass token of the on-call");
    let other = create_token(&e, "gamma", &format!("joinkeeper:other created_at={now}"));

    let ran = cli(&e, &["rotate", "--cluster", "gamma", "--revoke-all"]).await;
    assert_eq!(ran.code, exit::OK, "{}\n{}", ran.err, e.log());
    let meta: Value = serde_json::from_str(
        &joinkeeper::aws::parameters::ParameterStore::new(clients.ssm.clone())
            .get("/joinkeeper/gamma/join-record-meta", false)
            .await
            .expect("meta")
            .expect("meta exists")
            .0,
    )
    .expect("meta JSON");
    let t3 = meta["token_id"].as_str().expect("t3").to_owned();
    assert!(ran.out.contains(&format!("new token {t3}")), "{}", ran.out);
    assert!(ran.out.contains("revoked "), "{}", ran.out);
    // On the stand-in control plane: the new token, and the tokens that are not joinkeeper's
    // for this cluster. t1, t2 and the stray are gone.
    let mut expected = vec![t3.clone(), operator, other];
    expected.sort();
    assert_eq!(tokens(&e, "gamma"), expected, "{}", ran.out);
    for gone in [&t1, &t2, &stray] {
        assert!(!tokens(&e, "gamma").contains(gone));
    }
    let revocations = e.commands(Some("joinkeeper-revoke-tokens"));
    assert_eq!(revocations.len(), 1, "{revocations:?}");
    assert_eq!(revocations[0]["instance_ids"], serde_json::json!([cp]));
    // The regenerate lease was released.
    assert!(
        joinkeeper::aws::parameters::ParameterStore::new(clients.ssm.clone())
            .get("/joinkeeper/gamma/leases/regenerate", false)
            .await
            .expect("read lease")
            .is_none()
    );
    // And status agrees.
    let status = cli(&e, &["status", "--cluster", "gamma", "--json"])
        .await
        .json();
    assert_eq!(status["clusters"][0]["record"]["token_id"], t3.as_str());
    assert_eq!(status["clusters"][0]["record"]["state"], "fresh");
}

#[tokio::test]
async fn rotate_refuses_a_cluster_whose_control_plane_is_unreachable() {
    let (e, clients) = Emulator::with_documents().await;
    let cp = launch_control_plane(&e, &clients, "delta", &[AGENT_OFFLINE]).await;
    put_aged_record(&clients, "delta", "dddddd", H).await;
    let before = get_record(&clients, "delta").await.expect("record");

    let ran = cli(&e, &["rotate", "--cluster", "delta", "--revoke-all"]).await;

    assert_eq!(ran.code, exit::UNREACHABLE, "{}", ran.err);
    assert!(
        ran.err.contains("refusing to rotate cluster delta"),
        "{}",
        ran.err
    );
    assert!(ran.err.contains(&cp), "{}", ran.err);
    assert!(ran.err.contains("SSM agent not online"), "{}", ran.err);
    assert!(ran.out.is_empty());
    assert!(e.commands(Some("joinkeeper-regenerate")).is_empty());
    assert_eq!(get_record(&clients, "delta").await, Some(before));
}

#[tokio::test]
async fn unknown_clusters_bad_arguments_and_missing_credentials_have_their_exit_codes() {
    let (e, clients) = Emulator::with_documents().await;
    launch_control_plane(&e, &clients, "known", &[]).await;

    for args in [
        &["status", "--cluster", "nosuch"][..],
        &["rotate", "--cluster", "nosuch"],
    ] {
        let ran = cli(&e, args).await;
        assert_eq!(ran.code, exit::UNKNOWN_CLUSTER, "{args:?}: {}", ran.err);
        assert!(ran.err.contains("unknown cluster nosuch"), "{}", ran.err);
        assert!(ran.err.contains("known clusters: known"), "{}", ran.err);
    }
    let ran = cli(&e, &["status", "--cluster", "bad;name"]).await;
    assert_eq!(ran.code, exit::USAGE, "{}", ran.err);

    // Arguments are checked before anything else (no AWS configuration needed).
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let none = |_: &str| None;
    for args in [
        &["rotate"][..],
        &["status", "--revoke-all"],
        &["frobnicate"],
    ] {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let code = joinkeeper_cli::main_with(&args, &none, &mut out, &mut err).await;
        assert_eq!(code, exit::USAGE, "{args:?}");
    }
    assert!(String::from_utf8_lossy(&err).contains("usage: joinkeeper"));

    // An invalid setting is a usage error too, named.
    let bad_setting =
        |name: &str| (name == "JOINKEEPER_TOKEN_TTL_SECONDS").then(|| "60".to_owned());
    let command = parse(&["status".to_owned()]).expect("valid");
    let sdk = e.sdk_config(Some("joinkeeper-cli")).await;
    let mut err = Vec::new();
    let code = run(&command, &sdk, &bad_setting, &mut Vec::new(), &mut err).await;
    assert_eq!(code, exit::USAGE);
    assert!(String::from_utf8_lossy(&err).contains("JOINKEEPER_TOKEN_TTL_SECONDS"));

    // No credentials at all, then no region.
    let no_credentials = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new(REGION))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .endpoint_url(&e.endpoint)
        .build();
    let ran = cli_with(&no_credentials, &["status"]).await;
    assert_eq!(ran.code, exit::NO_CREDENTIALS, "{}", ran.err);
    assert!(ran.err.contains("no usable AWS credentials"), "{}", ran.err);
    assert!(ran.err.contains("AWS_PROFILE"), "{}", ran.err);
    let no_region = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let ran = cli_with(&no_region, &["rotate", "--cluster", "known"]).await;
    assert_eq!(ran.code, exit::NO_CREDENTIALS, "{}", ran.err);
    assert!(ran.err.contains("region"), "{}", ran.err);
}

/// An endpoint that answers every request as a throttled EC2 (query protocol) call would.
fn throttling_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut request = Vec::new();
            let mut buf = [0u8; 8192];
            // Headers, then as much body as Content-Length says.
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() >= length {
                        break;
                    }
                }
            }
            // Each service throttles in its protocol's error shape: EC2's query errors, Auto
            // Scaling's awsQuery errors (API version 2011-01-01).
            let autoscaling = String::from_utf8_lossy(&request).contains("Version=2011-01-01");
            let (status, body) = if autoscaling {
                ("400 Bad Request", "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>")
            } else {
                ("503 Service Unavailable", "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>")
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/xml;charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    format!("http://{address}")
}

#[tokio::test]
async fn throttling_has_its_own_exit_code() {
    let sdk = sdk_config_for(&throttling_endpoint(), Some("joinkeeper-cli")).await;
    for args in [&["status"][..], &["rotate", "--cluster", "demo"]] {
        let ran = cli_with(&sdk, args).await;
        assert_eq!(ran.code, exit::THROTTLED, "{args:?}: {}", ran.err);
        assert!(ran.err.contains("throttled"), "{}", ran.err);
    }
}
