"""Auto Scaling scaling activities (gap 10 in emulator/README.md): one activity per instance
move, as Auto Scaling records them, and DescribeScalingActivities (moto answers an empty list).

Wording (emulator/README.md, "Scaling activities", gives the sources): launches into the group
"Launching a new EC2 instance: i-…", into the warm pool "… into warm pool: i-…", out of it for
service "… from warm pool: i-…"; "Terminating EC2 instance: i-…" and "Terminating EC2 instance from
warm pool: i-…". An activity starts when the move starts (the StartTime of a launch from the warm
pool is when the instance left the pool, not its first launch), waits as MidLifecycleAction while
a lifecycle hook holds the instance, and ends Successful, or Cancelled (launch ABANDONed)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from typing import Any

from moto.autoscaling.exceptions import ValidationError
from moto.autoscaling.models import FakeAutoScalingGroup, InstanceState
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult

from .common import STATE, iso_z, utcnow

LAUNCH = "Launching a new EC2 instance: {}"
LAUNCH_INTO_POOL = "Launching a new EC2 instance into warm pool: {}"
LAUNCH_FROM_POOL = "Launching a new EC2 instance from warm pool: {}"
TERMINATE = "Terminating EC2 instance: {}"
TERMINATE_FROM_POOL = "Terminating EC2 instance from warm pool: {}"
RETURN_TO_POOL = "Moving EC2 instance to warm pool: {}"  # chosen: AWS's wording not found

MAX_RECORDS = 100  # DescribeScalingActivities: MaxRecords default and maximum
MAX_ACTIVITY_IDS = 50


@dataclasses.dataclass
class Activity:
    seq: int
    activity_id: str
    group: FakeAutoScalingGroup
    instance_id: str
    description: str
    cause: str
    start_time: dt.datetime
    details: str
    status_code: str = "InProgress"
    progress: int = 0
    end_time: dt.datetime | None = None
    status_message: str | None = None

    @property
    def open(self) -> bool:
        return self.end_time is None

    @property
    def terminating(self) -> bool:
        return self.description.startswith(("Terminating", "Moving"))

    def as_result(self, deleted: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ActivityId": self.activity_id,
            "AutoScalingGroupName": self.group.name,
            "AutoScalingGroupARN": self.group.arn,
            "Description": self.description,
            "Cause": self.cause,
            "StartTime": self.start_time,
            "StatusCode": self.status_code,
            "Progress": self.progress,
            "Details": self.details,
        }
        if self.end_time is not None:
            out["EndTime"] = self.end_time
        if self.status_message:
            out["StatusMessage"] = self.status_message
        if deleted:
            out["AutoScalingGroupState"] = "Deleted"
        return out


def capacity_cause(start: int, end: int, moment: dt.datetime | None = None) -> str:
    """The Cause of a launch or a scale-in made to meet the desired capacity."""
    at = iso_z(moment or utcnow())
    if end >= start:
        return (
            f"At {at} an instance was started in response to a difference between desired and "
            f"actual capacity, increasing the capacity from {start} to {end}."
        )
    return (
        f"At {at} an instance was taken out of service in response to a difference between "
        f"desired and actual capacity, shrinking the capacity from {start} to {end}."
    )


def selected_cause(start: int, end: int, instance_id: str) -> str:
    """Scale-in: the capacity sentence, then the instance chosen."""
    chosen = f"At {iso_z(utcnow())} instance {instance_id} was selected for termination."
    return f"{capacity_cause(start, end)}  {chosen}"


def user_request_cause(instance_id: str, start: int, end: int) -> str:
    """TerminateInstanceInAutoScalingGroup."""
    text = (
        f"At {iso_z(utcnow())} instance {instance_id} was taken out of service in response to "
        "a user request"
    )
    return text + (f", shrinking the capacity from {start} to {end}." if end < start else ".")


def pool_cause(start: int, end: int) -> str:
    """Chosen (AWS's wording not found): a launch into, or a retirement from, the warm pool to
    bring it to its size."""
    verb = "launched into" if end >= start else "taken out of"
    change = "increasing" if end >= start else "shrinking"
    return (
        f"At {iso_z(utcnow())} an instance was {verb} the warm pool in response to a difference "
        f"between the warm pool's prepared capacity and its instances, {change} the warm pool "
        f"from {start} to {end}."
    )


def details_of(instance: Any) -> str:
    details: dict[str, str] = {}
    subnet = getattr(instance, "subnet_id", None)
    if subnet:
        details["Subnet ID"] = subnet
    zone = getattr(instance, "availability_zone", None) or getattr(
        getattr(instance, "placement", None), "zone", None
    )
    if zone:
        details["Availability Zone"] = zone
    return json.dumps(details, separators=(",", ":"))


def open_activity(instance_id: str) -> Activity | None:
    for activity in reversed(STATE.activities):
        if activity.instance_id == instance_id and activity.open:
            return activity
    return None


def record(group: FakeAutoScalingGroup, state: InstanceState, template: str, cause: str) -> None:
    """A move of `state`'s instance begins now (before its lifecycle hooks hold it). An activity
    still open for the instance is cancelled: the new move replaced it."""
    instance = state.instance
    with STATE.lock:
        finish(instance.id, ok=False, message="Superseded by a later activity")
        STATE.activity_seq += 1
        STATE.activities.append(
            Activity(
                seq=STATE.activity_seq,
                activity_id=str(uuid.uuid4()),
                group=group,
                instance_id=instance.id,
                description=template.format(instance.id),
                cause=cause,
                start_time=utcnow(),
                details=details_of(instance),
            )
        )


def holding(instance_id: str) -> None:
    """A lifecycle hook holds the instance: MidLifecycleAction."""
    activity = open_activity(instance_id)
    if activity is not None:
        activity.status_code, activity.progress = "MidLifecycleAction", 50


def finish(instance_id: str, ok: bool | None = None, message: str | None = None) -> None:
    """End the instance's open activity: Successful (`ok`), Cancelled with `message` (not `ok`),
    or, with `ok=None` (the instance is gone), Successful for a termination and Cancelled for a
    launch cut short."""
    activity = open_activity(instance_id)
    if activity is None:
        return
    if ok is None:
        ok = activity.terminating
    activity.end_time, activity.progress = utcnow(), 100
    if ok:
        activity.status_code = "Successful"
    else:
        activity.status_code = "Cancelled"
        if message:
            activity.status_message = message
            activity.description += f".  Status Reason: {message}"


def abandoned_message(token: str) -> str:
    return (
        "Instance failed to complete user's Lifecycle Action: Lifecycle Action with token "
        f"{token} was abandoned: Lifecycle Action Completed with ABANDON Result"
    )


def asg_describe_scaling_activities(self: AutoScalingResponse) -> ActionResult:
    """Replaces DescribeScalingActivities: the activities of the account and Region (or of one
    group), newest first, MaxRecords (default and at most 100), NextToken, ActivityIds,
    IncludeDeletedGroups."""
    backend = self.autoscaling_backend
    name = self._get_param("AutoScalingGroupName")
    ids = self._get_param("ActivityIds", []) or []
    include_deleted = self._get_bool_param("IncludeDeletedGroups", False)
    max_records = self._get_int_param("MaxRecords") or MAX_RECORDS
    token = self._get_param("NextToken")
    if len(ids) > MAX_ACTIVITY_IDS:
        raise ValidationError(
            f"1 validation error detected: Value '{ids}' at 'activityIds' failed to satisfy "
            f"constraint: Member must have length less than or equal to {MAX_ACTIVITY_IDS}"
        )
    if not 1 <= max_records <= MAX_RECORDS:
        raise ValidationError(
            f"1 validation error detected: Value '{max_records}' at 'maxRecords' failed to "
            f"satisfy constraint: Member must have value less than or equal to {MAX_RECORDS}"
        )
    if token is not None and not token.isdigit():
        raise ValidationError("Invalid NextToken")
    with STATE.lock:
        live = backend.autoscaling_groups
        chosen = []
        for activity in STATE.activities:
            group = activity.group
            if group.account_id != backend.account_id or group.region != backend.region_name:
                continue
            deleted = live.get(group.name) is not group
            if deleted and not include_deleted:
                continue
            if name and group.name != name:
                continue
            if ids and activity.activity_id not in ids:
                continue
            if token is not None and activity.seq >= int(token):
                continue
            chosen.append((activity, deleted))
        # Newest first: activities are numbered as they start.
        chosen.sort(key=lambda pair: pair[0].seq, reverse=True)
        page = chosen[:max_records]
        next_token = str(page[-1][0].seq) if len(chosen) > max_records else None
        result: dict[str, Any] = {"Activities": [a.as_result(deleted) for a, deleted in page]}
        if next_token:
            result["NextToken"] = next_token
        return ActionResult(result)
