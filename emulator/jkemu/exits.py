"""EC2's and AWS Health's exit events, in the shapes EventBridge delivers, kept in an outbox of
their own (GET /_joinkeeper/exit-events): the account stack routes them by a rule of their own
straight to the terminate function, not through the lifecycle queue.

- Every state change of an instance through EC2 (StopInstances, TerminateInstances, StartInstances,
  and the terminations Auto Scaling makes) emits `EC2 Instance State-change Notification` events:
  stopping then stopped, shutting-down then terminated, pending then running.
- POST /_joinkeeper/spot-interruptions emits `EC2 Spot Instance Interruption Warning` now and
  reclaims the instances `notice_seconds` later (EC2's notice is 120 s; a shorter one is a
  warning delivered late, its `time` still 120 s before the reclaim): out of their group without
  a hook (the group is not refilled), terminated (or stopped), with their state changes.
- POST /_joinkeeper/rebalance-recommendations and /_joinkeeper/health-events emit
  `EC2 Instance Rebalance Recommendation` and `AWS Health Event` (scheduled maintenance).
"""

from __future__ import annotations

import datetime as dt
import uuid
from email.utils import format_datetime
from typing import Any, Callable

from moto.autoscaling.models import autoscaling_backends
from moto.ec2.models import EC2Backend, ec2_backends

from .common import LOG, STATE, iso_z, utcnow
from .lifecycle import terminate_now

SPOT_WARNING = "EC2 Spot Instance Interruption Warning"
REBALANCE = "EC2 Instance Rebalance Recommendation"
STATE_CHANGE = "EC2 Instance State-change Notification"
HEALTH = "AWS Health Event"
SPOT_NOTICE_SECONDS = 120
MAINTENANCE_CODES = (
    "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED",
    "AWS_EC2_PERSISTENT_INSTANCE_RETIREMENT_SCHEDULED",
    "AWS_EC2_INSTANCE_STOP_SCHEDULED",
    "AWS_EC2_INSTANCE_REBOOT_MAINTENANCE_SCHEDULED",
    "AWS_EC2_SYSTEM_REBOOT_MAINTENANCE_SCHEDULED",
)


def envelope(
    source: str, kind: str, account: str, region: str, resources: list[str], detail: dict
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": kind,
        "source": source,
        "account": account,
        "time": iso_z(utcnow()),
        "region": region,
        "resources": resources,
        "detail": detail,
    }


def instance_arn(account: str, region: str, instance_id: str) -> str:
    return f"arn:aws:ec2:{region}:{account}:instance/{instance_id}"


def emit(event: dict[str, Any]) -> None:
    with STATE.lock:
        STATE.exit_events.append(event)


def state_change(account: str, region: str, instance_id: str, state: str) -> None:
    emit(
        envelope(
            "aws.ec2",
            STATE_CHANGE,
            account,
            region,
            [instance_arn(account, region, instance_id)],
            {"instance-id": instance_id, "state": state},
        )
    )


def wrap_state_changes(original: Callable, states: tuple[str, ...]) -> Callable:
    """Wraps an EC2Backend call that moves instances: one event per state it passes through,
    for each instance whose state really changed."""

    def call(self: EC2Backend, instance_ids: list[str], *args: Any, **kwargs: Any) -> Any:
        moved = original(self, instance_ids, *args, **kwargs)
        for instance, previous in moved:
            if getattr(previous, "name", None) != states[-1]:
                for state in states:
                    state_change(self.account_id, self.region_name, instance.id, state)
        return moved

    return call


def find_instance(account: str, instance_id: str) -> tuple[str, Any] | None:
    """(region, instance) of an instance of the account."""
    for region, backend in list(dict.items(ec2_backends.get(account, {}))):
        for reservation in backend.reservations.values():
            for instance in reservation.instances:
                if instance.id == instance_id:
                    return region, instance
    return None


def reclaim(account: str, region: str, instance_id: str, action: str) -> None:
    """EC2 takes the Spot instance back: out of its group (no hook, no refill), then stopped or
    terminated."""
    for group in list(autoscaling_backends[account][region].autoscaling_groups.values()):
        for state in list(group.instance_states):
            if state.instance.id == instance_id:
                if action == "terminate":
                    terminate_now(group, state)
                    return
                group.instance_states.remove(state)
    backend = ec2_backends[account][region]
    if action == "terminate":
        backend.terminate_instances([instance_id])
    else:
        backend.stop_instances([instance_id])


