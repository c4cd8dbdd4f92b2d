"""Exit events in the emulator: a Spot warning and the reclaim after its notice, with the state
changes; rebalance recommendations and AWS Health events in AWS's documented shapes; the
outbox of its own that GET /_joinkeeper/exit-events drains."""

from __future__ import annotations

from faultkit import call
from support import Aws, wait_for


def post(aws: Aws, path: str, body: dict) -> tuple[int, dict]:
    status, answer = call(aws.url, f"{path}?account={aws.account}", "POST", body)
    return status, answer  # type: ignore[return-value]


def exit_events(aws: Aws) -> list[dict]:
    return aws.control("exit-events")  # type: ignore[return-value]


def kinds(events: list[dict]) -> list[tuple[str, str, str]]:
    return [
        (e["detail-type"], e["detail"].get("instance-id", ""), e["detail"].get("state", ""))
        for e in events
    ]


def test_a_spot_warning_then_the_reclaim_after_the_notice(aws: Aws) -> None:
    aws.group("spot", 1)
    (iid,) = aws.group_instances("spot")
    exit_events(aws)  # the launch's own state changes, if any
    status, answer = post(aws, "spot-interruptions", {"instance_ids": [iid], "notice_seconds": 1})
    assert status == 200, answer
    (warning,) = exit_events(aws)
    assert warning["source"] == "aws.ec2"
    assert warning["detail-type"] == "EC2 Spot Instance Interruption Warning"
    assert warning["detail"] == {"instance-id": iid, "instance-action": "terminate"}
    assert warning["account"] == aws.account and warning["time"].endswith("Z")
    assert warning["time"] < answer["reclaimed_at"], "the warning's time is 120 s before"
    assert aws.instance_state(iid) == "running", "nothing happens before the notice runs out"
    wait_for(lambda: aws.instance_state(iid) == "terminated", timeout=10)
    assert iid not in aws.group_instances("spot"), "out of its group, no hook"
    changes = kinds(exit_events(aws))
    assert changes == [
        ("EC2 Instance State-change Notification", iid, "shutting-down"),
        ("EC2 Instance State-change Notification", iid, "terminated"),
    ]
    assert aws.control("events") == [], "no lifecycle event: the group had no hook to run"


def test_stops_and_starts_emit_their_state_changes(aws: Aws) -> None:
    iid = aws.instance()
    exit_events(aws)
    aws.ec2.stop_instances(InstanceIds=[iid])
    aws.ec2.start_instances(InstanceIds=[iid])
    aws.ec2.terminate_instances(InstanceIds=[iid])
    assert [s for _, _, s in kinds(exit_events(aws))] == [
        "stopping",
        "stopped",
        "pending",
        "running",
        "shutting-down",
        "terminated",
    ]


def test_rebalance_and_health_events_have_the_documented_shape(aws: Aws) -> None:
    a, b = aws.instance(), aws.instance()
    exit_events(aws)
    assert post(aws, "rebalance-recommendations", {"instance_ids": [a]})[0] == 200
    status, answer = post(
        aws,
        "health-events",
        {"instance_ids": [a, b], "start_in_seconds": 3600},
    )
    assert status == 200, answer
    rebalance, health = exit_events(aws)
    assert rebalance["detail-type"] == "EC2 Instance Rebalance Recommendation"
    assert rebalance["detail"] == {"instance-id": a}
    assert health["source"] == "aws.health" and health["detail-type"] == "AWS Health Event"
    assert health["resources"] == [a, b]
    d = health["detail"]
    assert d["service"] == "EC2"
    assert d["eventTypeCode"] == "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED"
    assert d["eventTypeCategory"] == "scheduledChange"
    assert d["startTime"].endswith(" GMT"), d["startTime"]
    assert [e["entityValue"] for e in d["affectedEntities"]] == [a, b]


def test_bad_requests_are_refused(aws: Aws) -> None:
    assert post(aws, "spot-interruptions", {"instance_ids": []})[0] == 400
    assert post(aws, "spot-interruptions", {"instance_ids": ["i-0000000000000dead"]})[0] == 400
    iid = aws.instance()
    assert post(aws, "spot-interruptions", {"instance_ids": [iid], "action": "x"})[0] == 400
    assert post(aws, "health-events", {"instance_ids": [iid], "event_type_code": "X"})[0] == 400
    assert aws.instance_state(iid) == "running"
