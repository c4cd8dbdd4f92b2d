//! token-refresher: on the EventBridge schedule, keeps every cluster's join record valid, then
//! sweeps managed groups for lifecycle actions whose event was lost.
//!
//! Thin handler: configuration and AWS clients are built once per process, outside the handler.

#![recursion_limit = "256"] // the hook futures nest deeply (SDK calls inside retry loops)

use joinkeeper::hooks::{HookReport, Hooks};
use joinkeeper::refresh::{refresh_all, Outcome, RefreshSummary};
use joinkeeper::regenerate::Regenerator;
use lambda_runtime::Error;
use serde::Serialize;
use serde_json::Value;

#[derive(Serialize)]
struct ScheduledResult {
    refresh: RefreshSummary,
    sweep: Vec<HookReport>,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    joinkeeper::telemetry::init();
    let config = joinkeeper::Config::from_env()?;
    let clients = joinkeeper::aws::AwsClients::from_env().await;
    let regenerator = Regenerator::new(config, &clients);
    let hooks = Hooks::new(regenerator.clone(), &clients);
    joinkeeper::runtime::serve("token-refresher", |event| {
        handle(&regenerator, &hooks, event)
    })
    .await
}

/// Validates the scheduled event, refreshes every cluster, sweeps waiting lifecycle actions, and
/// fails the invocation when any cluster failed so Lambda's error metric and retries see it.
async fn handle(
    regenerator: &Regenerator,
    hooks: &Hooks,
    payload: Value,
) -> Result<ScheduledResult, Error> {
    let event = joinkeeper::events::parse_scheduled(&payload)?;
    tracing::info!(event_id = %event.id, event_time = %event.time, "scheduled run started");
    let refresh = refresh_all(regenerator).await?;
    let sweep = hooks.sweep().await?;
    let failed: Vec<&str> = refresh
        .clusters
        .iter()
        .filter(|c| c.outcome == Outcome::Failed)
        .map(|c| c.cluster.as_str())
        .collect();
    if !failed.is_empty() {
        return Err(format!(
            "{} of {} clusters failed to refresh: {}",
            failed.len(),
            refresh.clusters.len(),
            failed.join(", ")
        )
        .into());
    }
    Ok(ScheduledResult { refresh, sweep })
}
