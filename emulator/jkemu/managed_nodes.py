"""Managed nodes (patch 2): which instances have a reachable SSM agent, Run Command targets,
DescribeInstanceInformation."""

from __future__ import annotations

import datetime as dt
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.ssm.responses import SimpleSystemManagerResponse

from .agent import last_ping, ping_status
from .common import paginate, utcnow
from .documents import ssm_error
from .scripts import instance_tags


def is_managed(instance: Any) -> bool:
    """A managed node SSM believes reachable: running, its agent not offline (tag), or offline
    so recently that SSM still has it Online (control API, ping_lag_seconds)."""
    return ping_status(instance) == "Online"


def resolve_targets(
    account: str, region: str, instance_ids: list[str], targets: list[dict[str, Any]]
) -> list[Any]:
    """Exactly the instances the request names. InstanceIds must all be managed nodes (else
    InvalidInstanceId, as SSM answers); Targets select the managed nodes that match."""
    ec2 = ec2_backends[account][region]
    known = {i.id: i for i in ec2.all_instances()}
    if instance_ids:
        bad = [i for i in instance_ids if i not in known or not is_managed(known[i])]
        if bad:
            raise ssm_error(
                "InvalidInstanceId",
                f"Instances [[{', '.join(bad)}]] not in a valid state for account {account}",
            )
        return [known[i] for i in dict.fromkeys(instance_ids)]
    chosen = [i for i in known.values() if is_managed(i)]
    for target in targets:
        key, wanted = target.get("Key", ""), [str(v) for v in target.get("Values", [])]
        if key in ("InstanceIds", "instanceids"):
            chosen = [i for i in chosen if i.id in wanted]
        elif key.startswith("tag:"):
            chosen = [i for i in chosen if instance_tags(i).get(key[4:]) in wanted]
        elif key == "tag-key":
            chosen = [i for i in chosen if any(k in instance_tags(i) for k in wanted)]
        else:
            raise ssm_error("InvalidTarget", f"Target key {key} is not supported by the emulator.")
    if not targets:
        raise ssm_error("ValidationException", "InstanceIds or Targets must be specified.")
    return chosen


def instance_information(instance: Any, now: dt.datetime, status: str) -> dict[str, Any]:
    return {
        "InstanceId": instance.id,
        "PingStatus": status,
        "LastPingDateTime": last_ping(instance, now),
        "AgentVersion": "3.3.0.0",
        "IsLatestVersion": True,
        "PlatformType": "Linux",
        "PlatformName": "Amazon Linux",
        "PlatformVersion": "2023",
        "ResourceType": "EC2Instance",
        "IPAddress": instance.private_ip,
        "ComputerName": instance.private_dns_name,
        "SourceId": instance.id,
        "SourceType": "AWS::EC2::Instance",
    }


def instance_info_matches(
    info: dict[str, Any], tags: dict[str, str], key: str, values: list[str]
) -> bool:
    if key == "InstanceIds":
        return info["InstanceId"] in values
    if key == "PingStatus":
        return info["PingStatus"] in values
    if key == "ResourceType":
        return info["ResourceType"] in values
    if key == "PlatformTypes":
        return info["PlatformType"] in values
    if key.startswith("tag:"):
        return tags.get(key[4:]) in values
    if key == "tag-key":
        return any(v in tags for v in values)
    raise ssm_error("InvalidFilterKey", f"The filter key {key} is not valid.")


def ssm_describe_instance_information(self: SimpleSystemManagerResponse) -> ActionResult:
    """Implements DescribeInstanceInformation (moto answers 500): running instances whose
    emulator:agent tag is not offline are managed nodes, Online, or ConnectionLost once an agent
    set offline through the control API has missed its pings."""
    filters = [
        (f["key"], f.get("valueSet", []))
        for f in self._get_param("InstanceInformationFilterList", []) or []
    ]
    filters += [(f["Key"], f.get("Values", [])) for f in self._get_param("Filters", []) or []]
    now = utcnow()
    infos = []
    for instance in ec2_backends[self.current_account][self.region].all_instances():
        status = ping_status(instance, now)
        if status is None:
            continue
        info, tags = instance_information(instance, now, status), instance_tags(instance)
        if all(instance_info_matches(info, tags, key, values) for key, values in filters):
            infos.append(info)
    page, token = paginate(infos, self._get_int_param("MaxResults"), self._get_param("NextToken"))
    return ActionResult({"InstanceInformationList": page, "NextToken": token})
