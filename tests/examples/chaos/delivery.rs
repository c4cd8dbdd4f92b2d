//! Delivery, as Lambda does it: each lifecycle event and each scheduled run to an invocation of
//! its own, with its own clients and deadline; some killed at an AWS request; a failed, killed
//! or timed-out one delivered again up to twice. The chaos run keeps this direct delivery (one
//! bare EventBridge event per asynchronous invocation, which the functions still accept) rather
//! than the lifecycle queue's batches: it exercises the reconciler's concurrency with itself,
//! which batching would reduce; the queue's path is the burst benchmark's and the demo's.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use joinkeeper::aws::AwsClients;
use joinkeeper::handler::{handle_lifecycle, handle_schedule, LifecycleResponse};
use joinkeeper::lease::now_ms;
use joinkeeper::lifecycle::Transition;
use joinkeeper::reconcile::ReconcileOutcome;
use joinkeeper::{deadline::Deadline, Context, Invocation};
use joinkeeper_tests::*;
use serde_json::Value;

use crate::journal::{InvocationRecord, LeaseWatch, Running, Shared, INVOCATION};
use crate::rng::Rng;
use crate::{config, FUNCTION_TIMEOUT, KILL_WINDOW, RETRY_DELAYS};

#[derive(Clone)]
pub struct Delivery {
    seed: u64,
    kill: f64,
    journal: Shared,
    launch: AwsClients,
    terminate: AwsClients,
    schedule: AwsClients,
}

/// What one invocation may be: a lifecycle event or the schedule.
#[derive(Clone)]
pub enum Trigger {
    Lifecycle(Value, Transition),
    Schedule(Value),
}

impl Delivery {
    /// Each function with clients of its own (as the emulator tells the functions' calls apart).
    pub async fn new(emulator: &Emulator, seed: u64, kill: f64, journal: Shared) -> Delivery {
        Delivery {
            seed,
            kill,
            journal,
            launch: emulator.function_clients("launch-hook").await,
            terminate: emulator.function_clients("terminate-hook").await,
            schedule: emulator.function_clients("token-refresher").await,
        }
    }

    /// Delivers `trigger` as Lambda does an asynchronous invocation: the first attempt, and up to
    /// 2 retries when an attempt fails or is killed.
    pub async fn deliver(self, trigger: Trigger, label: String, index: u64) {
        for attempt in 0..3u64 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(RETRY_DELAYS[attempt as usize - 1])).await;
            }
            let mut rng = Rng::of(self.seed, &label, index * 4 + attempt);
            let budget = Duration::from_secs(rng.range(60, FUNCTION_TIMEOUT));
            // Killed at a random one of its first KILL_WINDOW requests (as it leaves: the request
            // may or may not reach AWS), plus 0-400 ms (between two calls, or while one is in
            // flight). An invocation that makes fewer requests returns unharmed.
            let kill_after = rng.chance(self.kill).then(|| {
                (
                    rng.range(1, KILL_WINDOW) as usize,
                    Duration::from_millis(rng.range(0, 400)),
                )
            });
            let id = format!("{label}-{index}-a{attempt}");
            if self.invoke(&trigger, &id, budget, kill_after).await {
                return;
            }
        }
    }

    /// One invocation; true when it returned a result (no retry).
    async fn invoke(
        &self,
        trigger: &Trigger,
        id: &str,
        budget: Duration,
        kill_after: Option<(usize, Duration)>,
    ) -> bool {
        let (function, base) = match trigger {
            Trigger::Lifecycle(_, Transition::Launching) => ("launch-hook", &self.launch),
            Trigger::Lifecycle(_, _) => ("terminate-hook", &self.terminate),
            Trigger::Schedule(_) => ("token-refresher", &self.schedule),
        };
        let clients = intercepted_clients(base, LeaseWatch(self.journal.clone()));
        let index = {
            let mut j = self.journal.lock().expect("journal");
            j.invocations.push(InvocationRecord {
                id: id.to_owned(),
                function,
                start_ms: now_ms(),
                ..Default::default()
            });
            j.invocations.len() - 1
        };
        let trigger = trigger.clone();
        let request_id = id.to_owned();
        let work = async move {
            let ctx = Context::new(config(), &clients);
            let inv = Invocation::new(
                request_id,
                Deadline::for_invocation(
                    SystemTime::now() + budget,
                    Duration::from_secs(FUNCTION_TIMEOUT),
                ),
            );
            match &trigger {
                Trigger::Lifecycle(event, t) => handle_lifecycle(&ctx, event, *t, &inv)
                    .await
                    .map(|r| summarize(&r))
                    .map_err(|e| e.to_string()),
                Trigger::Schedule(event) => handle_schedule(&ctx, event, &inv)
                    .await
                    .map(|r| {
                        format!(
                            "schedule: {} reconciled, {} rogue",
                            r.reconcile.len(),
                            r.rogue_checks.iter().map(|c| c.nodes.len()).sum::<usize>()
                        )
                    })
                    .map_err(|e| e.to_string()),
            }
        };
        let switch = Arc::new(tokio::sync::Notify::new());
        let calls: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let running = Running {
            id: id.to_owned(),
            kill_at_call: kill_after.map(|(n, _)| (n, switch.clone())),
            calls: calls.clone(),
        };
        let span = tracing::info_span!("invocation", id = %id, function);
        let work = tracing::Instrument::instrument(INVOCATION.scope(running, work), span);
        let kill = async {
            match kill_after {
                Some((_, extra)) => {
                    switch.notified().await;
                    tokio::time::sleep(extra).await;
                }
                None => std::future::pending().await,
            }
        };
        // Lambda ends the invocation at its deadline whatever it is doing.
        let result = tokio::time::timeout(budget, async {
            tokio::select! {
                r = work => Some(r),
                () = kill => None,
            }
        })
        .await;
        let (outcome, summary, done) = match result {
            Ok(Some(Ok(s))) => ("ok".to_owned(), s, true),
            Ok(Some(Err(e))) => (format!("error: {e}"), String::new(), false),
            Ok(None) => ("killed".to_owned(), String::new(), false),
            Err(_) => ("timed out".to_owned(), String::new(), false),
        };
        let mut j = self.journal.lock().expect("journal");
        let r = &mut j.invocations[index];
        r.end_ms = Some(now_ms());
        r.outcome = outcome;
        r.summary = summary;
        r.calls = calls.load(std::sync::atomic::Ordering::Relaxed);
        r.kill_planned = kill_after.map(|(n, _)| n);
        done
    }
}

fn summarize(r: &LifecycleResponse) -> String {
    match r {
        LifecycleResponse::Ignored { reason } => format!("ignored: {reason}"),
        LifecycleResponse::Reconciled {
            outcome: ReconcileOutcome::Ran(run),
            ..
        } => format!(
            "ran {} passes, {} final actions, {} pending, {:?}",
            run.passes,
            run.actions.len(),
            run.pending,
            run.stopped
        ),
        LifecycleResponse::Reconciled {
            outcome: ReconcileOutcome::HeldElsewhere { request_id, .. },
            ..
        } => format!("held elsewhere by {request_id}"),
    }
}
