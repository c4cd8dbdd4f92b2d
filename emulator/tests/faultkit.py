"""Helpers of the fault and agent tests: the faults and agents control calls, clients that call
as a function, and a Run Command client without botocore's parameter checks (for delivery
timeouts shorter than SSM's 30 s minimum)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import boto3
from botocore.config import Config

from support import REGION, Aws


def call(url: str, path: str, method: str = "GET", body: object = None) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"{url}/_joinkeeper/{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


class Faults:
    """POST/GET/DELETE /_joinkeeper/faults and POST /_joinkeeper/agents/<id>."""

    def __init__(self, url: str) -> None:
        self.url = url

    def set(self, **config: object) -> dict:
        status, body = call(self.url, "faults", "POST", config)
        assert status == 200, body
        return body

    def get(self) -> dict:
        return call(self.url, "faults")[1]

    def off(self) -> dict:
        return call(self.url, "faults", "DELETE")[1]

    def agent(self, instance_id: str, **body: object) -> dict:
        status, answer = call(self.url, f"agents/{instance_id}", "POST", body)
        assert status == 200, answer
        return answer


def function_clients(emulator: dict, account: str, app_id: str = "launch-hook") -> Aws:
    """Clients in `account` calling as a function (app/<app_id> in the User-Agent), each request
    sent once (no retry), so every fault is seen."""
    aws = Aws(emulator, account=account, app_id=app_id)
    session = boto3.Session(
        aws_access_key_id=account, aws_secret_access_key="testing", region_name=REGION
    )
    config = Config(retries={"total_max_attempts": 1}, user_agent_appid=app_id)
    aws.ssm = session.client("ssm", endpoint_url=aws.url, config=config)
    aws.ec2 = session.client("ec2", endpoint_url=aws.url, config=config)
    aws.asg = session.client("autoscaling", endpoint_url=aws.url, config=config)
    return aws


def unchecked_ssm(aws: Aws):
    """An SSM client that skips botocore's parameter checks (TimeoutSeconds below 30)."""
    session = boto3.Session(
        aws_access_key_id=aws.account, aws_secret_access_key="testing", region_name=REGION
    )
    config = Config(retries={"max_attempts": 1}, parameter_validation=False)
    return session.client("ssm", endpoint_url=aws.url, config=config)
