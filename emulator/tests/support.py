"""Helpers of the emulator tests: boto3 clients in a fresh account, the control API, hooks."""

from __future__ import annotations

import base64
import json
import random
import time
import urllib.request

import boto3
from botocore.config import Config

REGION = "us-east-1"
TERMINAL = {"Success", "Failed", "TimedOut", "Cancelled"}


class Aws:
    """boto3 clients in a fresh account, plus the control API."""

    def __init__(
        self, emulator: dict, account: str | None = None, app_id: str | None = None
    ) -> None:
        self.url, self.state = emulator["url"], emulator["state"]
        self.account = account or str(random.randrange(10**11, 10**12))
        session = boto3.Session(
            aws_access_key_id=self.account, aws_secret_access_key="testing", region_name=REGION
        )
        config = Config(retries={"max_attempts": 1}, user_agent_appid=app_id)
        self.ssm = session.client("ssm", endpoint_url=self.url, config=config)
        self.ec2 = session.client("ec2", endpoint_url=self.url, config=config)
        self.asg = session.client("autoscaling", endpoint_url=self.url, config=config)
        self.kms = session.client("kms", endpoint_url=self.url, config=config)
        self.s3 = session.client("s3", endpoint_url=self.url, config=config)
        self.sqs = session.client("sqs", endpoint_url=self.url, config=config)

    def control(self, path: str, method: str = "GET") -> object:
        sep = "&" if "?" in path else "?"
        req = urllib.request.Request(
            f"{self.url}/_joinkeeper/{path}{sep}account={self.account}", method=method
        )
        with urllib.request.urlopen(req) as resp:
            return json.loads(resp.read())

    def instance(self, tags: dict[str, str] | None = None, user_data: str | None = None) -> str:
        kwargs = {}
        if tags:
            kwargs["TagSpecifications"] = [
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ]
        if user_data:
            kwargs["UserData"] = user_data
        res = self.ec2.run_instances(
            ImageId="ami-12345678", MinCount=1, MaxCount=1, InstanceType="t3.small", **kwargs
        )
        return res["Instances"][0]["InstanceId"]

    def document(self, name: str, lines: list[str], parameters: dict | None = None) -> str:
        content = {
            "schemaVersion": "2.2",
            "description": "test",
            "parameters": parameters or {},
            "mainSteps": [
                {"action": "aws:runShellScript", "name": "run", "inputs": {"runCommand": lines}}
            ],
        }
        self.ssm.create_document(
            Name=name, Content=json.dumps(content), DocumentType="Command", DocumentFormat="JSON"
        )
        return name

    def wait_invocation(self, command_id: str, instance_id: str, timeout: float = 15) -> dict:
        deadline = time.time() + timeout
        while True:
            inv = self.ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
            if inv["Status"] in TERMINAL or time.time() > deadline:
                return inv
            time.sleep(0.1)

    def group(
        self,
        name: str,
        capacity: int,
        hooks: list[dict] | None = None,
        user_data: str | None = None,
        min_size: int = 0,
        tags: list[dict] | None = None,
    ) -> None:
        data = {"ImageId": "ami-12345678", "InstanceType": "t3.small"}
        if user_data:
            data["UserData"] = base64.b64encode(user_data.encode()).decode()
        self.ec2.create_launch_template(LaunchTemplateName=f"{name}-lt", LaunchTemplateData=data)
        kwargs = {"LifecycleHookSpecificationList": hooks} if hooks else {}
        self.asg.create_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchTemplate={"LaunchTemplateName": f"{name}-lt", "Version": "$Latest"},
            MinSize=min_size,
            MaxSize=10,
            DesiredCapacity=capacity,
            AvailabilityZones=[f"{REGION}a"],
            Tags=[{"Key": "joinkeeper:cluster", "Value": name, "PropagateAtLaunch": True}]
            + (tags or []),
            **kwargs,
        )

    def group_instances(self, name: str) -> dict[str, str]:
        group = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
            "AutoScalingGroups"
        ][0]
        return {i["InstanceId"]: i["LifecycleState"] for i in group["Instances"]}

    def instance_state(self, instance_id: str) -> str:
        res = self.ec2.describe_instances(InstanceIds=[instance_id])
        return res["Reservations"][0]["Instances"][0]["State"]["Name"]


def launch_hook(
    name: str = "launch", timeout: int = 600, default: str = "ABANDON", metadata: str | None = None
) -> dict:
    hook = {
        "LifecycleHookName": name,
        "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
        "HeartbeatTimeout": timeout,
        "DefaultResult": default,
    }
    if metadata:
        hook["NotificationMetadata"] = metadata
    return hook


def terminate_hook(name: str = "terminate", timeout: int = 600) -> dict:
    return {
        "LifecycleHookName": name,
        "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
        "HeartbeatTimeout": timeout,
        "DefaultResult": "CONTINUE",
    }


def wait_for(check, timeout: float = 10):
    deadline = time.time() + timeout
    while True:
        value = check()
        if value or time.time() > deadline:
            return value
        time.sleep(0.1)


def warm_pool(aws: Aws, group: str, **kwargs) -> dict[str, str]:
    """The warm pool's instances and their lifecycle states (every page)."""
    states, token = {}, None
    while True:
        page = aws.asg.describe_warm_pool(
            AutoScalingGroupName=group, **kwargs, **({"NextToken": token} if token else {})
        )
        states.update({i["InstanceId"]: i["LifecycleState"] for i in page["Instances"]})
        token = page.get("NextToken")
        if not token:
            return states


def complete(aws: Aws, group: str, hook: str, instance_id: str, result: str = "CONTINUE") -> None:
    aws.asg.complete_lifecycle_action(
        AutoScalingGroupName=group,
        LifecycleHookName=hook,
        InstanceId=instance_id,
        LifecycleActionResult=result,
    )
