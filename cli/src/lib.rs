//! `joinkeeper`, the operator's command-line tool, built on the core crate:
//!
//! - `joinkeeper status [--cluster C] [--json]`: each cluster's join record (from its metadata,
//!   never the secret), control planes and their SSM reachability, leases, and lifecycle actions
//!   waiting for joinkeeper;
//! - `joinkeeper rotate --cluster C [--revoke-all [--cordon-leaked | --delete-leaked]]`: a new
//!   token now, through the same single-flight regeneration as the functions, and with
//!   `--revoke-all` every older joinkeeper token revoked, for a suspected leak, and the Nodes that
//!   joined with a revoked token and that no instance of the cluster stands behind reported (and
//!   cordoned or deleted on request).
//!
//! AWS access is the standard chain (environment, profile/SSO, web identity, container or
//! instance role; `AWS_ENDPOINT_URL` for the local emulator), as principal `app/joinkeeper-cli`.
//! The `JOINKEEPER_*` settings are the functions' (same defaults, same validation).

pub mod args;
pub mod planes;
pub mod rotate;
pub mod status;

use std::io::Write;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_ssm::config::ProvideCredentials;
use joinkeeper::aws::{AwsCallError, AwsClients};
use joinkeeper::metrics::Metrics;
use joinkeeper::names::ClusterName;
use joinkeeper::{Config, Context};

pub use args::{parse, Command, USAGE};

/// The principal of the tool's AWS calls (`app/joinkeeper-cli` in the User-Agent).
pub const APP_ID: &str = "joinkeeper-cli";
/// The SSM document `rotate --revoke-all` runs, and the variable that renames it.
pub const REVOKE_DOCUMENT_VARIABLE: &str = "JOINKEEPER_REVOKE_DOCUMENT";
pub const REVOKE_DOCUMENT_DEFAULT: &str = "joinkeeper-revoke-tokens";

/// Exit codes: one per cause an operator (or a script) acts on differently.
pub mod exit {
    pub const OK: i32 = 0;
    /// Anything else: a regeneration that failed on every control plane, a revocation that
    /// failed, an AWS error.
    pub const FAILED: i32 = 1;
    /// Bad arguments or an invalid `JOINKEEPER_*` setting.
    pub const USAGE: i32 = 2;
    /// No AWS credentials (or no region), or credentials AWS rejects.
    pub const NO_CREDENTIALS: i32 = 3;
    /// No cluster of that name (no tagged instance or group, no join record).
    pub const UNKNOWN_CLUSTER: i32 = 4;
    /// AWS throttled the calls even after the SDK's retries.
    pub const THROTTLED: i32 = 5;
    /// No control plane of the cluster is running with its SSM agent online.
    pub const UNREACHABLE: i32 = 6;
}

pub const HELP: &str = "joinkeeper — status and emergency rotation of joinkeeper's join records

usage: joinkeeper status [--cluster C] [--json]
       joinkeeper rotate --cluster C [--revoke-all [--cordon-leaked | --delete-leaked]] [--json]

  status       every cluster (or one): join record age and expiry, last regeneration, control
               planes and their SSM reachability, leases, lifecycle actions waiting and their age
  rotate       regenerate the join record now, even when it is fresh, through the same
               single-flight path as the functions; refused when no control plane is reachable
  --revoke-all with rotate: then delete every older joinkeeper token of the cluster (leak), and
               report the Nodes that joined with a revoked token (kubelet CSRs: about the last
               hour) and that no instance of the cluster stands behind
  --cordon-leaked, --delete-leaked
               with --revoke-all: cordon (or cordon and delete) those Nodes; default: report
  --json       one JSON document on stdout instead of text

AWS: the standard credential chain and region (AWS_PROFILE, AWS_REGION, ...); AWS_ENDPOINT_URL
points it elsewhere (the local emulator). Settings: the functions' JOINKEEPER_* variables, and
JOINKEEPER_REVOKE_DOCUMENT (default joinkeeper-revoke-tokens).

exit codes: 0 ok; 1 failed; 2 usage or settings; 3 no AWS credentials or region; 4 unknown
cluster; 5 throttled by AWS; 6 no reachable control plane
";

/// Why a command failed; each maps to one exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("no usable AWS credentials: {0}")]
    NoCredentials(String),
    #[error("{0}")]
    UnknownCluster(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Aws(AwsCallError),
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => exit::USAGE,
            CliError::NoCredentials(_) => exit::NO_CREDENTIALS,
            CliError::UnknownCluster(_) => exit::UNKNOWN_CLUSTER,
            CliError::Unreachable(_) => exit::UNREACHABLE,
            CliError::Aws(e) if e.is_throttling() => exit::THROTTLED,
            CliError::Aws(_) | CliError::Failed(_) => exit::FAILED,
        }
    }
}

