//! Auto Scaling lifecycle actions: parsing the EventBridge event, and the pure decisions on what
//! to do with a waiting instance. No I/O here.

use std::time::Duration;

use serde_json::Value;

use crate::events::EventError;
use crate::names::{ActionToken, GroupName, HookName, InstanceId, NameError};

pub const LAUNCH_DETAIL_TYPE: &str = "EC2 Instance-launch Lifecycle Action";
pub const TERMINATE_DETAIL_TYPE: &str = "EC2 Instance-terminate Lifecycle Action";
pub const LAUNCHING: &str = "autoscaling:EC2_INSTANCE_LAUNCHING";
pub const TERMINATING: &str = "autoscaling:EC2_INSTANCE_TERMINATING";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Launching,
    Terminating,
}

/// One pending lifecycle action, from an event or from the sweep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifecycleAction {
    pub transition: Transition,
    pub group: GroupName,
    pub hook: HookName,
    pub instance: InstanceId,
    pub token: Option<ActionToken>,
}

/// What an incoming event is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LifecycleEvent {
    Action(LifecycleAction),
    /// A lifecycle action for a warm pool, or another event joinkeeper has no business with.
    Ignored {
        reason: String,
    },
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LifecycleEventError {
    #[error(transparent)]
    Shape(#[from] EventError),
    #[error(transparent)]
    Name(#[from] NameError),
}

fn field<'a>(obj: &'a Value, name: &'static str) -> Result<&'a str, EventError> {
    match obj.get(name) {
        None | Some(Value::Null) => Err(EventError::MissingField(name)),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(EventError::Unexpected {
            field: name,
            found: crate::names::printable(&other.to_string(), 40),
            expected: "a string",
        }),
    }
}

/// Parses an EventBridge lifecycle action event (`source: aws.autoscaling`). Every name is
/// validated against AWS's own patterns; anything else is an error and nothing is acted on.
pub fn parse_event(event: &Value) -> Result<LifecycleEvent, LifecycleEventError> {
    if !event.is_object() {
        return Err(EventError::NotAnObject.into());
    }
    let source = field(event, "source")?;
    if source != "aws.autoscaling" {
        return Ok(LifecycleEvent::Ignored {
            reason: format!("source {}", crate::names::printable(source, 40)),
        });
    }
    let detail_type = field(event, "detail-type")?;
    let expected_transition = match detail_type {
        LAUNCH_DETAIL_TYPE => Transition::Launching,
        TERMINATE_DETAIL_TYPE => Transition::Terminating,
        other => {
            return Ok(LifecycleEvent::Ignored {
                reason: format!("detail-type {}", crate::names::printable(other, 60)),
            })
        }
    };
    let detail = event
        .get("detail")
        .filter(|d| d.is_object())
        .ok_or(EventError::MissingField("detail"))?;
    let transition = match field(detail, "LifecycleTransition")? {
        LAUNCHING => Transition::Launching,
        TERMINATING => Transition::Terminating,
        other => {
            return Err(EventError::Unexpected {
                field: "LifecycleTransition",
                found: crate::names::printable(other, 60),
                expected: "an EC2 instance launching or terminating transition",
            }
            .into())
        }
    };
    if transition != expected_transition {
        return Err(EventError::Unexpected {
            field: "LifecycleTransition",
            found: format!("{transition:?}"),
            expected: "the transition named by detail-type",
        }
        .into());
    }
    // Instances going to or coming from a warm pool are not joining or leaving the cluster.
    for key in ["Origin", "Destination"] {
        if detail.get(key).and_then(Value::as_str) == Some("WarmPool") {
            return Ok(LifecycleEvent::Ignored {
                reason: format!("{key} is WarmPool"),
            });
        }
    }
    Ok(LifecycleEvent::Action(LifecycleAction {
        transition,
        group: GroupName::parse(field(detail, "AutoScalingGroupName")?)?,
        hook: HookName::parse(field(detail, "LifecycleHookName")?)?,
        instance: InstanceId::parse(field(detail, "EC2InstanceId")?)?,
        token: match detail.get("LifecycleActionToken").and_then(Value::as_str) {
            Some(t) => Some(ActionToken::parse(t)?),
            None => None,
        },
    }))
}

/// A Node's condition as the control plane reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Ready,
    NotReady,
    Unknown,
    /// No Node matches the instance.
    Absent,
}

/// What joinkeeper knows about a launching worker at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchFacts {
    /// `None` when the control plane could not be asked.
    pub node: Option<NodeState>,
    /// Whether the instance is still in `Pending:Wait` in its group.
    pub waiting: bool,
    /// Time since the instance launched.
    pub age: Duration,
    pub join_deadline: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LaunchDecision {
    /// The Node is Ready: complete with CONTINUE.
    Continue,
    /// Past the deadline without a Ready Node: complete with ABANDON.
    Abandon { reason: String },
    /// Not yet: check again later (heartbeat if the hook's timeout nears).
    Wait,
    /// Nothing to do: the action is no longer pending.
    Skip { reason: String },
}

/// The launch decision. Never CONTINUE without a Ready Node, never ABANDON before the deadline.
pub fn decide_launch(f: LaunchFacts) -> LaunchDecision {
    if !f.waiting {
        return LaunchDecision::Skip {
            reason: "no launch action is pending for this instance (already completed)".into(),
        };
    }
    if f.node == Some(NodeState::Ready) {
        return LaunchDecision::Continue;
    }
    if f.age < f.join_deadline {
        return LaunchDecision::Wait;
    }
    let after = format!(
        "{} s (join deadline {} s)",
        f.age.as_secs(),
        f.join_deadline.as_secs()
    );
    let reason = match f.node {
        None => format!(
            "control plane unreachable, and the node is not known to be Ready after {after}"
        ),
        Some(NodeState::Absent) => {
            format!("no Node registered for the instance after {after}")
        }
        Some(NodeState::NotReady) => format!("Node registered but NotReady after {after}"),
        Some(NodeState::Unknown) => format!("Node status Unknown after {after}"),
        Some(NodeState::Ready) => unreachable_ready(),
    };
    LaunchDecision::Abandon { reason }
}

fn unreachable_ready() -> String {
    // Ready is handled above; kept total without a panic.
    "Node Ready".into()
}

/// Whether to record a heartbeat now: when half the hook's heartbeat timeout has passed since the
/// last one, so the hook never reaches its timeout while joinkeeper is still deciding.
pub fn heartbeat_due(since_last: Duration, heartbeat_timeout: Duration) -> bool {
    since_last >= heartbeat_timeout / 2
}

/// Parses the node-status document's output: one `<instance-id> <node-name|-> <state>` line per
/// requested id. Lines for other ids and malformed lines are ignored; ids missing from the
/// output are absent from the result (the caller treats that as "could not ask").
pub fn parse_node_status(output: &str, asked: &[InstanceId]) -> Vec<(InstanceId, NodeState)> {
    let mut found = Vec::new();
    for line in output.lines().take(asked.len() * 2 + 10) {
        let mut words = line.split_whitespace();
        let (Some(id), Some(_name), Some(state), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        let Some(instance) = asked.iter().find(|a| a.as_str() == id) else {
            continue;
        };
        let state = match state {
            "Ready" => NodeState::Ready,
            "NotReady" => NodeState::NotReady,
            "Unknown" => NodeState::Unknown,
            "Absent" => NodeState::Absent,
            _ => continue,
        };
        if !found.iter().any(|(i, _)| i == instance) {
            found.push((instance.clone(), state));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MIN: u64 = 60;

    pub fn launch_event() -> Value {
        json!({
            "version": "0", "id": "12345678-1234-1234-1234-123456789012",
            "detail-type": "EC2 Instance-launch Lifecycle Action", "source": "aws.autoscaling",
            "account": "123456789012", "time": "2026-11-27T00:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:x:autoScalingGroupName/demo-workers"],
            "detail": {
                "LifecycleActionToken": "87654321-4321-4321-4321-210987654321",
                "AutoScalingGroupName": "demo-workers", "LifecycleHookName": "joinkeeper-launch",
                "EC2InstanceId": "i-0123456789abcdef0", "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
                "Origin": "EC2", "Destination": "AutoScalingGroup"
            }
        })
    }

    #[test]
    fn parses_the_documented_launch_event() {
        let LifecycleEvent::Action(a) = parse_event(&launch_event()).expect("valid") else {
            panic!("not an action")
        };
        assert_eq!(a.transition, Transition::Launching);
        assert_eq!(a.group.as_str(), "demo-workers");
        assert_eq!(a.instance.as_str(), "i-0123456789abcdef0");
        assert!(a.token.is_some());
    }

    #[test]
    fn rejects_or_ignores_other_events() {
        let mut hostile = launch_event();
        hostile["detail"]["EC2InstanceId"] = json!("i-0123; reboot");
        assert!(matches!(
            parse_event(&hostile),
            Err(LifecycleEventError::Name(NameError::Instance(_)))
        ));
        let mut bad_group = launch_event();
        bad_group["detail"]["AutoScalingGroupName"] = json!("a:b");
        assert!(matches!(
            parse_event(&bad_group),
            Err(LifecycleEventError::Name(NameError::Group(_)))
        ));
        let mut missing = launch_event();
        missing["detail"]
            .as_object_mut()
            .map(|d| d.remove("EC2InstanceId"));
        assert_eq!(
            parse_event(&missing),
            Err(LifecycleEventError::Shape(EventError::MissingField(
                "EC2InstanceId"
            )))
        );
        let mut mismatch = launch_event();
        mismatch["detail"]["LifecycleTransition"] = json!(TERMINATING);
        assert!(parse_event(&mismatch).is_err());
        let mut warm = launch_event();
        warm["detail"]["Destination"] = json!("WarmPool");
        assert!(matches!(
            parse_event(&warm),
            Ok(LifecycleEvent::Ignored { .. })
        ));
        let mut other = launch_event();
        other["detail-type"] = json!("EC2 Instance Launch Successful");
        assert!(matches!(
            parse_event(&other),
            Ok(LifecycleEvent::Ignored { .. })
        ));
        assert!(parse_event(&json!(null)).is_err());
    }

    #[test]
    fn launch_decision_table() {
        let deadline = Duration::from_secs(15 * MIN);
        let facts = |node, waiting, age_min: u64| LaunchFacts {
            node,
            waiting,
            age: Duration::from_secs(age_min * MIN),
            join_deadline: deadline,
        };
        use LaunchDecision::*;
        use NodeState::*;
        let cases: Vec<(&str, LaunchFacts, fn(&LaunchDecision) -> bool)> = vec![
            ("ready early", facts(Some(Ready), true, 2), |d| {
                *d == Continue
            }),
            ("ready late", facts(Some(Ready), true, 60), |d| {
                *d == Continue
            }),
            (
                "not ready, before deadline",
                facts(Some(NotReady), true, 5),
                |d| *d == Wait,
            ),
            (
                "absent, before deadline",
                facts(Some(Absent), true, 14),
                |d| *d == Wait,
            ),
            (
                "unreachable, before deadline: never a guessed CONTINUE",
                facts(None, true, 14),
                |d| *d == Wait,
            ),
            (
                "absent at deadline",
                facts(Some(Absent), true, 15),
                |d| matches!(d, Abandon { reason } if reason.contains("no Node registered")),
            ),
            (
                "not ready past deadline",
                facts(Some(NotReady), true, 20),
                |d| matches!(d, Abandon { reason } if reason.contains("NotReady")),
            ),
            (
                "unknown past deadline",
                facts(Some(Unknown), true, 20),
                |d| matches!(d, Abandon { reason } if reason.contains("Unknown")),
            ),
            (
                "unreachable past deadline",
                facts(None, true, 20),
                |d| matches!(d, Abandon { reason } if reason.contains("unreachable")),
            ),
            (
                "already completed, ready",
                facts(Some(Ready), false, 3),
                |d| matches!(d, Skip { .. }),
            ),
            (
                "already completed, past deadline: a duplicate never abandons",
                facts(Some(Absent), false, 30),
                |d| matches!(d, Skip { .. }),
            ),
        ];
        for (name, f, ok) in cases {
            let d = decide_launch(f);
            assert!(ok(&d), "{name}: {d:?}");
        }
    }

    #[test]
    fn heartbeat_when_half_the_timeout_passed() {
        assert!(!heartbeat_due(
            Duration::from_secs(100),
            Duration::from_secs(300)
        ));
        assert!(heartbeat_due(
            Duration::from_secs(150),
            Duration::from_secs(300)
        ));
    }

    #[test]
    fn node_status_output_is_parsed_for_asked_ids_only() {
        let a = InstanceId::parse("i-0000000a").expect("id");
        let b = InstanceId::parse("i-0000000b").expect("id");
        let c = InstanceId::parse("i-0000000c").expect("id");
        let out = "i-0000000a ip-10-0-0-1.ec2.internal Ready\ni-0000000b - Absent\ni-0000000f x Ready\ngarbage\ni-0000000a x NotReady\n";
        assert_eq!(
            parse_node_status(out, &[a.clone(), b.clone(), c]),
            vec![(a, NodeState::Ready), (b, NodeState::Absent)]
        );
    }
}

#[cfg(test)]
mod sample_events {
    //! The sample events in `events/` parse as the handlers expect.
    use super::*;

    fn load(name: &str) -> Value {
        let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).expect("sample event")).expect("JSON")
    }

    #[test]
    fn launch_and_terminate_samples_parse() {
        for (file, transition) in [
            ("launch-lifecycle-action.json", Transition::Launching),
            ("terminate-lifecycle-action.json", Transition::Terminating),
        ] {
            match parse_event(&load(file)) {
                Ok(LifecycleEvent::Action(a)) => assert_eq!(a.transition, transition, "{file}"),
                other => panic!("{file}: {other:?}"),
            }
        }
        assert!(crate::events::parse_scheduled(&load("scheduled-refresh.json")).is_ok());
    }
}
