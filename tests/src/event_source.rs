//! The local stand-in for what AWS does between a lifecycle event and a function: EventBridge's
//! rule delivering each event into the SQS queue, and Lambda's SQS event source mapping polling
//! that queue, batching, invoking, deleting what succeeded and leaving what failed to the queue's
//! redrive policy. Modelled on the AWS documentation:
//! - batches of up to `batch_size` messages, gathered for at most `window` (the mapping's
//!   `BatchSize` and `MaximumBatchingWindowInSeconds`), by `ReceiveMessage` calls of at most 10
//!   messages (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-parameters.html);
//! - concurrent batches: at least 2 (the idle minimum), one more every 200 ms (300 a minute)
//!   while every batch is being invoked and messages wait, at most 1,000
//!   (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html);
//! - with `ReportBatchItemFailures`, the messages the function names are left in the queue; an
//!   invocation that fails leaves the whole batch; left messages come back after the visibility
//!   timeout and move to the dead-letter queue after `maxReceiveCount` receives (the queue's
//!   redrive policy, which the emulator's SQS applies)
//!   (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::{json, Value};

/// The mapping's settings.
#[derive(Clone, Debug)]
pub struct Mapping {
    pub batch_size: usize,
    pub window: Duration,
    pub min_batches: usize,
    pub max_batches: usize,
}

/// The account stack's queue and mapping settings, from their one source
/// (`infra/lib/event-source.json`, which the stack, this mapping and the demo's read).
#[derive(Clone, Debug)]
pub struct StackSettings {
    pub mapping: Mapping,
    /// The queue's visibility timeout is this many times the function timeout.
    pub visibility_factor: u32,
    pub max_receive: u32,
}

/// Reads `infra/lib/event-source.json`.
pub fn stack_settings() -> StackSettings {
    let v: Value = serde_json::from_str(include_str!("../../infra/lib/event-source.json"))
        .expect("infra/lib/event-source.json is JSON");
    let n = |k: &str| {
        v[k].as_u64()
            .unwrap_or_else(|| panic!("event-source.json: {k}"))
    };
    StackSettings {
        mapping: Mapping {
            batch_size: n("batchSize") as usize,
            window: Duration::from_secs(n("batchWindowSeconds")),
            min_batches: 2,
            max_batches: 1000,
        },
        visibility_factor: n("visibilityTimeoutFactor") as u32,
        max_receive: n("maxReceiveCount") as u32,
    }
}

/// A queue and its dead-letter queue.
#[derive(Clone, Debug)]
pub struct Queue {
    pub url: String,
    pub arn: String,
    pub dead_letter_url: String,
}

/// What the mapping did.
#[derive(Clone, Debug, Default)]
pub struct MappingStats {
    pub invocations: usize,
    pub failed_invocations: usize,
    pub messages_failed: usize,
    pub peak_batches: usize,
}

async fn arn_of(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName;
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .ok()
        .and_then(|o| o.attributes()?.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap_or_default()
}

/// Creates `name` with a dead-letter queue after `max_receive` receives, as the account stack
/// does.
pub async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    visibility: Duration,
    max_receive: u32,
) -> Queue {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{name}-dead-letters"))
        .send()
        .await
        .expect("dead-letter queue");
    let dead_letter_url = dlq.queue_url().unwrap_or_default().to_owned();
    let dlq_arn = arn_of(sqs, &dead_letter_url).await;
    let redrive = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive});
    let q = sqs
        .create_queue()
        .queue_name(name)
        .attributes(A::VisibilityTimeout, visibility.as_secs().to_string())
        .attributes(A::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .expect("queue");
    let url = q.queue_url().unwrap_or_default().to_owned();
    Queue {
        arn: arn_of(sqs, &url).await,
        url,
        dead_letter_url,
    }
}

/// EventBridge's SQS target: each event becomes one message whose body is the event.
pub async fn send_event(sqs: &aws_sdk_sqs::Client, queue: &Queue, event: &Value) {
    let _ = sqs
        .send_message()
        .queue_url(&queue.url)
        .message_body(event.to_string())
        .send()
        .await;
}

/// How many messages the queue holds (visible, or in flight when `in_flight`).
pub async fn depth(sqs: &aws_sdk_sqs::Client, url: &str, in_flight: bool) -> usize {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let name = if in_flight {
        A::ApproximateNumberOfMessagesNotVisible
    } else {
        A::ApproximateNumberOfMessages
    };
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(name.clone())
        .send()
        .await
        .ok()
        .and_then(|o| o.attributes()?.get(&name)?.parse().ok())
        .unwrap_or(0)
}

/// The record Lambda builds for a message.
fn record(queue: &Queue, m: &aws_sdk_sqs::types::Message) -> Value {
    json!({
        "messageId": m.message_id(),
        "receiptHandle": m.receipt_handle(),
        "body": m.body(),
        "attributes": m.attributes().map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), Value::from(v.clone()))).collect::<serde_json::Map<_, _>>()),
        "messageAttributes": {},
        "md5OfBody": m.md5_of_body(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue.arn,
        "awsRegion": "us-east-1",
    })
}

