"""Auto Scaling API calls about lifecycle actions and hooks: CompleteLifecycleAction,
RecordLifecycleActionHeartbeat, and hooks keeping what moto drops."""

from __future__ import annotations

from typing import Callable

from moto.autoscaling.exceptions import ResourceContentionError, ValidationError
from moto.ec2.models import ec2_backends
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult, EmptyResult

from .common import STATE, iso_z, utcnow
from .lifecycle import LifecycleAction, expire_lifecycle_actions, finish_action


def find_active_action(
    account: str,
    region: str,
    group_name: str,
    hook_name: str,
    token: str | None,
    instance_id: str | None,
) -> LifecycleAction | None:
    for action in STATE.lifecycle_actions.values():
        if (action.account, action.region, action.group.name, action.hook_name) != (
            account,
            region,
            group_name,
            hook_name,
        ):
            continue
        matches = action.token == token if token else action.instance_id == instance_id
        if matches and action.alive():
            return action
    return None


def record_lifecycle_call(
    account: str,
    region: str,
    group: str,
    hook: str,
    instance_id: str | None,
    token: str | None,
    kind: str,
    ok: bool,
) -> None:
    STATE.lifecycle_log.append(
        {
            "time": iso_z(utcnow(), millis=True),
            "account": account,
            "region": region,
            "group": group,
            "instance_id": instance_id,
            "hook": hook,
            "token": token,
            "action": kind,
            "result": "ok" if ok else "rejected",
        }
    )


def lifecycle_call(response: AutoScalingResponse, kind: str) -> LifecycleAction:
    """Shared body of CompleteLifecycleAction and RecordLifecycleActionHeartbeat: find the
    pending action or answer ValidationError as AWS does; log the call either way."""
    account, region = response.current_account, response.region
    group, hook = response._get_param("AutoScalingGroupName"), response._get_param(
        "LifecycleHookName"
    )
    token, instance_id = response._get_param("LifecycleActionToken"), response._get_param(
        "InstanceId"
    )
    action = find_active_action(account, region, group, hook, token, instance_id)
    record_lifecycle_call(
        account,
        region,
        group,
        hook,
        action.instance_id if action else instance_id,
        token,
        kind,
        action is not None,
    )
    if action is None:
        if token:
            raise ValidationError(f"No active Lifecycle Action found with token {token}")
        raise ValidationError(f"No active Lifecycle Action found with instance ID {instance_id}")
    # Test behaviour: the instance tag emulator:lifecycle-api=fail makes every completion and
    # heartbeat for it fail (as AWS can, e.g. ResourceContention), so tests can show that one
    # failing action does not stop the others.
    tags = ec2_backends[account][region].tags.get(action.instance_id, {})
    if tags.get("emulator:lifecycle-api") == "fail":
        raise ResourceContentionError()
    return action


def asg_complete_lifecycle_action(self: AutoScalingResponse) -> ActionResult:
    """Implements CompleteLifecycleAction (moto answers 500)."""
    result = self._get_param("LifecycleActionResult")
    if result not in ("CONTINUE", "ABANDON"):
        raise ValidationError(
            f"Invalid value for LifecycleActionResult: {result}. Valid values are CONTINUE and ABANDON."
        )
    with STATE.lock:
        expire_lifecycle_actions()
        action = lifecycle_call(self, result)
        finish_action(action, result, "api")
    return EmptyResult()


def asg_record_lifecycle_action_heartbeat(self: AutoScalingResponse) -> ActionResult:
    """Implements RecordLifecycleActionHeartbeat (moto answers 500): restarts the timeout."""
    with STATE.lock:
        expire_lifecycle_actions()
        action = lifecycle_call(self, "HEARTBEAT")
        action.last_heartbeat = utcnow()
    return EmptyResult()


def wrap_put_lifecycle_hook(original: Callable) -> Callable:
    def put_lifecycle_hook(self: AutoScalingResponse) -> ActionResult:
        """PutLifecycleHook also keeps NotificationMetadata (moto drops it), so that events
        and DescribeLifecycleHooks carry it."""
        result = original(self)
        key = f"{self._get_param('AutoScalingGroupName')}_{self._get_param('LifecycleHookName')}"
        hook = self.autoscaling_backend.lifecycle_hooks.get(key)
        if hook is not None:
            hook.notification_metadata = self._get_param("NotificationMetadata")
        return result

    return put_lifecycle_hook


def wrap_create_auto_scaling_group(original: Callable) -> Callable:
    def create_auto_scaling_group(self: AutoScalingResponse) -> ActionResult:
        """CreateAutoScalingGroup honours LifecycleHookSpecificationList (moto drops it): the
        hooks exist before the first instances launch, so those wait too."""
        name = self._get_param("AutoScalingGroupName")
        created = []
        for spec in self._get_param("LifecycleHookSpecificationList", []) or []:
            hook = self.autoscaling_backend.create_lifecycle_hook(
                name=spec["LifecycleHookName"],
                as_name=name,
                transition=spec["LifecycleTransition"],
                timeout=int(spec["HeartbeatTimeout"]) if spec.get("HeartbeatTimeout") else None,
                result=spec.get("DefaultResult"),
            )
            hook.notification_metadata = spec.get("NotificationMetadata")
            created.append(f"{name}_{hook.name}")
        try:
            with STATE.lock:
                return original(self)
        except Exception:
            for key in created:
                self.autoscaling_backend.lifecycle_hooks.pop(key, None)
            raise

    return create_auto_scaling_group
