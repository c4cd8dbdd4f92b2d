"""Group capacity with lifecycle waits: launches, scale-in, TerminateInstanceInAutoScalingGroup,
group deletion."""

from __future__ import annotations

import math
from typing import Callable

from moto.autoscaling.exceptions import ValidationError
from moto.autoscaling.models import (
    AutoScalingBackend,
    FakeAutoScalingGroup,
    TerminateInstanceActivity,
)

from . import activities
from .common import COUNTED_STATES, STATE
from .imds import LAUNCH
from .lifecycle import begin_launch, begin_termination, supersede_actions, terminate_now
from .warm_pool import (
    WARM_POOL,
    enter_pool,
    is_warm,
    live_pool,
    maintain_pool,
    retire_from_pool,
    scale_in,
    take_from_pool,
)


def wrap_replace_instances(original: Callable) -> Callable:
    def replace_autoscaling_group_instances(
        self: FakeAutoScalingGroup, count_needed: int, propagated_tags: dict[str, str]
    ) -> None:
        """New group instances go to Pending:Wait when the group has a launch hook; instances
        launched for the warm pool enter it. Their target lifecycle state is set before their
        user data starts."""
        with STATE.lock:
            into_pool = getattr(LAUNCH, "destination", None) == WARM_POOL
            before = set(map(id, self.instance_states))
            if into_pool:
                had = len(live_pool(self))
                cause = activities.pool_cause(had, had + count_needed)
            else:
                had = sum(1 for s in self.instance_states if s.lifecycle_state in COUNTED_STATES)
                cause = activities.capacity_cause(had, had + count_needed)
            LAUNCH.target = f"Warmed:{self.warm_pool.pool_state}" if into_pool else "InService"
            LAUNCH.group = self
            try:
                original(self, count_needed, propagated_tags)
            finally:
                LAUNCH.target = LAUNCH.group = None
            for state in [s for s in self.instance_states if id(s) not in before]:
                if into_pool:
                    activities.record(self, state, activities.LAUNCH_INTO_POOL, cause)
                    enter_pool(self, state)
                else:
                    activities.record(self, state, activities.LAUNCH, cause)
                    begin_launch(self, state)

    return replace_autoscaling_group_instances


def instances_wanted(group: FakeAutoScalingGroup) -> int:
    """Instances needed for the desired capacity (mixed-instances groups: the first override's
    WeightedCapacity, as moto uses)."""
    desired = group.desired_capacity or 0
    overrides = ((group.mixed_instances_policy or {}).get("LaunchTemplate") or {}).get(
        "Overrides"
    ) or []
    weight = str(overrides[0].get("WeightedCapacity", "1")) if overrides else "1"
    return math.ceil(desired / max(int(weight) if weight.isdigit() else 1, 1))


def asg_set_desired_capacity(self: FakeAutoScalingGroup, new_capacity: int | None) -> None:
    """Replaces FakeAutoScalingGroup.set_desired_capacity: instances in Pending:Wait count toward
    capacity (moto counts only InService, so it would launch again), scale-out takes prepared
    instances from the warm pool first, scale-in goes through the terminate hooks
    (Terminating:Wait, or back to the warm pool) instead of terminating at once; then the warm
    pool is brought to its size."""
    with STATE.lock:
        self.desired_capacity = self.min_size if new_capacity is None else new_capacity
        counted = [s for s in self.instance_states if s.lifecycle_state in COUNTED_STATES]
        delta = instances_wanted(self) - len(counted)
        if delta > 0:
            delta -= take_from_pool(self, delta)
        if delta > 0:
            self.replace_autoscaling_group_instances(delta, self.get_propagated_tags())
        elif delta < 0:
            for state in [s for s in counted if not s.protected_from_scale_in][:-delta]:
                cause = activities.selected_cause(
                    len(counted), len(counted) + delta, state.instance.id
                )
                scale_in(self, state, cause)
        maintain_pool(self)
        if self.name in self.autoscaling_backend.autoscaling_groups:
            self.autoscaling_backend.update_attached_elbs(self.name)
            self.autoscaling_backend.update_attached_target_groups(self.name)


def asg_terminate_instance(
    self: AutoScalingBackend, instance_id: str, should_decrement: bool
) -> TerminateInstanceActivity:
    """Replaces AutoScalingBackend.terminate_instance (TerminateInstanceInAutoScalingGroup): the
    instance goes through the terminate hooks (never back to the warm pool); without decrement a
    replacement is launched (from the warm pool if it has one ready). A warm-pool instance
    leaves the pool to be terminated and the pool is refilled."""
    with STATE.lock:
        state = next(
            (
                s
                for g in self.autoscaling_groups.values()
                for s in g.instance_states
                if s.instance.id == instance_id
            ),
            None,
        )
        if state is None:
            raise ValidationError(
                f"Instance Id not found - No managed instance found for instance ID: {instance_id}"
            )
        group = state.auto_scaling_group
        original_size = group.desired_capacity
        if state.lifecycle_state in COUNTED_STATES:
            if should_decrement:
                if (group.desired_capacity or 0) <= (group.min_size or 0):
                    raise ValidationError(
                        f"Currently, desiredSize equals minSize ({group.min_size}). Terminating instance without replacement will violate "
                        "group's min size constraint. Either set shouldDecrementDesiredCapacity flag to false or lower group's min size."
                    )
                group.desired_capacity -= 1
            cause = activities.user_request_cause(
                instance_id, original_size or 0, group.desired_capacity or 0
            )
            begin_termination(group, state, cause=cause)
            group.set_desired_capacity(group.desired_capacity)
        elif is_warm(state) and not state.lifecycle_state.startswith("Warmed:Terminat"):
            retire_from_pool(group, state, activities.user_request_cause(instance_id, 0, 0))
            maintain_pool(group)
        return TerminateInstanceActivity(state.instance, original_size)


def wrap_delete_group(original: Callable) -> Callable:
    def delete_auto_scaling_group(self: AutoScalingBackend, group_name: str) -> None:
        """Deleting a group terminates its instances without hooks, ends their pending
        actions and deletes the group's hooks (moto keeps them for a same-named group)."""
        with STATE.lock:
            group = self.autoscaling_groups.get(group_name)
            if group is not None:
                group._jk_deleting = True
            original(self, group_name)
            if group is not None:
                for state in list(group.instance_states):
                    supersede_actions(state)
                    terminate_now(group, state)
            for key in [
                k
                for k, h in self.lifecycle_hooks.items()
                if h.auto_scaling_group_name == group_name
            ]:
                del self.lifecycle_hooks[key]

    return delete_auto_scaling_group
