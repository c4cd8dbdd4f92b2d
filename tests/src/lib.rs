//! Test harness: starts the local AWS API emulator (moto server plus joinkeeper's extension) on a
//! free loopback port, points AWS SDK clients at it over HTTP, and stops it when dropped.
//!
//! Every test gets its own emulator process and state folder, so tests run in parallel without
//! sharing anything.
#![recursion_limit = "256"] // the handlers' futures nest deeply; a clean build overflows the default

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use aws_sdk_ssm::types::{DocumentFormat, DocumentType, ParameterType};
use joinkeeper::aws::AwsClients;
use joinkeeper::Config;
use serde_json::Value;

pub const REGION: &str = "us-east-1";
/// A token secret that tests plant and then look for in captured output.
pub const PLANTED_SECRET: &str = "pl4ntedsecret000";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The EventBridge scheduled event the demo sends (`events/scheduled-refresh.json`).
pub fn scheduled_event() -> Value {
    let path = repo_root().join("events/scheduled-refresh.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("event")).expect("JSON")
}

/// A running emulator. Killed on drop.
pub struct Emulator {
    child: Child,
    pub endpoint: String,
    pub state_dir: PathBuf,
    http: reqwest_lite::Http,
}

impl Emulator {
    /// Starts the emulator; panics with set-up instructions if the Python tools are missing.
    pub fn start() -> Emulator {
        let root = repo_root();
        let python = root.join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run `bash scripts/bootstrap-python.sh` first",
            python.display()
        );
        let state_dir = std::env::temp_dir().join(format!(
            "joinkeeper-test-{}-{}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir_all(&state_dir).expect("state dir");
        // Every call is recorded for the IAM check (`.calls/`, evaluated by scripts/test.sh).
        let calls = root.join(".calls");
        let _ = std::fs::create_dir_all(&calls);
        let mut child = Command::new(python)
            .env(
                "JOINKEEPER_RECORD_CALLS",
                calls.join(format!("rust-{}-{}.jsonl", std::process::id(), unique())),
            )
            .arg(root.join("emulator/joinkeeper_emulator.py"))
            .args(["--host", "127.0.0.1", "--port", "0", "--state-dir"])
            .arg(&state_dir)
            .arg("--scripts-dir")
            .arg(root.join("node-scripts"))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(state_dir.join("emulator.log")).expect("log file"),
            ))
            .spawn()
            .expect("start the emulator");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the ready line");
        let endpoint = line.trim().strip_prefix("ready ").unwrap_or_else(|| {
            let log = std::fs::read_to_string(state_dir.join("emulator.log")).unwrap_or_default();
            panic!("emulator did not start: {line:?}\n{log}")
        });
        let endpoint = endpoint.to_owned();
        Emulator {
            child,
            http: reqwest_lite::Http::new(&endpoint),
            endpoint,
            state_dir,
        }
    }

    /// A started emulator with joinkeeper's documents created, and its set-up clients: where
    /// every test of the functions begins.
    pub async fn with_documents() -> (Emulator, AwsClients) {
        let emulator = Emulator::start();
        let clients = emulator.clients().await;
        create_documents(&clients).await;
        (emulator, clients)
    }

    /// SDK clients pointed at this emulator, with fast retries, for setting up the world (no
    /// app id: the IAM check leaves these calls out).
    pub async fn clients(&self) -> AwsClients {
        self.clients_of(None).await
    }

    /// SDK clients that call as `function` (`app/<function>` in the User-Agent), so the
    /// emulator's call record attributes them to that function's role.
    pub async fn function_clients(&self, function: &str) -> AwsClients {
        self.clients_of(Some(function)).await
    }

    async fn clients_of(&self, app: Option<&str>) -> AwsClients {
        AwsClients::from_conf(&self.sdk_config(app).await)
    }

    /// The SDK configuration of [`Emulator::function_clients`], for code that takes an
    /// `SdkConfig` (the CLI).
    pub async fn sdk_config(&self, app: Option<&str>) -> aws_config::SdkConfig {
        sdk_config_for(&self.endpoint, app).await
    }
}