/// Gathers one batch: up to `batch_size` messages, for at most `window` after the first.
/// Empty when `stop` is set and nothing came.
async fn gather(
    sqs: &aws_sdk_sqs::Client,
    queue: &Queue,
    m: &Mapping,
    stop: &AtomicBool,
) -> Vec<aws_sdk_sqs::types::Message> {
    let mut batch = Vec::new();
    let mut first: Option<Instant> = None;
    loop {
        let wait = match first {
            None => 1,
            Some(t) => m.window.saturating_sub(t.elapsed()).as_secs().min(20) as i32,
        };
        let got = sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages((m.batch_size - batch.len()).min(10) as i32)
            .wait_time_seconds(wait)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .map(|o| o.messages().to_vec())
            .unwrap_or_default();
        if first.is_none() && !got.is_empty() {
            first = Some(Instant::now());
        }
        let none = got.is_empty();
        batch.extend(got);
        match first {
            None if stop.load(Ordering::SeqCst) => return batch,
            None => {}
            Some(t) if batch.len() >= m.batch_size || t.elapsed() >= m.window => return batch,
            Some(_) if none && wait == 0 => tokio::time::sleep(Duration::from_millis(100)).await,
            Some(_) => {}
        }
    }
}

/// Runs the mapping until `stop` is set and every batch in progress is done. `invoke` gets the
/// SQS event and answers with the message ids that failed (`Err`: the invocation failed).
pub async fn run_mapping<F, Fut>(
    sqs: aws_sdk_sqs::Client,
    queue: Queue,
    mapping: Mapping,
    stop: Arc<AtomicBool>,
    invoke: F,
) -> MappingStats
where
    F: Fn(Value) -> Fut + Clone,
    Fut: Future<Output = Result<Vec<String>, String>>,
{
    let busy = Arc::new(AtomicUsize::new(0));
    let stats = Arc::new(std::sync::Mutex::new(MappingStats::default()));
    let poller = |sqs: aws_sdk_sqs::Client| {
        let (queue, mapping, stop, busy, stats, invoke) = (
            queue.clone(),
            mapping.clone(),
            stop.clone(),
            busy.clone(),
            stats.clone(),
            invoke.clone(),
        );
        async move {
            loop {
                let batch = gather(&sqs, &queue, &mapping, &stop).await;
                if batch.is_empty() {
                    return;
                }
                let event =
                    json!({"Records": batch.iter().map(|m| record(&queue, m)).collect::<Vec<_>>()});
                busy.fetch_add(1, Ordering::SeqCst);
                let answer = invoke(event).await;
                busy.fetch_sub(1, Ordering::SeqCst);
                let failed = {
                    let mut s = stats.lock().expect("stats");
                    s.invocations += 1;
                    match &answer {
                        Ok(ids) => s.messages_failed += ids.len(),
                        Err(_) => s.failed_invocations += 1,
                    }
                    answer.unwrap_or_else(|_| {
                        batch
                            .iter()
                            .filter_map(|m| m.message_id().map(str::to_owned))
                            .collect()
                    })
                };
                let done: Vec<_> = batch
                    .iter()
                    .filter(|m| {
                        !m.message_id()
                            .is_some_and(|id| failed.iter().any(|f| f == id))
                    })
                    .collect();
                for chunk in done.chunks(10) {
                    let entries = chunk.iter().enumerate().filter_map(|(i, m)| {
                        aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(m.receipt_handle()?)
                            .build()
                            .ok()
                    });
                    let _ = sqs
                        .delete_message_batch()
                        .queue_url(&queue.url)
                        .set_entries(Some(entries.collect()))
                        .send()
                        .await;
                }
            }
        }
    };
    // One task: the batches are polled together here (the functions' futures are not `Send`
    // across every lifetime they borrow, so they are not spawned).
    let mut pollers = FuturesUnordered::new();
    for _ in 0..mapping.min_batches {
        pollers.push(poller(sqs.clone()));
    }
    let mut running = mapping.min_batches;
    loop {
        tokio::select! {
            Some(()) = pollers.next(), if !pollers.is_empty() => running -= 1,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if !stop.load(Ordering::SeqCst)
                    && busy.load(Ordering::SeqCst) >= running
                    && running < mapping.max_batches
                    && depth(&sqs, &queue.url, false).await > 0
                {
                    pollers.push(poller(sqs.clone()));
                    running += 1;
                }
            }
        }
        {
            let mut s = stats.lock().expect("stats");
            s.peak_batches = s.peak_batches.max(running);
        }
        if stop.load(Ordering::SeqCst) && pollers.is_empty() {
            break;
        }
    }
    let s = stats.lock().expect("stats").clone();
    s
}
