//! The scheduled refresh: every cluster found by tag gets its record checked and, when less than
//! the refresh margin remains, regenerated. One failing cluster never stops the others.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::aws::fleet::ClusterScan;
use crate::context::{Context, Invocation};
use crate::names::ClusterName;
use crate::regenerate::{ensure_fresh, record_state, Ensured};
use crate::timefmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Fresh,
    Rotated,
    Failed,
}

/// What happened to one cluster; also the shape of its log line. Never holds the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterReport {
    pub cluster: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_seconds: Option<u64>,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The result of one scheduled run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RefreshSummary {
    pub clusters: Vec<ClusterReport>,
    /// Tag values that were not valid cluster names (escaped).
    pub rejected_tags: Vec<String>,
}

impl Outcome {
    /// The lowercase word logged and matched by the alarms' metric filters.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Fresh => "fresh",
            Outcome::Rotated => "rotated",
            Outcome::Failed => "failed",
        }
    }
}

impl RefreshSummary {
    pub fn failed(&self) -> usize {
        self.clusters
            .iter()
            .filter(|c| c.outcome == Outcome::Failed)
            .count()
    }
}

/// Refreshes one cluster and logs one structured line about it.
pub async fn refresh_cluster(
    ctx: &Context,
    cluster: &ClusterName,
    inv: &Invocation,
) -> ClusterReport {
    let started = Instant::now();
    let margin: Duration = ctx.config.refresh_margin;
    let result = ensure_fresh(ctx, cluster, margin, inv).await;
    let duration_ms = started.elapsed().as_millis() as u64;
    let mut report = ClusterReport {
        cluster: cluster.to_string(),
        outcome: Outcome::Fresh,
        reason: None,
        token_id: None,
        expires_at: None,
        remaining_seconds: None,
        duration_ms,
        error: None,
    };
    // What the metric says is left: `None` only when not even the meta could be read.
    let mut metric_remaining = None;
    match result {
        Ok(ensured) => {
            let s = ensured.summary();
            report.token_id = Some(s.token_id.clone());
            report.expires_at = Some(timefmt::rfc3339(s.expires_at));
            report.remaining_seconds = Some(s.remaining.as_secs());
            metric_remaining = report.remaining_seconds;
            match &ensured {
                Ensured::AlreadyFresh(_) => {}
                Ensured::Regenerated { reason, .. } => {
                    report.outcome = Outcome::Rotated;
                    report.reason = Some(reason.label().to_owned());
                }
                Ensured::RegeneratedElsewhere(_) => {
                    report.outcome = Outcome::Rotated;
                    report.reason = Some("regenerated-by-another-caller".into());
                }
            }
            info!(
                cluster = %report.cluster,
                outcome = report.outcome.label(),
                reason = report.reason.as_deref().unwrap_or(""),
                token_id = report.token_id.as_deref().unwrap_or(""),
                expires_at = report.expires_at.as_deref().unwrap_or(""),
                remaining_seconds = report.remaining_seconds.unwrap_or(0),
                duration_ms,
                "cluster refreshed"
            );
        }
        Err(err) => {
            report.outcome = Outcome::Failed;
            report.error = Some(err.to_string());
            // What is left of the last known record: the near-expiry alarm must see it most of
            // all when refreshing fails.
            if let Ok(state) = record_state(ctx, cluster, margin).await {
                // No valid record at all: nothing is left of it.
                metric_remaining = Some(0);
                if let Some(s) = state.summary {
                    report.token_id = Some(s.token_id);
                    report.expires_at = Some(timefmt::rfc3339(s.expires_at));
                    report.remaining_seconds = Some(s.remaining.as_secs());
                    metric_remaining = report.remaining_seconds;
                }
            }
            error!(
                cluster = %report.cluster,
                outcome = "failed",
                error = %err,
                remaining_seconds = report.remaining_seconds.unwrap_or(0),
                expires_at = report.expires_at.as_deref().unwrap_or(""),
                duration_ms,
                "cluster refresh failed"
            );
        }
    }
    ctx.metrics.record(crate::metrics::refresh_pass(
        &report.cluster,
        report.outcome.label(),
        metric_remaining,
        duration_ms,
    ));
    report
}

/// Refreshes every cluster found by tag, concurrently. Returns an error only when the clusters
/// could not be listed at all; per-cluster failures are in the summary.
pub async fn refresh_all(
    ctx: &Context,
    inv: &Invocation,
) -> Result<RefreshSummary, crate::aws::AwsCallError> {
    let scan = ctx.discover_clusters().await?;
    Ok(refresh_clusters(ctx, &scan, inv).await)
}

/// Refreshes every cluster of `scan`, concurrently.
pub async fn refresh_clusters(
    ctx: &Context,
    scan: &ClusterScan,
    inv: &Invocation,
) -> RefreshSummary {
    let rejected_tags: Vec<String> = scan.rejected.iter().map(|e| e.to_string()).collect();
    for rejected in &rejected_tags {
        warn!(error = %rejected, "skipping a joinkeeper:cluster tag that is not a valid cluster name");
    }
    let futures = scan
        .clusters
        .iter()
        .map(|cluster| refresh_cluster(ctx, cluster, inv));
    let clusters = futures_util::future::join_all(futures).await;
    RefreshSummary {
        clusters,
        rejected_tags,
    }
}
