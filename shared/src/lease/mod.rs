//! A lease on Parameter Store that cannot be held twice: regeneration, reconcile and drains use it.
//!
//! Parameter Store's only conditional write is create-only (`Overwrite=false`); the lease is
//! built on it alone:
//!
//! - **Acquire**: read `<name>`; visibly held and valid, stop there (no write). Otherwise create
//!   it with `{holder, expires_at_ms, ...}`. One creator wins.
//! - **Hold**: the holder acts only while `now < expires_at - GUARD`, and renews (overwrites its
//!   own value with a later expiry) before that. Nobody else writes a lease that has not expired.
//! - **Take over** an expired lease: only after `now >= expires_at`, and only by the one waiter
//!   that creates the marker `<name>.takeover.<old holder>-v<version>` (create-only again); the
//!   winner then overwrites the lease. A waiter that read an older version loses on the marker,
//!   or reads the new holder's value.
//! - **Release**: the holder deletes the lease while it is still valid; past that it lets it expire.
//!
//! So two holders never overlap: the old one stops `GUARD` before the expiry that the new one
//! waits for. Markers are left for the scheduled cleanup ([`Leases::cleanup`]), which removes them
//! once no invocation that could have read the old version is still alive (Lambda's 900 s).

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::aws::parameters::ParameterStore;
use crate::aws::AwsCallError;

/// The longest a holder's lease write (renew, note, release) may take, retries included: a write
/// still in flight is abandoned at this bound, so none lands after the holder's guard.
pub const WRITE_BOUND: Duration = Duration::from_secs(8);
/// How long before its expiry a holder stops acting: the longest write ([`WRITE_BOUND`]) plus
/// clock skew. A renew or release started before the guard ends before the expiry that a
/// successor waits for, so it can never overwrite or delete the successor's lease.
pub const GUARD: Duration = Duration::from_secs(8 + 4);
/// The longest pause between two attempts of a throttled release (200 ms, doubling).
const RELEASE_RETRY_MAX: Duration = Duration::from_millis(1600);
/// Markers and abandoned leases older than this are removed by the cleanup.
pub const LEFTOVER_AGE: Duration = Duration::from_secs(1800);

mod value;
pub use value::*;
use value::{sanitize, to_json};

mod takeover;
pub use takeover::MARKER_STALE;

type Delay = Arc<dyn Fn(&'static str) -> Duration + Send + Sync>;

#[derive(Clone)]
pub struct Leases {
    store: ParameterStore,
    /// Test hook: a pause injected at each step of the protocol, to widen race windows.
    delay: Option<Delay>,
    guard: Duration,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases").finish_non_exhaustive()
    }
}

impl Leases {
    pub fn new(store: ParameterStore) -> Self {
        Leases {
            store,
            delay: None,
            guard: GUARD,
        }
    }

