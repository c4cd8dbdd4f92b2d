//! Validation of the events that trigger the functions. An event of the wrong shape is rejected
//! with a clear error before anything is read or changed.

use serde_json::Value;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("event is not a JSON object")]
    NotAnObject,
    #[error("event has no {0:?} field")]
    MissingField(&'static str),
    #[error("event field {field:?} is {found}, expected {expected}")]
    Unexpected {
        field: &'static str,
        found: String,
        expected: &'static str,
    },
}

/// The EventBridge scheduled event (`source: aws.events`, `detail-type: Scheduled Event`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledEvent {
    pub id: String,
    pub time: String,
}

/// The string at `field`, or why there is none (the one reading of event fields, for every kind
/// of event).
pub(crate) fn text<'a>(event: &'a Value, field: &'static str) -> Result<&'a str, EventError> {
    match event.get(field) {
        None | Some(Value::Null) => Err(EventError::MissingField(field)),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(EventError::Unexpected {
            field,
            found: crate::names::printable(&other.to_string(), 40),
            expected: "a string",
        }),
    }
}

fn expect(event: &Value, field: &'static str, expected: &'static str) -> Result<(), EventError> {
    let found = text(event, field)?;
    if found == expected {
        Ok(())
    } else {
        Err(EventError::Unexpected {
            field,
            found: crate::names::printable(found, 60),
            expected,
        })
    }
}

/// Checks that `event` is an EventBridge scheduled event.
pub fn parse_scheduled(event: &Value) -> Result<ScheduledEvent, EventError> {
    if !event.is_object() {
        return Err(EventError::NotAnObject);
    }
    expect(event, "source", "aws.events")?;
    expect(event, "detail-type", "Scheduled Event")?;
    let time = text(event, "time")?;
    if crate::timefmt::parse(time).is_none() {
        return Err(EventError::Unexpected {
            field: "time",
            found: crate::names::printable(time, 40),
            expected: "an RFC 3339 time",
        });
    }
    Ok(ScheduledEvent {
        id: text(event, "id")?.to_owned(),
        time: time.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scheduled() -> Value {
        json!({
            "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "123456789012", "time": "2026-11-27T00:00:00Z",
            "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:123456789012:rule/joinkeeper-refresh"], "detail": {}
        })
    }

    #[test]
    fn accepts_the_documented_shape() {
        let e = parse_scheduled(&scheduled()).expect("valid");
        assert_eq!(e.time, "2026-11-27T00:00:00Z");
    }

    #[test]
    fn rejects_malformed_events() {
        let mut wrong_source = scheduled();
        wrong_source["source"] = json!("aws.autoscaling");
        let mut no_type = scheduled();
        no_type.as_object_mut().map(|o| o.remove("detail-type"));
        let mut bad_time = scheduled();
        bad_time["time"] = json!("yesterday");
        let mut numeric = scheduled();
        numeric["source"] = json!(7);
        let cases = [
            (json!([]), EventError::NotAnObject),
            (json!("x"), EventError::NotAnObject),
            (no_type, EventError::MissingField("detail-type")),
            (
                wrong_source,
                EventError::Unexpected {
                    field: "source",
                    found: "\"aws.autoscaling\"".into(),
                    expected: "aws.events",
                },
            ),
            (
                bad_time,
                EventError::Unexpected {
                    field: "time",
                    found: "\"yesterday\"".into(),
                    expected: "an RFC 3339 time",
                },
            ),
            (
                numeric,
                EventError::Unexpected {
                    field: "source",
                    found: "\"7\"".into(),
                    expected: "a string",
                },
            ),
        ];
        for (event, want) in cases {
            assert_eq!(parse_scheduled(&event), Err(want));
        }
    }
}