/// Credentials AWS refused (expired, unknown, badly signed): the same fix as having none.
const REJECTED_CREDENTIALS: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "AuthFailure",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
];

impl From<AwsCallError> for CliError {
    fn from(e: AwsCallError) -> Self {
        if e.is_throttling() {
            return CliError::Aws(AwsCallError {
                message: format!(
                    "{} — AWS throttled the call even after retries; wait a minute and run again (or raise AWS_MAX_ATTEMPTS)",
                    e.message
                ),
                ..e
            });
        }
        match e.code.as_deref() {
            Some(code) if REJECTED_CREDENTIALS.contains(&code) => {
                CliError::NoCredentials(format!("AWS rejected them on {}: {code}", e.operation))
            }
            _ => CliError::Aws(e),
        }
    }
}

/// The whole program: parses `args`, loads the AWS configuration the standard way, runs.
pub async fn main_with(
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let command = match parse(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(err, "joinkeeper: {e}\n{USAGE}");
            return exit::USAGE;
        }
    };
    match command {
        Command::Help => {
            let _ = write!(out, "{HELP}");
            exit::OK
        }
        Command::Version => {
            let _ = writeln!(out, "joinkeeper {}", env!("CARGO_PKG_VERSION"));
            exit::OK
        }
        command => {
            let sdk = load_config(APP_ID).await;
            run(&command, &sdk, env, out, err).await
        }
    }
}

/// The operator's AWS configuration through the SDK's standard chain (profiles after `aws sso
/// login`, environment keys, a role, IMDS; `AWS_REGION`; `AWS_ENDPOINT_URL`), with the same HTTP
/// client and bounded attempts as the functions, and `app/<app>` in every User-Agent.
pub async fn load_config(app: &str) -> SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(joinkeeper::aws::https_client())
        .timeout_config(joinkeeper::aws::call_timeouts());
    if let Ok(name) = aws_config::AppName::new(app.to_owned()) {
        loader = loader.app_name(name);
    }
    loader.load().await
}

/// Runs a parsed command with the given AWS configuration; prints the error and returns the
/// exit code.
pub async fn run(
    command: &Command,
    sdk: &SdkConfig,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    match execute(command, sdk, env, out).await {
        Ok(()) => exit::OK,
        Err(e) => {
            let _ = writeln!(err, "joinkeeper: {e}");
            e.exit_code()
        }
    }
}

async fn execute(
    command: &Command,
    sdk: &SdkConfig,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let config = Config::from_lookup(env).map_err(|e| CliError::Usage(e.to_string()))?;
    check_credentials(sdk).await?;
    // This process's stdout is for people and scripts; no log group reads metric lines here.
    let ctx = Context::new(config, &AwsClients::from_conf(sdk)).with_metrics(Metrics::Off);
    let write = |e: std::io::Error| CliError::Failed(format!("cannot write the output: {e}"));
    match command {
        Command::Status { cluster, json } => {
            let clusters = match cluster {
                Some(name) => vec![known_cluster(&ctx, name).await?],
                None => ctx
                    .discover_clusters()
                    .await?
                    .clusters
                    .into_iter()
                    .collect(),
            };
            let report = status::gather(&ctx, &clusters).await?;
            status::render(&report, *json, out).map_err(write)
        }
        Command::Rotate {
            cluster,
            revoke_all,
            leaked,
            json,
        } => {
            let cluster = known_cluster(&ctx, cluster).await?;
            let document = env(REVOKE_DOCUMENT_VARIABLE)
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| REVOKE_DOCUMENT_DEFAULT.to_owned());
            let revoke = revoke_all.then_some(document.as_str());
            let rotated = rotate::rotate(&ctx, &cluster, revoke, *leaked, &request_id(env)).await?;
            rotate::render(&rotated, *json, out).map_err(write)?;
            match &rotated.leak_error {
                Some(e) => Err(CliError::Failed(e.clone())),
                None => Ok(()),
            }
        }
        Command::Help | Command::Version => Ok(()),
    }
}