    /// The same leases with a pause injected before every step (race tests only).
    pub fn with_injected_delay(
        mut self,
        delay: impl Fn(&'static str) -> Duration + Send + Sync + 'static,
    ) -> Self {
        self.delay = Some(Arc::new(delay));
        self
    }

    /// The same leases with another guard (tests on one clock use a short one).
    pub fn with_guard(mut self, guard: Duration) -> Self {
        self.guard = guard;
        self
    }

    /// Whether the holder of `held` may still act now.
    pub fn may_act(&self, held: &Held) -> bool {
        holder_may_act(&held.value, now_ms(), self.guard)
    }

    /// How long the holder of `held` may still act.
    pub fn time_left(&self, held: &Held) -> Duration {
        Duration::from_millis(
            (held.value.expires_at_ms - now_ms() - self.guard.as_millis() as i64).max(0) as u64,
        )
    }

    async fn pause(&self, step: &'static str) {
        if let Some(d) = &self.delay {
            let wait = d(step);
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// Reads a lease; `None` when absent, `Some(None)` when its value is not a lease.
    pub async fn read(
        &self,
        name: &str,
    ) -> Result<Option<(Option<LeaseValue>, i64)>, AwsCallError> {
        Ok(self
            .store
            .get(name, false)
            .await?
            .map(|(v, version)| (serde_json::from_str(&v).ok(), version)))
    }

    /// One attempt to acquire `name` for `ttl`. `value` carries the caller's details; its holder
    /// and expiry are set here.
    pub async fn try_acquire(
        &self,
        name: &str,
        ttl: Duration,
        mut value: LeaseValue,
    ) -> Result<Acquire, AwsCallError> {
        value.holder = new_holder_id();
        // Read before writing: a lease visibly held answers with no write. Parameter Store's
        // write throughput is small and shared by the whole account and Region, so a burst of
        // callers for one cluster must not each pay a create to learn that one holds it.
        if let Some(holder) = visibly_held(self.read(name).await?, now_ms()) {
            return Ok(Acquire::Busy(Some(holder)));
        }
        for _ in 0..3 {
            value.expires_at_ms = now_ms() + ttl.as_millis() as i64;
            value.ttl_ms = ttl.as_millis() as i64;
            self.pause("create").await;
            match self.store.create_only(name, &to_json(&value)).await {
                Ok(true) => return Ok(self.held(name, value, None)),
                Ok(false) => {}
                // Throttled (refused), or lost after it may have taken effect: the lease tells.
                // Ours: it took effect. Another's, valid: it answers without a write. Otherwise
                // the caller fails (and is retried); never a lease of ours left behind unknown.
                Err(err) => {
                    return match self.read(name).await? {
                        Some((Some(v), _)) if v.holder == value.holder => {
                            Ok(self.held(name, value, None))
                        }
                        Some((Some(v), _)) if standing(&v, now_ms()) == Standing::Valid => {
                            Ok(Acquire::Busy(Some(v)))
                        }
                        _ => Err(err),
                    };
                }
            }
            self.pause("read").await;
            let Some((found, version)) = self.read(name).await? else {
                continue; // released between our create and our read
            };
            // Our own create, whose answer was lost (the SDK's retry then found it existing).
            if found.as_ref().is_some_and(|v| v.holder == value.holder) {
                return Ok(self.held(name, value, None));
            }
            if let Some(v) = &found {
                if standing(v, now_ms()) == Standing::Valid {
                    return Ok(Acquire::Busy(found));
                }
            }
            // Expired (or not a lease at all): one waiter takes it over.
            if !self
                .win_takeover(name, found.as_ref(), version, &value.holder)
                .await?
            {
                return Ok(Acquire::Busy(found));
            }
            value.expires_at_ms = now_ms() + ttl.as_millis() as i64;
            value.ttl_ms = ttl.as_millis() as i64;
            self.pause("overwrite").await;
            let write = async {
                // A later generation's winner checks that no earlier winner took the lease.
                match self.read(name).await? {
                    Some((_, v)) if v != version => return Ok(false),
                    _ => {}
                }
                match self.store.overwrite(name, &to_json(&value)).await {
                    Ok(()) => Ok(true),
                    // Lost after it may have taken effect: the lease tells.
                    Err(err) => match self.read(name).await? {
                        Some((Some(v), _)) if v.holder == value.holder => Ok(true),
                        _ => Err(err),
                    },
                }
            };
            // Bounded, so that a winner's overwrite never lands after its marker went stale.
            let took = tokio::time::timeout(WRITE_BOUND, write)
                .await
                .unwrap_or_else(|_| {
                    Err(AwsCallError {
                        operation: "ssm:PutParameter",
                        code: None,
                        message: "takeover abandoned: it would have outlived its marker".into(),
                    })
                })?;
            if !took {
                return Ok(Acquire::Busy(None));
            }
            return Ok(self.held(name, value, found));
        }
        Ok(Acquire::Busy(None))
    }

    /// A holder's write, bounded so that it ends before the guard runs out: the time left
    /// before the expiry less the skew, and at most [`WRITE_BOUND`].
    async fn bounded<T>(
        &self,
        held: &Held,
        operation: &'static str,
        write: impl std::future::Future<Output = Result<T, AwsCallError>>,
    ) -> Result<T, AwsCallError> {
        let skew = self.guard.saturating_sub(WRITE_BOUND.min(self.guard));
        let left = Duration::from_millis(
            (held.value.expires_at_ms - now_ms() - skew.as_millis() as i64).max(0) as u64,
        );
        match tokio::time::timeout(WRITE_BOUND.min(left), write).await {
            Ok(result) => result,
            Err(_) => Err(AwsCallError {
                operation,
                code: None,
                message: "abandoned: it would have outlived the lease's guard".into(),
            }),
        }
    }

    fn held(&self, name: &str, value: LeaseValue, previous: Option<LeaseValue>) -> Acquire {
        Acquire::Held(Held {
            name: name.to_owned(),
            value,
            previous: previous.map(Box::new),
        })
    }

    /// Extends a held lease to `ttl` from now. False (and nothing written) when the lease can no
    /// longer be trusted: the holder must stop.
    pub async fn renew(&self, held: &mut Held, ttl: Duration) -> Result<bool, AwsCallError> {
        self.rewrite(held, |v| {
            v.expires_at_ms = now_ms() + ttl.as_millis() as i64
        })
        .await
    }

    /// Records a command started under the lease (for waiters and a later takeover).
    pub async fn note_command(
        &self,
        held: &mut Held,
        command_id: &str,
        instance: &str,
    ) -> Result<bool, AwsCallError> {
        self.rewrite(held, |v| {
            v.command_id = command_id.to_owned();
            v.instance_id = instance.to_owned();
        })
        .await
    }

    /// Overwrites the holder's own value, changed by `change`, while it may still act (bounded:
    /// see [`Leases::bounded`]). False, and nothing written, once it may not.
    async fn rewrite(
        &self,
        held: &mut Held,
        change: impl FnOnce(&mut LeaseValue),
    ) -> Result<bool, AwsCallError> {
        if !self.may_act(held) {
            return Ok(false);
        }
        let mut value = held.value.clone();
        change(&mut value);
        self.bounded(
            held,
            "ssm:PutParameter",
            self.store.overwrite_promptly(&held.name, &to_json(&value)),
        )
        .await?;
        held.value = value;
        Ok(true)
    }

    /// Releases a held lease if it is still ours to release; otherwise it simply expires.
    pub async fn release(&self, held: Held) -> Result<(), AwsCallError> {
        let mut pause = Duration::from_millis(200);
        loop {
            if !self.may_act(&held) {
                return Ok(());
            }
            // One attempt per call (`ParameterStore::delete_once`): a delete whose answer was
            // lost may have taken effect, and a blind retry could delete a successor's lease. A
            // throttled delete was refused, never applied: that one is tried again.
            match self
                .bounded(
                    &held,
                    "ssm:DeleteParameter",
                    self.store.delete_once(&held.name),
                )
                .await
            {
                Err(err) if err.is_throttling() && pause <= RELEASE_RETRY_MAX => {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                other => return other,
            }
        }
    }

    /// Removes takeover markers and leases that expired long ago under `path`. Returns how many.
    pub async fn cleanup(&self, path: &str) -> Result<usize, AwsCallError> {
        let now = OffsetDateTime::now_utc();
        let mut removed = 0;
        for p in self.store.list_path(path).await? {
            let old = p
                .modified
                .is_some_and(|m| now - m > time::Duration::seconds(LEFTOVER_AGE.as_secs() as i64));
            let leftover = if p.name.contains(".takeover.") {
                old
            } else {
                serde_json::from_str::<LeaseValue>(&p.value)
                    .map(|v| now_ms() - v.expires_at_ms > LEFTOVER_AGE.as_millis() as i64)
                    .unwrap_or(old)
            };
            if leftover {
                self.store.delete(&p.name).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests;
