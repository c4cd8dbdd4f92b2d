//! Small adapters over the AWS SDK clients. Each turns SDK types into the core's plain data and
//! SDK errors into one typed error per concern; decisions stay in the pure modules.

pub mod activities;
pub mod autoscaling;
pub mod exits;
pub mod fleet;
pub mod group_tags;
pub mod lambda_env;
pub mod parameters;
pub mod patience;
pub mod run_command;
pub mod trust;

use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The SDK clients, built once per process (outside the handler) and shared by invocations.
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub ssm: aws_sdk_ssm::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
}

impl AwsClients {
    /// The functions' clients: region, credentials and endpoint from the Lambda environment
    /// ([`lambda_env`]). `app` (the function's name) goes into every request's User-Agent as
    /// `app/<app>`, so CloudTrail and the local IAM check can tell which function made a call.
    pub fn for_lambda(app: &str) -> Result<Self, lambda_env::LambdaEnvError> {
        let env = lambda_env::LambdaEnv::from_process()?;
        tracing::debug!(trust_roots = ?env.trust_roots, "TLS roots chosen");
        Ok(Self::from_conf(&env.sdk_config(app)))
    }

    pub fn from_conf(config: &aws_types::SdkConfig) -> Self {
        AwsClients {
            ssm: aws_sdk_ssm::Client::new(config),
            ec2: aws_sdk_ec2::Client::new(config),
            autoscaling: aws_sdk_autoscaling::Client::new(config),
        }
    }
}

/// The HTTP client of the command-line tool and the tests: hyper 1 with rustls on ring, the
/// system's CA certificates (the functions choose theirs: [`trust`]).
/// (The SDK's `default-https-client` feature would bring aws-lc-rs, a larger library and a
/// slower build, for the same TLS 1.2/1.3 to AWS endpoints.)
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    trust::https_client(trust::TrustRoots::System(
        "the command-line tool and the tests: the operator's own store",
    ))
}

/// The SDK sets no read timeout by default: one request left unanswered (a dropped connection, a
/// stuck endpoint) would hold an invocation until Lambda kills it, with every wait after it lost.
/// Each attempt is cut instead, and the standard retry policy tries again.
pub fn call_timeouts() -> aws_smithy_types::timeout::TimeoutConfig {
    aws_smithy_types::timeout::TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .build()
}

/// How long one connection attempt may take.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(3100);
/// How long one request attempt may take, answer included. AWS answers these APIs in well under a
/// second; the margin is for a busy local emulator under a burst.
pub const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A failed AWS call, after the SDK's own retries, reduced to what an operator needs.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("AWS {operation} failed: {message}")]
pub struct AwsCallError {
    pub operation: &'static str,
    /// The service's error code (`ThrottlingException`, …) when there is one.
    pub code: Option<String>,
    pub message: String,
}

impl AwsCallError {
    pub fn new<E>(operation: &'static str, err: &E) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        AwsCallError {
            operation,
            code: err.code().map(str::to_owned),
            message: DisplayErrorContext(err).to_string(),
        }
    }

    /// True when AWS throttled the call even after the SDK's retries.
    pub fn is_throttling(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some(
                "ThrottlingException"
                    | "Throttling"
                    | "TooManyRequestsException"
                    | "RequestLimitExceeded"
                    | "ThrottledException"
            )
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_attempt_is_bounded() {
        let timeouts = call_timeouts();
        assert_eq!(timeouts.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
        assert_eq!(timeouts.connect_timeout(), Some(CONNECT_TIMEOUT));
    }
}
