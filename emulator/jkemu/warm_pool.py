"""Warm pools (patch 7): how instances enter a group's warm pool, leave it for service, come back
to it on scale-in (ReuseOnScaleIn) and leave it to die, and how the pool keeps its size."""

from __future__ import annotations

from typing import Any

from moto.autoscaling.models import FakeAutoScalingGroup, InstanceState

from . import activities
from .common import COUNTED_STATES, LOG, STATE, iso_z, utcnow
from .imds import LAUNCH, set_target_state
from .lifecycle import (
    LEAVE_POOL,
    LAUNCH_INTO_POOL,
    RETIRE_FROM_POOL,
    RETURN_TO_POOL,
    WARM_POOL,
    begin_move,
    begin_termination,
    settle_in_pool,
)

READY = ("Warmed:Stopped", "Warmed:Running", "Warmed:Hibernated")


def is_warm(state: InstanceState) -> bool:
    return state.lifecycle_state.startswith("Warmed:")


def active_pool(group: FakeAutoScalingGroup) -> Any:
    """The group's warm pool unless there is none or it (or the group) is being deleted."""
    pool = getattr(group, "warm_pool", None)
    if getattr(group, "_jk_deleting", False):
        return None
    return None if pool is None or getattr(pool, "status", None) == "PendingDelete" else pool


def live_pool(group: FakeAutoScalingGroup) -> list[InstanceState]:
    """Instances in the pool or on their way into it (not those leaving it to be terminated)."""
    return [
        s
        for s in group.instance_states
        if is_warm(s) and not s.lifecycle_state.startswith("Warmed:Terminat")
    ]


def pool_target_size(group: FakeAutoScalingGroup) -> int:
    """MaxGroupPreparedCapacity (default: the group's MaxSize) minus the desired capacity, and
    at least MinSize."""
    pool = active_pool(group)
    if pool is None:
        return 0
    prepared = pool.max_group_prepared_capacity
    if prepared is None or int(prepared) < 0:
        prepared = group.max_size or 0
    return max(int(pool.min_size or 0), int(prepared) - (group.desired_capacity or 0), 0)


def reuse_on_scale_in(pool: Any) -> bool:
    value = (pool.instance_reuse_policy or {}).get("ReuseOnScaleIn")
    return value is True or str(value).lower() == "true"


def launch_into_pool(group: FakeAutoScalingGroup, count: int) -> None:
    """New instances for the pool; the launch patch sends each to enter_pool."""
    LAUNCH.destination = WARM_POOL
    try:
        group.replace_autoscaling_group_instances(count, group.get_propagated_tags())
    finally:
        LAUNCH.destination = None


def enter_pool(group: FakeAutoScalingGroup, state: InstanceState) -> None:
    """A new instance launched into the pool (its user data runs at this first boot): it waits
    in Warmed:Pending:Wait for the launch hooks (Origin EC2, Destination WarmPool); without a
    hook it stays Warmed:Pending until its user data has ended (settle_warming)."""
    if not begin_move(group, state, LAUNCH_INTO_POOL):
        state.lifecycle_state = "Warmed:Pending"
        STATE.warming[state.instance.id] = state


def settle_warming() -> None:
    """Lazily (before requests, server.housekeeping): instances warming without a launch hook settle in the pool
    once their user data has ended."""
    with STATE.lock:
        for instance_id, state in list(STATE.warming.items()):
            group = state.auto_scaling_group
            if state.lifecycle_state != "Warmed:Pending" or state not in group.instance_states:
                STATE.warming.pop(instance_id, None)
                continue
            run = STATE.user_data_runs.get(instance_id)
            if run is None or run["status"] == "done":
                settle_in_pool(group, state)


def leave_pool(group: FakeAutoScalingGroup, state: InstanceState, cause: str) -> None:
    """Scale-out from the pool: the instance is started again (its boot units run, not its user
    data), then waits in Pending:Wait for the launch hooks (Origin WarmPool, Destination
    AutoScalingGroup), or goes InService at once without a hook. Its activity ("Launching a new
    EC2 instance from warm pool: i-...") starts now, whenever the instance was first launched."""
    activities.record(group, state, activities.LAUNCH_FROM_POOL, cause)
    set_target_state(state.instance.id, "InService")
    if state.instance.state != "running":
        group.ec2_backend.start_instances([state.instance.id])
    if not begin_move(group, state, LEAVE_POOL):
        state.lifecycle_state = "InService"
        activities.finish(state.instance.id, ok=True)
    LOG.info("%s %s left the warm pool -> %s", group.name, state.instance.id, state.lifecycle_state)


def take_from_pool(group: FakeAutoScalingGroup, count: int) -> int:
    """Scale-out: up to `count` prepared instances leave the pool, oldest first."""
    ready = [s for s in group.instance_states if s.lifecycle_state in READY][:count]
    serving = sum(1 for s in group.instance_states if s.lifecycle_state in COUNTED_STATES)
    cause = activities.capacity_cause(serving, serving + len(ready))
    for state in ready:
        leave_pool(group, state, cause)
    return len(ready)


def scale_in(group: FakeAutoScalingGroup, state: InstanceState, cause: str) -> None:
    """Scale-in of one instance: back to the warm pool when the pool has ReuseOnScaleIn and room
    (Warmed:Pending:Wait through the terminate hooks, Origin AutoScalingGroup, Destination
    WarmPool), else terminated (Terminating:Wait, Destination EC2)."""
    pool = active_pool(group)
    if (
        pool is None
        or not reuse_on_scale_in(pool)
        or len(live_pool(group)) >= pool_target_size(group)
    ):
        begin_termination(group, state, cause=cause)
        return
    activities.record(group, state, activities.RETURN_TO_POOL, cause)
    set_target_state(state.instance.id, f"Warmed:{pool.pool_state}")
    if not begin_move(group, state, RETURN_TO_POOL):
        settle_in_pool(group, state)


def retire_from_pool(group: FakeAutoScalingGroup, state: InstanceState, cause: str) -> None:
    """A pool instance leaves to be terminated: Warmed:Terminating:Wait through the terminate
    hooks (Origin WarmPool, Destination EC2), else terminated now."""
    STATE.warming.pop(state.instance.id, None)
    begin_termination(group, state, RETIRE_FROM_POOL, cause)


def maintain_pool(group: FakeAutoScalingGroup) -> None:
    """Bring the pool to its size: launch into it, or retire the surplus (prepared instances
    first, newest first). A pool being deleted retires everything and then disappears."""
    pool = getattr(group, "warm_pool", None)
    if pool is None or getattr(group, "_jk_deleting", False):
        return
    live = live_pool(group)
    if getattr(pool, "status", None) == "PendingDelete":
        cause = (
            f"At {iso_z(utcnow())} an instance was taken out of the warm pool in response to a "
            "user request to delete the warm pool."
        )
        for state in live:
            retire_from_pool(group, state, cause)
        if not any(is_warm(s) for s in group.instance_states):
            group.warm_pool = None
        return
    want = pool_target_size(group)
    if len(live) < want:
        launch_into_pool(group, want - len(live))
    elif len(live) > want:
        newest_first = list(reversed(live))
        ranked = [s for s in newest_first if s.lifecycle_state in READY] + [
            s for s in newest_first if s.lifecycle_state not in READY
        ]
        cause = activities.pool_cause(len(live), want)
        for state in ranked[: len(live) - want]:
            retire_from_pool(group, state, cause)
