"""Tests of the joinkeeper emulator: boto3 against the real server on a free port.

Run: .venv/bin/python -m pytest emulator/tests -q
Each test works in an account of its own (a 12-digit access key id selects it), so tests do not
see each other's instances, commands or events.
"""

from __future__ import annotations

import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

from support import REGION, Aws, launch_hook, terminate_hook, wait_for

# ------------------------------------------------------------------------------------ Run Command


def test_run_command_executes_document_with_parameters_env_and_path_mapping(
    aws: Aws, emulator: dict
) -> None:
    iid = aws.instance({"joinkeeper:cluster": "alpha", "emulator:drain-seconds": "7"})
    doc = aws.document(
        "jk-test-hello",
        [
            "set -e",
            "/opt/joinkeeper/bin/jk-hello '{{ Who }}'",
            "echo extra={{Extra}}",
            "jk-standin",
            'echo "node=$JOINKEEPER_NODE_DIR kube=$JOINKEEPER_KUBE_STATE drain=$JOINKEEPER_EMULATOR_DRAIN_SECONDS"',
            'echo "endpoint=$AWS_ENDPOINT_URL region=$AWS_REGION"',
            "aws ssm put-parameter --name /jk/from-script --type String --value ok >/dev/null",
            "echo to-stderr >&2",
        ],
        {
            "Who": {"type": "String", "allowedPattern": "^[a-z]+$"},
            "Extra": {"type": "String", "default": "dflt"},
        },
    )
    sent = aws.ssm.send_command(DocumentName=doc, InstanceIds=[iid], Parameters={"Who": ["world"]})[
        "Command"
    ]
    assert sent["Status"] in ("Pending", "InProgress") and sent["InstanceIds"] == [iid]
    inv = aws.wait_invocation(sent["CommandId"], iid)
    assert (inv["Status"], inv["StatusDetails"], inv["ResponseCode"]) == (
        "Success",
        "Success",
        0,
    ), inv
    out = inv["StandardOutputContent"]
    assert f"hello world from {iid}" in out
    assert "extra=dflt" in out and "standin-on-path" in out
    assert (
        f"node={emulator['state']}/nodes/{iid}/ kube={emulator['state']}/clusters/alpha/ drain=7"
        in out
    )
    assert f"endpoint={aws.url} region={REGION}" in out
    assert inv["StandardErrorContent"] == "to-stderr\n"
    # the script's aws CLI call landed in this test's account
    assert aws.ssm.get_parameter(Name="/jk/from-script")["Parameter"]["Value"] == "ok"
    assert (emulator["state"] / "nodes" / iid / "log").is_dir() and (
        emulator["state"] / "nodes" / iid / "lock"
    ).is_dir()


def test_invalid_parameters_and_unknown_invocation(aws: Aws) -> None:
    iid = aws.instance()
    doc = aws.document(
        "jk-test-pattern",
        ["echo {{ Who }}"],
        {"Who": {"type": "String", "allowedPattern": "^[a-z]+$"}},
    )
    with pytest.raises(ClientError) as err:
        aws.ssm.send_command(DocumentName=doc, InstanceIds=[iid], Parameters={"Who": ["Bad Value"]})
    assert err.value.response["Error"]["Code"] == "InvalidParameters"
    # The document and the values sent with it share one 64 KB quota.
    aws.ssm.send_command(DocumentName=doc, InstanceIds=[iid], Parameters={"Who": ["a" * 60_000]})
    with pytest.raises(ClientError) as err:
        aws.ssm.send_command(DocumentName=doc, InstanceIds=[iid], Parameters={"Who": ["a" * 66_000]})
    assert err.value.response["Error"]["Code"] == "MaxDocumentSizeExceeded"
    with pytest.raises(ClientError) as err:
        aws.ssm.send_command(DocumentName="jk-no-such-doc", InstanceIds=[iid])
    assert err.value.response["Error"]["Code"] == "InvalidDocument"
    with pytest.raises(ClientError) as err:
        aws.ssm.get_command_invocation(
            CommandId="00000000-0000-0000-0000-000000000000", InstanceId=iid
        )
    assert err.value.response["Error"]["Code"] == "InvocationDoesNotExist"


