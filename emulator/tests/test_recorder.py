"""The record of AWS calls (--record-calls): caller, IAM action, resources with their condition
keys, SSM's KMS calls, redaction, and the role of node scripts' AWS CLI calls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from support import REGION, Aws, launch_hook, wait_for


def records(emulator: dict, account: str, action: str | None = None) -> list[dict]:
    lines = Path(emulator["calls"]).read_text().splitlines()
    found = [json.loads(line) for line in lines]
    return [r for r in found if r["account"] == account and action in (None, r["action"])]


def last(emulator: dict, account: str, action: str) -> dict:
    found = records(emulator, account, action)
    assert found, f"no record of {action}"
    return found[-1]


@pytest.fixture
def hook(emulator: dict) -> Aws:
    """Clients calling as the launch-hook function (User-Agent app/launch-hook)."""
    return Aws(emulator, app_id="launch-hook")


def test_ssm_calls_name_their_document_instances_and_parameters(hook: Aws, emulator: dict) -> None:
    acct = hook.account
    iid = hook.instance({"joinkeeper:cluster": "c1", "joinkeeper:role": "control-plane"})
    hook.document("joinkeeper-node-status", ["echo ok"])
    hook.ssm.add_tags_to_resource(
        ResourceType="Document",
        ResourceId="joinkeeper-node-status",
        Tags=[{"Key": "joinkeeper:document", "Value": "yes"}],
    )
    hook.ssm.send_command(DocumentName="joinkeeper-node-status", InstanceIds=[iid])
    sent = last(emulator, acct, "ssm:SendCommand")
    doc = f"arn:aws:ssm:{REGION}:{acct}:document/joinkeeper-node-status"
    instance = f"arn:aws:ec2:{REGION}:{acct}:instance/{iid}"
    assert (sent["principal"], sent["service"], sent["status"], sent["region"]) == (
        "launch-hook",
        "ssm",
        200,
        REGION,
    )
    assert sent["resources"] == [doc, instance] and sent["modelled"] is True
    assert sent["context"][doc]["ssm:resourceTag/joinkeeper:document"] == "yes"
    assert sent["context"][instance]["aws:ResourceTag/joinkeeper:cluster"] == "c1"
    assert sent["context"][instance]["ssm:resourceTag/joinkeeper:role"] == "control-plane"
    assert sent["parameters"]["InstanceIds"] == [iid]

    lease = "/joinkeeper/c1/leases/regenerate"
    hook.ssm.put_parameter(
        Name=lease, Value="{}", Type="String", Tags=[{"Key": "joinkeeper:cluster", "Value": "c1"}]
    )
    put = last(emulator, acct, "ssm:PutParameter")
    arn = f"arn:aws:ssm:{REGION}:{acct}:parameter/joinkeeper/c1/leases/regenerate"
    assert put["resources"] == [arn]
    assert put["context"][arn]["ssm:Overwrite"] == "false"
    assert put["context"][arn]["aws:RequestTag/joinkeeper:cluster"] == "c1"
    assert put["parameters"]["Value"] == "{}"  # a String value is kept
    assert records(emulator, acct, "kms:Encrypt") == []

    hook.ssm.get_parameters_by_path(Path="/joinkeeper/c1/leases", Recursive=False)
    by_path = last(emulator, acct, "ssm:GetParametersByPath")
    leases = f"arn:aws:ssm:{REGION}:{acct}:parameter/joinkeeper/c1/leases"
    assert (
        by_path["resources"] == [leases] and by_path["context"][leases]["ssm:Recursive"] == "false"
    )

    hook.ssm.delete_parameter(Name=lease)
    deleted = last(emulator, acct, "ssm:DeleteParameter")
    assert deleted["context"][arn]["aws:ResourceTag/joinkeeper:cluster"] == "c1"  # tags before
    with pytest.raises(ClientError):
        hook.ssm.delete_parameter(Name=lease)
    failed = last(emulator, acct, "ssm:DeleteParameter")
    assert (failed["status"], failed["error_code"]) == (400, "ParameterNotFound")

    hook.ec2.describe_instances()
    described = last(emulator, acct, "ec2:DescribeInstances")
    assert described["resources"] == ["*"] and described["service"] == "ec2"


def test_secure_strings_record_the_kms_calls_ssm_makes(hook: Aws, emulator: dict) -> None:
    acct = hook.account
    record = "/joinkeeper/c1/join-record"
    hook.ssm.put_parameter(Name=record, Value='{"token_secret":"s3cr3t"}', Type="SecureString")
    put = last(emulator, acct, "ssm:PutParameter")
    assert put["parameters"]["Value"] == "<redacted>"
    assert "s3cr3t" not in Path(emulator["calls"]).read_text()
    (encrypt,) = records(emulator, acct, "kms:Encrypt")
    (key,) = encrypt["resources"]
    arn = f"arn:aws:ssm:{REGION}:{acct}:parameter/joinkeeper/c1/join-record"
    assert key.startswith(f"arn:aws:kms:{REGION}:{acct}:key/")
    assert (encrypt["principal"], encrypt["via"], encrypt["service"]) == (
        "launch-hook",
        "ssm:PutParameter",
        "kms",
    )
    assert encrypt["context"][key]["kms:EncryptionContext:PARAMETER_ARN"] == arn
    assert encrypt["context"][key]["kms:ResourceAliases"] == ["alias/aws/ssm"]
    assert encrypt["context"][key]["kms:ViaService"] == f"ssm.{REGION}.amazonaws.com"

    hook.ssm.get_parameter(Name=record, WithDecryption=False)
    assert records(emulator, acct, "kms:Decrypt") == []  # no decryption, no KMS call
    hook.ssm.get_parameter(Name=record, WithDecryption=True)
    (decrypt,) = records(emulator, acct, "kms:Decrypt")
    assert decrypt["resources"] == [key] and decrypt["via"] == "ssm:GetParameter"
    assert decrypt["context"][key]["kms:EncryptionContext:PARAMETER_ARN"] == arn
    assert "s3cr3t" not in Path(emulator["calls"]).read_text()

    own = hook.kms.create_key(Tags=[{"TagKey": "joinkeeper:cluster", "TagValue": "c1"}])
    hook.kms.create_alias(AliasName="alias/joinkeeper-c1", TargetKeyId=own["KeyMetadata"]["KeyId"])
    hook.ssm.put_parameter(
        Name="/joinkeeper/c1/control-plane-join",
        Value="key",
        Type="SecureString",
        KeyId="alias/joinkeeper-c1",
        Tier="Advanced",
    )
    data_key = last(emulator, acct, "kms:GenerateDataKey")
    assert data_key["resources"] == [own["KeyMetadata"]["Arn"]]
    keys = data_key["context"][own["KeyMetadata"]["Arn"]]
    assert keys["aws:ResourceTag/joinkeeper:cluster"] == "c1"
    assert keys["kms:ResourceAliases"] == ["alias/joinkeeper-c1"]
    hook.ssm.get_parameters_by_path(Path="/joinkeeper/c1", WithDecryption=True)
    assert sorted(r["resources"][0] for r in records(emulator, acct, "kms:Decrypt")[1:]) == sorted(
        [key, own["KeyMetadata"]["Arn"]]
    )


def test_lifecycle_calls_name_the_group_and_unknown_callers(hook: Aws, emulator: dict) -> None:
    acct = hook.account
    hook.group("rec-g", 1, [launch_hook()], tags=[{"Key": "joinkeeper:role", "Value": "worker"}])
    group = hook.asg.describe_auto_scaling_groups(AutoScalingGroupNames=["rec-g"])
    arn = group["AutoScalingGroups"][0]["AutoScalingGroupARN"]
    (iid,) = hook.group_instances("rec-g")
    token = hook.control("events")[0]["detail"]["LifecycleActionToken"]
    hook.asg.record_lifecycle_action_heartbeat(
        AutoScalingGroupName="rec-g", LifecycleHookName="launch", LifecycleActionToken=token
    )
    beat = last(emulator, acct, "autoscaling:RecordLifecycleActionHeartbeat")
    assert beat["resources"] == [arn] and ":autoScalingGroup:" in arn and "*" not in arn
    assert beat["context"][arn]["autoscaling:ResourceTag/joinkeeper:role"] == "worker"
    assert beat["context"][arn]["aws:ResourceTag/joinkeeper:cluster"] == "rec-g"
    assert beat["parameters"]["LifecycleActionToken"] == "<redacted>"
    with pytest.raises(ClientError):
        hook.asg.complete_lifecycle_action(
            AutoScalingGroupName="rec-g",
            LifecycleHookName="other-tool",
            InstanceId=iid,
            LifecycleActionResult="CONTINUE",
        )
    rejected = last(emulator, acct, "autoscaling:CompleteLifecycleAction")
    assert (rejected["status"], rejected["error_code"], rejected["resources"]) == (
        400,
        "ValidationError",
        [arn],
    )

    anonymous = Aws(emulator, account=acct)  # no app id in its User-Agent
    anonymous.asg.describe_auto_scaling_groups()
    described = last(emulator, acct, "autoscaling:DescribeAutoScalingGroups")
    assert described["principal"] == "unknown" and described["resources"] == ["*"]


def test_node_scripts_call_as_their_role(aws: Aws, emulator: dict) -> None:
    """The AWS CLI of a script carries AWS_SDK_UA_APP_ID=<role>: the instance's joinkeeper:role
    tag, or its worker group's."""
    acct = aws.account
    aws.ssm.put_parameter(Name="/joinkeeper/c2/join-record-meta", Value="{}", Type="String")
    plane = aws.instance({"joinkeeper:cluster": "c2", "joinkeeper:role": "control-plane"})
    doc = aws.document(
        "jk-rec-read",
        [
            'echo "app=$AWS_SDK_UA_APP_ID"',
            "aws ssm get-parameter --name /joinkeeper/c2/join-record-meta",
        ],
    )
    cid = aws.ssm.send_command(DocumentName=doc, InstanceIds=[plane])["Command"]["CommandId"]
    inv = aws.wait_invocation(cid, plane)
    assert inv["Status"] == "Success" and "app=control-plane" in inv["StandardOutputContent"]
    read = last(emulator, acct, "ssm:GetParameter")
    assert read["principal"] == "control-plane"
    assert read["resources"] == [
        f"arn:aws:ssm:{REGION}:{acct}:parameter/joinkeeper/c2/join-record-meta"
    ]

    aws.group(
        "rec-workers",
        1,
        tags=[{"Key": "joinkeeper:role", "Value": "worker", "PropagateAtLaunch": False}],
        user_data="#!/bin/bash\naws ec2 describe-tags >/dev/null\n",
    )
    assert wait_for(lambda: [r for r in aws.control("user-data") if r["status"] == "done"], 20)
    (call,) = records(emulator, acct, "ec2:DescribeTags")
    assert call["principal"] == "worker"


