//! token-refresher: on the EventBridge schedule, keeps every cluster's join record valid.
//!
//! Thin handler: configuration and AWS clients are built once per process, outside the handler;
//! the work is `joinkeeper::refresh::refresh_all`.

use joinkeeper::refresh::{refresh_all, RefreshSummary};
use joinkeeper::regenerate::Regenerator;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Error> {
    joinkeeper::telemetry::init();
    let config = joinkeeper::Config::from_env()?;
    let clients = joinkeeper::aws::AwsClients::from_env().await;
    let regenerator = Regenerator::new(config, &clients);
    let regenerator = &regenerator;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let span = tracing::info_span!("token-refresher", request_id = %event.context.request_id);
        handle(regenerator, event.payload).instrument(span).await
    }))
    .await
}

/// Validates the scheduled event, refreshes every cluster, and fails the invocation when any
/// cluster failed so Lambda's error metric and retries see it.
async fn handle(regenerator: &Regenerator, payload: Value) -> Result<RefreshSummary, Error> {
    let event = joinkeeper::events::parse_scheduled(&payload)?;
    tracing::info!(event_id = %event.id, event_time = %event.time, "scheduled refresh started");
    let summary = refresh_all(regenerator).await?;
    let failed = summary.failed();
    if failed > 0 {
        let names: Vec<&str> = summary
            .clusters
            .iter()
            .filter(|c| c.outcome == joinkeeper::refresh::Outcome::Failed)
            .map(|c| c.cluster.as_str())
            .collect();
        return Err(format!(
            "{failed} of {} clusters failed to refresh: {}",
            summary.clusters.len(),
            names.join(", ")
        )
        .into());
    }
    Ok(summary)
}