def test_failing_command_reports_exit_code_and_output(aws: Aws) -> None:
    iid = aws.instance()
    doc = aws.document("jk-test-fail", ["echo partial", "echo broken >&2", "exit 3"])
    cid = aws.ssm.send_command(DocumentName=doc, InstanceIds=[iid])["Command"]["CommandId"]
    inv = aws.wait_invocation(cid, iid)
    assert (inv["Status"], inv["StatusDetails"], inv["ResponseCode"]) == ("Failed", "Failed", 3)
    assert inv["StandardOutputContent"] == "partial\n" and inv["StandardErrorContent"] == "broken\n"
    assert aws.ssm.list_commands(CommandId=cid)["Commands"][0]["Status"] == "Failed"


def test_timed_out_command_is_killed(aws: Aws) -> None:
    iid = aws.instance()
    doc = aws.document(
        "jk-test-slow",
        ["echo started", "sleep 30", "echo never"],
        {"executionTimeout": {"type": "String", "default": "3600"}},
    )
    began = time.time()
    cid = aws.ssm.send_command(
        DocumentName=doc, InstanceIds=[iid], Parameters={"executionTimeout": ["1"]}
    )["Command"]["CommandId"]
    running = wait_for(
        lambda: aws.ssm.get_command_invocation(CommandId=cid, InstanceId=iid)["Status"]
        == "InProgress",
        5,
    )
    assert running
    inv = aws.wait_invocation(cid, iid)
    assert time.time() - began < 6
    assert (inv["Status"], inv["StatusDetails"], inv["ResponseCode"]) == (
        "TimedOut",
        "ExecutionTimedOut",
        137,
    )
    assert inv["StandardOutputContent"] == "started\n"


def test_output_is_truncated_like_ssm(aws: Aws) -> None:
    iid = aws.instance()
    doc = aws.document(
        "jk-test-big",
        ["head -c 30000 /dev/zero | tr '\\0' a", "head -c 9000 /dev/zero | tr '\\0' b >&2"],
    )
    cid = aws.ssm.send_command(DocumentName=doc, InstanceIds=[iid])["Command"]["CommandId"]
    inv = aws.wait_invocation(cid, iid)
    assert len(inv["StandardOutputContent"]) == 24000 and len(inv["StandardErrorContent"]) == 8000


def test_offline_agent_is_rejected_and_undeliverable_fails(aws: Aws) -> None:
    offline = aws.instance({"emulator:agent": "offline"})
    lost = aws.instance({"emulator:agent": "undeliverable"})
    doc = aws.document("jk-test-echo", ["echo hi"])
    with pytest.raises(ClientError) as err:
        aws.ssm.send_command(DocumentName=doc, InstanceIds=[offline])
    assert err.value.response["Error"]["Code"] == "InvalidInstanceId"
    assert offline in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as err:
        aws.ssm.send_command(DocumentName=doc, InstanceIds=["i-0123456789abcdef0"])
    assert err.value.response["Error"]["Code"] == "InvalidInstanceId"
    cid = aws.ssm.send_command(DocumentName=doc, InstanceIds=[lost])["Command"]["CommandId"]
    inv = aws.wait_invocation(cid, lost)
    assert (inv["Status"], inv["StatusDetails"], inv["ResponseCode"]) == (
        "Failed",
        "Undeliverable",
        -1,
    )
    assert inv["StandardOutputContent"] == ""


