"""Auto Scaling lifecycle actions (patches 3 and 4): waits, their events, completion and
timeouts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

from moto.autoscaling.models import FakeAutoScalingGroup, InstanceState

from .common import LAUNCHING, LOG, STATE, TERMINATING, iso_z, utcnow


@dataclasses.dataclass
class LifecycleAction:
    token: str
    account: str
    region: str
    group: FakeAutoScalingGroup
    hook_name: str
    transition: str
    state: InstanceState
    heartbeat_timeout: int
    default_result: str
    started: dt.datetime
    last_heartbeat: dt.datetime
    result: str | None = None
    ended: dt.datetime | None = None
    ended_by: str | None = None  # api | timeout | superseded

    @property
    def instance_id(self) -> str:
        return self.state.instance.id

    @property
    def deadline(self) -> dt.datetime:
        global_timeout = min(172800, 100 * self.heartbeat_timeout)
        return min(
            self.last_heartbeat + dt.timedelta(seconds=self.heartbeat_timeout),
            self.started + dt.timedelta(seconds=global_timeout),
        )

    def alive(self) -> bool:
        """Still pending, and its instance still in its group (an instance terminated through
        EC2, or a deleted group, ends the action silently)."""
        backend = self.group.autoscaling_backend
        return (
            self.result is None
            and backend.autoscaling_groups.get(self.group.name) is self.group
            and self.state in self.group.instance_states
            and self.state.instance.state != "terminated"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "account": self.account,
            "region": self.region,
            "group": self.group.name,
            "hook": self.hook_name,
            "transition": self.transition,
            "instance_id": self.instance_id,
            "started": iso_z(self.started),
            "last_heartbeat": iso_z(self.last_heartbeat),
            "deadline": iso_z(self.deadline),
            "result": self.result,
            "ended": iso_z(self.ended) if self.ended else None,
            "ended_by": self.ended_by,
        }


def hooks_for(group: FakeAutoScalingGroup, transition: str) -> list[Any]:
    """The group's hooks for one transition (moto: AutoScalingBackend.lifecycle_hooks)."""
    hooks = group.autoscaling_backend.lifecycle_hooks.values()
    return sorted(
        (
            h
            for h in hooks
            if h.auto_scaling_group_name == group.name and h.lifecycle_transition == transition
        ),
        key=lambda h: h.name,
    )


def lifecycle_event(action: LifecycleAction, hook: Any) -> dict[str, Any]:
    """The EventBridge event Auto Scaling sends for a lifecycle action."""
    launching = action.transition == LAUNCHING
    detail = {
        "LifecycleActionToken": action.token,
        "AutoScalingGroupName": action.group.name,
        "LifecycleHookName": action.hook_name,
        "EC2InstanceId": action.instance_id,
        "LifecycleTransition": action.transition,
    }
    if getattr(hook, "notification_metadata", None):
        detail["NotificationMetadata"] = hook.notification_metadata
    detail["Origin"], detail["Destination"] = (
        ("EC2", "AutoScalingGroup") if launching else ("AutoScalingGroup", "EC2")
    )
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": (
            "EC2 Instance-launch Lifecycle Action"
            if launching
            else "EC2 Instance-terminate Lifecycle Action"
        ),
        "source": "aws.autoscaling",
        "account": action.account,
        "time": iso_z(action.started),
        "region": action.region,
        "resources": [action.group.arn],
        "detail": detail,
    }


def begin_wait(
    group: FakeAutoScalingGroup, state: InstanceState, transition: str, hooks: list[Any]
) -> None:
    """Put an instance in Pending:Wait / Terminating:Wait with one action (and event) per hook."""
    state.lifecycle_state = "Pending:Wait" if transition == LAUNCHING else "Terminating:Wait"
    now = utcnow()
    for hook in hooks:
        action = LifecycleAction(
            token=str(uuid.uuid4()),
            account=group.account_id,
            region=group.region,
            group=group,
            hook_name=hook.name,
            transition=transition,
            state=state,
            heartbeat_timeout=int(hook.heartbeat_timeout),
            default_result=hook.default_result,
            started=now,
            last_heartbeat=now,
        )
        STATE.lifecycle_actions[action.token] = action
        STATE.events.append(lifecycle_event(action, hook))
        LOG.info(
            "%s %s %s hook=%s token=%s",
            group.name,
            state.instance.id,
            state.lifecycle_state,
            hook.name,
            action.token,
        )


def begin_launch(group: FakeAutoScalingGroup, state: InstanceState) -> None:
    hooks = hooks_for(group, LAUNCHING)
    if hooks:
        begin_wait(group, state, LAUNCHING, hooks)


def pending_actions(state: InstanceState, transition: str | None = None) -> list[LifecycleAction]:
    return [
        a
        for a in STATE.lifecycle_actions.values()
        if a.state is state and a.result is None and transition in (None, a.transition)
    ]


def end_action(action: LifecycleAction, result: str, by: str) -> None:
    action.result, action.ended, action.ended_by = result, utcnow(), by


def begin_termination(group: FakeAutoScalingGroup, state: InstanceState) -> None:
    """Scale-in of one instance: Terminating:Wait when the group has a terminate hook, else
    terminated now. A deleted group (flag set by the delete patch) skips the hooks."""
    for action in pending_actions(state):
        end_action(action, "ABANDON", "superseded")
    hooks = [] if getattr(group, "_jk_deleting", False) else hooks_for(group, TERMINATING)
    if hooks:
        begin_wait(group, state, TERMINATING, hooks)
    else:
        terminate_now(group, state)


def terminate_now(group: FakeAutoScalingGroup, state: InstanceState) -> None:
    """Remove the instance from its group and terminate it, without refilling the group."""
    state.lifecycle_state = "Terminated"
    if state in group.instance_states:
        group.instance_states.remove(state)
    if state.instance.state != "terminated":
        group.ec2_backend.terminate_instances([state.instance.id])
    if group.name in group.autoscaling_backend.autoscaling_groups:
        group.autoscaling_backend.update_attached_elbs(group.name)
        group.autoscaling_backend.update_attached_target_groups(group.name)


def finish_action(action: LifecycleAction, result: str, by: str) -> None:
    """Apply a completed (or timed-out) action: InService once every launch action said
    CONTINUE; terminated on a launch ABANDON or once the terminate actions are done."""
    end_action(action, result, by)
    state, group = action.state, action.group
    others = pending_actions(state, action.transition)
    if result == "ABANDON":
        for other in others:
            end_action(other, "ABANDON", "superseded")
        others = []
    if others:
        return
    if action.transition == LAUNCHING and result == "CONTINUE":
        state.lifecycle_state = "InService"
        group.autoscaling_backend.update_attached_elbs(group.name)
        group.autoscaling_backend.update_attached_target_groups(group.name)
    else:
        terminate_now(group, state)
    LOG.info(
        "%s %s lifecycle %s by %s -> %s",
        group.name,
        state.instance.id,
        result,
        by,
        state.lifecycle_state,
    )


def expire_lifecycle_actions() -> None:
    """Lazily (before each request) apply the DefaultResult of actions past their deadline, and
    drop actions whose instance went away."""
    now = utcnow()
    with STATE.lock:
        for action in list(STATE.lifecycle_actions.values()):
            if action.result is not None:
                continue
            if not action.alive():
                end_action(action, "ABANDON", "superseded")
            elif action.deadline <= now:
                finish_action(action, action.default_result, "timeout")