/// An SDK configuration for `endpoint`: the test region, dummy credentials, fast retries, and
/// `app` as the app id (the principal of its calls).
pub async fn sdk_config_for(endpoint: &str, app: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(joinkeeper::aws::https_client())
        .timeout_config(joinkeeper::aws::call_timeouts());
    if let Some(app) = app {
        loader = loader.app_name(aws_config::AppName::new(app.to_owned()).expect("app name"));
    }
    loader
        .region(aws_config::Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_ssm::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(Duration::from_millis(10)),
        )
        .load()
        .await
}

impl Emulator {
    /// The emulator's state folder (node and cluster folders of the stand-ins).
    pub fn state_dir(&self) -> &std::path::Path {
        &self.state_dir
    }

    /// GET a path of the emulator's control API, as JSON.
    pub fn control(&self, path: &str) -> Value {
        self.http.get_json(path)
    }

    /// Commands the emulator received, optionally only those of one document.
    pub fn commands(&self, document: Option<&str>) -> Vec<Value> {
        let all = self.control("/_joinkeeper/commands");
        let list = all.get("commands").cloned().unwrap_or(all);
        list.as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| document.is_none_or(|d| c["document"] == d))
            .collect()
    }

    /// Creates the IAM instance profile `name` (with a role of the same name in it), as a
    /// deployer with `iam:CreateInstanceProfile` does; an existing one is left as it is. Returns
    /// its ARN. A raw IAM Query request: the tests build no IAM client.
    pub fn create_instance_profile(&self, name: &str) -> String {
        let iam = |action: &str, params: &str| {
            self.http.request_with(
                "POST",
                "/",
                "Content-Type: application/x-www-form-urlencoded\r\nAuthorization: AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0\r\n",
                &format!("Action={action}&Version=2010-05-08&{params}"),
            )
        };
        let role_policy = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22ec2.amazonaws.com%22%7D%2C%22Action%22%3A%22sts%3AAssumeRole%22%7D%5D%7D";
        let created = iam(
            "CreateInstanceProfile",
            &format!("InstanceProfileName={name}"),
        );
        if !created.contains("EntityAlreadyExists") {
            iam(
                "CreateRole",
                &format!("RoleName={name}&AssumeRolePolicyDocument={role_policy}"),
            );
            iam(
                "AddRoleToInstanceProfile",
                &format!("InstanceProfileName={name}&RoleName={name}"),
            );
        }
        let got = iam("GetInstanceProfile", &format!("InstanceProfileName={name}"));
        let arn = got
            .split("<Arn>")
            .filter_map(|s| s.split_once("</Arn>").map(|(a, _)| a))
            .find(|a| a.contains(":instance-profile/"))
            .unwrap_or_else(|| panic!("instance profile {name} not created: {got}"));
        arn.to_owned()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state_dir.join("emulator.log")).unwrap_or_default()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// Fast configuration for tests: short polls and deadlines.
pub fn test_config() -> Config {
    Config::from_lookup(|name| match name {
        "JOINKEEPER_COMMAND_POLL_MILLIS" => Some("100".into()),
        "JOINKEEPER_COMMAND_DEADLINE_SECONDS" => Some("30".into()),
        _ => None,
    })
    .expect("test config")
}

/// Registers joinkeeper's SSM documents from node-scripts/documents.
pub async fn create_documents(clients: &AwsClients) {
    let dir = repo_root().join("node-scripts/documents");
    for entry in std::fs::read_dir(&dir).expect("documents folder") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("name")
            .to_owned();
        let content = std::fs::read_to_string(&path).expect("document");
        clients
            .ssm
            .create_document()
            .name(name)
            .content(content)
            .document_type(DocumentType::Command)
            .document_format(DocumentFormat::Json)
            .send()
            .await
            .expect("create document");
    }
}

/// Launches an instance tagged for `cluster` with `role`, plus extra tags (`emulator:*`), with no
/// instance profile: a worker, or (role `control-plane`) an impostor.
pub async fn launch_instance(
    clients: &AwsClients,
    cluster: &str,
    role: &str,
    extra: &[(&str, &str)],
) -> String {
    launch_with_profile(clients, cluster, role, extra, None).await
}

/// Launches a control plane of `cluster` as the cluster stack does: tagged, and with the
/// cluster's control-plane instance profile (created first when missing).
pub async fn launch_control_plane(
    emulator: &Emulator,
    clients: &AwsClients,
    cluster: &str,
    extra: &[(&str, &str)],
) -> String {
    let cluster_name = joinkeeper::names::ClusterName::parse(cluster).expect("cluster name");
    let profile = joinkeeper::identity::default_profile_name(&cluster_name);
    emulator.create_instance_profile(&profile);
    launch_with_profile(clients, cluster, "control-plane", extra, Some(&profile)).await
}

