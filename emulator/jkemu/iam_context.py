"""What an IAM policy check needs to know about one AWS request: the resource ARNs the action is
authorized against (as the Service Authorization Reference lists them) and, per resource, the
condition keys a policy may read (resource tags, request keys). Shared helpers; the per-service
rules are in iam_ssm (SSM, KMS) and iam_compute (EC2, Auto Scaling)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

LISTED = re.compile(r"^(?P<name>[A-Za-z0-9]+)\.(?:member\.)?(?P<index>\d+)$")


@dataclasses.dataclass
class Request:
    service: str  # ssm, ec2, autoscaling, kms, sts, ...
    operation: str  # SendCommand, DescribeInstances, ...
    params: dict[str, Any]  # JSON body, or the query protocol's form fields as they came
    account: str
    region: str
    # The instance whose role session signed the request (instance-role credentials only).
    source_instance: str | None = None

    @property
    def action(self) -> str:
        return f"{self.service}:{self.operation}"


@dataclasses.dataclass
class Authorization:
    resources: list[str]
    context: dict[str, dict[str, Any]]  # resource ARN -> condition keys
    modelled: bool = True  # False: the action's resources are not modelled (recorded as "*")
    # calls the service makes on the caller's behalf (SSM -> KMS), emitted once the call succeeded
    follow_ups: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def listed(params: dict[str, Any], name: str) -> list[str]:
    """Values of a query-protocol list (`Name.1`, `Name.member.1`, ...) in index order, or a
    JSON list."""
    if isinstance(params.get(name), list):
        return [str(v) for v in params[name]]
    found = []
    for key, value in params.items():
        match = LISTED.match(key)
        if match and match.group("name") == name:
            found.append((int(match.group("index")), str(value)))
    return [v for _, v in sorted(found)]


def tag_keys(tags: dict[str, str], *prefixes: str) -> dict[str, str]:
    """Resource tags as condition keys: aws:ResourceTag/<k> and each service's own prefix."""
    return {f"{prefix}/{key}": value for prefix in prefixes for key, value in tags.items()}


def request_tags(params: dict[str, Any]) -> dict[str, Any]:
    """aws:RequestTag/<k> and aws:TagKeys of tags given in the request (JSON or query list)."""
    tags: dict[str, str] = {}
    if isinstance(params.get("Tags"), list):
        tags = {t.get("Key"): t.get("Value", "") for t in params["Tags"] if isinstance(t, dict)}
    else:
        for key, value in params.items():
            match = re.match(r"^Tags?\.(?:member\.)?(\d+)\.Key$", key)
            if match:
                prefix = key[: -len("Key")]
                tags[str(value)] = str(params.get(f"{prefix}Value", ""))
    if not tags:
        return {}
    return {**{f"aws:RequestTag/{k}": v for k, v in tags.items()}, "aws:TagKeys": sorted(tags)}


def everything(request: Request) -> dict[str, Any]:
    """Keys present in every request's context; with an instance role's credentials also
    ec2:SourceInstanceARN, the instance the role session was delivered to (IAM User Guide,
    "AWS global condition context keys", properties of the role session)."""
    keys: dict[str, Any] = {"aws:RequestedRegion": request.region}
    if request.source_instance:
        keys["ec2:SourceInstanceARN"] = (
            f"arn:aws:ec2:{request.region}:{request.account}:instance/{request.source_instance}"
        )
    return keys


def wildcard(request: Request, modelled: bool = True) -> Authorization:
    """Actions without resource types (Describe*, List*, ...) are authorized against `*`."""
    return Authorization(["*"], {"*": everything(request)}, modelled)
