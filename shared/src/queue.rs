//! Lifecycle events delivered through an SQS queue by Lambda's event source mapping: which
//! messages belong to which cluster (pure), so that an invocation reconciles each cluster of its
//! batch once, and which messages are acknowledged without a reconcile.
//!
//! A message that can never be handled (a body that is not a lifecycle event, another tool's
//! hook, a group that does not exist or is not a joinkeeper worker group) is acknowledged with a
//! log line: redriving it could only fail the same way until it reached the dead-letter queue.
//! A message whose group could not be looked up (an AWS error) is reported as failed, so the
//! queue delivers it again: absence of an answer is not an answer.

use std::collections::BTreeMap;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use serde_json::Value;

use crate::lifecycle::{parse_event, LifecycleEvent};
use crate::names::{ClusterName, GroupName};

/// A payload is an SQS batch when it has `Records` whose first record's `eventSource` is
/// `aws:sqs`; anything else is handled as a bare EventBridge event.
pub fn is_sqs_batch(payload: &Value) -> bool {
    payload
        .get("Records")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .and_then(|r| r.get("eventSource"))
        .and_then(Value::as_str)
        == Some("aws:sqs")
}

/// Parses an SQS batch's envelope (Lambda builds it: a shape error is a bad event).
pub fn parse_batch(payload: &Value) -> Result<SqsEvent, serde_json::Error> {
    serde_json::from_value(payload.clone())
}

/// What a message of the batch asks for, read from its body alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A lifecycle action of this group.
    Group(GroupName),
    /// Nothing to do, ever: acknowledge it and say why.
    Drop(String),
}

/// Reads one message body: an EventBridge lifecycle event as the rule's SQS target delivers it.
pub fn read_message(body: Option<&str>, hook_prefix: &str) -> Message {
    let Some(body) = body else {
        return Message::Drop("message has no body".into());
    };
    let Ok(event) = serde_json::from_str::<Value>(body) else {
        return Message::Drop("message body is not JSON".into());
    };
    match parse_event(&event, hook_prefix) {
        Ok(LifecycleEvent::Action(a)) => Message::Group(a.group),
        Ok(LifecycleEvent::Ignored { reason }) => Message::Drop(format!("event ignored: {reason}")),
        Err(e) => Message::Drop(format!("bad event: {e}")),
    }
}

/// What the batch's groups turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupStanding {
    /// A worker group of this cluster.
    Cluster(ClusterName),
    /// Not joinkeeper's (unknown group, not a worker group, no valid cluster tag).
    NotManaged(String),
}

/// The plan of one invocation: each cluster once, with the messages its reconcile answers for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchPlan {
    pub clusters: BTreeMap<ClusterName, Vec<String>>,
    /// Acknowledged without a reconcile: (message id, why).
    pub dropped: Vec<(String, String)>,
    /// Reported as failed: their group could not be looked up.
    pub unanswered: Vec<String>,
}

/// Pure: groups the batch's messages by cluster. `groups` holds the standing of every group
/// looked up; a group missing from it was not answered for.
pub fn plan_batch(
    messages: &[(String, Message)],
    groups: &BTreeMap<GroupName, GroupStanding>,
) -> BatchPlan {
    let mut plan = BatchPlan::default();
    for (id, message) in messages {
        match message {
            Message::Drop(why) => plan.dropped.push((id.clone(), why.clone())),
            Message::Group(g) => match groups.get(g) {
                Some(GroupStanding::Cluster(c)) => {
                    plan.clusters.entry(c.clone()).or_default().push(id.clone())
                }
                Some(GroupStanding::NotManaged(why)) => {
                    plan.dropped.push((id.clone(), why.clone()))
                }
                None => plan.unanswered.push(id.clone()),
            },
        }
    }
    plan
}

/// The distinct groups a batch names, to look up at once.
pub fn groups_of(messages: &[(String, Message)]) -> Vec<GroupName> {
    let mut groups: Vec<GroupName> = messages
        .iter()
        .filter_map(|(_, m)| match m {
            Message::Group(g) => Some(g.clone()),
            Message::Drop(_) => None,
        })
        .collect();
    groups.sort();
    groups.dedup();
    groups
}

/// The partial batch response: the messages the queue must deliver again.
pub fn batch_response(failed: impl IntoIterator<Item = String>) -> SqsBatchResponse {
    // The types are non-exhaustive: built from defaults.
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|id| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            f
        })
        .collect();
    response
}

#[cfg(test)]
mod tests;

/// Pure: what a looked-up group is to joinkeeper (`None`: no such group). The one rule for bare
/// events and batches alike.
pub fn standing_of(found: Option<&crate::aws::group_tags::GroupLabels>) -> GroupStanding {
    match found {
        None => GroupStanding::NotManaged(
            "unknown Auto Scaling group, or not tagged joinkeeper:cluster".into(),
        ),
        Some(g) if !g.is_worker_group => {
            GroupStanding::NotManaged("group is not tagged joinkeeper:role=worker".into())
        }
        Some(g) => match &g.cluster {
            Ok(c) => GroupStanding::Cluster(c.clone()),
            Err(e) => GroupStanding::NotManaged(format!("group is not managed by joinkeeper: {e}")),
        },
    }
}
