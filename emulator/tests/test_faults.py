"""Faults switched on through the control API: each protocol's throttling and 5xx shapes as
botocore and the AWS CLI classify them, seeded reproducibility, answers lost after the call took
effect, token buckets, and who is (not) affected."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError
from botocore.retries.standard import (
    RetryContext,
    ThrottledRetryableChecker,
    TransientRetryableChecker,
)

from faultkit import Faults, call, function_clients
from support import Aws, wait_for

AWS_CLI = Path(sys.executable).parent / "aws"


@pytest.fixture
def faults(emulator: dict):
    kit = Faults(emulator["url"])
    yield kit
    kit.off()


def error_of(call_it) -> dict:
    with pytest.raises(ClientError) as err:
        call_it()
    return err.value.response


def records(emulator: dict, account: str, action: str) -> list[dict]:
    lines = Path(emulator["calls"]).read_text().splitlines()
    found = [json.loads(line) for line in lines]
    return [r for r in found if r["account"] == account and r["action"] == action]


def legacy_retry_policy(service: str, code: str, status: int) -> bool:
    """botocore's legacy retry handler (the AWS CLI v1 default): a policy of _retry.json whose
    service_error_code and http_status_code both match."""
    import botocore

    spec = json.loads((Path(botocore.__file__).parent / "data/_retry.json").read_text())
    policies = dict(spec["retry"]["__default__"]["policies"])
    policies.update(spec["retry"].get(service, {}).get("__default__", {}).get("policies", {}))
    for policy in policies.values():
        when = spec["definitions"][policy["$ref"]] if "$ref" in policy else policy
        response = when["applies_when"].get("response", {})
        if (response.get("service_error_code"), response.get("http_status_code")) == (code, status):
            return True
    return False


def answers(calls: dict, expected: dict):
    """Each service's error answer, checked against its expected (code, HTTP status)."""
    for service, call_it in calls.items():
        answer = error_of(call_it)
        code, status = answer["Error"]["Code"], answer["ResponseMetadata"]["HTTPStatusCode"]
        assert (code, status) == expected[service], answer
        yield service, answer, code, status


def test_throttling_and_5xx_in_each_protocols_shape_classified_by_botocore(
    aws: Aws, emulator: dict, faults: Faults
) -> None:
    fn = function_clients(emulator, aws.account)
    aws.ssm.put_parameter(Name="/jk/p", Value="v", Type="String")
    calls = {
        "ssm": lambda: fn.ssm.get_parameter(Name="/jk/p"),
        "autoscaling": lambda: fn.asg.describe_auto_scaling_groups(),
        "ec2": lambda: fn.ec2.describe_instances(),
    }
    faults.set(seed=1, throttle_probability=1.0, accounts=[aws.account])
    expected = {"ssm": ("ThrottlingException", 400), "autoscaling": ("Throttling", 400),
                "ec2": ("RequestLimitExceeded", 503)}
    for service, answer, code, status in answers(calls, expected):
        assert "Rate exceeded" in answer["Error"]["Message"] or service == "ec2"
        context = RetryContext(attempt_number=1, parsed_response=answer)
        assert ThrottledRetryableChecker().is_retryable(context), service
        assert legacy_retry_policy(service, code, status), service
    # the harness's own clients (no app id) are never faulted
    assert aws.ssm.get_parameter(Name="/jk/p")["Parameter"]["Value"] == "v"
    assert aws.asg.describe_auto_scaling_groups()["AutoScalingGroups"] == []
    assert call(emulator["url"], "health")[0] == 200
    throttled = records(emulator, aws.account, "ssm:GetParameter")[-2]
    assert throttled["principal"] == "launch-hook" and throttled["fault"] == "throttle"
    assert (throttled["applied"], throttled["status"]) == (False, 400)
    assert throttled["error_code"] == "ThrottlingException"

    faults.set(seed=1, error_5xx_probability=1.0, accounts=[aws.account])
    expected = {"ssm": ("InternalServerError", 500), "autoscaling": ("InternalFailure", 500),
                "ec2": ("InternalError", 500)}
    for service, answer, code, status in answers(calls, expected):
        context = RetryContext(attempt_number=1, parsed_response=answer,
                               http_response=type("R", (), {"status_code": status})())
        assert TransientRetryableChecker().is_retryable(context), service
    seen = faults.get()
    assert seen["injected"]["5xx"] == 3
    assert seen["by_operation"]["ec2:DescribeInstances"] == {"5xx": 1}


