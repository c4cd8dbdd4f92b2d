"""Stand-in for the instance metadata an Auto Scaling instance reads about itself: its target
lifecycle state (IMDS `latest/meta-data/autoscaling/target-lifecycle-state`), kept in the file
`<node dir>/imds/autoscaling/target-lifecycle-state` and passed to scripts as
JOINKEEPER_TARGET_LIFECYCLE_STATE."""

from __future__ import annotations

import threading

from .common import LOG
from .scripts import target_state_file

# The target state of the instances a group is launching right now (set around the launch, read
# by the RunInstances patch so that the file exists before user data starts).
LAUNCH = threading.local()


def set_target_state(instance_id: str, value: str) -> None:
    path = target_state_file(instance_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{value}\n")
    LOG.info("%s target-lifecycle-state %s", instance_id, value)


def launching_target() -> str | None:
    return getattr(LAUNCH, "target", None)
