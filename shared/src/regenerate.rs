//! Single-flight regeneration of a cluster's join record.
//!
//! However many callers find the record stale at once (the scheduled refresher, launch hooks for
//! a burst of new workers), one regeneration per cluster runs and the others wait for its result:
//!
//! 1. **Lock.** A caller that finds the record not fresh enough creates the String parameter
//!    `<prefix>/<cluster>/regenerate-lock` with `PutParameter(Overwrite=false)`. Parameter Store
//!    lets exactly one concurrent creator win; the others get `ParameterAlreadyExists`.
//! 2. **Double check.** The winner reads the record again: another caller may have finished a
//!    regeneration between our first read and our lock. If it is fresh now, nothing runs.
//! 3. **Run.** The winner sends the regenerate document to the first reachable control-plane
//!    instance (failing over to the next when a command fails or cannot be delivered) and writes
//!    the command id and instance into the lock, so waiters can see a command in flight.
//! 4. **Verify.** The record's parameter version must have grown and the new record must be fresh
//!    for the required time; only then does the regeneration count as done.
//! 5. **Release.** The winner deletes the lock if it still holds it.
//!
//! Waiters poll the record until it is fresh. A lock whose `expires_at` has passed belongs to a
//! caller that died (a Lambda timeout); it is taken over, unless the command it names is still
//! running. The regenerate script itself also takes a `flock` on the control plane, so even a
//! takeover race cannot interleave two regenerations on one node.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::aws::fleet::Fleet;
use crate::aws::parameters::ParameterStore;
use crate::aws::run_command::{CommandRequest, CommandRunner, Progress};
use crate::aws::{AwsCallError, AwsClients};
use crate::config::Config;
use crate::freshness::{decide, Freshness, StoredRecord};
use crate::names::{ClusterName, InstanceId};
use crate::timefmt;

/// What a record looks like in logs: never the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordSummary {
    pub token_id: String,
    pub expires_at: OffsetDateTime,
    pub remaining: Duration,
    pub version: i64,
}

/// How the record came to be fresh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ensured {
    /// It already was.
    AlreadyFresh(RecordSummary),
    /// This caller regenerated it on `instance`, because of `reason`.
    Regenerated {
        summary: RecordSummary,
        instance: InstanceId,
        reason: Freshness,
    },
    /// Another caller regenerated it while this one waited.
    RegeneratedElsewhere(RecordSummary),
}

impl Ensured {
    pub fn summary(&self) -> &RecordSummary {
        match self {
            Ensured::AlreadyFresh(s) | Ensured::RegeneratedElsewhere(s) => s,
            Ensured::Regenerated { summary, .. } => summary,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RegenerateError {
    #[error("cluster {cluster}: no control-plane instance is running with its SSM agent online; the join record was left as it was")]
    NoControlPlane { cluster: ClusterName },
    #[error("cluster {cluster}: regeneration failed on every control-plane instance: {}", attempts.join("; "))]
    AllCandidatesFailed {
        cluster: ClusterName,
        attempts: Vec<String>,
    },
    #[error(
        "cluster {cluster}: gave up waiting for another caller's regeneration after {waited:?}"
    )]
    WaitTimedOut {
        cluster: ClusterName,
        waited: Duration,
    },
    #[error("cluster {cluster}: {source}")]
    Aws {
        cluster: ClusterName,
        source: AwsCallError,
    },
}

/// The single-flight lock's value.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Lock {
    holder: String,
    expires_at: String,
    #[serde(default)]
    command_id: String,
    #[serde(default)]
    instance_id: String,
}

#[derive(Clone, Debug)]
pub struct Regenerator {
    config: Config,
    parameters: ParameterStore,
    fleet: Fleet,
    runner: CommandRunner,
}

static HOLDER_SEQ: AtomicU64 = AtomicU64::new(0);

