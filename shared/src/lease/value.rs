//! The lease's value, what a holder keeps of it, and the pure rules read from it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The lease parameter's value.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaseValue {
    pub holder: String,
    /// Lambda request id (or another caller label) of the holder, for "held by …" answers.
    #[serde(default)]
    pub request_id: String,
    pub expires_at_ms: i64,
    /// The TTL the holder last wrote (ms; 0 when unknown): how low a live holder lets it run.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ttl_ms: i64,
    /// When the holder's own invocation ends (ms since the epoch); 0 when unknown.
    #[serde(default)]
    pub holder_until_ms: i64,
    /// A Run Command the holder started under the lease, and where.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub command_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub instance_id: String,
    #[serde(default)]
    pub started_at_ms: i64,
    /// Drain records only: the Node left in place when the action was completed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub left_node: String,
    /// Drain records only: the Node the instance owns, as matched when the drain was intended
    /// (a later run that sends it again has not asked).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// Drain records only: the pods that kept the drain from ending clean (`ns/pod (why)`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_pods: Vec<String>,
}

/// A lease this process holds.
#[derive(Clone, Debug)]
pub struct Held {
    pub name: String,
    pub value: LeaseValue,
    /// The expired holder's value when this lease was taken over.
    pub previous: Option<Box<LeaseValue>>,
}

/// The outcome of one attempt.
#[derive(Clone, Debug)]
pub enum Acquire {
    Held(Held),
    /// Someone else holds it (or is taking it over); their value when known.
    Busy(Option<LeaseValue>),
}

/// What a reader may do with a lease value it found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Valid,
    Expired,
}

/// Pure: is the lease still valid at `now_ms`?
pub fn standing(value: &LeaseValue, now_ms: i64) -> Standing {
    if now_ms >= value.expires_at_ms {
        Standing::Expired
    } else {
        Standing::Valid
    }
}

/// Pure: may the holder still act at `now_ms`, stopping `guard` before the expiry?
pub fn holder_may_act(value: &LeaseValue, now_ms: i64, guard: Duration) -> bool {
    now_ms < value.expires_at_ms - guard.as_millis() as i64
}

/// Pure: the holder of a lease read at `now_ms`, when it is valid (no write needed to tell).
pub fn visibly_held(read: Option<(Option<LeaseValue>, i64)>, now_ms: i64) -> Option<LeaseValue> {
    match read {
        Some((Some(v), _)) if standing(&v, now_ms) == Standing::Valid => Some(v),
        _ => None,
    }
}

pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A holder id unique across processes and acquisitions, safe in a parameter name.
pub fn new_holder_id() -> String {
    format!(
        "h{}x{}x{}",
        std::process::id(),
        OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000_000,
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

pub(super) fn is_zero(v: &i64) -> bool {
    *v == 0
}

pub(super) fn to_json(value: &LeaseValue) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Keeps a holder id usable inside a parameter name.
pub(super) fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        .take(64)
        .collect()
}