/// Fails early, with one clear message, when there is no region or no credentials.
pub async fn check_credentials(sdk: &SdkConfig) -> Result<(), CliError> {
    const CHAIN: &str = "joinkeeper reads them the standard way: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE (after `aws sso login`), web identity, or a container or instance role";
    if sdk.region().is_none() {
        return Err(CliError::NoCredentials(
            "no AWS region is set (AWS_REGION, or the profile's region)".into(),
        ));
    }
    let Some(provider) = sdk.credentials_provider() else {
        return Err(CliError::NoCredentials(format!(
            "no credentials provider; {CHAIN}"
        )));
    };
    match tokio::time::timeout(Duration::from_secs(30), provider.provide_credentials()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(CliError::NoCredentials(format!(
            "{}; {CHAIN}",
            error_chain(&e)
        ))),
        Err(_) => Err(CliError::NoCredentials(format!(
            "loading them took more than 30 s; {CHAIN}"
        ))),
    }
}

/// An error and its sources, one after the other (no debug dump).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text = format!("{text}: {next}");
        }
        source = s.source();
    }
    text
}

/// The named cluster, if joinkeeper knows it: some instance or Auto Scaling group is tagged for
/// it, or it has a join record.
pub async fn known_cluster(ctx: &Context, name: &str) -> Result<ClusterName, CliError> {
    let cluster = ClusterName::parse(name).map_err(|e| CliError::Usage(e.to_string()))?;
    let scan = ctx.discover_clusters().await?;
    if scan.clusters.contains(&cluster)
        || ctx
            .parameters
            .get(&ctx.config.record_parameter(&cluster), false)
            .await?
            .is_some()
    {
        return Ok(cluster);
    }
    let known: Vec<&str> = scan.clusters.iter().map(|c| c.as_str()).collect();
    Err(CliError::UnknownCluster(format!(
        "unknown cluster {cluster}: no instance or Auto Scaling group is tagged joinkeeper:cluster={cluster} and {} does not exist (known clusters: {})",
        ctx.config.record_parameter(&cluster),
        if known.is_empty() { "none".to_owned() } else { known.join(", ") }
    )))
}

/// Who holds a lease this tool takes ("held by …" answers name it).
fn request_id(env: &dyn Fn(&str) -> Option<String>) -> String {
    let user: String = env("USER")
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(32)
        .collect();
    format!("joinkeeper-cli:{user}:{}", std::process::id())
}

/// A duration for people: `45 s`, `3 min`, `1 h 50 min`, `2 d 3 h`.
pub fn human(seconds: u64) -> String {
    let (d, h, m) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60);
    match seconds {
        0..=59 => format!("{seconds} s"),
        60..=3599 => format!("{m} min"),
        3600..=86_399 if m == 0 => format!("{h} h"),
        3600..=86_399 => format!("{h} h {m} min"),
        _ if h == 0 => format!("{d} d"),
        _ => format!("{d} d {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_request_attempt_of_the_cli_is_bounded() {
        let config = load_config(APP_ID).await;
        let timeouts = config.timeout_config().expect("timeouts set");
        assert_eq!(
            timeouts.operation_attempt_timeout(),
            Some(joinkeeper::aws::ATTEMPT_TIMEOUT)
        );
        assert_eq!(
            timeouts.connect_timeout(),
            Some(joinkeeper::aws::CONNECT_TIMEOUT)
        );
        assert_eq!(config.app_name().map(|a| a.as_ref()), Some(APP_ID));
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(human(0), "0 s");
        assert_eq!(human(59), "59 s");
        assert_eq!(human(180), "3 min");
        assert_eq!(human(3600), "1 h");
        assert_eq!(human(6600), "1 h 50 min");
        assert_eq!(human(2 * 86_400 + 3 * 3600 + 5), "2 d 3 h");
    }

    #[test]
    fn errors_map_to_exit_codes() {
        let aws = |code: &str| AwsCallError {
            operation: "ssm:GetParameter",
            code: Some(code.into()),
            message: "x".into(),
        };
        assert_eq!(
            CliError::from(aws("ThrottlingException")).exit_code(),
            exit::THROTTLED
        );
        assert_eq!(
            CliError::from(aws("ExpiredTokenException")).exit_code(),
            exit::NO_CREDENTIALS
        );
        assert_eq!(
            CliError::from(aws("AccessDeniedException")).exit_code(),
            exit::FAILED
        );
        let codes = [
            exit::OK,
            exit::FAILED,
            exit::USAGE,
            exit::NO_CREDENTIALS,
            exit::UNKNOWN_CLUSTER,
            exit::THROTTLED,
            exit::UNREACHABLE,
        ];
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), codes.len(), "distinct exit codes");
    }
}