def test_s3_calls_name_the_object_or_the_bucket(aws: Aws, emulator: dict) -> None:
    """`aws s3 cp` of an asset (HeadObject, then GetObject: both the IAM action s3:GetObject on
    the object's ARN) and a listing (s3:ListBucket on the bucket), as a worker's role."""
    acct = aws.account
    bucket = f"cdk-hnb659fds-assets-{acct}-{REGION}"
    aws.s3.create_bucket(Bucket=bucket)
    aws.s3.put_object(Bucket=bucket, Key="0a1b.zip", Body=b"PK")
    uploads = [r for r in records(emulator, acct) if r["service"] == "s3"]
    assert [(r["action"], r["parameters"]["Operation"]) for r in uploads] == [
        ("s3:CreateBucket", "CreateBucket"),
        ("s3:PutObject", "PutObject"),
    ]
    assert uploads[1]["resources"] == [f"arn:aws:s3:::{bucket}/0a1b.zip"]

    worker = aws.instance({"joinkeeper:cluster": "c3", "joinkeeper:role": "worker"})
    doc = aws.document(
        "jk-rec-s3",
        [
            f"aws s3 cp --only-show-errors s3://{bucket}/0a1b.zip /tmp/jk-rec-asset.zip",
            f"aws s3 ls s3://{bucket}/0a >/dev/null",
            f"aws s3api get-bucket-acl --bucket {bucket} >/dev/null",
        ],
    )
    cid = aws.ssm.send_command(DocumentName=doc, InstanceIds=[worker])["Command"]["CommandId"]
    inv = aws.wait_invocation(cid, worker, timeout=60)
    assert inv["Status"] == "Success", inv["StandardErrorContent"]
    calls = [r for r in records(emulator, acct) if r["service"] == "s3" and r["principal"] == "worker"]
    obj = f"arn:aws:s3:::{bucket}/0a1b.zip"
    reads = [r for r in calls if r["action"] == "s3:GetObject"]
    assert {r["parameters"]["Operation"] for r in reads} == {"HeadObject", "GetObject"}
    assert all(r["resources"] == [obj] and r["modelled"] and r["status"] == 200 for r in reads)
    (listing,) = [r for r in calls if r["action"] == "s3:ListBucket"]
    assert listing["resources"] == [f"arn:aws:s3:::{bucket}"]
    assert listing["context"][f"arn:aws:s3:::{bucket}"]["s3:prefix"] == "0a"
    (acl,) = [r for r in calls if r["parameters"]["Operation"] == "GET ?acl"]
    assert acl["modelled"] is False and acl["resources"] == ["*"]


