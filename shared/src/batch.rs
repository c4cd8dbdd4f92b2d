//! A batch of lifecycle events from the SQS queue (Lambda's event source mapping): look the
//! batch's groups up at once, reconcile each cluster once, and answer with the messages the
//! queue must deliver again (`ReportBatchItemFailures`). A message is acknowledged only once its
//! cluster's reconcile ran (or found another invocation running it, which picks the action up),
//! or when it can never be handled ([`crate::queue`]).
//!
//! Either lifecycle function may receive either transition from the queue: both run the same
//! per-cluster reconcile, which decides every pending action of the cluster whatever woke it.

use std::collections::BTreeMap;

use serde::Serialize;
use tracing::{info, warn, Instrument};

use crate::context::{Context, Invocation};
use crate::queue::{batch_response, groups_of, parse_batch, plan_batch, read_message, standing_of};
use crate::reconcile::{reconcile, ReconcileOutcome};

/// The answer to a batch: Lambda reads `batchItemFailures`; the rest is for callers in-process.
#[derive(Clone, Debug, Serialize)]
pub struct BatchAnswer {
    #[serde(flatten)]
    pub response: aws_lambda_events::event::sqs::SqsBatchResponse,
    #[serde(skip)]
    pub reconciled: Vec<ReconcileOutcome>,
    /// Messages acknowledged without a reconcile.
    #[serde(skip)]
    pub dropped: usize,
}

/// A batch whose envelope is not Lambda's SQS event (its text may quote the input: only the
/// parser's category is kept).
#[derive(Debug, thiserror::Error)]
#[error("not an SQS batch ({0} error)")]
pub struct BadBatch(String);

/// Handles an SQS batch of lifecycle events.
pub async fn handle_batch(
    ctx: &Context,
    payload: &serde_json::Value,
    inv: &Invocation,
) -> Result<BatchAnswer, BadBatch> {
    let batch = parse_batch(payload).map_err(|e| BadBatch(format!("{:?}", e.classify())))?;
    let mut messages = Vec::with_capacity(batch.records.len());
    for r in &batch.records {
        match &r.message_id {
            Some(id) => messages.push((
                id.clone(),
                read_message(r.body.as_deref(), &ctx.config.hook_prefix),
            )),
            None => warn!("a record without a messageId: it cannot be reported, skipped"),
        }
    }
    let names = groups_of(&messages);
    let standings = match ctx.asg.group_labels(&names).await {
        Ok(found) => {
            let by_name: BTreeMap<_, _> = found.iter().map(|g| (g.name.clone(), g)).collect();
            names
                .iter()
                .map(|n| (n.clone(), standing_of(by_name.get(n).copied())))
                .collect()
        }
        Err(err) => {
            warn!(error = %err, groups = names.len(), "could not look the batch's groups up; their messages are delivered again");
            BTreeMap::new()
        }
    };
    let plan = plan_batch(&messages, &standings);
    for (id, why) in &plan.dropped {
        info!(message_id = %id, reason = %why, "message acknowledged without a reconcile");
    }
    let runs = plan.clusters.iter().map(|(cluster, ids)| async move {
        let span = tracing::info_span!("batch", cluster = %cluster, messages = ids.len());
        (ids, reconcile(ctx, cluster, inv).instrument(span).await)
    });
    let mut failed = plan.unanswered.clone();
    let mut reconciled = Vec::new();
    for (ids, result) in futures_util::future::join_all(runs).await {
        match result {
            Ok(outcome) => reconciled.push(outcome),
            Err(err) => {
                warn!(error = %err, messages = ids.len(), "reconcile failed; its messages are delivered again");
                failed.extend(ids.iter().cloned());
            }
        }
    }
    info!(
        messages = messages.len(),
        clusters = plan.clusters.len(),
        dropped = plan.dropped.len(),
        failed = failed.len(),
        "batch handled"
    );
    Ok(BatchAnswer {
        response: batch_response(failed),
        reconciled,
        dropped: plan.dropped.len(),
    })
}
