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

from .common import COUNTED_STATES, STATE
from .lifecycle import begin_launch, begin_termination, end_action, pending_actions, terminate_now


def wrap_replace_instances(original: Callable) -> Callable:
    def replace_autoscaling_group_instances(
        self: FakeAutoScalingGroup, count_needed: int, propagated_tags: dict[str, str]
    ) -> None:
        """New group instances go to Pending:Wait when the group has a launch hook."""
        with STATE.lock:
            before = set(map(id, self.instance_states))
            original(self, count_needed, propagated_tags)
            for state in [s for s in self.instance_states if id(s) not in before]:
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
    capacity (moto counts only InService, so it would launch again), and scale-in goes through
    the terminate hooks (Terminating:Wait) instead of terminating at once."""
    with STATE.lock:
        self.desired_capacity = self.min_size if new_capacity is None else new_capacity
        counted = [s for s in self.instance_states if s.lifecycle_state in COUNTED_STATES]
        delta = instances_wanted(self) - len(counted)
        if delta > 0:
            self.replace_autoscaling_group_instances(delta, self.get_propagated_tags())
        elif delta < 0:
            for state in [s for s in counted if not s.protected_from_scale_in][:-delta]:
                begin_termination(self, state)
        if self.name in self.autoscaling_backend.autoscaling_groups:
            self.autoscaling_backend.update_attached_elbs(self.name)
            self.autoscaling_backend.update_attached_target_groups(self.name)


def asg_terminate_instance(
    self: AutoScalingBackend, instance_id: str, should_decrement: bool
) -> TerminateInstanceActivity:
    """Replaces AutoScalingBackend.terminate_instance (TerminateInstanceInAutoScalingGroup): the
    instance goes through the terminate hooks; without decrement a replacement is launched."""
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
            begin_termination(group, state)
            group.set_desired_capacity(group.desired_capacity)
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
                    for action in pending_actions(state):
                        end_action(action, "ABANDON", "superseded")
                    terminate_now(group, state)
            for key in [
                k
                for k, h in self.lifecycle_hooks.items()
                if h.auto_scaling_group_name == group_name
            ]:
                del self.lifecycle_hooks[key]

    return delete_auto_scaling_group
