//! Is the stored join record good enough, or must the control plane mint a new one? A pure
//! function of the record (or its absence), the clock and the required remaining validity.

use std::time::Duration;

use time::OffsetDateTime;

use crate::meta::RecordMeta;
use crate::record::RecordError;

/// What Parameter Store held for a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredRecord {
    Absent,
    Corrupt(RecordError),
    Present(RecordMeta),
}

/// The verdict on a stored record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Valid for at least the required time.
    Fresh { remaining: Duration },
    /// Still valid, but for less than the required time.
    Rotate { remaining: Duration },
    /// No record at all.
    Missing,
    /// The token has expired.
    Expired { ago: Duration },
    /// The parameter holds something that is not a valid record.
    Corrupt { reason: String },
}

impl Freshness {
    pub fn is_fresh(&self) -> bool {
        matches!(self, Freshness::Fresh { .. })
    }

    /// A short word for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Freshness::Fresh { .. } => "fresh",
            Freshness::Rotate { .. } => "expires-soon",
            Freshness::Missing => "missing",
            Freshness::Expired { .. } => "expired",
            Freshness::Corrupt { .. } => "corrupt",
        }
    }
}

/// A record dated this far in the future is treated as corrupt: the control plane's clock or
/// the record is wrong, and trusting it could hand workers a token that is already gone.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// Decides whether `stored` stays valid for at least `required` after `now`.
pub fn decide(stored: &StoredRecord, now: OffsetDateTime, required: Duration) -> Freshness {
    let record = match stored {
        StoredRecord::Absent => return Freshness::Missing,
        StoredRecord::Corrupt(err) => {
            return Freshness::Corrupt {
                reason: err.to_string(),
            }
        }
        StoredRecord::Present(record) => record,
    };
    if record.created_at - now > MAX_CLOCK_SKEW {
        return Freshness::Corrupt {
            reason: format!(
                "record created at {}, in the future",
                crate::timefmt::rfc3339(record.created_at)
            ),
        };
    }
    let remaining = record.expires_at - now;
    if remaining <= time::Duration::ZERO {
        return Freshness::Expired {
            ago: unsigned(-remaining),
        };
    }
    let remaining = unsigned(remaining);
    if remaining < required {
        Freshness::Rotate { remaining }
    } else {
        Freshness::Fresh { remaining }
    }
}

fn unsigned(d: time::Duration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{parse_join_command, RecordSource};
    use time::macros::datetime;

    const H: u64 = 3600;

    fn record(created: OffsetDateTime, ttl_hours: i64) -> StoredRecord {
        let cmd = parse_join_command(
            "kubeadm join 10.0.0.10:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        )
        .expect("valid");
        StoredRecord::Present(RecordMeta::of_record(
            &crate::record::JoinRecord::from_command(
                "demo",
                RecordSource::Kubeadm,
                cmd,
                created,
                time::Duration::hours(ttl_hours),
            )
            .expect("valid"),
            1,
        ))
    }

    #[test]
    fn table() {
        let now = datetime!(2026-11-27 12:00 UTC);
        let margin = Duration::from_secs(8 * H);
        let cases: Vec<(&str, StoredRecord, Duration, Freshness)> = vec![
            (
                "just created",
                record(now, 24),
                margin,
                Freshness::Fresh {
                    remaining: Duration::from_secs(24 * H),
                },
            ),
            (
                "16 h old: exactly the margin left",
                record(now - time::Duration::hours(16), 24),
                margin,
                Freshness::Fresh {
                    remaining: Duration::from_secs(8 * H),
                },
            ),
            (
                "16 h 1 s old",
                record(now - time::Duration::seconds(16 * 3600 + 1), 24),
                margin,
                Freshness::Rotate {
                    remaining: Duration::from_secs(8 * H - 1),
                },
            ),
            (
                "23 h old",
                record(now - time::Duration::hours(23), 24),
                margin,
                Freshness::Rotate {
                    remaining: Duration::from_secs(H),
                },
            ),
            (
                "expires now",
                record(now - time::Duration::hours(24), 24),
                margin,
                Freshness::Expired {
                    ago: Duration::ZERO,
                },
            ),
            (
                "expired 2 h ago",
                record(now - time::Duration::hours(26), 24),
                margin,
                Freshness::Expired {
                    ago: Duration::from_secs(2 * H),
                },
            ),
            ("absent", StoredRecord::Absent, margin, Freshness::Missing),
            (
                "corrupt",
                StoredRecord::Corrupt(RecordError::BadToken),
                margin,
                Freshness::Corrupt {
                    reason: RecordError::BadToken.to_string(),
                },
            ),
            (
                "created 4 min ahead (skew allowed)",
                record(now + time::Duration::minutes(4), 24),
                margin,
                Freshness::Fresh {
                    remaining: Duration::from_secs(24 * H + 240),
                },
            ),
            (
                "created 1 h in the future",
                record(now + time::Duration::hours(1), 24),
                margin,
                Freshness::Corrupt {
                    reason: "record created at 2026-11-27T13:00:00Z, in the future".into(),
                },
            ),
            (
                "launch needs 15 min, 20 min left",
                record(now - time::Duration::minutes(24 * 60 - 20), 24),
                Duration::from_secs(900),
                Freshness::Fresh {
                    remaining: Duration::from_secs(1200),
                },
            ),
            (
                "launch needs 15 min, 10 min left",
                record(now - time::Duration::minutes(24 * 60 - 10), 24),
                Duration::from_secs(900),
                Freshness::Rotate {
                    remaining: Duration::from_secs(600),
                },
            ),
        ];
        for (name, stored, required, want) in cases {
            assert_eq!(decide(&stored, now, required), want, "{name}");
        }
    }

    #[test]
    fn labels() {
        assert_eq!(Freshness::Missing.label(), "missing");
        assert!(Freshness::Fresh {
            remaining: Duration::ZERO
        }
        .is_fresh());
        assert!(!Freshness::Rotate {
            remaining: Duration::ZERO
        }
        .is_fresh());
    }
}