def test_only_listed_instances_are_targeted_and_listed(aws: Aws) -> None:
    a, b = aws.instance({"role": "cp"}), aws.instance({"role": "cp"})
    c = aws.instance({"role": "worker"})
    aws.instance({"role": "cp", "emulator:agent": "offline"})
    doc = aws.document("jk-test-id", ["echo $JOINKEEPER_INSTANCE_ID"])
    cid = aws.ssm.send_command(DocumentName=doc, InstanceIds=[b])["Command"]["CommandId"]
    invs = aws.ssm.list_command_invocations(CommandId=cid)["CommandInvocations"]
    assert [i["InstanceId"] for i in invs] == [b]
    aws.wait_invocation(cid, b)
    with pytest.raises(ClientError):
        aws.ssm.get_command_invocation(CommandId=cid, InstanceId=a)

    by_tag = aws.ssm.send_command(
        DocumentName=doc, Targets=[{"Key": "tag:role", "Values": ["cp"]}]
    )["Command"]
    targeted = aws.ssm.list_command_invocations(CommandId=by_tag["CommandId"])
    assert sorted(i["InstanceId"] for i in targeted["CommandInvocations"]) == sorted([a, b])
    assert by_tag["InstanceIds"] == [] and by_tag["TargetCount"] == 2
    for iid in (a, b):
        assert aws.wait_invocation(by_tag["CommandId"], iid)["StandardOutputContent"] == f"{iid}\n"
    assert c not in [
        i["InstanceId"]
        for i in aws.ssm.list_command_invocations(CommandId=by_tag["CommandId"])[
            "CommandInvocations"
        ]
    ]

    detailed = aws.ssm.list_command_invocations(CommandId=cid, Details=True)["CommandInvocations"][
        0
    ]
    assert (
        detailed["CommandPlugins"][0]["Name"] == "run"
        and detailed["CommandPlugins"][0]["Output"] == f"{b}\n"
    )
    listed = aws.ssm.list_commands(InstanceId=b)["Commands"]
    assert [x["CommandId"] for x in listed] == [by_tag["CommandId"], cid]
    assert listed[1]["Status"] == "Success" and listed[1]["CompletedCount"] == 1
    assert [
        x["CommandId"]
        for x in aws.ssm.list_commands(Filters=[{"key": "DocumentName", "value": doc}])["Commands"]
    ] == [by_tag["CommandId"], cid]
    assert (
        aws.ssm.list_command_invocations(Filters=[{"key": "Status", "value": "Failed"}])[
            "CommandInvocations"
        ]
        == []
    )
    log = aws.control("commands")
    assert [(e["command_id"], e["document"], sorted(e["instance_ids"])) for e in log] == [
        (cid, doc, [b]),
        (by_tag["CommandId"], doc, sorted([a, b])),
    ]
    assert log[0]["parameters"] == {} and log[0]["time"].endswith("Z")


def test_cancel_command_stops_it(aws: Aws) -> None:
    iid = aws.instance()
    doc = aws.document("jk-test-cancel", ["echo begin", "sleep 30"])
    cid = aws.ssm.send_command(DocumentName=doc, InstanceIds=[iid])["Command"]["CommandId"]
    assert wait_for(
        lambda: aws.ssm.get_command_invocation(CommandId=cid, InstanceId=iid)["Status"]
        == "InProgress",
        5,
    )
    aws.ssm.cancel_command(CommandId=cid)
    inv = aws.wait_invocation(cid, iid, timeout=5)
    assert inv["Status"] == "Cancelled"
    assert aws.ssm.list_commands(CommandId=cid)["Commands"][0]["Status"] == "Cancelled"


def test_describe_instance_information(aws: Aws) -> None:
    online = aws.instance()
    lost = aws.instance({"emulator:agent": "undeliverable"})
    offline = aws.instance({"emulator:agent": "offline"})
    stopped = aws.instance()
    aws.ec2.stop_instances(InstanceIds=[stopped])
    infos = aws.ssm.describe_instance_information()["InstanceInformationList"]
    assert sorted(i["InstanceId"] for i in infos) == sorted([online, lost])
    assert {i["PingStatus"] for i in infos} == {"Online"}
    only = aws.ssm.describe_instance_information(
        InstanceInformationFilterList=[{"key": "InstanceIds", "valueSet": [online, offline]}]
    )
    assert [i["InstanceId"] for i in only["InstanceInformationList"]] == [online]
    only = aws.ssm.describe_instance_information(
        Filters=[
            {"Key": "InstanceIds", "Values": [lost]},
            {"Key": "PingStatus", "Values": ["Online"]},
        ]
    )
    assert [i["InstanceId"] for i in only["InstanceInformationList"]] == [lost]
    page = aws.ssm.describe_instance_information(MaxResults=5)
    assert len(page["InstanceInformationList"]) == 2 and "NextToken" not in page


# ------------------------------------------------------------------------------------ lifecycle hooks