def test_aws_cli_retries_each_protocols_throttling(
    aws: Aws, emulator: dict, faults: Faults
) -> None:
    faults.set(seed=3, throttle_probability=1.0, accounts=[aws.account], callers=["jk-cli-test"])
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ACCESS_KEY_ID": aws.account,
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": aws.url,
        "AWS_SDK_UA_APP_ID": "jk-cli-test",
        "AWS_MAX_ATTEMPTS": "2",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for argv, code in (
        (["ssm", "get-parameter", "--name", "/jk/none"], "ThrottlingException"),
        (["autoscaling", "describe-auto-scaling-groups"], "Throttling"),
        (["ec2", "describe-instances"], "RequestLimitExceeded"),
    ):
        done = subprocess.run([str(AWS_CLI), *argv], env=env, capture_output=True, text=True)
        assert done.returncode != 0
        # the CLI retried it: its one retry (AWS_MAX_ATTEMPTS=2) is spent
        assert f"({code})" in done.stderr and "reached max retries: 1" in done.stderr, done.stderr
    assert faults.get()["injected"]["throttle"] == 6


def outcomes(fn: Aws, n: int, interleave: Aws | None = None) -> list[str]:
    seen = []
    for _ in range(n):
        try:
            fn.ssm.get_parameter(Name="/jk/seeded")
            seen.append("ok")
        except ClientError as err:
            seen.append(err.response["Error"]["Code"])
        if interleave is not None:
            try:
                interleave.ssm.describe_parameters()
            except ClientError:
                pass
    return seen


def test_the_same_seed_gives_the_same_faults(aws: Aws, emulator: dict, faults: Faults) -> None:
    aws.ssm.put_parameter(Name="/jk/seeded", Value="v", Type="String")
    fn = function_clients(emulator, aws.account)
    other = function_clients(emulator, aws.account, app_id="terminate-hook")
    config = dict(throttle_probability=0.3, error_5xx_probability=0.2, accounts=[aws.account])
    faults.set(seed=42, **config)
    first = outcomes(fn, 40)
    counted = faults.get()
    faults.set(seed=42, **config)
    # other callers and operations in between do not move this caller's sequence
    second = outcomes(fn, 40, interleave=other)
    faults.set(seed=7, **config)
    third = outcomes(fn, 40)
    assert first == second and first != third
    assert {"ok", "ThrottlingException", "InternalServerError"} == set(first)
    assert counted["injected"]["throttle"] == first.count("ThrottlingException")
    assert counted["injected"]["5xx"] == first.count("InternalServerError")
    assert counted["config"]["seed"] == 42 and counted["matched_requests"] == 40


