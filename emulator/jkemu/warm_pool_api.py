"""Warm-pool API calls (patch 7): PutWarmPool, DescribeWarmPool (with the pool's instances and
their Warmed:* states, paginated), DeleteWarmPool; DescribeAutoScalingGroups lists warm-pool
instances only in WarmPoolSize, not in Instances."""

from __future__ import annotations

from typing import Any

from moto.autoscaling.exceptions import ValidationError
from moto.autoscaling.models import AutoScalingBackend, FakeAutoScalingGroup
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult, EmptyResult

from .common import STATE, paginate
from .lifecycle import supersede_actions, terminate_now
from .warm_pool import is_warm, maintain_pool

POOL_STATES = ("Stopped", "Running", "Hibernated")


def find_group(backend: AutoScalingBackend, name: str) -> FakeAutoScalingGroup:
    group = backend.autoscaling_groups.get(name)
    if group is None:
        raise ValidationError(
            f"AutoScalingGroup name not found - AutoScalingGroup '{name}' not found"
        )
    return group


def group_instances(self: FakeAutoScalingGroup) -> list[Any]:
    """DescribeAutoScalingGroups' Instances: the group's instances, not its warm pool's."""
    return [s for s in self.instance_states if not is_warm(s)]


def group_warm_pool_size(self: FakeAutoScalingGroup) -> int | None:
    if getattr(self, "warm_pool", None) is None:
        return None
    return sum(1 for s in self.instance_states if is_warm(s))


def asg_put_warm_pool(self: AutoScalingResponse) -> ActionResult:
    """Replaces PutWarmPool: creates or updates the pool, then fills it to its size."""
    group = find_group(self.autoscaling_backend, self._get_param("AutoScalingGroupName"))
    pool_state = self._get_param("PoolState") or "Stopped"
    if pool_state not in POOL_STATES:
        raise ValidationError(
            f"1 validation error detected: Value '{pool_state}' at 'poolState' failed to satisfy "
            "constraint: Member must satisfy enum value set: [Running, Stopped, Hibernated]"
        )
    reuse = self._get_param("InstanceReusePolicy") or None
    if reuse is not None:
        reuse = {"ReuseOnScaleIn": str(reuse.get("ReuseOnScaleIn")).lower() == "true"}
    with STATE.lock:
        if getattr(group.warm_pool, "status", None) == "PendingDelete":
            raise ValidationError(
                f"The warm pool of Auto Scaling group {group.name} is being deleted."
            )
        group.put_warm_pool(
            max_group_prepared_capacity=self._get_int_param("MaxGroupPreparedCapacity"),
            min_size=self._get_int_param("MinSize"),
            pool_state=pool_state,
            instance_reuse_policy=reuse,
        )
        group.warm_pool.status = None
        maintain_pool(group)
    return EmptyResult()


def asg_describe_warm_pool(self: AutoScalingResponse) -> ActionResult:
    """Replaces DescribeWarmPool: the configuration and the pool's instances (MaxRecords,
    NextToken)."""
    group = find_group(self.autoscaling_backend, self._get_param("AutoScalingGroupName"))
    with STATE.lock:
        warm = [s for s in group.instance_states if is_warm(s)]
        page, token = paginate(
            warm, self._get_int_param("MaxRecords"), self._get_param("NextToken"), default=50
        )
        return ActionResult(
            {"WarmPoolConfiguration": group.warm_pool, "Instances": page, "NextToken": token}
        )


def asg_delete_warm_pool(self: AutoScalingResponse) -> ActionResult:
    """Replaces DeleteWarmPool: the pool's Status becomes PendingDelete while its instances leave
    to be terminated (through the terminate hooks); it disappears with its last instance.
    ForceDelete terminates them at once, without hooks."""
    group = find_group(self.autoscaling_backend, self._get_param("AutoScalingGroupName"))
    with STATE.lock:
        if group.warm_pool is None:
            return EmptyResult()
        if self._get_bool_param("ForceDelete", False):
            for state in [s for s in group.instance_states if is_warm(s)]:
                supersede_actions(state)
                terminate_now(group, state)
            group.warm_pool = None
        else:
            group.warm_pool.status = "PendingDelete"
            maintain_pool(group)
    return EmptyResult()
