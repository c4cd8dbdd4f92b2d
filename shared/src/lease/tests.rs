//! The lease's pure rules.
use super::*;

#[test]
fn a_holder_stops_before_a_taker_may_start() {
    let v = LeaseValue {
        expires_at_ms: 10_000,
        ..Default::default()
    };
    let guard = GUARD.as_millis() as i64;
    assert!(holder_may_act(&v, 10_000 - guard - 1, GUARD));
    assert!(!holder_may_act(&v, 10_000 - guard, GUARD));
    assert_eq!(standing(&v, 9_999), Standing::Valid);
    assert_eq!(standing(&v, 10_000), Standing::Expired);
    // No instant at which both the holder may act and a taker may take over.
    for t in 0..20_000 {
        assert!(!(holder_may_act(&v, t, GUARD) && standing(&v, t) == Standing::Expired));
    }
}

#[test]
fn holder_ids_are_unique_and_safe_in_names() {
    let a = new_holder_id();
    let b = new_holder_id();
    assert_ne!(a, b);
    assert_eq!(sanitize(&a), a);
    assert_eq!(sanitize("a/b c;d"), "abcd");
}

#[test]
fn values_round_trip_and_old_fields_default() {
    let v: LeaseValue = serde_json::from_str(r#"{"holder":"x","expires_at_ms":5}"#).expect("lease");
    assert_eq!(v.holder, "x");
    assert!(v.command_id.is_empty());
    assert_eq!(
        serde_json::from_str::<LeaseValue>(&to_json(&v)).ok(),
        Some(v)
    );
}

#[test]
fn only_a_valid_lease_is_visibly_held() {
    let v = LeaseValue {
        holder: "h".into(),
        expires_at_ms: 10_000,
        ..Default::default()
    };
    assert_eq!(
        visibly_held(Some((Some(v.clone()), 3)), 9_999),
        Some(v.clone())
    );
    assert_eq!(visibly_held(Some((Some(v), 3)), 10_000), None);
    assert_eq!(visibly_held(Some((None, 3)), 0), None);
    assert_eq!(visibly_held(None, 0), None);
}