def test_sqs_calls_name_the_queue_as_iam_authorizes_them(hook: Aws, emulator: dict) -> None:
    """The event source mapping's calls, made with the function's role: the queue's ARN from its
    URL; a batch delete is the IAM action sqs:DeleteMessage; ListQueues has no resource."""
    acct = hook.account
    url = hook.sqs.create_queue(QueueName="jk-rec-lifecycle")["QueueUrl"]
    arn = f"arn:aws:sqs:{REGION}:{acct}:jk-rec-lifecycle"
    hook.sqs.send_message(QueueUrl=url, MessageBody="{}")
    got = hook.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    hook.sqs.delete_message_batch(
        QueueUrl=url, Entries=[{"Id": "0", "ReceiptHandle": got[0]["ReceiptHandle"]}]
    )
    hook.sqs.list_queues()
    calls = [r for r in records(emulator, acct) if r["service"] == "sqs"]
    assert [r["action"] for r in calls] == [
        "sqs:CreateQueue",
        "sqs:SendMessage",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ListQueues",
    ]
    assert all(r["principal"] == "launch-hook" and r["modelled"] for r in calls)
    assert all(r["resources"] == [arn] for r in calls[:4])
    assert calls[3]["parameters"]["Operation"] == "DeleteMessageBatch"
    assert calls[4]["resources"] == ["*"]
