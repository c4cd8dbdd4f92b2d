//! The in-process test tier: a [`Context`] whose AWS clients answer from the SDK's own mocks
//! (`aws-smithy-mocks`), for call-sequence tests of the reconciler and the handlers without the
//! emulator. Rules answer in any order (`RuleMode::MatchAny`); a call no rule matches fails.

use std::time::Duration;

use aws_smithy_mocks::{mock_client, Rule, RuleMode};

use crate::aws::AwsClients;
use crate::config::Config;
use crate::context::Context;
use crate::names::{GroupName, HookName, InstanceId};

/// One attempt per call: a mocked error is seen at once, not after the SDK's retries.
fn one_attempt<B>(b: B) -> B
where
    B: RetryOnce,
{
    b.retry_once()
}

pub trait RetryOnce {
    fn retry_once(self) -> Self;
}

macro_rules! retry_once {
    ($($krate:ident),*) => {$(
        impl RetryOnce for $krate::config::Builder {
            fn retry_once(self) -> Self {
                self.retry_config($krate::config::retry::RetryConfig::standard().with_max_attempts(1))
            }
        }
    )*};
}
retry_once!(aws_sdk_ssm, aws_sdk_ec2, aws_sdk_autoscaling);

/// Settings for in-process tests: fast Run Command and node polling, the documented defaults
/// otherwise.
pub fn config() -> Config {
    Config::from_lookup(|name| match name {
        "JOINKEEPER_COMMAND_POLL_MILLIS" => Some("100".into()),
        "JOINKEEPER_NODE_POLL_SECONDS" => Some("1".into()),
        _ => None,
    })
    .expect("test configuration")
}

/// A context whose clients answer from `ssm`, `ec2` and `autoscaling` rules.
pub fn context(ssm: &[&Rule], ec2: &[&Rule], autoscaling: &[&Rule]) -> Context {
    let clients = AwsClients {
        ssm: mock_client!(
            aws_sdk_ssm,
            RuleMode::MatchAny,
            ssm.iter().copied(),
            one_attempt
        ),
        ec2: mock_client!(
            aws_sdk_ec2,
            RuleMode::MatchAny,
            ec2.iter().copied(),
            one_attempt
        ),
        autoscaling: mock_client!(
            aws_sdk_autoscaling,
            RuleMode::MatchAny,
            autoscaling.iter().copied(),
            one_attempt
        ),
    };
    Context::new(config(), &clients)
}

pub fn id(s: &str) -> InstanceId {
    InstanceId::parse(s).expect("instance id")
}

pub fn group(s: &str) -> GroupName {
    GroupName::parse(s).expect("group name")
}

pub fn hook(name: &str, transition: crate::lifecycle::Transition) -> crate::aws::autoscaling::Hook {
    crate::aws::autoscaling::Hook {
        name: HookName::parse(name).expect("hook name"),
        transition,
        heartbeat_timeout: Duration::from_secs(300),
    }
}

/// An AWS 5xx answer (nothing applied).
pub const SERVER_ERROR: u16 = 500;
