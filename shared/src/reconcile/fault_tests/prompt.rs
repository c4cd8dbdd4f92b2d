//! Calls on the way to a Ready Node's CONTINUE whose failure costs little (a lease renewal the
//! run may skip once, a status poll the poll loop repeats anyway) are retried promptly, not
//! after the SDK's default pauses of up to 1 s and 2 s.

use super::*;
use aws_smithy_mocks::Rule;

/// The SDK's default backoff (first pause up to 1 s, doubling) without its jitter, so that the
/// pauses are exact.
fn sdk_default_backoff() -> aws_sdk_ssm::config::retry::RetryConfig {
    aws_sdk_ssm::config::retry::RetryConfig::standard()
        .with_max_attempts(3)
        .with_use_static_exponential_base(true)
}

/// The SDK's sleep, recording every pause it is asked for and returning at once.
#[derive(Clone, Debug, Default)]
struct Pauses(std::sync::Arc<std::sync::Mutex<Vec<Duration>>>);

impl aws_sdk_ssm::config::AsyncSleep for Pauses {
    fn sleep(&self, d: Duration) -> aws_sdk_ssm::config::Sleep {
        self.0.lock().expect("pauses").push(d);
        aws_sdk_ssm::config::Sleep::new(async {})
    }
}

impl Pauses {
    /// The pauses between attempts (the SDK also asks its sleep for per-attempt timers of some
    /// 20 s, which a mock never reaches).
    fn taken(&self) -> Vec<Duration> {
        let all = self.0.lock().expect("pauses").clone();
        all.into_iter()
            .filter(|d| *d < Duration::from_secs(10))
            .collect()
    }
}

/// A client answering from `rule`, with the SDK's default backoff and a sleep that records it.
fn recording_pauses(rule: &Rule) -> (aws_sdk_ssm::Client, Pauses) {
    use aws_smithy_mocks::{mock_client, RuleMode};
    let pauses = Pauses::default();
    let sleep = pauses.clone();
    let client = mock_client!(aws_sdk_ssm, RuleMode::Sequential, [rule], |c| c
        .retry_config(sdk_default_backoff())
        .stalled_stream_protection(aws_sdk_ssm::config::StalledStreamProtectionConfig::disabled())
        .sleep_impl(sleep.clone()));
    (client, pauses)
}

/// A command that ended well, printing `ok`.
fn succeeded() -> GetCommandInvocationOutput {
    GetCommandInvocationOutput::builder()
        .status(CommandInvocationStatus::Success)
        .status_details("Success")
        .response_code(0)
        .standard_output_content("ok")
        .build()
}

const THROTTLED_JSON: &str = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
const PROMPT: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(200)];

/// `PutParameter` throttled twice, then written.
fn write_throttled_twice() -> Rule {
    mock!(Ssm::put_parameter)
        .sequence()
        .http_status(400, Some(THROTTLED_JSON.to_owned()))
        .times(2)
        .output(|| PutParameterOutput::builder().build())
        .build()
}

#[tokio::test]
async fn a_throttled_renewal_is_tried_again_within_a_fraction_of_a_second() {
    // The renewal comes before the pass that may CONTINUE a Ready Node: the SDK's default
    // pauses (1 s, then 2 s) would hold that CONTINUE back; the lease as it stands has most of
    // its TTL left, so the renewal is tried again promptly (0.1 s, 0.2 s) and then skipped.
    let put = write_throttled_twice();
    let (client, pauses) = recording_pauses(&put);
    let leases = crate::lease::Leases::new(crate::aws::parameters::ParameterStore::new(client));
    let mut held = held_for(120_000);
    let renewed = leases.renew(&mut held, Duration::from_secs(120)).await;
    assert_eq!(renewed, Ok(true));
    assert_eq!(put.num_calls(), 3, "the client's attempts are kept");
    assert_eq!(pauses.taken(), PROMPT);
}

#[tokio::test]
async fn a_throttled_status_poll_is_asked_again_promptly_not_after_the_sdks_seconds() {
    let poll = mock!(Ssm::get_command_invocation)
        .sequence()
        .http_status(400, Some(THROTTLED_JSON.to_owned()))
        .times(2)
        .output(succeeded)
        .build();
    let (client, pauses) = recording_pauses(&poll);
    let runner = crate::aws::run_command::CommandRunner::new(
        client,
        Duration::from_millis(250),
        Duration::from_secs(60),
    );
    let deadline = crate::deadline::Deadline::after(Duration::from_secs(60));
    let out = runner
        .wait(&id("i-0123456789abcdef0"), "cmd-1", &deadline)
        .await
        .expect("answered");
    assert_eq!(out.stdout, "ok");
    assert_eq!(poll.num_calls(), 3);
    assert_eq!(pauses.taken(), PROMPT);
}

#[tokio::test]
async fn other_calls_keep_the_sdks_backoff() {
    // A check of the check: the same throttling on a plain write pauses as the SDK does.
    let put = write_throttled_twice();
    let (client, pauses) = recording_pauses(&put);
    let store = crate::aws::parameters::ParameterStore::new(client);
    store.overwrite("/x", "y").await.expect("written");
    assert_eq!(
        pauses.taken(),
        [Duration::from_secs(1), Duration::from_secs(2)]
    );
}

#[tokio::test]
async fn a_command_is_first_polled_a_poll_interval_after_it_was_sent() {
    // Polled at once, a command has not even been delivered: one call wasted per command.
    let poll = mock!(Ssm::get_command_invocation).then_output(succeeded);
    let (client, _) = recording_pauses(&poll);
    let interval = Duration::from_millis(300);
    let runner =
        crate::aws::run_command::CommandRunner::new(client, interval, Duration::from_secs(60));
    let deadline = crate::deadline::Deadline::after(Duration::from_secs(60));
    let sent = std::time::Instant::now();
    let out = runner
        .wait(&id("i-0123456789abcdef0"), "cmd-1", &deadline)
        .await
        .expect("answered");
    assert_eq!(out.stdout, "ok");
    assert_eq!(
        poll.num_calls(),
        1,
        "one poll for a command that ended in time"
    );
    assert!(
        sent.elapsed() >= interval,
        "polled after {:?}",
        sent.elapsed()
    );
}
