//! The invocation's deadline. Lambda kills an invocation at its deadline; every wait in the core
//! is bounded by [`Deadline::remaining`] so work ends cleanly (and resumes in a later invocation)
//! instead of being cut off mid-call.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// When this invocation must have returned, minus a safety margin for the last AWS calls and the
/// response itself.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    at: Instant,
}

/// Room kept before Lambda's own deadline: the last pass's completions and the response.
pub const SAFETY_MARGIN: Duration = Duration::from_secs(5);

impl Deadline {
    /// `budget` from now (already net of any margin).
    pub fn after(budget: Duration) -> Self {
        Deadline {
            at: Instant::now() + budget,
        }
    }

    /// From the Lambda `Context`'s deadline (wall clock), keeping [`SAFETY_MARGIN`] in hand.
    pub fn from_system_time(deadline: SystemTime) -> Self {
        let left = deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Self::after(left.saturating_sub(SAFETY_MARGIN))
    }

    /// From the Lambda `Context`'s deadline, bounded by the function's timeout. A deadline that
    /// has already passed when the invocation starts cannot come from Lambda (local runtime
    /// emulators such as `cargo lambda watch` send one): the function timeout applies then.
    pub fn for_invocation(deadline: SystemTime, function_timeout: Duration) -> Self {
        let left = deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        let budget = if left.is_zero() {
            function_timeout
        } else {
            left.min(function_timeout)
        };
        Self::after(budget.saturating_sub(SAFETY_MARGIN))
    }

    /// No deadline worth the name: for command-line use and tests of long flows.
    pub fn unbounded() -> Self {
        Self::after(Duration::from_secs(24 * 3600))
    }

    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// True when less than `room` is left.
    pub fn is_near(&self, room: Duration) -> bool {
        self.remaining() < room
    }

    /// `wanted`, cut to what is left.
    pub fn bound(&self, wanted: Duration) -> Duration {
        wanted.min(self.remaining())
    }

    /// A deadline no later than this one and `budget` from now.
    pub fn within(&self, budget: Duration) -> Deadline {
        Deadline {
            at: self.at.min(Instant::now() + budget),
        }
    }

    /// Sleeps `wanted` unless that would pass the deadline; false when it would (nothing slept).
    pub async fn sleep(&self, wanted: Duration) -> bool {
        if self.remaining() <= wanted {
            return false;
        }
        tokio::time::sleep(wanted).await;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_are_cut_to_the_deadline() {
        let ms = Duration::from_millis;
        let d = Deadline::after(ms(400));
        assert!(d.bound(Duration::from_secs(60)) <= ms(400));
        assert!(d.sleep(ms(100)).await);
        assert!(!d.sleep(ms(350)).await, "would pass the deadline");
        assert!(d.is_near(ms(350)));
        assert!(!d.is_near(ms(100)));
        let inner = d.within(ms(20));
        assert!(inner.remaining() <= ms(20));
        let past = Deadline::from_system_time(SystemTime::now() - Duration::from_secs(1));
        assert_eq!(past.remaining(), Duration::ZERO);
        let local = Deadline::for_invocation(SystemTime::UNIX_EPOCH, Duration::from_secs(60));
        assert!(
            local.remaining() > Duration::from_secs(50),
            "a past deadline falls back to the timeout"
        );
        let lambda = Deadline::for_invocation(
            SystemTime::now() + Duration::from_secs(30),
            Duration::from_secs(900),
        );
        assert!(lambda.remaining() <= Duration::from_secs(25));
    }
}
