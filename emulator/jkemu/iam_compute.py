"""IAM resources and condition keys of EC2 and Auto Scaling requests."""

from __future__ import annotations

from typing import Any

from moto.autoscaling.models import autoscaling_backends
from moto.ec2.models import ec2_backends

from .iam_context import Authorization, Request, everything, listed, request_tags, tag_keys
from .iam_context import wildcard

EC2_ON_INSTANCES = {
    "StartInstances",
    "StopInstances",
    "TerminateInstances",
    "RebootInstances",
    "ModifyInstanceAttribute",
    "ModifyInstanceMetadataOptions",
}
GROUP_ACTIONS = {
    "CompleteLifecycleAction",
    "RecordLifecycleActionHeartbeat",
    "SetDesiredCapacity",
    "UpdateAutoScalingGroup",
    "DeleteAutoScalingGroup",
    "CreateAutoScalingGroup",
    "PutLifecycleHook",
    "DeleteLifecycleHook",
    "PutWarmPool",
    "DeleteWarmPool",
    "AttachInstances",
    "DetachInstances",
    "SetInstanceProtection",
    "EnterStandby",
    "ExitStandby",
    "SuspendProcesses",
    "ResumeProcesses",
    "PutScalingPolicy",
    "StartInstanceRefresh",
    "CancelInstanceRefresh",
}
BY_INSTANCE = {"TerminateInstanceInAutoScalingGroup", "SetInstanceHealth"}


def instances(request: Request, ids: list[str]) -> Authorization:
    tags = ec2_backends[request.account][request.region].tags
    context = {}
    for instance_id in ids:
        arn = f"arn:aws:ec2:{request.region}:{request.account}:instance/{instance_id}"
        found = dict(tags.get(instance_id, {}))
        context[arn] = {
            **everything(request),
            **tag_keys(found, "aws:ResourceTag", "ec2:ResourceTag"),
        }
    return Authorization(list(context), context)


def ec2(request: Request) -> Authorization:
    op = request.operation
    if op.startswith("Describe"):
        return wildcard(request)
    if op in EC2_ON_INSTANCES:
        ids = listed(request.params, "InstanceId") or [str(request.params.get("InstanceId", ""))]
        return instances(request, ids)
    if op in ("CreateTags", "DeleteTags"):
        ids = [i for i in listed(request.params, "ResourceId") if i.startswith("i-")]
        if ids:
            auth = instances(request, ids)
            for keys in auth.context.values():
                keys.update(request_tags(request.params))
            return auth
    return wildcard(request, modelled=False)


def group_arn(request: Request, group: Any, name: str) -> str:
    if group is not None:
        return group.arn
    return (
        f"arn:aws:autoscaling:{request.region}:{request.account}:autoScalingGroup:*:"
        f"autoScalingGroupName/{name}"
    )


def group_auth(request: Request, name: str, group: Any) -> Authorization:
    arn = group_arn(request, group, name)
    tags = {t["Key"]: t["Value"] for t in (group.tags if group is not None else [])}
    keys = {
        **everything(request),
        **tag_keys(tags, "aws:ResourceTag", "autoscaling:ResourceTag"),
        **request_tags(request.params),
    }
    return Authorization([arn], {arn: keys})


def autoscaling(request: Request) -> Authorization:
    op, params = request.operation, request.params
    backend = autoscaling_backends[request.account][request.region]
    if op.startswith("Describe"):
        return wildcard(request)
    if op in GROUP_ACTIONS:
        name = str(params.get("AutoScalingGroupName", ""))
        return group_auth(request, name, backend.autoscaling_groups.get(name))
    if op in BY_INSTANCE:
        instance_id = str(params.get("InstanceId", ""))
        group = next(
            (
                g
                for g in backend.autoscaling_groups.values()
                if any(s.instance.id == instance_id for s in g.instance_states)
            ),
            None,
        )
        return group_auth(request, group.name if group else "*", group)
    if op in ("CreateOrUpdateTags", "DeleteTags"):
        names = sorted(
            {str(v) for k, v in params.items() if k.endswith(".ResourceId")}
            | {str(t.get("ResourceId")) for t in params.get("Tags", []) if isinstance(t, dict)}
        )
        auths = [group_auth(request, n, backend.autoscaling_groups.get(n)) for n in names]
        context = {arn: keys for a in auths for arn, keys in a.context.items()}
        return Authorization(list(context), context)
    return wildcard(request, modelled=False)
