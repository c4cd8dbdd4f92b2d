//! The lease under faults: lost answers, throttling, a failed renewal, a killed holder.

use super::*;

#[tokio::test]
async fn a_failed_lease_renewal_lets_go_at_once() {
    let put = failing(mock!(Ssm::put_parameter));
    let delete = delete_ok();
    let ctx = context(&[&put, &delete], &[], &[]);
    let mut held = held_for(120_000);
    let r =
        crate::reconcile::renew_or_let_go(&ctx.leases, &mut held, Duration::from_secs(120)).await;
    assert!(r.is_err());
    assert_eq!(delete.num_calls(), 1, "released, not left to expire");
}

#[tokio::test]
async fn a_throttled_lease_renewal_keeps_the_lease_it_was_never_applied() {
    let put = mock!(Ssm::put_parameter)
        .sequence()
        .error(|| {
            aws_sdk_ssm::operation::put_parameter::PutParameterError::generic(
                aws_smithy_types::error::ErrorMetadata::builder()
                    .code("ThrottlingException")
                    .message("Rate exceeded")
                    .build(),
            )
        })
        .repeatedly()
        .build();
    let delete = delete_ok();
    let ctx = context(&[&put, &delete], &[], &[]);
    let mut held = held_for(120_000);
    let before = held.value.expires_at_ms;
    let r =
        crate::reconcile::renew_or_let_go(&ctx.leases, &mut held, Duration::from_secs(120)).await;
    assert_eq!(r, Ok(true), "the run goes on under the lease as it stands");
    assert_eq!(held.value.expires_at_ms, before, "not counted as renewed");
    assert_eq!(delete.num_calls(), 0, "not released");
}

#[tokio::test]
async fn a_lease_write_that_would_outlive_the_guard_is_abandoned() {
    // Nothing answers within the time left: the write is cut before the lease's expiry.
    let leases = context(&[], &[], &[]).leases;
    let held = held_for(crate::lease::GUARD.as_millis() as i64 - 1_000);
    assert!(!leases.may_act(&held), "inside the guard: no more writes");
    let mut h = held.clone();
    assert_eq!(
        leases.renew(&mut h, Duration::from_secs(60)).await.ok(),
        Some(false)
    );
}

#[tokio::test]
async fn a_lease_whose_create_answer_was_lost_is_recognised_as_ours() {
    use aws_sdk_ssm::operation::put_parameter::PutParameterError;
    use aws_sdk_ssm::types::error::ParameterAlreadyExists;
    use std::sync::{Arc, Mutex};
    // The create took effect, its answer was lost, and the SDK's retry found the parameter.
    let written = Arc::new(Mutex::new(String::new()));
    let seen = written.clone();
    let create = mock!(Ssm::put_parameter)
        .match_requests(move |r| {
            *seen.lock().expect("lock") = r.value().unwrap_or_default().to_owned();
            true
        })
        .then_error(|| {
            PutParameterError::ParameterAlreadyExists(ParameterAlreadyExists::builder().build())
        });
    let stored = written.clone();
    let read = lease_parameter(move || stored.lock().expect("lock").clone());
    let ctx = context(&[&create, &read], &[], &[]);
    let got = acquire(&ctx).await;
    assert!(
        matches!(got, crate::lease::Acquire::Held(_)),
        "our own lease must not lock us out until it expires: {got:?}"
    );
}

#[tokio::test]
async fn a_lease_visibly_held_costs_no_write() {
    // No PutParameter rule: a create would fail the test (a call no rule matches fails).
    let holder = LeaseValue {
        holder: "other".into(),
        request_id: "req-other".into(),
        expires_at_ms: now_ms() + 120_000,
        ..Default::default()
    };
    let text = serde_json::to_string(&holder).expect("json");
    let read = lease_parameter(move || text.clone());
    let ctx = context(&[&read], &[], &[]);
    match acquire(&ctx).await {
        crate::lease::Acquire::Busy(Some(v)) => assert_eq!(v.request_id, "req-other"),
        other => panic!("{other:?}"),
    }
    assert_eq!(read.num_calls(), 1);
}