/// [`launch_instance`] with the instance profile named `profile` (which must exist).
pub async fn launch_with_profile(
    clients: &AwsClients,
    cluster: &str,
    role: &str,
    extra: &[(&str, &str)],
    profile: Option<&str>,
) -> String {
    let mut tags = TagSpecification::builder()
        .resource_type(ResourceType::Instance)
        .tags(
            Tag::builder()
                .key("joinkeeper:cluster")
                .value(cluster)
                .build(),
        )
        .tags(Tag::builder().key("joinkeeper:role").value(role).build());
    for (k, v) in extra {
        tags = tags.tags(Tag::builder().key(*k).value(*v).build());
    }
    let out = clients
        .ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .min_count(1)
        .max_count(1)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Medium)
        .tag_specifications(tags.build())
        .set_iam_instance_profile(profile.map(|name| {
            aws_sdk_ec2::types::IamInstanceProfileSpecification::builder()
                .name(name)
                .build()
        }))
        .send()
        .await
        .expect("run instance");
    out.instances()[0].instance_id().expect("id").to_owned()
}

/// A valid record JSON created `age` ago with a 24 h TTL, holding [`PLANTED_SECRET`].
pub fn record_json(cluster: &str, token_id: &str, age: Duration) -> String {
    let created = time::OffsetDateTime::now_utc() - age;
    let expires = created + Duration::from_secs(86_400);
    serde_json::json!({
        "version": 1, "cluster": cluster, "source": "kubeadm", "endpoint": "10.0.0.10:6443",
        "token_id": token_id, "token_secret": PLANTED_SECRET,
        "ca_cert_hash": format!("sha256:{}", "ab".repeat(32)),
        "created_at": joinkeeper::timefmt::rfc3339(created), "expires_at": joinkeeper::timefmt::rfc3339(expires),
    })
    .to_string()
}

/// The tag that starts an instance with its SSM agent offline (`launch_instance`'s `extra`).
pub const AGENT_OFFLINE: (&str, &str) = ("emulator:agent", "offline");

/// Writes a valid record of token `token_id`, created `age_seconds` ago ([`record_json`]), as
/// the record of `cluster`.
pub async fn put_aged_record(
    clients: &AwsClients,
    cluster: &str,
    token_id: &str,
    age_seconds: u64,
) {
    let value = record_json(cluster, token_id, Duration::from_secs(age_seconds));
    put_record(clients, cluster, &value).await;
}

/// Sets the cluster's join mode (`<prefix>/<cluster>/join-mode`), as the cluster stack does.
pub async fn put_join_mode(ssm: &aws_sdk_ssm::Client, cluster: &str, mode: &str) {
    ssm.put_parameter()
        .name(format!("/joinkeeper/{cluster}/join-mode"))
        .value(mode)
        .r#type(ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .expect("join mode");
}

/// Writes the record and, as the control-plane scripts do, its meta beside it (when the value is
/// a valid record; a corrupt value gets no meta).
pub async fn put_record(clients: &AwsClients, cluster: &str, value: &str) {
    let out = clients
        .ssm
        .put_parameter()
        .name(format!("/joinkeeper/{cluster}/join-record"))
        .value(value)
        .r#type(ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .expect("put record");
    if let Ok(record) = joinkeeper::record::JoinRecord::from_json(value) {
        let meta = joinkeeper::meta::RecordMeta::of_record(&record, out.version());
        clients
            .ssm
            .put_parameter()
            .name(format!("/joinkeeper/{cluster}/join-record-meta"))
            .value(meta.to_json())
            .r#type(ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .expect("put meta");
    }
}

/// The stored record's raw value and version.
pub async fn get_record(clients: &AwsClients, cluster: &str) -> Option<(String, i64)> {
    joinkeeper::aws::parameters::ParameterStore::new(clients.ssm.clone())
        .get(&format!("/joinkeeper/{cluster}/join-record"), true)
        .await
        .expect("get record")
}

/// Captures every log line the code under test writes (JSON, like in Lambda), so a test can
/// assert what was logged and that no secret was.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Installs the capture for the current thread (use a current-thread runtime).
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().map(|b| b.clone()).unwrap_or_default()).into_owned()
    }

    /// Parsed JSON log lines.
    pub fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub mod cli;
