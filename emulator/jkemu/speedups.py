"""moto's hot paths under a large burst (JKEMU_SAMPLE showed them at N = 2,000), made to scale
with the same answers:

- EC2: a resource's tags are found by scanning every tag of the region (`describe_tags` with a
  resource-id filter), once per instance rendered, so `DescribeInstances` of 2,000 tagged
  instances took some 2.5 s. -> the resource's own tags, looked up by its id, in the same shape
  (the filter was an exact match: `fnmatch.translate` of an id without wildcards).
- SQS: every request checks each message's visibility and delay against the current time,
  computed through `datetime` twice per message: a queue of 2,000 messages cost some 8,000
  `datetime` calls per `ReceiveMessage`, and the emulator took 46 s to accept 2,000 events.
  -> the current time from `time.time()` (the same UTC milliseconds).
- moto's server lists its own package directory on every request to find the backend.
  -> listed once.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

import moto.backends
import moto.sqs.models
from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix


def own_tags(self: Any) -> list[dict[str, str]]:
    """`TaggedEC2Resource.get_tags` without the scan of every tag."""
    resource_id = getattr(self, "id", None)
    if not resource_id:
        return []
    kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
    return [
        {"resource_id": resource_id, "key": key, "value": value, "resource_type": kind}
        for key, value in dict(self.ec2_backend.tags.get(resource_id, {})).items()
    ]


def make_unix_time_millis(original: Any) -> Any:
    def unix_time_millis(dt: datetime.datetime | None = None) -> float:
        if dt is None:
            return time.time() * 1000.0
        return original(dt)

    return unix_time_millis


def install() -> None:
    TaggedEC2Resource.get_tags = own_tags
    moto.sqs.models.unix_time_millis = make_unix_time_millis(moto.sqs.models.unix_time_millis)
    modules = tuple(moto.backends.list_of_moto_modules())
    moto.backends.list_of_moto_modules = lambda: modules
