"""Auto Scaling lifecycle actions (patches 3 and 4): waits, their events, completion and
timeouts, for launches and terminations and the warm pool's moves."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

from moto.autoscaling.models import FakeAutoScalingGroup, InstanceState

from . import activities
from .common import LAUNCHING, LOG, STATE, TERMINATING, iso_z, utcnow
from .imds import set_target_state

WARM_POOL, GROUP, EC2 = "WarmPool", "AutoScalingGroup", "EC2"


@dataclasses.dataclass(frozen=True)
class Move:
    """Where an instance comes from and goes to (the event's Origin and Destination), the hook
    transition that holds it, and the state it waits in."""

    transition: str
    origin: str
    destination: str
    wait_state: str


LAUNCH = Move(LAUNCHING, EC2, GROUP, "Pending:Wait")
LAUNCH_INTO_POOL = Move(LAUNCHING, EC2, WARM_POOL, "Warmed:Pending:Wait")
LEAVE_POOL = Move(LAUNCHING, WARM_POOL, GROUP, "Pending:Wait")
TERMINATE = Move(TERMINATING, GROUP, EC2, "Terminating:Wait")
RETURN_TO_POOL = Move(TERMINATING, GROUP, WARM_POOL, "Warmed:Pending:Wait")
RETIRE_FROM_POOL = Move(TERMINATING, WARM_POOL, EC2, "Warmed:Terminating:Wait")


@dataclasses.dataclass
class LifecycleAction:
    token: str
    account: str
    region: str
    group: FakeAutoScalingGroup
    hook_name: str
    move: Move
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
    def transition(self) -> str:
        return self.move.transition

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
            "origin": self.move.origin,
            "destination": self.move.destination,
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
    detail["Origin"], detail["Destination"] = action.move.origin, action.move.destination
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
    group: FakeAutoScalingGroup, state: InstanceState, move: Move, hooks: list[Any]
) -> None:
    """Put an instance in the move's wait state (Pending:Wait, Terminating:Wait, Warmed:...)
    with one action (and event) per hook."""
    state.lifecycle_state = move.wait_state
    activities.holding(state.instance.id)
    now = utcnow()
    for hook in hooks:
        action = LifecycleAction(
            token=str(uuid.uuid4()),
            account=group.account_id,
            region=group.region,
            group=group,
            hook_name=hook.name,
            move=move,
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
        begin_wait(group, state, LAUNCH, hooks)
    else:
        activities.finish(state.instance.id, ok=True)


def pending_actions(state: InstanceState, transition: str | None = None) -> list[LifecycleAction]:
    return [
        a
        for a in STATE.lifecycle_actions.values()
        if a.state is state and a.result is None and transition in (None, a.transition)
    ]


def end_action(action: LifecycleAction, result: str, by: str) -> None:
    action.result, action.ended, action.ended_by = result, utcnow(), by


def supersede_actions(state: InstanceState) -> None:
    for action in pending_actions(state):
        end_action(action, "ABANDON", "superseded")


def begin_move(group: FakeAutoScalingGroup, state: InstanceState, move: Move) -> bool:
    """Start a move through the group's hooks for its transition (none once the group is being
    deleted: flag set by the delete patch). True when the instance now waits."""
    supersede_actions(state)
    hooks = [] if getattr(group, "_jk_deleting", False) else hooks_for(group, move.transition)
    if hooks:
        begin_wait(group, state, move, hooks)
    return bool(hooks)


def begin_termination(
    group: FakeAutoScalingGroup,
    state: InstanceState,
    move: Move = TERMINATE,
    cause: str | None = None,
) -> None:
    """One instance leaves for good: it waits in Terminating:Wait (Warmed:Terminating:Wait from
    the pool) when the group has a terminate hook, else it is terminated now. Its activity
    ("Terminating EC2 instance[ from warm pool]: i-...") starts now."""
    template = activities.TERMINATE_FROM_POOL if move.origin == WARM_POOL else activities.TERMINATE
    activities.record(
        group,
        state,
        template,
        cause or f"At {iso_z(utcnow())} instance {state.instance.id} was taken out of service.",
    )
    set_target_state(state.instance.id, "Terminated")
    if not begin_move(group, state, move):
        terminate_now(group, state)


def settle_in_pool(group: FakeAutoScalingGroup, state: InstanceState) -> None:
    """End of a move into the warm pool: Warmed:<PoolState>; stopped unless the pool runs.
    A pool gone or being deleted meanwhile: terminated instead."""
    pool = getattr(group, "warm_pool", None)
    STATE.warming.pop(state.instance.id, None)
    if pool is None or getattr(pool, "status", None) == "PendingDelete":
        activities.finish(state.instance.id, ok=False, message="The warm pool was deleted")
        terminate_now(group, state)
        return
    activities.finish(state.instance.id, ok=True)
    state.lifecycle_state = f"Warmed:{pool.pool_state}"
    set_target_state(state.instance.id, state.lifecycle_state)
    if pool.pool_state != "Running" and state.instance.state == "running":
        group.ec2_backend.stop_instances([state.instance.id])


def terminate_now(group: FakeAutoScalingGroup, state: InstanceState) -> None:
    """Remove the instance from its group and terminate it, without refilling the group."""
    warm = state.lifecycle_state.startswith("Warmed:")
    state.lifecycle_state = "Warmed:Terminated" if warm else "Terminated"
    STATE.warming.pop(state.instance.id, None)
    activities.finish(state.instance.id)
    set_target_state(state.instance.id, "Terminated")
    if state in group.instance_states:
        group.instance_states.remove(state)
    if state.instance.state != "terminated":
        group.ec2_backend.terminate_instances([state.instance.id])
    if group.name in group.autoscaling_backend.autoscaling_groups:
        group.autoscaling_backend.update_attached_elbs(group.name)
        group.autoscaling_backend.update_attached_target_groups(group.name)
    pool = getattr(group, "warm_pool", None)
    if getattr(pool, "status", None) == "PendingDelete" and not any(
        s.lifecycle_state.startswith("Warmed:") for s in group.instance_states
    ):
        group.warm_pool = None  # DeleteWarmPool is done once its last instance is gone


def finish_action(action: LifecycleAction, result: str, by: str) -> None:
    """Apply a completed (or timed-out) action once every action of the move is done: into
    service (launch CONTINUE), into the warm pool (launch into it with CONTINUE, or scale-in
    back to it with either result), else terminated (ABANDON of a launch, end of a terminate)."""
    end_action(action, result, by)
    state, group = action.state, action.group
    others = pending_actions(state, action.transition)
    if result == "ABANDON":
        for other in others:
            end_action(other, "ABANDON", "superseded")
        others = []
    if others:
        return
    move = action.move
    if move.destination == GROUP and result == "CONTINUE":
        state.lifecycle_state = "InService"
        activities.finish(state.instance.id, ok=True)
        group.autoscaling_backend.update_attached_elbs(group.name)
        group.autoscaling_backend.update_attached_target_groups(group.name)
    elif move.destination == WARM_POOL and (move.transition == TERMINATING or result == "CONTINUE"):
        settle_in_pool(group, state)
    else:
        if move.transition == LAUNCHING:
            activities.finish(
                state.instance.id, ok=False, message=activities.abandoned_message(action.token)
            )
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
    """Lazily (before requests, server.housekeeping, and before completions) apply the DefaultResult of actions past their deadline, and
    drop actions whose instance went away."""
    now = utcnow()
    with STATE.lock:
        for action in list(STATE.lifecycle_actions.values()):
            if action.result is not None:
                continue
            if not action.alive():
                end_action(action, "ABANDON", "superseded")
                if action.state.instance.state == "terminated":
                    activities.finish(action.instance_id)
            elif action.deadline <= now:
                finish_action(action, action.default_result, "timeout")
