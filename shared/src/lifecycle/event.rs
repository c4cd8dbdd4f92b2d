//! Parsing the EventBridge lifecycle action event, with the `aws_lambda_events` type, then
//! validating every name against AWS's own patterns into the domain types. Anything malformed is
//! an error and nothing is acted on; events for other tools' hooks are ignored.

use std::collections::HashMap;

use aws_lambda_events::autoscaling::AutoScalingEvent;
use serde_json::Value;

use super::{LifecycleAction, Place, Transition, LAUNCH_DETAIL_TYPE, TERMINATE_DETAIL_TYPE};
use crate::events::EventError;
use crate::names::{printable, ActionToken, GroupName, HookName, InstanceId, NameError};

/// What an incoming event is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LifecycleEvent {
    Action(LifecycleAction),
    /// An event joinkeeper has no business with (another source, another tool's hook).
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

fn field<'a>(obj: &'a HashMap<String, Value>, name: &'static str) -> Result<&'a str, EventError> {
    match obj.get(name) {
        None | Some(Value::Null) => Err(EventError::MissingField(name)),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(EventError::Unexpected {
            field: name,
            found: printable(&other.to_string(), 40),
            expected: "a string",
        }),
    }
}

fn place(detail: &HashMap<String, Value>, key: &'static str) -> Result<Option<Place>, EventError> {
    match detail.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Place::from_aws(s).map(Some).ok_or(EventError::Unexpected {
            field: key,
            found: printable(s, 40),
            expected: "EC2, AutoScalingGroup or WarmPool",
        }),
        Some(other) => Err(EventError::Unexpected {
            field: key,
            found: printable(&other.to_string(), 40),
            expected: "a string",
        }),
    }
}

/// Parses an EventBridge lifecycle action event (`source: aws.autoscaling`). Only hooks whose
/// name starts with `hook_prefix` are joinkeeper's.
pub fn parse_event(
    event: &Value,
    hook_prefix: &str,
) -> Result<LifecycleEvent, LifecycleEventError> {
    if !event.is_object() {
        return Err(EventError::NotAnObject.into());
    }
    let text = |name: &'static str| match event.get(name) {
        Some(Value::String(s)) => Ok(s.as_str()),
        None | Some(Value::Null) => Err(EventError::MissingField(name)),
        Some(other) => Err(EventError::Unexpected {
            field: name,
            found: printable(&other.to_string(), 40),
            expected: "a string",
        }),
    };
    let source = text("source")?;
    if source != "aws.autoscaling" {
        return Ok(LifecycleEvent::Ignored {
            reason: format!("source {}", printable(source, 40)),
        });
    }
    let expected = match text("detail-type")? {
        LAUNCH_DETAIL_TYPE => Transition::Launching,
        TERMINATE_DETAIL_TYPE => Transition::Terminating,
        other => {
            return Ok(LifecycleEvent::Ignored {
                reason: format!("detail-type {}", printable(other, 60)),
            })
        }
    };
    if !event.get("detail").is_some_and(Value::is_object) {
        return Err(EventError::MissingField("detail").into());
    }
    // The documented envelope, as the Rust Lambda events crate types it. Its error can quote
    // the input: report the position only.
    let typed: AutoScalingEvent<Value> =
        serde_json::from_value(event.clone()).map_err(|e| EventError::Unexpected {
            field: "event",
            found: format!("a value that does not fit the envelope ({})", category(&e)),
            expected: "an EventBridge Auto Scaling event",
        })?;
    let detail = &typed.detail;
    let raw_transition = field(detail, "LifecycleTransition")?;
    let transition = Transition::from_aws(raw_transition).ok_or(EventError::Unexpected {
        field: "LifecycleTransition",
        found: printable(raw_transition, 60),
        expected: "an EC2 instance launching or terminating transition",
    })?;
    if transition != expected {
        return Err(EventError::Unexpected {
            field: "LifecycleTransition",
            found: format!("{transition:?}"),
            expected: "the transition named by detail-type",
        }
        .into());
    }
    let hook = HookName::parse(field(detail, "LifecycleHookName")?)?;
    let action = LifecycleAction {
        transition,
        group: GroupName::parse(field(detail, "AutoScalingGroupName")?)?,
        instance: InstanceId::parse(field(detail, "EC2InstanceId")?)?,
        token: match detail.get("LifecycleActionToken").and_then(Value::as_str) {
            Some(t) => Some(ActionToken::parse(t)?),
            None => None,
        },
        origin: place(detail, "Origin")?,
        destination: place(detail, "Destination")?,
        hook,
    };
    if !action.hook.as_str().starts_with(hook_prefix) {
        return Ok(LifecycleEvent::Ignored {
            reason: format!(
                "hook {} is not joinkeeper's (prefix {hook_prefix})",
                action.hook
            ),
        });
    }
    Ok(LifecycleEvent::Action(action))
}

