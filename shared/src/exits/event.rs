//! The events that announce a worker's exit outside any lifecycle hook, read in the shapes
//! EventBridge delivers (EC2's and AWS Health's documented events). An event only names
//! instances and a time: which cluster an instance belongs to is asked of EC2 and Auto Scaling,
//! never taken from the event. A malformed event is refused with a clear error, nothing read or
//! changed.

use serde_json::Value;

use crate::events::{text, EventError};
use crate::exits::Door;
use crate::names::InstanceId;

/// EC2's two-minute notice before it reclaims a Spot Instance.
pub const SPOT_WARNING: &str = "EC2 Spot Instance Interruption Warning";
pub const REBALANCE: &str = "EC2 Instance Rebalance Recommendation";
pub const STATE_CHANGE: &str = "EC2 Instance State-change Notification";
pub const HEALTH: &str = "AWS Health Event";
/// How long before the interruption the Spot warning comes (EC2's documented notice).
pub const SPOT_NOTICE_MS: i64 = 120_000;

/// AWS Health event types that schedule a stop, retirement or reboot of an EC2 instance.
pub const MAINTENANCE_CODES: &[&str] = &[
    "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED",
    "AWS_EC2_PERSISTENT_INSTANCE_RETIREMENT_SCHEDULED",
    "AWS_EC2_INSTANCE_STOP_SCHEDULED",
    "AWS_EC2_INSTANCE_REBOOT_MAINTENANCE_SCHEDULED",
    "AWS_EC2_INSTANCE_REBOOT_FLEXIBLE_MAINTENANCE_SCHEDULED",
    "AWS_EC2_SYSTEM_REBOOT_MAINTENANCE_SCHEDULED",
    "AWS_EC2_SYSTEM_MAINTENANCE_SCHEDULED",
];

/// EC2 instance states an instance leaves service by (`EC2 Instance State-change Notification`).
pub const LEAVING_STATES: &[&str] = &["stopping", "stopped", "shutting-down", "terminated"];

/// What one event says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitEvent {
    /// Instances leave by `door`; `deadline_ms`: when they go (Spot: the interruption;
    /// maintenance: the window's start), when the event says.
    Leaving {
        door: Door,
        instances: Vec<InstanceId>,
        deadline_ms: Option<i64>,
        /// The EC2 state a state-change event reports.
        state: Option<String>,
    },
    /// Of the right source but nothing joinkeeper acts on (a `running` state change, a Health
    /// event of another type).
    Ignored { reason: String },
}

/// Whether a payload is one of the exit events (the terminate function takes them too).
pub fn is_exit_event(payload: &Value) -> bool {
    let source = payload.get("source").and_then(Value::as_str);
    let kind = payload.get("detail-type").and_then(Value::as_str);
    matches!(
        (source, kind),
        (
            Some("aws.ec2"),
            Some(SPOT_WARNING | REBALANCE | STATE_CHANGE)
        ) | (Some("aws.health"), Some(HEALTH))
    )
}

fn instance(v: &str, field: &'static str) -> Result<InstanceId, EventError> {
    InstanceId::parse(v).map_err(|_| EventError::Unexpected {
        field,
        found: crate::names::printable(v, 40),
        expected: "an instance id",
    })
}

fn time_ms(text: &str, field: &'static str) -> Result<i64, EventError> {
    parse_time(text)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .ok_or_else(|| EventError::Unexpected {
            field,
            found: crate::names::printable(text, 40),
            expected: "a time (RFC 3339 or RFC 1123)",
        })
}

/// RFC 3339 (`2026-11-27T00:00:00Z`) or the RFC 1123 form AWS Health writes
/// (`Wed, 31 Jan 2023 21:00:00 GMT`).
fn parse_time(text: &str) -> Option<time::OffsetDateTime> {
    use time::format_description::well_known::Rfc2822;
    crate::timefmt::parse(text).or_else(|| {
        let rfc2822 = text.strip_suffix(" GMT").map(|t| format!("{t} +0000"));
        time::OffsetDateTime::parse(rfc2822.as_deref().unwrap_or(text), &Rfc2822).ok()
    })
}

