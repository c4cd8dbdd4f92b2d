"""Token buckets for the fault injector (`token_buckets` of POST /_joinkeeper/faults): the request
rates AWS enforces per account and Region, as its documentation gives them, or as a test sets
them. A bucket holds at most `burst` tokens, refills at `rate` tokens per second, and each request
of its operations takes one; an empty bucket throttles the request.

Sources (emulator/README.md, "Faults", has the table):
- Parameter Store: GetParameter, GetParameters and GetParametersByPath share 40 TPS by default
  (https://docs.aws.amazon.com/general/latest/gr/ssm.html, "Max throughput"); PutParameter 3 TPS
  (the user guide's "Changing Parameter Store throughput" puts PutParameter under that quota).
- EC2: https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html — request token
  buckets per API action: non-mutating 100 / 20 per s, unfiltered and unpaginated
  DescribeInstances/DescribeInstanceStatus/... 50 / 10, mutating 50 / 5, RunInstances and
  StartInstances 5 / 2, TerminateInstances 100 / 5, CreateTags/DeleteTags 100 / 10.
- Auto Scaling: one bucket shared by every Amazon EC2 Auto Scaling action (AWS re:Post knowledge
  center, "autoscaling-api-calls-throttled"); AWS publishes no number (neither the API reference
  nor Service Quotas lists one): 5 / s, burst 10, an assumption. It bounds any burst of
  completions (one instance per CompleteLifecycleAction): about (N - 10) / 5 s for N workers.
- Run Command and the other SSM actions: no published number: chosen conservatively.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from typing import Any

from .iam_context import Request

NON_MUTATING = re.compile(r"^(Describe|List|Search|Get)")
# EC2's "unfiltered and unpaginated non-mutating actions": a smaller bucket without Filter/paging
UNFILTERED = {
    "DescribeInstances",
    "DescribeInstanceStatus",
    "DescribeNetworkInterfaces",
    "DescribeSecurityGroups",
    "DescribeSnapshots",
    "DescribeSpotInstanceRequests",
    "DescribeVolumes",
}

# key -> [rate per second, burst]; a key lists one or more actions sharing the bucket
# (comma-separated), or `service:*` for a bucket shared by the service's other actions.
AWS_DEFAULTS: dict[str, list[float]] = {
    "ssm:GetParameter,ssm:GetParameters,ssm:GetParametersByPath": [40, 40],
    "ssm:PutParameter": [3, 3],
    "ssm:SendCommand": [5, 10],  # chosen: no published rate
    "ssm:GetCommandInvocation": [10, 20],  # chosen: no published rate
    "ssm:*": [10, 20],  # chosen: no published rate
    "autoscaling:*": [5, 10],  # shared by every Auto Scaling action; no published rate
    "ec2:RunInstances": [2, 5],
    "ec2:StartInstances": [2, 5],
    "ec2:TerminateInstances": [5, 100],
    "ec2:CreateTags": [10, 100],
    "ec2:DeleteTags": [10, 100],
    "kms:*": [100, 100],  # chosen: KMS's shared cryptographic rate is far higher
    "sts:*": [100, 100],  # chosen
}


def ec2_category(request: Request) -> tuple[str, list[float]]:
    """EC2's per-action request buckets for actions without a row of their own: each action
    has its own bucket of its category's size."""
    op = request.operation
    if NON_MUTATING.match(op):
        paged = any(
            k.startswith("Filter.") or k in ("MaxResults", "NextToken") for k in request.params
        )
        if op in UNFILTERED and not paged:
            return f"ec2:{op}#unfiltered", [10, 50]
        return f"ec2:{op}", [20, 100]
    return f"ec2:{op}", [5, 50]


def validate(spec: Any) -> dict[str, list[float]] | None:
    """`token_buckets` as given: true (AWS_DEFAULTS and EC2's categories), false/absent, or a
    mapping of keys to [rate, burst]."""
    if spec in (None, False):
        return None
    if spec is True:
        return dict(AWS_DEFAULTS)
    if not isinstance(spec, dict):
        raise ValueError('token_buckets: true, false or {"<service>:<Operation>": [rate, burst]}')
    table = {}
    for key, value in spec.items():
        if (
            not isinstance(value, (list, tuple))
            or len(value) != 2
            or not all(isinstance(v, (int, float)) and v >= 0 for v in value)
        ):
            raise ValueError(f"token_buckets[{key!r}]: [rate_per_second, burst], both >= 0")
        for action in str(key).split(","):
            if ":" not in action:
                raise ValueError(f"token_buckets: {action!r} is not <service>:<Operation>")
        table[str(key)] = [float(value[0]), float(value[1])]
    return table


def bucket_for(
    table: dict[str, list[float]], request: Request, defaults: bool
) -> tuple[str, list[float]] | None:
    """The bucket a request draws from: the key naming its action, else `service:*`, else (with
    the AWS defaults) EC2's category bucket for the action."""
    action = request.action
    for key, limits in table.items():
        if action in key.split(","):
            return key, limits
    wildcard = f"{request.service}:*"
    if wildcard in table:
        return wildcard, table[wildcard]
    if defaults and request.service == "ec2":
        return ec2_category(request)
    return None


@dataclasses.dataclass
class Bucket:
    rate: float
    burst: float
    tokens: float
    stamp: float

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class RateLimiter:
    """The buckets in use, per account and Region (AWS throttles each account in each Region)."""

    def __init__(self, table: dict[str, list[float]] | None, defaults: bool) -> None:
        self.table, self.defaults = table, defaults
        self.buckets: dict[tuple[str, str, str], Bucket] = {}
        self.lock = threading.Lock()

    def allow(self, request: Request) -> bool:
        """Take a token for the request; False when its bucket is empty (throttled)."""
        if not self.table:
            return True
        found = bucket_for(self.table, request, self.defaults)
        if found is None:
            return True
        key, (rate, burst) = found
        now = time.monotonic()
        with self.lock:
            bucket = self.buckets.get((request.account, request.region, key))
            if bucket is None:
                bucket = Bucket(rate, burst, burst, now)
                self.buckets[(request.account, request.region, key)] = bucket
            return bucket.take(now)
