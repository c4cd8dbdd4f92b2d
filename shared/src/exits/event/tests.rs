use super::*;
use serde_json::json;

fn fixture(name: &str) -> Value {
    let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

fn id() -> InstanceId {
    InstanceId::parse("i-0b662ef9931388ba0").expect("id")
}

#[test]
fn the_fixtures_read_as_their_doors() {
    let at = |t: &str| crate::timefmt::parse(t).map(|t| t.unix_timestamp() * 1000);
    let cases = [
        (
            "spot-interruption-warning.json",
            Door::Spot,
            at("2026-11-27T00:02:00Z"),
            Some("terminate"),
        ),
        ("rebalance-recommendation.json", Door::Rebalance, None, None),
        (
            "instance-state-change-stopping.json",
            Door::Stopped,
            None,
            Some("stopping"),
        ),
        (
            "instance-state-change-terminated.json",
            Door::Stopped,
            None,
            Some("terminated"),
        ),
        (
            "health-instance-retirement.json",
            Door::Maintenance,
            at("2026-12-11T00:00:00Z"),
            None,
        ),
    ];
    for (file, door, deadline_ms, state) in cases {
        let e = fixture(file);
        assert!(is_exit_event(&e), "{file}");
        assert_eq!(
            parse_exit_event(&e),
            Ok(ExitEvent::Leaving {
                door,
                instances: vec![id()],
                deadline_ms,
                state: state.map(str::to_owned),
            }),
            "{file}"
        );
    }
}

#[test]
fn lifecycle_and_scheduled_events_are_not_exit_events() {
    for f in ["terminate-lifecycle-action.json", "scheduled-refresh.json"] {
        assert!(!is_exit_event(&fixture(f)), "{f}");
    }
}

#[test]
fn what_joinkeeper_does_not_act_on_is_ignored() {
    let mut running = fixture("instance-state-change-stopping.json");
    running["detail"]["state"] = json!("running");
    let mut other_code = fixture("health-instance-retirement.json");
    other_code["detail"]["eventTypeCode"] = json!("AWS_EC2_OPERATIONAL_ISSUE");
    let mut other_service = fixture("health-instance-retirement.json");
    other_service["detail"]["service"] = json!("RDS");
    for e in [running, other_code, other_service] {
        assert!(
            matches!(parse_exit_event(&e), Ok(ExitEvent::Ignored { .. })),
            "{e}"
        );
    }
}

#[test]
fn health_events_name_their_instances_in_resources_too() {
    let mut e = fixture("health-instance-retirement.json");
    e["detail"]
        .as_object_mut()
        .map(|d| d.remove("affectedEntities"));
    e["resources"] = json!(["i-0b662ef9931388ba0", "i-0000000a", "i-0000000a"]);
    e["detail"]["startTime"] = json!("2026-12-11T00:00:00Z");
    let Ok(ExitEvent::Leaving { instances, .. }) = parse_exit_event(&e) else {
        panic!("parsed");
    };
    assert_eq!(instances.len(), 2, "deduplicated: {instances:?}");
}

#[test]
fn malformed_events_are_refused_with_the_field_named() {
    let spot = fixture("spot-interruption-warning.json");
    let with = |pointer: &str, v: Value| {
        let mut e = spot.clone();
        *e.pointer_mut(pointer).expect("field") = v;
        e
    };
    let mut no_detail = spot.clone();
    no_detail.as_object_mut().map(|o| o.remove("detail"));
    let mut health_no_instances = fixture("health-instance-retirement.json");
    health_no_instances["detail"]["affectedEntities"] = json!([]);
    health_no_instances["resources"] = json!([]);
    let cases = [
        (json!([]), "not a JSON object"),
        (no_detail, "\"detail\""),
        (
            with("/detail/instance-id", json!("i-x; reboot")),
            "detail.instance-id",
        ),
        (with("/detail/instance-id", json!(7)), "a string"),
        (
            with("/detail/instance-action", json!("explode")),
            "detail.instance-action",
        ),
        (with("/time", json!("soon")), "\"time\""),
        (
            with("/detail-type", json!("EC2 Something Else")),
            "detail-type",
        ),
        (health_no_instances, "detail.affectedEntities"),
    ];
    for (e, names) in cases {
        let err = parse_exit_event(&e).expect_err("refused").to_string();
        assert!(err.contains(names), "{err} should name {names}");
    }
}

/// `infra/lib/exit-events.json` is [`rules_json`]; the account stack builds its rules from it.
#[test]
fn exit_rules_are_exported_to_the_cdk_app() {
    let path = format!(
        "{}/../infra/lib/exit-events.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let want = rules_json();
    if std::env::var_os("JOINKEEPER_WRITE_SETTINGS").is_some() {
        std::fs::write(&path, &want).expect("write infra/lib/exit-events.json");
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "infra/lib/exit-events.json is out of date; regenerate it: \
         JOINKEEPER_WRITE_SETTINGS=1 cargo test -p joinkeeper --lib exit_rules"
    );
}

#[test]
fn every_fixture_matches_a_rule() {
    let rules: Value = serde_json::from_str(&rules_json()).expect("json");
    for f in [
        "spot-interruption-warning.json",
        "rebalance-recommendation.json",
        "instance-state-change-stopping.json",
        "instance-state-change-terminated.json",
        "health-instance-retirement.json",
    ] {
        let e = fixture(f);
        let matches = rules["rules"].as_array().expect("rules").iter().any(|r| {
            let p = &r["pattern"];
            let has = |v: &Value, want: &Value| want.as_array().is_some_and(|a| a.contains(v));
            has(&e["source"], &p["source"])
                && has(&e["detail-type"], &p["detail-type"])
                && p["detail"]
                    .as_object()
                    .is_none_or(|d| d.iter().all(|(k, want)| has(&e["detail"][k], want)))
        });
        assert!(matches, "{f} matches no rule");
    }
}