def test_launch_hook_waits_then_continue_puts_in_service(aws: Aws) -> None:
    aws.group("g-launch", 1, [launch_hook(metadata='{"cluster":"g-launch"}')])
    ((iid, state),) = aws.group_instances("g-launch").items()
    assert state == "Pending:Wait"
    assert (
        aws.asg.describe_auto_scaling_instances(InstanceIds=[iid])["AutoScalingInstances"][0][
            "LifecycleState"
        ]
        == "Pending:Wait"
    )
    events = aws.control("events")
    assert len(events) == 1
    event = events[0]
    arn = aws.asg.describe_auto_scaling_groups(AutoScalingGroupNames=["g-launch"])[
        "AutoScalingGroups"
    ][0]["AutoScalingGroupARN"]
    assert (
        event["source"] == "aws.autoscaling"
        and event["detail-type"] == "EC2 Instance-launch Lifecycle Action"
    )
    assert (
        event["account"] == aws.account
        and event["region"] == REGION
        and event["resources"] == [arn]
    )
    assert event["time"].endswith("Z") and event["version"] == "0" and event["id"]
    detail = event["detail"]
    assert detail["AutoScalingGroupName"] == "g-launch" and detail["LifecycleHookName"] == "launch"
    assert (
        detail["EC2InstanceId"] == iid
        and detail["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_LAUNCHING"
    )
    assert detail["NotificationMetadata"] == '{"cluster":"g-launch"}'
    assert (detail["Origin"], detail["Destination"]) == ("EC2", "AutoScalingGroup")
    assert len(detail["LifecycleActionToken"]) == 36
    assert aws.control("events") == []  # drained

    aws.asg.complete_lifecycle_action(
        AutoScalingGroupName="g-launch",
        LifecycleHookName="launch",
        LifecycleActionToken=detail["LifecycleActionToken"],
        LifecycleActionResult="CONTINUE",
    )
    assert aws.group_instances("g-launch") == {iid: "InService"}
    with pytest.raises(ClientError) as err:
        aws.asg.complete_lifecycle_action(
            AutoScalingGroupName="g-launch",
            LifecycleHookName="launch",
            InstanceId=iid,
            LifecycleActionResult="CONTINUE",
        )
    assert err.value.response["Error"]["Code"] == "ValidationError"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert (
        err.value.response["Error"]["Message"]
        == f"No active Lifecycle Action found with instance ID {iid}"
    )
    log = aws.control("lifecycle-log")
    assert [(e["group"], e["instance_id"], e["hook"], e["action"], e["result"]) for e in log] == [
        ("g-launch", iid, "launch", "CONTINUE", "ok"),
        ("g-launch", iid, "launch", "CONTINUE", "rejected"),
    ]


def test_launch_abandon_terminates_without_refill(aws: Aws) -> None:
    aws.group("g-abandon", 2, [launch_hook()])
    first, second = aws.group_instances("g-abandon")
    aws.asg.complete_lifecycle_action(
        AutoScalingGroupName="g-abandon",
        LifecycleHookName="launch",
        InstanceId=first,
        LifecycleActionResult="ABANDON",
    )
    assert aws.group_instances("g-abandon") == {second: "Pending:Wait"}
    assert aws.instance_state(first) == "terminated"
    assert len(aws.control("events")) == 2  # no event for a replacement: the group is not refilled
    aws.asg.set_desired_capacity(
        AutoScalingGroupName="g-abandon", DesiredCapacity=2
    )  # refill on request
    assert sorted(aws.group_instances("g-abandon").values()) == ["Pending:Wait", "Pending:Wait"]


def test_heartbeat_and_default_result_on_timeout(aws: Aws) -> None:
    aws.group("g-beat", 1, [launch_hook(timeout=1, default="CONTINUE")])
    ((iid, _),) = aws.group_instances("g-beat").items()
    token = aws.control("events")[0]["detail"]["LifecycleActionToken"]
    time.sleep(0.6)
    aws.asg.record_lifecycle_action_heartbeat(
        AutoScalingGroupName="g-beat", LifecycleHookName="launch", LifecycleActionToken=token
    )
    time.sleep(0.6)
    assert aws.group_instances("g-beat") == {
        iid: "Pending:Wait"
    }  # the heartbeat restarted the timeout
    time.sleep(0.6)
    assert aws.group_instances("g-beat") == {iid: "InService"}  # DefaultResult CONTINUE applied
    with pytest.raises(ClientError) as err:
        aws.asg.record_lifecycle_action_heartbeat(
            AutoScalingGroupName="g-beat", LifecycleHookName="launch", LifecycleActionToken=token
        )
    assert (
        err.value.response["Error"]["Message"]
        == f"No active Lifecycle Action found with token {token}"
    )
    assert [(e["action"], e["result"]) for e in aws.control("lifecycle-log")] == [
        ("HEARTBEAT", "ok"),
        ("HEARTBEAT", "rejected"),
    ]
    (action,) = aws.control("lifecycle-actions")
    assert (action["result"], action["ended_by"]) == ("CONTINUE", "timeout")

    aws.group("g-expire", 1, [launch_hook(timeout=1, default="ABANDON")])
    ((gone, _),) = aws.group_instances("g-expire").items()
    time.sleep(1.2)
    assert aws.group_instances("g-expire") == {}
    assert aws.instance_state(gone) == "terminated"


def test_terminate_hook_on_scale_in(aws: Aws) -> None:
    aws.asg_name = "g-scale"
    aws.group("g-scale", 2, [terminate_hook()])
    assert sorted(aws.group_instances("g-scale").values()) == ["InService", "InService"]
    aws.asg.set_desired_capacity(AutoScalingGroupName="g-scale", DesiredCapacity=1)
    states = aws.group_instances("g-scale")
    assert sorted(states.values()) == ["InService", "Terminating:Wait"]
    leaving = next(i for i, s in states.items() if s == "Terminating:Wait")
    (event,) = aws.control("events")
    assert event["detail-type"] == "EC2 Instance-terminate Lifecycle Action"
    assert (
        event["detail"]["EC2InstanceId"] == leaving
        and event["detail"]["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
    )
    assert (event["detail"]["Origin"], event["detail"]["Destination"]) == (
        "AutoScalingGroup",
        "EC2",
    )
    assert "NotificationMetadata" not in event["detail"]
    assert aws.instance_state(leaving) == "running"
    aws.asg.record_lifecycle_action_heartbeat(
        AutoScalingGroupName="g-scale", LifecycleHookName="terminate", InstanceId=leaving
    )
    aws.asg.complete_lifecycle_action(
        AutoScalingGroupName="g-scale",
        LifecycleHookName="terminate",
        InstanceId=leaving,
        LifecycleActionResult="CONTINUE",
    )
    assert list(aws.group_instances("g-scale").values()) == ["InService"]
    assert aws.instance_state(leaving) == "terminated"

    (staying,) = aws.group_instances("g-scale")
    aws.asg.terminate_instance_in_auto_scaling_group(
        InstanceId=staying, ShouldDecrementDesiredCapacity=True
    )
    assert aws.group_instances("g-scale") == {staying: "Terminating:Wait"}
    aws.asg.complete_lifecycle_action(
        AutoScalingGroupName="g-scale",
        LifecycleHookName="terminate",
        InstanceId=staying,
        LifecycleActionResult="ABANDON",
    )
    assert aws.group_instances("g-scale") == {}
    assert aws.instance_state(staying) == "terminated"


def test_terminate_without_decrement_launches_replacement_through_launch_hook(aws: Aws) -> None:
    aws.group("g-replace", 1, [launch_hook(), terminate_hook()], min_size=1)
    (old,) = aws.group_instances("g-replace")
    aws.asg.complete_lifecycle_action(
        AutoScalingGroupName="g-replace",
        LifecycleHookName="launch",
        InstanceId=old,
        LifecycleActionResult="CONTINUE",
    )
    with pytest.raises(ClientError) as err:
        aws.asg.terminate_instance_in_auto_scaling_group(
            InstanceId=old, ShouldDecrementDesiredCapacity=True
        )
    assert "min size" in err.value.response["Error"]["Message"]
    aws.asg.terminate_instance_in_auto_scaling_group(
        InstanceId=old, ShouldDecrementDesiredCapacity=False
    )
    states = aws.group_instances("g-replace")
    assert states[old] == "Terminating:Wait" and sorted(states.values()) == [
        "Pending:Wait",
        "Terminating:Wait",
    ]
    kinds = [e["detail-type"] for e in aws.control("events")]
    assert kinds == [
        "EC2 Instance-launch Lifecycle Action",
        "EC2 Instance-terminate Lifecycle Action",
        "EC2 Instance-launch Lifecycle Action",
    ]


def test_put_lifecycle_hook_applies_to_later_launches(aws: Aws) -> None:
    aws.group("g-put", 0)
    aws.asg.put_lifecycle_hook(
        AutoScalingGroupName="g-put",
        LifecycleHookName="join",
        LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
        HeartbeatTimeout=300,
        NotificationMetadata="m",
    )
    hook = aws.asg.describe_lifecycle_hooks(AutoScalingGroupName="g-put")["LifecycleHooks"][0]
    assert hook["NotificationMetadata"] == "m"
    aws.asg.set_desired_capacity(AutoScalingGroupName="g-put", DesiredCapacity=1)
    assert list(aws.group_instances("g-put").values()) == ["Pending:Wait"]
    aws.asg.set_desired_capacity(AutoScalingGroupName="g-put", DesiredCapacity=1)
    assert (
        len(aws.group_instances("g-put")) == 1
    )  # an instance in Pending:Wait counts toward capacity
    (event,) = aws.control("events?group=g-put")
    assert event["detail"]["NotificationMetadata"] == "m"


# ------------------------------------------------------------------------------------ user data


def test_user_data_runs_once_like_cloud_init(aws: Aws, emulator: dict) -> None:
    script = '#!/bin/bash\necho "ran on $JOINKEEPER_INSTANCE_ID in $JOINKEEPER_AVAILABILITY_ZONE"\n/opt/joinkeeper/bin/jk-hello ud\necho done > "$JOINKEEPER_NODE_DIR/marker"\n'
    iid = aws.instance({"joinkeeper:cluster": "ud"}, user_data=script)
    skipped = aws.instance({"emulator:user-data": "skip"}, user_data=script)
    marker = emulator["state"] / "nodes" / iid / "marker"
    assert wait_for(marker.exists)
    log = (emulator["state"] / "nodes" / iid / "log" / "cloud-init-output.log").read_text()
    assert f"ran on {iid} in {REGION}a" in log and f"hello ud from {iid}" in log
    runs = wait_for(lambda: [r for r in aws.control("user-data") if r["status"] == "done"])
    assert [(r["instance_id"], r["exit_code"]) for r in runs] == [(iid, 0)]
    assert not (emulator["state"] / "nodes" / skipped / "marker").exists()

    aws.group(
        "g-ud",
        1,
        [launch_hook()],
        user_data='#!/bin/bash\necho "$JOINKEEPER_KUBE_STATE" > "$JOINKEEPER_NODE_DIR/kube"\n',
    )
    (member,) = aws.group_instances("g-ud")
    kube = emulator["state"] / "nodes" / member / "kube"
    assert wait_for(kube.exists)
    assert wait_for(lambda: kube.read_text().strip()) == f"{emulator['state']}/clusters/g-ud/"


def test_reset_wipes_extension_state(aws: Aws) -> None:
    aws.group("g-reset", 1, [launch_hook()])
    assert aws.control("events?keep=1")
    assert aws.control("events?keep=1")
    assert aws.control("reset", method="POST") == {"reset": True}
    assert aws.control("events") == [] and aws.control("lifecycle-actions") == []


def test_moto_reset_also_wipes_extension_and_node_folders(aws: Aws, emulator: dict) -> None:
    """Last test: POST /moto-api/reset wipes every account."""
    iid = aws.instance()
    doc = aws.document("jk-test-reset", ["echo hi"])
    cid = aws.ssm.send_command(DocumentName=doc, InstanceIds=[iid])["Command"]["CommandId"]
    aws.wait_invocation(cid, iid)
    aws.group("g-moto-reset", 1, [launch_hook()])
    assert (emulator["state"] / "nodes" / iid).is_dir()
    urllib.request.urlopen(urllib.request.Request(f"{aws.url}/moto-api/reset", method="POST"))
    assert aws.control("events") == [] and aws.control("commands") == []
    assert not (emulator["state"] / "nodes").exists()
    assert aws.ec2.describe_instances()["Reservations"] == []


def test_instances_carry_their_own_tags_only(aws: Aws) -> None:
    # jkemu/speedups.py looks a resource's tags up by its id instead of scanning every tag.
    a = aws.instance({"joinkeeper:cluster": "alpha", "Name": "a"})
    b = aws.instance({"joinkeeper:cluster": "beta"})
    aws.ec2.create_tags(Resources=[a], Tags=[{"Key": "extra", "Value": "1"}])
    aws.ec2.delete_tags(Resources=[a], Tags=[{"Key": "Name"}])

    def tags(iid: str) -> dict[str, str]:
        found = aws.ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
        return {t["Key"]: t["Value"] for t in found.get("Tags", [])}

    assert tags(a) == {"joinkeeper:cluster": "alpha", "extra": "1"}
    assert tags(b) == {"joinkeeper:cluster": "beta"}
    listed = aws.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [a]}])["Tags"]
    assert {(t["Key"], t["Value"], t["ResourceType"]) for t in listed} == {
        ("joinkeeper:cluster", "alpha", "instance"), ("extra", "1", "instance")}
    filtered = aws.ec2.describe_instances(
        Filters=[{"Name": "tag:joinkeeper:cluster", "Values": ["beta"]}])["Reservations"]
    assert [i["InstanceId"] for r in filtered for i in r["Instances"]] == [b]