pub mod delivery;
pub mod event_source;
pub mod workers;

/// A minimal HTTP/1.1 client for the emulator's control API (loopback only, JSON bodies).
pub mod reqwest_lite {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    pub struct Http {
        host_port: String,
    }

    impl Http {
        pub fn new(endpoint: &str) -> Http {
            Http {
                host_port: endpoint
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_owned(),
            }
        }

        pub fn request(&self, method: &str, path: &str, body: &str) -> String {
            self.request_with(method, path, "Content-Type: application/json\r\n", body)
        }

        /// A request with extra header lines (each ending in CRLF).
        pub fn request_with(&self, method: &str, path: &str, headers: &str, body: &str) -> String {
            let mut stream = TcpStream::connect(&self.host_port).expect("connect to the emulator");
            let req = format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                self.host_port,
                body.len()
            );
            stream.write_all(req.as_bytes()).expect("write");
            let mut response = String::new();
            stream.read_to_string(&mut response).expect("read");
            let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
            if head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked")
            {
                return dechunk(body);
            }
            body.to_owned()
        }

        pub fn get_json(&self, path: &str) -> serde_json::Value {
            let body = self.request("GET", path, "");
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"))
        }
    }

    fn dechunk(mut body: &str) -> String {
        let mut out = String::new();
        while let Some((size, rest)) = body.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || rest.len() < n {
                break;
            }
            out.push_str(&rest[..n]);
            body = rest[n..].trim_start_matches("\r\n");
        }
        out
    }
}

/// A worker Auto Scaling group for `cluster` with launch and terminate hooks, whose instances
/// run the real `joinkeeper-join` from user data (the emulator plays cloud-init).
pub async fn create_worker_group(
    clients: &AwsClients,
    cluster: &str,
    group: &str,
    heartbeat_seconds: i32,
    extra_tags: &[(&str, &str)],
) {
    create_worker_group_joining(
        clients,
        cluster,
        group,
        heartbeat_seconds,
        extra_tags,
        "shared",
    )
    .await
}

/// [`create_worker_group`] whose workers join in `join_mode` (`shared` or `per-instance`).
pub async fn create_worker_group_joining(
    clients: &AwsClients,
    cluster: &str,
    group: &str,
    heartbeat_seconds: i32,
    extra_tags: &[(&str, &str)],
    join_mode: &str,
) {
    use aws_sdk_autoscaling::types::{LaunchTemplateSpecification, Tag as AsgTag};
    use aws_sdk_ec2::types::RequestLaunchTemplateData;
    let user_data = format!("#!/bin/bash\n/opt/joinkeeper/bin/joinkeeper-join --cluster {cluster} --prefix /joinkeeper --deadline-seconds 60 --join-mode {join_mode}\n");
    clients
        .ec2
        .create_launch_template()
        .launch_template_name(format!("{group}-lt"))
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .image_id("ami-12c6146b")
                .instance_type(aws_sdk_ec2::types::InstanceType::T3Medium)
                .user_data(aws_smithy_types::base64::encode(user_data.as_bytes()))
                .build(),
        )
        .send()
        .await
        .expect("launch template");
    let tag = |k: &str, v: &str| {
        AsgTag::builder()
            .key(k)
            .value(v)
            .propagate_at_launch(true)
            .resource_id(group)
            .resource_type("auto-scaling-group")
            .build()
    };
    let mut create = clients
        .autoscaling
        .create_auto_scaling_group()
        .auto_scaling_group_name(group)
        .launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_name(format!("{group}-lt"))
                .version("$Latest")
                .build(),
        )
        .min_size(0)
        .max_size(100)
        .desired_capacity(0)
        .availability_zones("us-east-1a")
        .tags(tag("joinkeeper:cluster", cluster))
        .tags(tag("joinkeeper:role", "worker"));
    for (k, v) in extra_tags {
        create = create.tags(tag(k, v));
    }
    create.send().await.expect("group");
    for (name, transition) in [
        ("joinkeeper-launch", "autoscaling:EC2_INSTANCE_LAUNCHING"),
        (
            "joinkeeper-terminate",
            "autoscaling:EC2_INSTANCE_TERMINATING",
        ),
    ] {
        clients
            .autoscaling
            .put_lifecycle_hook()
            .auto_scaling_group_name(group)
            .lifecycle_hook_name(name)
            .lifecycle_transition(transition)
            .heartbeat_timeout(heartbeat_seconds)
            .default_result("ABANDON")
            .send()
            .await
            .expect("hook");
    }
}