#[test]
fn a_lease_left_to_expire_unrenewed_is_waited_for_and_taken_over() {
    let ctx = context(&[], &[], &[]);
    let ttl = crate::reconcile::lease_ttl(&ctx);
    let at = |left: Duration| LeaseValue {
        expires_at_ms: now_ms() + left.as_millis() as i64,
        ..Default::default()
    };
    assert!(
        crate::reconcile::expiring_unrenewed(&ctx, &at(ttl)).is_none(),
        "just renewed"
    );
    assert!(crate::reconcile::expiring_unrenewed(&ctx, &at(ttl / 2)).is_none());
    assert!(
        crate::reconcile::expiring_unrenewed(&ctx, &at(ttl / 4)).is_some(),
        "a dead holder's"
    );
}

#[tokio::test]
async fn a_release_is_never_retried_so_a_lost_answer_cannot_delete_a_successors_lease() {
    use aws_sdk_ssm::config::retry::RetryConfig;
    use aws_smithy_mocks::{mock_client, RuleMode};
    // The delete took effect, its answer was lost (a 5xx here): a retry would delete whatever
    // lease a successor created meanwhile.
    let delete = mock!(Ssm::delete_parameter)
        .sequence()
        .http_status(SERVER_ERROR, None)
        .output(|| DeleteParameterOutput::builder().build())
        .build();
    let client = mock_client!(aws_sdk_ssm, RuleMode::Sequential, [&delete], |c| c
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(1))
        ));
    let leases = crate::lease::Leases::new(crate::aws::parameters::ParameterStore::new(client));
    let held = held_for(120_000);
    assert!(leases.release(held).await.is_err());
    assert_eq!(delete.num_calls(), 1, "one attempt only");
}

#[tokio::test]
async fn a_throttled_lease_create_finds_the_holder_without_failing() {
    const THROTTLED: &str = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
    let create = mock!(Ssm::put_parameter)
        .sequence()
        .http_status(400, Some(THROTTLED.to_owned()))
        .repeatedly()
        .build();
    let holder = LeaseValue {
        holder: "someone".into(),
        request_id: "req-holder".into(),
        expires_at_ms: now_ms() + 60_000,
        ..Default::default()
    };
    let value = serde_json::to_string(&holder).expect("json");
    let read = lease_parameter(move || value.clone());
    let ctx = context(&[&create, &read], &[], &[]);
    let got = acquire(&ctx).await;
    assert!(
        matches!(got, crate::lease::Acquire::Busy(Some(ref v)) if v.request_id == "req-holder"),
        "{got:?}"
    );
}

#[tokio::test]
async fn a_throttled_release_is_tried_again_it_was_never_applied() {
    const THROTTLED: &str = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
    let delete = mock!(Ssm::delete_parameter)
        .sequence()
        .http_status(400, Some(THROTTLED.to_owned()))
        .times(2)
        .output(|| DeleteParameterOutput::builder().build())
        .build();
    let ctx = context(&[&delete], &[], &[]);
    ctx.leases
        .release(held_for(120_000))
        .await
        .expect("released on the third attempt");
    assert_eq!(delete.num_calls(), 3);
}

#[test]
fn a_run_renews_its_lease_for_no_longer_than_half_the_shortest_heartbeat_timeout() {
    use crate::reconcile::gather::GroupHooks;
    let ctx = context(&[], &[], &[]);
    let mut mem = Memory::default();
    assert_eq!(
        crate::reconcile::run_ttl(&ctx, &mem),
        crate::reconcile::lease_ttl(&ctx),
        "hooks not read yet"
    );
    let mut short = hook("joinkeeper-launch", Transition::Launching);
    short.heartbeat_timeout = Duration::from_secs(90);
    mem.hooks.insert(
        group("demo-workers"),
        GroupHooks {
            launch: Some(short),
            terminate: None,
        },
    );
    assert_eq!(
        crate::reconcile::run_ttl(&ctx, &mem),
        Duration::from_secs(45)
    );
}

#[test]
fn the_takeover_window_follows_the_ttl_the_holder_wrote() {
    let ctx = context(&[], &[], &[]);
    let holder = |left_ms: i64, ttl_ms: i64| LeaseValue {
        expires_at_ms: now_ms() + left_ms,
        ttl_ms,
        ..Default::default()
    };
    // A live holder on a 45 s lease, 20 s left: not expiring (a third of 45 s is 15 s).
    assert!(crate::reconcile::expiring_unrenewed(&ctx, &holder(20_000, 45_000)).is_none());
    assert!(crate::reconcile::expiring_unrenewed(&ctx, &holder(10_000, 45_000)).is_some());
}