/// Reads one exit event.
pub fn parse_exit_event(payload: &Value) -> Result<ExitEvent, EventError> {
    if !payload.is_object() {
        return Err(EventError::NotAnObject);
    }
    let source = text(payload, "source")?;
    let kind = text(payload, "detail-type")?;
    let sent_ms = time_ms(text(payload, "time")?, "time")?;
    let detail = payload
        .get("detail")
        .filter(|d| d.is_object())
        .ok_or(EventError::MissingField("detail"))?;
    let leaving = |door, instances, deadline_ms, state| {
        Ok(ExitEvent::Leaving {
            door,
            instances,
            deadline_ms,
            state,
        })
    };
    match (source, kind) {
        ("aws.ec2", SPOT_WARNING) => {
            let id = instance(text(detail, "instance-id")?, "detail.instance-id")?;
            let action = text(detail, "instance-action")?;
            if !matches!(action, "terminate" | "stop" | "hibernate") {
                return Err(EventError::Unexpected {
                    field: "detail.instance-action",
                    found: crate::names::printable(action, 20),
                    expected: "terminate, stop or hibernate",
                });
            }
            leaving(
                Door::Spot,
                vec![id],
                Some(sent_ms + SPOT_NOTICE_MS),
                Some(action.to_owned()),
            )
        }
        ("aws.ec2", REBALANCE) => {
            let id = instance(text(detail, "instance-id")?, "detail.instance-id")?;
            leaving(Door::Rebalance, vec![id], None, None)
        }
        ("aws.ec2", STATE_CHANGE) => {
            let id = instance(text(detail, "instance-id")?, "detail.instance-id")?;
            let state = text(detail, "state")?;
            if !LEAVING_STATES.contains(&state) {
                return Ok(ExitEvent::Ignored {
                    reason: format!("state {} is no exit", crate::names::printable(state, 20)),
                });
            }
            leaving(Door::Stopped, vec![id], None, Some(state.to_owned()))
        }
        ("aws.health", HEALTH) => health(payload, detail),
        _ => Err(EventError::Unexpected {
            field: "detail-type",
            found: crate::names::printable(kind, 60),
            expected: "an EC2 Spot, rebalance, state-change or AWS Health event",
        }),
    }
}

fn health(payload: &Value, detail: &Value) -> Result<ExitEvent, EventError> {
    let code = text(detail, "eventTypeCode")?;
    if text(detail, "service")? != "EC2" || !MAINTENANCE_CODES.contains(&code) {
        return Ok(ExitEvent::Ignored {
            reason: format!(
                "Health event {} schedules no instance maintenance",
                crate::names::printable(code, 60)
            ),
        });
    }
    let start = time_ms(text(detail, "startTime")?, "detail.startTime")?;
    // The instances: `affectedEntities[].entityValue`, else `resources`.
    let mut names: Vec<&str> = detail
        .get("affectedEntities")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|e| e.get("entityValue").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        names = payload
            .get("resources")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
    }
    let mut instances = Vec::new();
    for n in names {
        instances.push(instance(n, "detail.affectedEntities")?);
    }
    if instances.is_empty() {
        return Err(EventError::MissingField("detail.affectedEntities"));
    }
    instances.sort();
    instances.dedup();
    Ok(ExitEvent::Leaving {
        door: Door::Maintenance,
        instances,
        deadline_ms: Some(start),
        state: None,
    })
}

#[cfg(test)]
mod tests;

/// The account stack's EventBridge rules for these events (`infra/lib/exit-events.json`, which
/// the test `exit_rules_are_exported_to_the_cdk_app` writes from this module): exact patterns,
/// so the function is invoked for nothing it would ignore.
pub fn rules_json() -> String {
    let rule = |id: &str, description: &str, source: &str, kind: &str, detail: Value| {
        let mut pattern = serde_json::json!({"source": [source], "detail-type": [kind]});
        if !detail.is_null() {
            pattern["detail"] = detail;
        }
        serde_json::json!({"id": id, "description": description, "pattern": pattern})
    };
    let table = serde_json::json!({
        "generated": "from shared/src/exits/event.rs by `JOINKEEPER_WRITE_SETTINGS=1 cargo test -p joinkeeper --lib exit_rules`; do not edit",
        "rules": [
            rule("SpotInterruptionRule", "joinkeeper: a Spot worker is reclaimed in two minutes", "aws.ec2", SPOT_WARNING, Value::Null),
            rule("RebalanceRecommendationRule", "joinkeeper: a Spot worker is at elevated risk of interruption", "aws.ec2", REBALANCE, Value::Null),
            rule("InstanceStateChangeRule", "joinkeeper: a worker stops or terminates outside any hook", "aws.ec2", STATE_CHANGE, serde_json::json!({"state": LEAVING_STATES})),
            rule("ScheduledMaintenanceRule", "joinkeeper: AWS Health scheduled a worker's retirement, stop or reboot", "aws.health", HEALTH, serde_json::json!({"service": ["EC2"], "eventTypeCode": MAINTENANCE_CODES})),
        ],
    });
    serde_json::to_string_pretty(&table).expect("serializable") + "\n"
}