def test_a_lost_answer_was_applied_once_and_never_answered(
    aws: Aws, emulator: dict, faults: Faults
) -> None:
    fn = function_clients(emulator, aws.account)
    faults.set(seed=5, lost_answer_probability=1.0, operations=["ssm:PutParameter"],
               accounts=[aws.account])
    with pytest.raises(ConnectionClosedError):
        fn.ssm.put_parameter(Name="/jk/lost", Value="v1", Type="String", Overwrite=False)
    param = aws.ssm.get_parameter(Name="/jk/lost")["Parameter"]
    assert (param["Value"], param["Version"]) == ("v1", 1)
    lost = records(emulator, aws.account, "ssm:PutParameter")
    assert [(r["fault"], r["applied"], r["status"]) for r in lost] == [("lost_answer", True, 200)]
    assert faults.get()["injected"]["lost_answer"] == 1
    faults.off()
    # the caller's retry finds its own effect: the create-only write is already there
    answer = error_of(lambda: fn.ssm.put_parameter(
        Name="/jk/lost", Value="v1", Type="String", Overwrite=False))
    assert answer["Error"]["Code"] == "ParameterAlreadyExists"
    assert faults.get()["injected"]["lost_answer"] == 1  # counters kept after DELETE

    faults.set(lost_answer_probability=1.0, lost_answer_mode="hold", lost_answer_hold_seconds=1.0,
               operations=["ssm:PutParameter"], accounts=[aws.account])
    started = time.monotonic()
    with pytest.raises((ConnectionClosedError, ReadTimeoutError)):
        fn.ssm.put_parameter(Name="/jk/held", Value="v", Type="String")
    assert time.monotonic() - started >= 1.0
    assert aws.ssm.get_parameter(Name="/jk/held")["Parameter"]["Version"] == 1


def test_token_buckets_throttle_past_the_burst(aws: Aws, emulator: dict, faults: Faults) -> None:
    fn = function_clients(emulator, aws.account)
    aws.ssm.put_parameter(Name="/jk/b", Value="v", Type="String")
    faults.set(token_buckets={"ssm:GetParameter,ssm:GetParameters": [0.01, 3]},
               accounts=[aws.account])
    fn.ssm.get_parameter(Name="/jk/b")
    fn.ssm.get_parameters(Names=["/jk/b"])
    fn.ssm.get_parameter(Name="/jk/b")
    answer = error_of(lambda: fn.ssm.get_parameters(Names=["/jk/b"]))  # the shared bucket is empty
    assert answer["Error"]["Code"] == "ThrottlingException"
    fn.ssm.describe_parameters()  # not in the table: never throttled

    faults.set(token_buckets=True, accounts=[aws.account])  # AWS's rates: PutParameter 3 TPS
    codes = []
    for i in range(6):
        try:
            fn.ssm.put_parameter(Name=f"/jk/t{i}", Value="v", Type="String")
            codes.append("ok")
        except ClientError as err:
            codes.append(err.response["Error"]["Code"])
    assert codes[:3] == ["ok"] * 3 and "ThrottlingException" in codes[3:]
    assert faults.get()["config"]["token_buckets"] is True


def test_instance_scripts_and_bad_configurations_are_left_alone(
    aws: Aws, emulator: dict, faults: Faults
) -> None:
    iid = aws.instance({"joinkeeper:role": "control-plane"})
    doc = aws.document("jk-fault-script", [
        "aws ssm put-parameter --name /jk/from-node --type String --value ok >/dev/null",
        "echo done",
    ])
    faults.set(throttle_probability=1.0, accounts=[aws.account])  # callers: "functions"
    sent = aws.ssm.send_command(DocumentName=doc, InstanceIds=[iid])["Command"]
    inv = aws.wait_invocation(sent["CommandId"], iid, timeout=30)
    assert inv["Status"] == "Success", inv
    assert aws.ssm.get_parameter(Name="/jk/from-node")["Parameter"]["Value"] == "ok"
    assert faults.get()["injected"]["throttle"] == 0
    for bad in ({"throttle_probability": 2}, {"lost_answer_mode": "drop"}, {"nope": 1},
                {"latency_ms": [5, 1]}, {"token_buckets": {"GetParameter": [1, 1]}}):
        status, body = call(emulator["url"], "faults", "POST", bad)
        assert status == 400 and "error" in body, bad


def test_latency_is_added_before_the_answer(aws: Aws, emulator: dict, faults: Faults) -> None:
    fn = function_clients(emulator, aws.account)
    faults.set(latency_ms=[300, 300], services=["ssm"], accounts=[aws.account])
    started = time.monotonic()
    fn.ssm.describe_parameters()
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    fn.ec2.describe_instances()  # not an allowed service
    assert time.monotonic() - started < 0.3
    assert wait_for(lambda: faults.get()["injected"]["latency"] == 1)
