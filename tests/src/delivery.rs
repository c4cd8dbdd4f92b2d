//! Delivering lifecycle events to the handler the way the integration tests need: every event at
//! once, as Lambda would, each with an invocation of its own.

use std::time::Duration;

use joinkeeper::deadline::Deadline;
use joinkeeper::handler::{handle_lifecycle, LifecycleResponse};
use joinkeeper::lifecycle::Transition;
use joinkeeper::reconcile::{ActionReport, ReconcileOutcome};
use joinkeeper::{Context, Invocation};
use serde_json::Value;

/// An invocation named `name` with `seconds` to live.
pub fn inv(name: &str, seconds: u64) -> Invocation {
    Invocation::new(name, Deadline::after(Duration::from_secs(seconds)))
}

/// Every event delivered at once, as Lambda would; the final decisions of whichever
/// invocations reconciled.
pub async fn handle_all(
    ctx: &Context,
    events: &[Value],
    transition: Transition,
) -> Vec<ActionReport> {
    let futures = events.iter().enumerate().map(|(i, e)| async move {
        handle_lifecycle(ctx, e, transition, &inv(&format!("req-{i}"), 120)).await
    });
    let mut reports = Vec::new();
    for r in futures_util::future::join_all(futures).await {
        if let LifecycleResponse::Reconciled {
            outcome: ReconcileOutcome::Ran(run),
            ..
        } = r.expect("handled")
        {
            reports.extend(run.actions);
        }
    }
    reports
}
