"""The SSM agent as it runs: 5 commands at a time and 5 in its buffer, the rest undelivered until
room frees or their delivery timeout ends them; an agent gone offline that SSM still lists Online
for a while."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from faultkit import Faults, unchecked_ssm
from support import Aws, wait_for


@pytest.fixture
def faults(emulator: dict):
    kit = Faults(emulator["url"])
    yield kit
    kit.off()


def blocking_document(aws: Aws, name: str, flag) -> str:
    """Each command waits until `flag` exists."""
    return aws.document(name, [f"until [ -e {flag} ]; do sleep 0.05; done", "echo released"])


def state_of(aws: Aws, command_id: str, iid: str) -> tuple[str, str, bool]:
    inv = aws.ssm.get_command_invocation(CommandId=command_id, InstanceId=iid)
    return inv["Status"], inv["StatusDetails"], bool(inv["ExecutionStartDateTime"])


def test_five_run_five_wait_in_the_buffer_the_rest_stay_undelivered(
    aws: Aws, emulator: dict, faults: Faults, tmp_path
) -> None:
    faults.set()  # counters from zero; the agent's default limits
    iid = aws.instance()
    flag = tmp_path / "release"
    doc = blocking_document(aws, "jk-agent-block", flag)
    short = unchecked_ssm(aws)
    ids = [aws.ssm.send_command(DocumentName=doc, InstanceIds=[iid])["Command"]["CommandId"]
           for _ in range(10)]
    late = short.send_command(DocumentName=doc, InstanceIds=[iid], TimeoutSeconds=2)
    patient = aws.ssm.send_command(DocumentName=doc, InstanceIds=[iid], TimeoutSeconds=60)
    late_id, patient_id = late["Command"]["CommandId"], patient["Command"]["CommandId"]
    assert wait_for(lambda: sum(state_of(aws, c, iid)[2] for c in ids) == 5)
    states = [state_of(aws, c, iid) for c in ids]
    assert states[:5] == [("InProgress", "InProgress", True)] * 5  # running
    assert states[5:] == [("InProgress", "InProgress", False)] * 5  # accepted into the buffer
    assert state_of(aws, late_id, iid) == ("Pending", "Pending", False)
    assert state_of(aws, patient_id, iid) == ("Pending", "Pending", False)
    assert faults.get()["injected"]["agent_busy"] == 2

    time.sleep(2.2)  # the delivery timeout of the late one passes; buffered ones do not expire
    inv = aws.ssm.get_command_invocation(CommandId=late_id, InstanceId=iid)
    assert (inv["Status"], inv["StatusDetails"], inv["ResponseCode"]) == (
        "TimedOut", "DeliveryTimedOut", -1)
    assert inv["StandardOutputContent"] == ""
    listed = aws.ssm.list_commands(CommandId=late_id)["Commands"][0]
    assert (listed["Status"], listed["DeliveryTimedOutCount"], listed["ErrorCount"]) == (
        "TimedOut", 1, 0)
    assert [state_of(aws, c, iid)[0] for c in ids[5:]] == ["InProgress"] * 5
    assert faults.get()["injected"]["delivery_timed_out"] == 1

    flag.touch()
    done = wait_for(lambda: all(
        state_of(aws, c, iid)[0] == "Success" for c in [*ids, patient_id]), timeout=20)
    assert done, [state_of(aws, c, iid) for c in [*ids, patient_id]]


def test_agent_limits_come_from_the_fault_configuration(
    aws: Aws, faults: Faults, tmp_path
) -> None:
    faults.set(agent_workers=1, agent_buffer=0)
    iid = aws.instance()
    flag = tmp_path / "release"
    doc = blocking_document(aws, "jk-agent-one", flag)
    first = aws.ssm.send_command(DocumentName=doc, InstanceIds=[iid])["Command"]["CommandId"]
    second = aws.ssm.send_command(DocumentName=doc, InstanceIds=[iid])["Command"]["CommandId"]
    assert wait_for(lambda: state_of(aws, first, iid)[2])
    assert state_of(aws, second, iid) == ("Pending", "Pending", False)
    aws.ssm.cancel_command(CommandId=second)
    assert state_of(aws, second, iid)[:2] == ("Cancelled", "Cancelled")
    flag.touch()
    assert wait_for(lambda: state_of(aws, first, iid)[0] == "Success")
    assert faults.get()["config"]["agent_workers"] == 1


def ping(aws: Aws, iid: str) -> str | None:
    infos = aws.ssm.describe_instance_information(
        Filters=[{"Key": "InstanceIds", "Values": [iid]}])["InstanceInformationList"]
    return infos[0]["PingStatus"] if infos else None


def test_an_offline_agent_stays_online_until_its_pings_are_missed(
    aws: Aws, faults: Faults, tmp_path
) -> None:
    iid = aws.instance()
    doc = aws.document("jk-agent-echo", ["echo hello"])
    faults.agent(iid, state="offline", ping_lag_seconds=1.5)
    assert ping(aws, iid) == "Online"  # SSM has not noticed yet
    short = unchecked_ssm(aws)
    doomed = short.send_command(DocumentName=doc, InstanceIds=[iid], TimeoutSeconds=2)
    kept = aws.ssm.send_command(DocumentName=doc, InstanceIds=[iid], TimeoutSeconds=120)
    doomed_id, kept_id = doomed["Command"]["CommandId"], kept["Command"]["CommandId"]
    time.sleep(0.3)
    assert state_of(aws, doomed_id, iid) == ("Pending", "Pending", False)

    assert wait_for(lambda: ping(aws, iid) == "ConnectionLost", timeout=5)
    with pytest.raises(ClientError) as err:
        aws.ssm.send_command(DocumentName=doc, InstanceIds=[iid])
    assert err.value.response["Error"]["Code"] == "InvalidInstanceId"

    assert wait_for(lambda: state_of(aws, doomed_id, iid)[:2] == ("TimedOut", "DeliveryTimedOut"))
    assert state_of(aws, kept_id, iid) == ("Pending", "Pending", False)
    status = Faults(aws.url).agent(iid, state="online")
    assert status["ping_status"] == "Online"
    assert wait_for(lambda: state_of(aws, kept_id, iid)[0] == "Success")
    inv = aws.ssm.get_command_invocation(CommandId=kept_id, InstanceId=iid)
    assert inv["StandardOutputContent"] == "hello\n"


def test_undeliverable_agent_state_and_the_tag_still_work(aws: Aws, faults: Faults) -> None:
    tagged = aws.instance({"emulator:agent": "offline"})
    iid = aws.instance()
    doc = aws.document("jk-agent-undeliverable", ["echo hi"])
    assert ping(aws, tagged) is None
    faults.agent(iid, state="undeliverable")
    assert ping(aws, iid) == "Online"
    sent = aws.ssm.send_command(DocumentName=doc, InstanceIds=[iid])["Command"]["CommandId"]
    inv = aws.wait_invocation(sent, iid)
    assert (inv["Status"], inv["StatusDetails"], inv["ResponseCode"]) == (
        "Failed", "Undeliverable", -1)
    faults.agent(tagged, state="online")  # the control API overrides the tag
    assert ping(aws, tagged) == "Online"
