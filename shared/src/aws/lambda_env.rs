//! The functions' SDK configuration, from the Lambda environment alone.
//!
//! `aws_config::defaults()` resolves credentials and region through a chain built for every place
//! an SDK runs: profile files, SSO, web identity and assumed roles through STS, ECS, IMDS. Lambda
//! hands a function its execution role's credentials and its region as environment variables,
//! always, so the functions read those and nothing else. The chain's other links were a fifth of
//! each function's binary (an STS client among them) for code Lambda never reaches. The
//! command-line tool, run by operators with profiles and SSO, keeps the full chain (`aws-config`,
//! a dependency of the CLI only: the functions' build compiles neither it nor the STS client).

use aws_credential_types::provider::{error::CredentialsError, future, ProvideCredentials};
use aws_credential_types::Credentials;
use aws_sdk_ssm::config::{BehaviorVersion, SharedCredentialsProvider};
use aws_smithy_types::retry::RetryConfig;
use aws_types::app_name::AppName;
use aws_types::region::Region;
use aws_types::SdkConfig;

use super::trust::TrustRoots;

/// What the functions take from their environment to reach AWS. Lambda sets `AWS_REGION` and the
/// role's `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`; `AWS_ENDPOINT_URL`
/// and `AWS_MAX_ATTEMPTS` are the SDK's usual optional settings (a local emulator, a retry budget).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaEnv {
    pub region: String,
    pub endpoint_url: Option<String>,
    pub max_attempts: u32,
    /// The certificate authorities TLS to AWS trusts ([`super::trust`]).
    pub trust_roots: TrustRoots,
}

/// Why the functions cannot reach AWS with this environment. Says which variable, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LambdaEnvError {
    #[error("AWS_REGION is not set (Lambda always sets it; set it, or AWS_DEFAULT_REGION, to run a function elsewhere)")]
    MissingRegion,
    #[error("{0} is not set: the functions take their execution role's credentials from the Lambda environment")]
    MissingCredentials(&'static str),
    #[error("AWS_MAX_ATTEMPTS must be a whole number from 1 to {MAX_ATTEMPTS_LIMIT}, got {0:?}")]
    InvalidMaxAttempts(String),
}

/// The standard retry policy's attempts when `AWS_MAX_ATTEMPTS` is unset, as in every AWS SDK.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// More attempts than this would outlast an invocation's deadline with the SDK's backoff.
pub const MAX_ATTEMPTS_LIMIT: u32 = 10;

impl LambdaEnv {
    /// Reads the variables through `var` (the process environment in [`LambdaEnv::from_process`]).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, LambdaEnvError> {
        let set = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let region = set("AWS_REGION")
            .or_else(|| set("AWS_DEFAULT_REGION"))
            .ok_or(LambdaEnvError::MissingRegion)?;
        // The same read as at signing time, so start-up refuses exactly what signing would.
        LambdaCredentials::read(&var).map_err(LambdaEnvError::MissingCredentials)?;
        let ignore_endpoints = set("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let endpoint_url = set("AWS_ENDPOINT_URL").filter(|_| !ignore_endpoints);
        let max_attempts = match set("AWS_MAX_ATTEMPTS") {
            None => DEFAULT_MAX_ATTEMPTS,
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_ATTEMPTS_LIMIT).contains(n))
                .ok_or(LambdaEnvError::InvalidMaxAttempts(raw))?,
        };
        let trust_roots = super::trust::choose(&region, endpoint_url.as_deref(), &var);
        Ok(LambdaEnv {
            region,
            endpoint_url,
            max_attempts,
            trust_roots,
        })
    }

    pub fn from_process() -> Result<Self, LambdaEnvError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// The SDK configuration: these settings, the one HTTPS client, bounded attempts, the standard
    /// retry policy, and `app/<app>` in every request's User-Agent. The credentials are read from
    /// the environment when a request is signed, session token included.
    pub fn sdk_config(&self, app: &str) -> SdkConfig {
        let mut config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .credentials_provider(SharedCredentialsProvider::new(LambdaCredentials))
            .http_client(super::trust::https_client(self.trust_roots))
            .timeout_config(super::call_timeouts())
            .retry_config(RetryConfig::standard().with_max_attempts(self.max_attempts));
        if let Some(url) = &self.endpoint_url {
            config = config.endpoint_url(url.clone());
        }
        if let Ok(name) = AppName::new(app.to_owned()) {
            config = config.app_name(name);
        }
        config.build()
    }
}

/// The execution role's credentials as Lambda sets them, read when a request is signed (the
/// identity cache keeps them between requests).
#[derive(Debug, Clone, Copy)]
pub struct LambdaCredentials;

impl LambdaCredentials {
    /// The credentials, or the first required variable that is unset or blank.
    fn read(var: impl Fn(&str) -> Option<String>) -> Result<Credentials, &'static str> {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let key = set("AWS_ACCESS_KEY_ID").ok_or("AWS_ACCESS_KEY_ID")?;
        let secret = set("AWS_SECRET_ACCESS_KEY").ok_or("AWS_SECRET_ACCESS_KEY")?;
        Ok(Credentials::new(
            key,
            secret,
            set("AWS_SESSION_TOKEN"),
            None,
            "LambdaEnvironment",
        ))
    }
}

