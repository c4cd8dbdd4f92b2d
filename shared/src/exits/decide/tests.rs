use super::*;
use std::time::Duration;
use Whereabouts::*;

fn settings() -> ExitSettings {
    ExitSettings {
        rebalance: ExitAction::Cordon,
        standby: ExitAction::Drain,
        maintenance_lead: Duration::from_secs(3600),
        maintenance_replace: false,
        drain_timeout: Duration::from_secs(300),
    }
}

fn rec(door: Door, cordoned: bool, drained: bool, deadline_ms: Option<i64>) -> ExitRecord {
    ExitRecord {
        cordoned,
        drained,
        ..ExitRecord::new(door, 0, deadline_ms)
    }
}

fn step(r: &ExitRecord, at: Whereabouts, now_ms: i64, draining: bool, s: &ExitSettings) -> Step {
    next_step(
        &ExitFacts {
            record: r,
            at,
            now_ms,
            draining,
        },
        s,
    )
}

#[test]
fn where_an_instance_is() {
    let cases = [
        (None, None, false, Gone),
        (Some("terminated"), Some("InService"), false, Gone),
        (Some("shutting-down"), None, false, Gone),
        (Some("stopped"), Some("InService"), false, Stopped),
        (Some("stopping"), None, true, Stopped),
        (Some("running"), Some("InService"), false, InService),
        (Some("running"), Some("Standby"), false, Standby),
        (Some("running"), Some("EnteringStandby"), false, Standby),
        (Some("running"), None, true, Detached),
        (Some("running"), None, false, Elsewhere),
        (Some("running"), Some("Terminating:Wait"), false, Elsewhere),
        (Some("running"), Some("Warmed:Running"), false, Elsewhere),
        // A warm pool stops its instances by design: not a worker leaving.
        (Some("stopped"), Some("Warmed:Stopped"), false, Elsewhere),
        (
            Some("stopping"),
            Some("Warmed:Pending:Proceed"),
            false,
            Elsewhere,
        ),
        (Some("stopped"), Some("Warmed:Hibernated"), false, Elsewhere),
        (Some("terminated"), Some("Warmed:Terminated"), false, Gone),
    ];
    for (ec2, group, detached, want) in cases {
        assert_eq!(whereabouts(ec2, group, detached), want, "{ec2:?} {group:?}");
    }
    assert_eq!(seen_leaving(Standby), Some(Door::Standby));
    assert_eq!(seen_leaving(Detached), Some(Door::Detached));
    assert_eq!(seen_leaving(Stopped), Some(Door::Stopped));
    for at in [InService, Gone, Elsewhere] {
        assert_eq!(seen_leaving(at), None, "{at:?}");
    }
}

#[test]
fn spot_cordons_drains_within_the_notice_then_deletes_the_node() {
    let s = settings();
    let deadline = 120_000;
    let fresh = rec(Door::Spot, false, false, Some(deadline));
    assert_eq!(step(&fresh, InService, 0, false, &s), Step::Cordon);
    let cordoned = rec(Door::Spot, true, false, Some(deadline));
    assert_eq!(
        step(&cordoned, InService, 1_000, false, &s),
        Step::Drain {
            budget: Duration::from_secs(104),
        },
        "the budget is the time left less the margin"
    );
    assert_eq!(
        step(&cordoned, InService, 1_000, true, &s),
        Step::Wait { watch: true }
    );
    assert_eq!(
        step(&cordoned, InService, 101_000, false, &s),
        Step::Wait { watch: true },
        "too late to drain: the cordon stands"
    );
    let drained = rec(Door::Spot, true, true, Some(deadline));
    assert_eq!(
        step(&drained, InService, 60_000, false, &s),
        Step::Wait { watch: true }
    );
    for r in [&fresh, &cordoned, &drained] {
        assert_eq!(step(r, Gone, 130_000, false, &s), Step::DeleteNode);
    }
    let short = ExitSettings {
        drain_timeout: Duration::from_secs(30),
        ..s
    };
    assert_eq!(
        drain_budget(&cordoned, 0, &short),
        Some(Duration::from_secs(30)),
        "never longer than the drain timeout"
    );
}