fn category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Data => "a field of the wrong type",
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "bad JSON",
        serde_json::error::Category::Io => "read error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::{LifecycleAction, Place, TERMINATING};

    const P: &str = "joinkeeper-";
    use serde_json::json;

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
        let LifecycleEvent::Action(a) = parse_event(&launch_event(), P).expect("valid") else {
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
            parse_event(&hostile, P),
            Err(LifecycleEventError::Name(NameError::Instance(_)))
        ));
        let mut bad_group = launch_event();
        bad_group["detail"]["AutoScalingGroupName"] = json!("a:b");
        assert!(matches!(
            parse_event(&bad_group, P),
            Err(LifecycleEventError::Name(NameError::Group(_)))
        ));
        let mut missing = launch_event();
        missing["detail"]
            .as_object_mut()
            .map(|d| d.remove("EC2InstanceId"));
        assert_eq!(
            parse_event(&missing, P),
            Err(LifecycleEventError::Shape(EventError::MissingField(
                "EC2InstanceId"
            )))
        );
        let mut mismatch = launch_event();
        mismatch["detail"]["LifecycleTransition"] = json!(TERMINATING);
        assert!(parse_event(&mismatch, P).is_err());
        let mut warm = launch_event();
        warm["detail"]["Destination"] = json!("WarmPool");
        assert!(matches!(
            parse_event(&warm, P),
            Ok(LifecycleEvent::Action(LifecycleAction {
                destination: Some(Place::WarmPool),
                ..
            }))
        ));
        let mut bad_place = launch_event();
        bad_place["detail"]["Origin"] = json!("Mars");
        assert!(parse_event(&bad_place, P).is_err());
        let mut foreign = launch_event();
        foreign["detail"]["LifecycleHookName"] = json!("log-shipper-launch");
        assert!(matches!(
            parse_event(&foreign, P),
            Ok(LifecycleEvent::Ignored { reason }) if reason.contains("not joinkeeper's")
        ));
        let mut no_time = launch_event();
        no_time.as_object_mut().map(|o| o.remove("time"));
        let err = parse_event(&no_time, P).expect_err("envelope").to_string();
        assert!(err.contains("envelope"), "{err}");
        let mut other = launch_event();
        other["detail-type"] = json!("EC2 Instance Launch Successful");
        assert!(matches!(
            parse_event(&other, P),
            Ok(LifecycleEvent::Ignored { .. })
        ));
        assert!(parse_event(&json!(null), P).is_err());
    }
}

#[cfg(test)]
mod sample_events {
    //! The sample events in `events/` parse as the handlers expect.
    use super::*;
    use crate::lifecycle::Transition;

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
            match parse_event(&load(file), "joinkeeper-") {
                Ok(LifecycleEvent::Action(a)) => assert_eq!(a.transition, transition, "{file}"),
                other => panic!("{file}: {other:?}"),
            }
        }
        assert!(crate::events::parse_scheduled(&load("scheduled-refresh.json")).is_ok());
    }
}