fn new_holder_id() -> String {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    format!(
        "{}-{}-{}",
        std::process::id(),
        nanos,
        HOLDER_SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

fn summary(
    stored: &StoredRecord,
    version: Option<i64>,
    remaining: Duration,
) -> Option<RecordSummary> {
    match stored {
        StoredRecord::Present(r) => Some(RecordSummary {
            token_id: r.token_id.clone(),
            expires_at: r.expires_at,
            remaining,
            version: version.unwrap_or_default(),
        }),
        _ => None,
    }
}

impl Regenerator {
    pub fn new(config: Config, clients: &AwsClients) -> Self {
        Regenerator {
            parameters: ParameterStore::new(clients.ssm.clone()),
            fleet: Fleet::new(clients),
            runner: CommandRunner::new(
                clients.ssm.clone(),
                config.command_poll,
                config.command_deadline,
            ),
            config,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    pub fn runner(&self) -> &CommandRunner {
        &self.runner
    }

    /// How long a lock is honoured: room for the command on up to three control planes.
    fn lock_ttl(&self) -> Duration {
        self.config.command_deadline * 3 + Duration::from_secs(30)
    }

    /// Makes sure the cluster's record stays valid for at least `required`, regenerating it
    /// (single-flight) when it does not.
    pub async fn ensure_fresh(
        &self,
        cluster: &ClusterName,
        required: Duration,
    ) -> Result<Ensured, RegenerateError> {
        let aws = |source| RegenerateError::Aws {
            cluster: cluster.clone(),
            source,
        };
        let record_name = self.config.record_parameter(cluster);
        let lock_name = self.config.lock_parameter(cluster);
        let started = Instant::now();
        let give_up = self.lock_ttl() + self.config.command_deadline;
        let mut waited = false;
        loop {
            let read = self
                .parameters
                .read_record(&record_name)
                .await
                .map_err(aws)?;
            let verdict = decide(&read.stored, OffsetDateTime::now_utc(), required);
            if let Freshness::Fresh { remaining } = verdict {
                let s = summary(&read.stored, read.version, remaining)
                    .ok_or_else(|| aws(internal("fresh record vanished")))?;
                return Ok(if waited {
                    Ensured::RegeneratedElsewhere(s)
                } else {
                    Ensured::AlreadyFresh(s)
                });
            }
            if !waited {
                info!(cluster = %cluster, reason = verdict.label(), detail = ?verdict, "join record needs regeneration");
            }

            let holder = new_holder_id();
            let lock = Lock {
                holder: holder.clone(),
                expires_at: timefmt::rfc3339(OffsetDateTime::now_utc() + self.lock_ttl()),
                command_id: String::new(),
                instance_id: String::new(),
            };
            let lock_json =
                serde_json::to_string(&lock).map_err(|e| aws(internal(&e.to_string())))?;
            if self
                .parameters
                .create_only(&lock_name, &lock_json)
                .await
                .map_err(aws)?
            {
                let result = self
                    .regenerate_holding_lock(cluster, lock, required, verdict)
                    .await;
                self.release(&lock_name, &holder).await;
                return result;
            }

            // Another caller holds the lock: wait for its result.
            waited = true;
            if let Some((value, _)) = self.parameters.get(&lock_name, false).await.map_err(aws)? {
                let held: Option<Lock> = serde_json::from_str(&value).ok();
                let expired = held
                    .as_ref()
                    .and_then(|l| timefmt::parse(&l.expires_at))
                    .is_none_or(|at| at <= OffsetDateTime::now_utc());
                if expired && !self.command_in_flight(held.as_ref()).await {
                    warn!(cluster = %cluster, "taking over an expired regeneration lock");
                    self.parameters.delete(&lock_name).await.map_err(aws)?;
                    continue;
                }
            } else {
                continue; // released between our create and our read: try again at once
            }
            if started.elapsed() > give_up {
                return Err(RegenerateError::WaitTimedOut {
                    cluster: cluster.clone(),
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(self.config.command_poll).await;
        }
    }

    async fn command_in_flight(&self, lock: Option<&Lock>) -> bool {
        let Some(lock) = lock else { return false };
        let Ok(instance) = InstanceId::parse(&lock.instance_id) else {
            return false;
        };
        if lock.command_id.is_empty() {
            return false;
        }
        matches!(
            self.runner.poll_once(&instance, &lock.command_id).await,
            Ok((Progress::Waiting, _))
        )
    }

    async fn release(&self, lock_name: &str, holder: &str) {
        let still_ours = match self.parameters.get(lock_name, false).await {
            Ok(Some((value, _))) => {
                serde_json::from_str::<Lock>(&value).is_ok_and(|l| l.holder == holder)
            }
            Ok(None) => false,
            Err(err) => {
                warn!(error = %err, "could not read the regeneration lock to release it; it will expire");
                false
            }
        };
        if still_ours {
            if let Err(err) = self.parameters.delete(lock_name).await {
                warn!(error = %err, "could not release the regeneration lock; it will expire");
            }
        }
    }

    async fn regenerate_holding_lock(
        &self,
        cluster: &ClusterName,
        mut lock: Lock,
        required: Duration,
        reason: Freshness,
    ) -> Result<Ensured, RegenerateError> {
        let aws = |source| RegenerateError::Aws {
            cluster: cluster.clone(),
            source,
        };
        let record_name = self.config.record_parameter(cluster);
        let lock_name = self.config.lock_parameter(cluster);

        // Double check: a regeneration may have finished between our read and our lock.
        let before = self
            .parameters
            .read_record(&record_name)
            .await
            .map_err(aws)?;
        if let Freshness::Fresh { remaining } =
            decide(&before.stored, OffsetDateTime::now_utc(), required)
        {
            let s = summary(&before.stored, before.version, remaining)
                .ok_or_else(|| aws(internal("fresh record vanished")))?;
            return Ok(Ensured::RegeneratedElsewhere(s));
        }

        let candidates = self
            .fleet
            .control_plane_candidates(cluster)
            .await
            .map_err(aws)?;
        if candidates.is_empty() {
            return Err(RegenerateError::NoControlPlane {
                cluster: cluster.clone(),
            });
        }
        let mut attempts = Vec::new();
        for instance in &candidates {
            let request = CommandRequest {
                instance,
                document: &self.config.documents.regenerate,
                parameters: vec![
                    ("ClusterName", cluster.to_string()),
                    ("ParameterPrefix", self.config.parameter_prefix.clone()),
                    (
                        "TokenTtlSeconds",
                        self.config.token_ttl.as_secs().to_string(),
                    ),
                ],
                comment: format!("joinkeeper: regenerate the join record of {cluster}"),
            };
            let outcome = match self.runner.send(&request).await {
                Ok(command_id) => {
                    lock.command_id = command_id.clone();
                    lock.instance_id = instance.to_string();
                    if let Ok(json) = serde_json::to_string(&lock) {
                        // Only an aid for waiters; failing to record it is harmless.
                        let _ = self.parameters.overwrite(&lock_name, &json).await;
                    }
                    self.runner.wait(instance, &command_id).await
                }
                Err(err) => Err(err),
            };
            match outcome {
                Ok(_output) => match self
                    .verify(&record_name, before.version, required)
                    .await
                    .map_err(aws)?
                {
                    Ok(summary) => {
                        return Ok(Ensured::Regenerated {
                            summary,
                            instance: instance.clone(),
                            reason,
                        });
                    }
                    Err(why) => {
                        warn!(cluster = %cluster, instance = %instance, reason = %why, "regeneration not verified; trying the next control plane");
                        attempts.push(format!("{instance}: {why}"));
                    }
                },
                Err(err) if err.try_another_instance() => {
                    warn!(cluster = %cluster, instance = %instance, error = %err, "regeneration failed on this control plane; trying the next");
                    attempts.push(err.to_string());
                }
                Err(crate::aws::run_command::RunCommandError::Aws(source)) => {
                    return Err(aws(source))
                }
                Err(err) => return Err(aws(internal(&err.to_string()))),
            }
        }
        Err(RegenerateError::AllCandidatesFailed {
            cluster: cluster.clone(),
            attempts,
        })
    }

    /// A new version of the record was written, and it is fresh for the required time.
    async fn verify(
        &self,
        record_name: &str,
        before: Option<i64>,
        required: Duration,
    ) -> Result<Result<RecordSummary, String>, AwsCallError> {
        let after = self.parameters.read_record(record_name).await?;
        if after.version.is_none() || after.version <= before {
            return Ok(Err(
                "the command succeeded but no new record was written".into()
            ));
        }
        Ok(
            match decide(&after.stored, OffsetDateTime::now_utc(), required) {
                Freshness::Fresh { remaining } => summary(&after.stored, after.version, remaining)
                    .ok_or_else(|| "new record unreadable".to_owned()),
                other => Err(format!("the new record is not fresh: {}", other.label())),
            },
        )
    }
}

fn internal(message: &str) -> AwsCallError {
    AwsCallError {
        operation: "internal",
        code: None,
        message: message.to_owned(),
    }
}