impl ProvideCredentials for LambdaCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(Self::read(|name| std::env::var(name).ok()).map_err(
            |name| {
                CredentialsError::not_loaded(format!(
                    "{name} is not set in the function's environment"
                ))
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const LAMBDA: &[(&str, &str)] = &[
        ("AWS_REGION", "eu-west-1"),
        ("AWS_DEFAULT_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret-value-never-shown"),
        ("AWS_SESSION_TOKEN", "token"),
    ];

    #[test]
    fn lambdas_own_variables_are_enough() {
        let got = LambdaEnv::from_vars(env(LAMBDA)).expect("valid");
        assert_eq!(
            got,
            LambdaEnv {
                region: "eu-west-1".into(),
                endpoint_url: None,
                max_attempts: 3,
                trust_roots: TrustRoots::AmazonTrustServices
            }
        );
    }

    #[test]
    fn a_missing_region_or_credential_is_named_and_no_value_is_shown() {
        let without = |skip: &str| {
            LAMBDA
                .iter()
                .copied()
                .filter(|(k, _)| *k != skip)
                .collect::<Vec<_>>()
        };
        let no_region: Vec<_> = without("AWS_REGION")
            .into_iter()
            .filter(|(k, _)| *k != "AWS_DEFAULT_REGION")
            .collect();
        assert_eq!(
            LambdaEnv::from_vars(env(&no_region)),
            Err(LambdaEnvError::MissingRegion)
        );
        let err =
            LambdaEnv::from_vars(env(&without("AWS_SECRET_ACCESS_KEY"))).expect_err("no secret");
        assert_eq!(
            err,
            LambdaEnvError::MissingCredentials("AWS_SECRET_ACCESS_KEY")
        );
        assert!(!err.to_string().contains("ASIAEXAMPLE"));
        let blank_key: Vec<_> = LAMBDA
            .iter()
            .map(|&(k, v)| {
                if k == "AWS_ACCESS_KEY_ID" {
                    (k, " ")
                } else {
                    (k, v)
                }
            })
            .collect();
        assert_eq!(
            LambdaEnv::from_vars(env(&blank_key)),
            Err(LambdaEnvError::MissingCredentials("AWS_ACCESS_KEY_ID"))
        );
    }

    #[test]
    fn the_default_region_stands_in_for_a_missing_region() {
        let vars: Vec<_> = LAMBDA
            .iter()
            .copied()
            .filter(|(k, _)| *k != "AWS_REGION")
            .collect();
        assert_eq!(
            LambdaEnv::from_vars(env(&vars)).expect("valid").region,
            "eu-west-1"
        );
    }

    #[test]
    fn endpoint_and_attempts_are_the_sdks_usual_settings() {
        let mut vars = LAMBDA.to_vec();
        vars.extend([
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_MAX_ATTEMPTS", "5"),
        ]);
        let got = LambdaEnv::from_vars(env(&vars)).expect("valid");
        assert_eq!(got.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(got.max_attempts, 5);
        vars.push(("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "TRUE"));
        assert_eq!(
            LambdaEnv::from_vars(env(&vars))
                .expect("valid")
                .endpoint_url,
            None
        );
    }

    #[test]
    fn unusable_attempts_are_refused_with_what_was_given() {
        for bad in ["0", "11", "-1", "three", "4294967296"] {
            let mut vars = LAMBDA.to_vec();
            vars.push(("AWS_MAX_ATTEMPTS", bad));
            assert_eq!(
                LambdaEnv::from_vars(env(&vars)),
                Err(LambdaEnvError::InvalidMaxAttempts(bad.into()))
            );
        }
    }

    #[tokio::test]
    async fn the_sdk_configuration_carries_every_setting() {
        let mut vars = LAMBDA.to_vec();
        vars.push(("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"));
        let config = LambdaEnv::from_vars(env(&vars))
            .expect("valid")
            .sdk_config("launch-hook");
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:5000"));
        assert_eq!(config.app_name().map(|a| a.as_ref()), Some("launch-hook"));
        assert_eq!(config.retry_config().map(|r| r.max_attempts()), Some(3));
        let timeouts = config.timeout_config().expect("timeouts set");
        assert_eq!(
            timeouts.operation_attempt_timeout(),
            Some(super::super::ATTEMPT_TIMEOUT)
        );
        assert!(config.credentials_provider().is_some() && config.http_client().is_some());
    }

    #[test]
    fn the_role_credentials_are_read_with_their_session_token() {
        let creds = LambdaCredentials::read(env(LAMBDA)).expect("credentials");
        assert_eq!(creds.access_key_id(), "ASIAEXAMPLE");
        assert_eq!(creds.session_token(), Some("token"));
        let without: Vec<_> = LAMBDA
            .iter()
            .copied()
            .filter(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY")
            .collect();
        let err = LambdaCredentials::read(env(&without)).expect_err("no secret");
        assert!(
            format!("{err:?}").contains("AWS_SECRET_ACCESS_KEY"),
            "{err:?}"
        );
    }
}
