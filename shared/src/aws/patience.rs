//! Asking again while AWS throttles: for reads a handler cannot do without and may wait for
//! (an exit event's lookups have the two minutes of a Spot notice), beyond the SDK's own three
//! attempts, which a burst of invocations hitting one account-wide bucket uses up within a second
//! or two.

use std::future::Future;
use std::time::Duration;

use super::AwsCallError;
use crate::deadline::Deadline;

/// The first pause after a throttled call; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(400);
const MAX_PAUSE: Duration = Duration::from_secs(6);

/// Pure: the pause before attempt `n` (0-based) after a throttle, jittered by `salt` between half
/// and all of the backoff, so that invocations throttled together do not come back together.
pub fn pause_before(n: u32, salt: u64) -> Duration {
    let full = FIRST_PAUSE.saturating_mul(1u32 << n.min(10)).min(MAX_PAUSE);
    let half = full / 2;
    let spread = half.as_millis() as u64 + 1;
    half + Duration::from_millis(salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) % spread)
}

/// The longest first pause of [`prompt_retries`].
pub const PROMPT_BACKOFF: Duration = Duration::from_millis(100);

/// Pure: `configured` (the client's retry settings) with its first backoff at most
/// [`PROMPT_BACKOFF`]: for a call whose failure costs little but whose wait holds up a Ready
/// Node's CONTINUE: a lease renewal before a pass (a throttled one is skipped, the lease as it
/// stands still has most of its TTL) and a command's status poll (the poll loop asks again
/// anyway). The SDK's default first backoff is up to 1 s, the second up to 2 s; here up to
/// 0.1 s and 0.2 s. Attempts and the retry quota stay the client's.
pub fn prompt_retries(
    configured: Option<&aws_smithy_types::retry::RetryConfig>,
) -> aws_smithy_types::retry::RetryConfig {
    let base = configured
        .cloned()
        .unwrap_or_else(aws_smithy_types::retry::RetryConfig::standard);
    let first = base.initial_backoff().min(PROMPT_BACKOFF);
    base.with_initial_backoff(first)
}

/// A per-call override giving `client`'s calls [`prompt_retries`] (for `.customize()`).
pub fn prompt_ssm(client: &aws_sdk_ssm::Client) -> aws_sdk_ssm::config::Builder {
    aws_sdk_ssm::config::Builder::default()
        .retry_config(prompt_retries(client.config().retry_config()))
}

/// Pure: a salt for [`pause_before`] from a name (an instance id), so that callers throttled
/// together spread their pauses.
pub fn salt_of(name: &str) -> u64 {
    name.bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31) ^ u64::from(b))
}

/// `call`, asked again after a pause while AWS throttles it, until `deadline` leaves no room for
/// the next pause; any other answer is returned as it is.
pub async fn while_throttled<T, F, Fut>(
    deadline: &Deadline,
    salt: u64,
    mut call: F,
) -> Result<T, AwsCallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsCallError>>,
{
    let mut n = 0;
    loop {
        match call().await {
            Err(err) if err.is_throttling() => {
                let pause = pause_before(n, salt.wrapping_add(u64::from(n)));
                if !deadline.sleep(pause).await {
                    return Err(err);
                }
                n += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_retries_shorten_the_first_backoff_and_keep_the_rest() {
        use aws_smithy_types::retry::RetryConfig;
        let configured = RetryConfig::standard().with_max_attempts(5);
        let prompt = prompt_retries(Some(&configured));
        assert_eq!(prompt.initial_backoff(), PROMPT_BACKOFF);
        assert_eq!(prompt.max_attempts(), 5, "the client's attempts");
        let quicker = RetryConfig::standard().with_initial_backoff(Duration::from_millis(1));
        assert_eq!(
            prompt_retries(Some(&quicker)).initial_backoff(),
            Duration::from_millis(1),
            "never slower than the client"
        );
        assert_eq!(prompt_retries(None).max_attempts(), 3);
    }

    fn throttled() -> AwsCallError {
        AwsCallError {
            operation: "autoscaling:DescribeTags",
            code: Some("Throttling".into()),
            message: "Rate exceeded".into(),
        }
    }

    #[test]
    fn pauses_grow_to_a_cap_and_stay_within_half_and_all_of_the_backoff() {
        for salt in [0, 1, 7, u64::MAX] {
            let p: Vec<Duration> = (0..12).map(|n| pause_before(n, salt)).collect();
            for (n, pause) in p.iter().enumerate() {
                let full = FIRST_PAUSE.saturating_mul(1 << n.min(10)).min(MAX_PAUSE);
                assert!(*pause >= full / 2 && *pause <= full, "{n}: {pause:?}");
            }
        }
        let spread: std::collections::HashSet<Duration> =
            (0..50).map(|salt| pause_before(3, salt)).collect();
        assert!(spread.len() > 10, "jittered: {spread:?}");
    }

    #[tokio::test]
    async fn throttled_calls_are_asked_again_other_errors_at_once_never_past_the_deadline() {
        let calls = std::sync::atomic::AtomicU32::new(0);
        let answer = while_throttled(&Deadline::after(Duration::from_secs(60)), 3, || async {
            match calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0..=1 => Err(throttled()),
                _ => Ok(42),
            }
        })
        .await;
        assert_eq!(answer, Ok(42));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);

        let calls = std::sync::atomic::AtomicU32::new(0);
        let other = AwsCallError {
            code: Some("ValidationError".into()),
            ..throttled()
        };
        let answer: Result<(), _> =
            while_throttled(&Deadline::after(Duration::from_secs(60)), 3, || async {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Err(other.clone())
            })
            .await;
        assert_eq!(answer, Err(other));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);

        let started = tokio::time::Instant::now();
        let answer: Result<(), _> =
            while_throttled(&Deadline::after(Duration::from_secs(10)), 3, || async {
                Err(throttled())
            })
            .await;
        assert!(answer.is_err_and(|e| e.is_throttling()));
        assert!(
            started.elapsed() <= Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
}