#[tokio::test]
async fn a_takeover_marker_whose_winner_never_took_the_lease_does_not_block_it() {
    use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
    use aws_sdk_ssm::operation::put_parameter::PutParameterError;
    use aws_sdk_ssm::types::error::ParameterAlreadyExists;
    use aws_sdk_ssm::types::Parameter;
    let exists =
        || PutParameterError::ParameterAlreadyExists(ParameterAlreadyExists::builder().build());
    // The lease expired long ago; generation 0's marker was won 60 s ago by a waiter that died.
    let lease_create = mock!(Ssm::put_parameter)
        .match_requests(|r| r.name() == Some(LEASE) && r.overwrite() == Some(false))
        .then_error(exists);
    let gen0 = mock!(Ssm::put_parameter)
        .match_requests(|r| {
            r.name()
                .is_some_and(|n| n.contains(".takeover.") && !n.ends_with(".1"))
        })
        .then_error(exists);
    let gen1 = put_ok();
    let overwrite = mock!(Ssm::put_parameter)
        .match_requests(|r| r.name() == Some(LEASE) && r.overwrite() == Some(true))
        .then_output(|| {
            aws_sdk_ssm::operation::put_parameter::PutParameterOutput::builder()
                .version(4)
                .build()
        });
    let read = |name: &'static str, value: String, version: i64| {
        mock!(Ssm::get_parameter)
            .match_requests(move |r| r.name() == Some(name))
            .then_output(move || {
                GetParameterOutput::builder()
                    .parameter(
                        Parameter::builder()
                            .name(name)
                            .value(value.clone())
                            .version(version)
                            .build(),
                    )
                    .build()
            })
    };
    let expired = serde_json::to_string(&LeaseValue {
        holder: "dead".into(),
        expires_at_ms: now_ms() - 600_000,
        ..Default::default()
    })
    .expect("json");
    let lease = read(LEASE, expired, 3);
    let marker_name: &'static str = "/joinkeeper/demo/leases/reconcile.takeover.dead-v3";
    let marker = read(
        marker_name,
        format!(r#"{{"holder":"h-dead","at_ms":{}}}"#, now_ms() - 60_000),
        1,
    );
    let ctx = context(
        &[&lease_create, &overwrite, &gen0, &gen1, &lease, &marker],
        &[],
        &[],
    );
    let got = acquire(&ctx).await;
    assert!(matches!(got, crate::lease::Acquire::Held(_)), "{got:?}");
    assert_eq!(gen1.num_calls(), 1, "the next generation's marker was won");
    assert_eq!(overwrite.num_calls(), 1);
}

#[test]
fn a_lease_is_taken_for_one_pass_before_the_hooks_are_known() {
    let ctx = context(&[], &[], &[]);
    let first = crate::reconcile::first_ttl(&ctx);
    assert!(first < crate::reconcile::lease_ttl(&ctx));
    // One Run Command wait fits inside it, past the guard, with room to act on its answer.
    let bound_of_waits = first
        .saturating_sub(crate::lease::GUARD)
        .saturating_sub(crate::reconcile::pass::ACT_ROOM);
    assert!(bound_of_waits >= ctx.config.command_deadline);
}

#[test]
fn passes_begin_a_poll_apart_and_never_back_to_back() {
    use crate::reconcile::until_next_pass;
    let s = Duration::from_secs;
    assert_eq!(
        until_next_pass(s(5), s(1)),
        s(4),
        "a short pass: the rest of the poll"
    );
    assert_eq!(
        until_next_pass(s(5), s(12)),
        Duration::from_secs(1),
        "a long pass (throttled, drains): the next one soon, but not at once"
    );
}

#[test]
fn a_failed_pass_is_asked_again_soon_then_backing_off_to_a_poll() {
    use crate::reconcile::after_failed_pass;
    let s = Duration::from_secs;
    let pauses: Vec<Duration> = (1..=5).map(|n| after_failed_pass(s(5), n)).collect();
    assert_eq!(pauses, [s(1), s(2), s(4), s(5), s(5)]);
    assert_eq!(after_failed_pass(s(15), 40), s(15), "never past a poll");
}