def due_interruptions() -> None:
    """Reclaims the Spot instances whose notice ran out (called by the housekeeping sweep)."""
    now = utcnow()
    with STATE.lock:
        due = [i for i in STATE.interruptions if i["at"] <= now]
        STATE.interruptions = [i for i in STATE.interruptions if i["at"] > now]
        for i in due:
            try:
                reclaim(i["account"], i["region"], i["instance_id"], i["action"])
                LOG.info("spot instance %s reclaimed (%s)", i["instance_id"], i["action"])
            except Exception as err:  # the instance may be gone already
                LOG.warning("spot instance %s not reclaimed: %s", i["instance_id"], err)


def instance_ids(body: Any) -> list[str]:
    ids = (body or {}).get("instance_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise ValueError("instance_ids: a non-empty list of instance ids")
    return ids


def located(account: str, ids: list[str]) -> list[tuple[str, str]]:
    """(instance id, region) of each id; ValueError naming an unknown one."""
    found = []
    for i in ids:
        where = find_instance(account, i)
        if where is None:
            raise ValueError(f"no instance {i} in account {account}")
        found.append((i, where[0]))
    return found


def spot_interruptions(account: str, body: Any) -> dict[str, Any]:
    notice = float((body or {}).get("notice_seconds", SPOT_NOTICE_SECONDS))
    action = (body or {}).get("action", "terminate")
    if action not in ("terminate", "stop", "hibernate"):
        raise ValueError("action: terminate, stop or hibernate")
    at = utcnow() + dt.timedelta(seconds=notice)
    for instance_id, region in located(account, instance_ids(body)):
        warning = envelope(
            "aws.ec2",
            SPOT_WARNING,
            account,
            region,
            [f"arn:aws:ec2:{region}b:instance/{instance_id}"],
            {"instance-id": instance_id, "instance-action": action},
        )
        # EC2 warns 120 s ahead: a shorter notice is a warning delivered late, its time still
        # 120 s before the reclaim.
        warning["time"] = iso_z(at - dt.timedelta(seconds=SPOT_NOTICE_SECONDS))
        emit(warning)
        with STATE.lock:
            STATE.interruptions.append(
                {
                    "account": account,
                    "region": region,
                    "instance_id": instance_id,
                    "action": "terminate" if action == "terminate" else "stop",
                    "at": at,
                }
            )
    return {"interrupted": instance_ids(body), "reclaimed_at": iso_z(at)}


def rebalance_recommendations(account: str, body: Any) -> dict[str, Any]:
    for instance_id, region in located(account, instance_ids(body)):
        emit(
            envelope(
                "aws.ec2",
                REBALANCE,
                account,
                region,
                [f"arn:aws:ec2:{region}b:instance/{instance_id}"],
                {"instance-id": instance_id},
            )
        )
    return {"recommended": instance_ids(body)}


def health_events(account: str, body: Any) -> dict[str, Any]:
    code = (body or {}).get("event_type_code", "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED")
    if code not in MAINTENANCE_CODES:
        raise ValueError(f"event_type_code: one of {', '.join(MAINTENANCE_CODES)}")
    start = utcnow() + dt.timedelta(seconds=float((body or {}).get("start_in_seconds", 14 * 86400)))
    ids = located(account, instance_ids(body))
    region = ids[0][1]
    event_id = uuid.uuid4().hex[:12].upper()
    emit(
        envelope(
            "aws.health",
            HEALTH,
            account,
            region,
            [i for i, _ in ids],
            {
                "eventArn": f"arn:aws:health:{region}::event/EC2/{code}/{code}_{event_id}",
                "service": "EC2",
                "eventTypeCode": code,
                "eventTypeCategory": "scheduledChange",
                "eventScopeCode": "ACCOUNT_SPECIFIC",
                "eventRegion": region,
                "startTime": format_datetime(start, usegmt=True),
                "endTime": format_datetime(start + dt.timedelta(hours=2), usegmt=True),
                "eventDescription": [
                    {"language": "en_US", "latestDescription": f"{code} (emulated)"}
                ],
                "affectedEntities": [{"entityValue": i} for i, _ in ids],
            },
        )
    )
    return {"event_type_code": code, "start_time": iso_z(start)}


def exit_control(method: str, path: str, account: str, body: Any) -> tuple[int, Any] | None:
    """The exit endpoints of the control API; None when `path` is none of them."""
    calls = {
        "spot-interruptions": spot_interruptions,
        "rebalance-recommendations": rebalance_recommendations,
        "health-events": health_events,
    }
    if path not in calls or method != "POST":
        return None
    try:
        return 200, calls[path](account, body)
    except ValueError as err:
        return 400, {"error": str(err)}