/// Adds or replaces a propagated tag on a group (affects instances launched afterwards).
pub async fn tag_group(clients: &AwsClients, group: &str, key: &str, value: &str) {
    use aws_sdk_autoscaling::types::Tag as AsgTag;
    clients
        .autoscaling
        .create_or_update_tags()
        .tags(
            AsgTag::builder()
                .key(key)
                .value(value)
                .propagate_at_launch(true)
                .resource_id(group)
                .resource_type("auto-scaling-group")
                .build(),
        )
        .send()
        .await
        .expect("tag group");
}

pub async fn set_capacity(clients: &AwsClients, group: &str, desired: i32) {
    clients
        .autoscaling
        .set_desired_capacity()
        .auto_scaling_group_name(group)
        .desired_capacity(desired)
        .send()
        .await
        .expect("capacity");
}

/// The group's instances and their lifecycle states.
pub async fn group_states(clients: &AwsClients, group: &str) -> Vec<(String, String)> {
    let out = clients
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(group)
        .send()
        .await
        .expect("describe group");
    out.auto_scaling_groups()
        .first()
        .map(|g| {
            g.instances()
                .iter()
                .map(|i| {
                    (
                        i.instance_id().unwrap_or_default().to_owned(),
                        i.lifecycle_state()
                            .map(|s| s.as_str().to_owned())
                            .unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Emulator {
    /// Lifecycle events the emulator emitted since the last call (drained).
    pub fn take_events(&self) -> Vec<Value> {
        let v = self.control("/_joinkeeper/events");
        v.get("events")
            .cloned()
            .unwrap_or(v)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Every CompleteLifecycleAction / heartbeat the emulator recorded.
    pub fn lifecycle_log(&self) -> Vec<Value> {
        let v = self.control("/_joinkeeper/lifecycle-log");
        v.get("actions")
            .or_else(|| v.get("log"))
            .cloned()
            .unwrap_or(v)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The stand-in control plane's state for a cluster.
    pub fn kube_state(&self, cluster: &str) -> Value {
        let text = std::fs::read_to_string(
            self.state_dir
                .join("clusters")
                .join(cluster)
                .join("state.json"),
        )
        .unwrap_or_default();
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

/// Waits until `check` holds, polling every 200 ms, up to `limit`.
pub async fn eventually<F: FnMut() -> Fut, Fut: std::future::Future<Output = bool>>(
    limit: Duration,
    mut check: F,
) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// Test configuration for the hooks: a short join deadline and quick polls.
pub fn hook_config(join_deadline: u64) -> Config {
    let deadline = join_deadline.to_string();
    Config::from_lookup(move |name| match name {
        "JOINKEEPER_COMMAND_POLL_MILLIS" => Some("100".into()),
        "JOINKEEPER_COMMAND_DEADLINE_SECONDS" => Some("30".into()),
        "JOINKEEPER_JOIN_DEADLINE_SECONDS" => Some(deadline.clone()),
        "JOINKEEPER_NODE_POLL_SECONDS" => Some("1".into()),
        "JOINKEEPER_DRAIN_TIMEOUT_SECONDS" => Some("60".into()),
        _ => None,
    })
    .expect("hook config")
}

/// Counts every HTTP request the SDK clients send, by `service:Operation` (retries included).
#[derive(Clone, Debug, Default)]
pub struct CallCounter(Arc<Mutex<std::collections::BTreeMap<String, usize>>>);

impl CallCounter {
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, usize> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn total(&self) -> usize {
        self.snapshot().values().sum()
    }

    pub fn reset(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.clear();
        }
    }
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_transmit(
        &self,
        _ctx: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _rc: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if let Some(meta) = cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>() {
            if let Ok(mut m) = self.0.lock() {
                *m.entry(format!("{}:{}", meta.service(), meta.name()))
                    .or_default() += 1;
            }
        }
        Ok(())
    }
}

/// `base`'s three clients rebuilt with `$configure` applied to each one's config builder (the three
/// SDK builder types share these method names, but no trait).
macro_rules! rebuild_clients {
    ($base:expr, |$config:ident| $configure:expr) => {
        AwsClients {
            ssm: aws_sdk_ssm::Client::from_conf({
                let $config = $base.ssm.config().to_builder();
                $configure.build()
            }),
            ec2: aws_sdk_ec2::Client::from_conf({
                let $config = $base.ec2.config().to_builder();
                $configure.build()
            }),
            autoscaling: aws_sdk_autoscaling::Client::from_conf({
                let $config = $base.autoscaling.config().to_builder();
                $configure.build()
            }),
        }
    };
}

impl Emulator {
    /// SDK clients pointed at this emulator that count every request into `counter`.
    pub async fn counted_clients(&self, counter: &CallCounter) -> AwsClients {
        self.counted(counter, self.clients().await)
    }

    /// Like [`Emulator::counted_clients`], calling as `function`.
    pub async fn counted_clients_as(&self, counter: &CallCounter, function: &str) -> AwsClients {
        self.counted(counter, self.function_clients(function).await)
    }

    fn counted(&self, counter: &CallCounter, base: AwsClients) -> AwsClients {
        rebuild_clients!(base, |config| config.interceptor(counter.clone()))
    }
}

/// Time spent waiting for AWS answers by one set of clients: the union of every attempt's
/// interval (overlapping calls counted once), so it never exceeds the time the clients were used.
#[derive(Clone, Debug, Default)]
pub struct CallTimer(Arc<Mutex<Vec<(i128, i128)>>>);

static TIMER_EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

fn since_epoch_nanos() -> i128 {
    TIMER_EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as i128
}

/// When the current attempt started (kept in the attempt's config bag).
#[derive(Clone, Debug)]
struct AttemptStart(i128);

impl aws_smithy_types::config_bag::Storable for AttemptStart {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

/// The total length of the union of `intervals` (start, end).
pub fn union_length(mut intervals: Vec<(i128, i128)>) -> i128 {
    intervals.sort_unstable();
    let (mut total, mut reach) = (0, i128::MIN);
    for (start, end) in intervals {
        let start = start.max(reach);
        if end > start {
            total += end - start;
            reach = end;
        }
    }
    total
}

impl CallTimer {
    pub fn waited(&self) -> Duration {
        let intervals = self.0.lock().map(|g| g.clone()).unwrap_or_default();
        Duration::from_nanos(union_length(intervals).max(0) as u64)
    }
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for CallTimer {
    fn name(&self) -> &'static str {
        "CallTimer"
    }

    fn read_before_attempt(
        &self,
        _ctx: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _rc: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        cfg.interceptor_state()
            .store_put(AttemptStart(since_epoch_nanos()));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        _ctx: &aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef<'_>,
        _rc: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let end = since_epoch_nanos();
        if let (Some(AttemptStart(start)), Ok(mut g)) = (cfg.load::<AttemptStart>(), self.0.lock())
        {
            g.push((*start, end));
        }
        Ok(())
    }
}

/// Clients of one simulated Lambda container: the same endpoint, their own connection pool,
/// counted into `counter` and timed by `timer`.
pub fn container_clients(
    base: &AwsClients,
    counter: &CallCounter,
    timer: &CallTimer,
) -> AwsClients {
    // The functions' own retry policy (lambda_env): the standard one, its default attempts.
    let retry = aws_config::retry::RetryConfig::standard()
        .with_max_attempts(joinkeeper::aws::lambda_env::DEFAULT_MAX_ATTEMPTS);
    rebuild_clients!(base, |config| config
        .retry_config(retry.clone())
        .interceptor(counter.clone())
        .interceptor(timer.clone()))
}

impl Emulator {
    /// Registers Nodes (name, providerID; `""` for none) as Ready in the stand-in control plane
    /// of `cluster`, in one step, as kubelets would.
    pub fn add_ready_nodes(&self, cluster: &str, nodes: &[(String, String)]) {
        self.standin_python(
            cluster,
            &format!("with s.locked_state() as st:\n    for name, provider in {nodes:?}:\n        s.add_node(st, name, provider_id=provider)\n"),
        );
    }

    /// Kubelets' pending certificate requests in the stand-in control plane of `cluster`, one per
    /// `(node name, token id)`, made with per-instance tokens (no auto-approval).
    pub fn add_pending_csrs(&self, cluster: &str, requests: &[(String, String)]) {
        self.standin_python(
            cluster,
            &format!("import standin_csr\nwith s.locked_state() as st:\n    for name, token in {requests:?}:\n        standin_csr.add_bootstrap_csr(st, token, name, ['system:bootstrappers:joinkeeper:per-instance'])\n"),
        );
    }

    /// Runs `script` (Python, the stand-ins' module imported as `s`) against the stand-in control
    /// plane of `cluster`; the script on stdin: thousands of Nodes do not fit in an argument list.
    fn standin_python(&self, cluster: &str, script: &str) {
        let script = format!(
            "import sys; sys.path.insert(0, {standins:?})\nimport joinkeeper_standin as s\n{script}",
            standins = repo_root().join("node-scripts/standins").display().to_string(),
        );
        let mut child = std::process::Command::new(repo_root().join(".venv/bin/python"))
            .env(
                "JOINKEEPER_KUBE_STATE",
                self.state_dir.join("clusters").join(cluster),
            )
            .arg("-")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("python");
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            stdin.write_all(script.as_bytes()).expect("script");
        }
        let status = child.wait().expect("python");
        assert!(
            status.success(),
            "the stand-in control plane refused the change"
        );
    }

    /// Registers Nodes in the stand-in control plane of `cluster`, each a JSON object with
    /// `name` and optionally `provider_id`, `internal_ip`, `labels` (object), `ready`
    /// (`True`/`False`/`Unknown`) and `age_seconds`.
    pub fn add_nodes(&self, cluster: &str, nodes: &Value) {
        self.standin_python(
            cluster,
            &format!("import json\nwith s.locked_state() as st:\n    for n in json.loads({nodes:?}):\n        s.add_node(st, n['name'], provider_id=n.get('provider_id', ''), ready=n.get('ready', 'True'), internal_ip=n.get('internal_ip', ''), labels=n.get('labels'))\n        st['nodes'][n['name']]['created'] = s.now() - n.get('age_seconds', 0)\n", nodes = nodes.to_string()),
        );
    }

    /// Removes a Node from the stand-in control plane of `cluster`, as `kubectl delete node` would.
    pub fn remove_node(&self, cluster: &str, name: &str) {
        self.add_nodes_script(cluster, &format!("st['nodes'].pop({name:?}, None)"));
    }

    fn add_nodes_script(&self, cluster: &str, body: &str) {
        self.standin_python(
            cluster,
            &format!("with s.locked_state() as st:\n    {body}\n"),
        );
    }

    /// Every instance of every group with its lifecycle state, warm pools included.
    pub fn instance_states(&self) -> std::collections::BTreeMap<String, String> {
        let v = self.control("/_joinkeeper/instances");
        v.get("instances")
            .cloned()
            .unwrap_or(v)
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|i| {
                Some((
                    i["instance_id"].as_str()?.to_owned(),
                    i["lifecycle_state"].as_str()?.to_owned(),
                ))
            })
            .collect()
    }
}

impl Emulator {
    /// Sends `body` with `method` (POST, DELETE) to a path of the control API; the answer as
    /// JSON, or `Null` when it is not JSON.
    pub fn control_send(&self, method: &str, path: &str, body: &Value) -> Value {
        let text = self.http.request(method, path, &body.to_string());
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// GET a path of the control API as JSON, or `Null` when the answer is not JSON (an endpoint
    /// this emulator does not have yet).
    pub fn control_opt(&self, path: &str) -> Value {
        serde_json::from_str(&self.http.request("GET", path, "")).unwrap_or(Value::Null)
    }
}

/// `base`'s clients as a function's in Lambda (the SDK's standard retry, 3 attempts), with
/// `interceptor` added to each.
pub fn intercepted_clients<I>(base: &AwsClients, interceptor: I) -> AwsClients
where
    I: aws_smithy_runtime_api::client::interceptors::Intercept + Clone + 'static,
{
    let retry = aws_config::retry::RetryConfig::standard().with_max_attempts(3);
    rebuild_clients!(base, |config| config
        .retry_config(retry.clone())
        .interceptor(interceptor.clone()))
}

#[cfg(test)]
mod union_tests {
    #[test]
    fn overlapping_calls_count_once() {
        assert_eq!(
            super::union_length(vec![(0, 10), (5, 15), (20, 30), (22, 25)]),
            25
        );
        assert_eq!(super::union_length(vec![]), 0);
    }
}