#[test]
fn rebalance_follows_its_setting() {
    let r = rec(Door::Rebalance, false, false, None);
    let cordoned = rec(Door::Rebalance, true, false, None);
    let with = |a| ExitSettings {
        rebalance: a,
        ..settings()
    };
    assert_eq!(
        step(&r, InService, 0, false, &with(ExitAction::Cordon)),
        Step::Cordon
    );
    assert_eq!(
        step(&cordoned, InService, 0, false, &with(ExitAction::Cordon)),
        Step::Wait { watch: false }
    );
    assert_eq!(
        step(&cordoned, InService, 0, false, &with(ExitAction::Drain)),
        Step::Drain {
            budget: Duration::from_secs(300),
        }
    );
    assert_eq!(
        step(&r, InService, 0, false, &with(ExitAction::Nothing)),
        Step::Forget
    );
}

#[test]
fn maintenance_waits_for_its_lead_time_then_drains_and_may_replace() {
    let start = 10 * 3_600_000;
    let lead = 3_600_000;
    let s = settings();
    let r = rec(Door::Maintenance, false, false, Some(start));
    assert_eq!(
        step(&r, InService, start - lead - 1, false, &s),
        Step::Wait { watch: false }
    );
    assert_eq!(step(&r, InService, start - lead, false, &s), Step::Cordon);
    let drained = rec(Door::Maintenance, true, true, Some(start));
    assert_eq!(
        step(&drained, InService, start - 10, false, &s),
        Step::Wait { watch: false }
    );
    let replace = ExitSettings {
        maintenance_replace: true,
        ..s
    };
    assert_eq!(
        step(&drained, InService, start - 10, false, &replace),
        Step::SetUnhealthy
    );
    let replaced = ExitRecord {
        replaced: true,
        ..drained.clone()
    };
    assert_eq!(
        step(&replaced, InService, start - 10, false, &replace),
        Step::Wait { watch: false }
    );
}

#[test]
fn stops_cordon_and_a_return_uncordons() {
    let s = settings();
    let r = rec(Door::Stopped, false, false, None);
    assert_eq!(step(&r, Stopped, 0, false, &s), Step::Cordon);
    let cordoned = rec(Door::Stopped, true, false, None);
    assert_eq!(
        step(&cordoned, Stopped, 0, false, &s),
        Step::Wait { watch: false },
        "nothing runs on a stopped instance to evict"
    );
    assert_eq!(step(&cordoned, InService, 0, false, &s), Step::Uncordon);
    assert_eq!(step(&r, InService, 0, false, &s), Step::Forget);
    assert_eq!(step(&cordoned, Gone, 0, false, &s), Step::DeleteNode);
}

#[test]
fn standby_and_detach_follow_their_setting_and_are_undone() {
    for door in [Door::Standby, Door::Detached] {
        let at = if door == Door::Standby {
            Standby
        } else {
            Detached
        };
        let s = settings();
        let r = rec(door, false, false, None);
        assert_eq!(step(&r, at, 0, false, &s), Step::Cordon);
        let cordoned = rec(door, true, false, None);
        assert_eq!(
            step(&cordoned, at, 0, false, &s),
            Step::Drain {
                budget: Duration::from_secs(300),
            },
            "{door:?}: the Node stays for the return"
        );
        let drained = rec(door, true, true, None);
        assert_eq!(
            step(&drained, at, 0, false, &s),
            Step::Wait { watch: false }
        );
        assert_eq!(step(&drained, InService, 0, false, &s), Step::Uncordon);
        let cordon_only = ExitSettings {
            standby: ExitAction::Cordon,
            ..s
        };
        assert_eq!(
            step(&cordoned, at, 0, false, &cordon_only),
            Step::Wait { watch: false }
        );
        let nothing = ExitSettings {
            standby: ExitAction::Nothing,
            ..s
        };
        assert_eq!(step(&r, at, 0, false, &nothing), Step::Forget);
    }
}

#[test]
fn a_spot_exit_is_never_undone_by_a_running_instance() {
    let r = rec(Door::Spot, true, true, Some(120_000));
    assert_ne!(
        step(&r, InService, 10_000, false, &settings()),
        Step::Uncordon
    );
}
