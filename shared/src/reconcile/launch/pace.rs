//! Pacing a burst of completions to Auto Scaling's request bucket (pure). Every Amazon EC2 Auto
//! Scaling action of the account and Region draws from one shared bucket, and
//! `CompleteLifecycleAction` takes one instance: a burst of N Ready workers is N calls, which go
//! no faster than the bucket refills. Sending them faster only buys throttled calls (each retried
//! by the SDK, then by the next pass), so the completions go in rounds whose size and spacing
//! adapt to what the bucket answers: halved and spaced out on throttling, grown back on success
//! (additive increase, multiplicative decrease, as AWS's own adaptive retry mode does).

use std::time::Duration;

/// The most completions in flight at once (the rate a quiet account allows at once).
pub const MAX_ROUND: usize = 16;
/// The gap after the first throttled round; doubled on each further one, up to [`MAX_GAP`].
pub const MIN_GAP: Duration = Duration::from_millis(200);
/// The longest gap between rounds (a bucket refilling at 1 token a second is still met).
pub const MAX_GAP: Duration = Duration::from_secs(4);

/// How the next round goes: how many completions at once, after how long a gap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    pub round: usize,
    pub gap: Duration,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            round: MAX_ROUND,
            gap: Duration::ZERO,
        }
    }
}

impl Pace {
    /// The pace after a round in which `throttled` completions were throttled.
    pub fn after(self, throttled: usize) -> Pace {
        if throttled > 0 {
            return Pace {
                round: (self.round / 2).max(1),
                gap: (self.gap * 2).clamp(MIN_GAP, MAX_GAP),
            };
        }
        // Speed up again: first the gap shrinks (by a quarter a round), then the round grows.
        let gap = self.gap * 3 / 4;
        if gap >= Duration::from_millis(20) {
            Pace { gap, ..self }
        } else {
            Pace {
                round: (self.round + 1).min(MAX_ROUND),
                gap: Duration::ZERO,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_bucket_keeps_the_full_round_without_gap() {
        assert_eq!(Pace::default().after(0), Pace::default());
    }

    #[test]
    fn throttling_halves_the_round_and_doubles_the_gap_within_bounds() {
        let p = Pace::default().after(3);
        assert_eq!((p.round, p.gap), (MAX_ROUND / 2, MIN_GAP));
        let p = p.after(1);
        assert_eq!((p.round, p.gap), (MAX_ROUND / 4, MIN_GAP * 2));
        let mut p = p;
        for _ in 0..20 {
            p = p.after(1);
        }
        assert_eq!((p.round, p.gap), (1, MAX_GAP));
    }

    #[test]
    fn success_shrinks_the_gap_before_it_grows_the_round() {
        let throttled = Pace {
            round: 1,
            gap: Duration::from_millis(400),
        };
        let p = throttled.after(0);
        assert_eq!((p.round, p.gap), (1, Duration::from_millis(300)));
        let mut p = p;
        while p.gap > Duration::ZERO {
            p = p.after(0);
            assert_eq!(p.round, if p.gap.is_zero() { 2 } else { 1 });
        }
        for _ in 0..30 {
            p = p.after(0);
        }
        assert_eq!(p, Pace::default());
    }
}
