"""Warm pools in the emulator: the pool's configuration and instances, each lifecycle move with
its hook, event Origin/Destination and target lifecycle state, reuse on scale-in, and a restart
that runs boot units but not user data."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from support import Aws, complete, launch_hook, terminate_hook, wait_for, warm_pool

TARGET_FILE = "imds/autoscaling/target-lifecycle-state"


def target_state(emulator: dict, instance_id: str) -> str:
    return (emulator["state"] / "nodes" / instance_id / TARGET_FILE).read_text().strip()


def moves(events: list[dict]) -> list[tuple[str, str, str, str]]:
    return [
        (
            e["detail"]["EC2InstanceId"],
            e["detail"]["LifecycleTransition"].split(":")[1],
            e["detail"]["Origin"],
            e["detail"]["Destination"],
        )
        for e in events
    ]


def put_pool(
    aws: Aws, group: str, min_size: int, prepared: int, state: str = "Stopped", reuse: bool = False
) -> None:
    aws.asg.put_warm_pool(
        AutoScalingGroupName=group,
        MinSize=min_size,
        MaxGroupPreparedCapacity=prepared,
        PoolState=state,
        InstanceReusePolicy={"ReuseOnScaleIn": reuse},
    )


def test_pool_configuration_instances_and_pages(aws: Aws) -> None:
    aws.group("wp-conf", 1)
    put_pool(aws, "wp-conf", min_size=2, prepared=3, reuse=True)  # size max(2, 3 - 1) = 2
    pool = wait_for(
        lambda: set(warm_pool(aws, "wp-conf").values()) == {"Warmed:Stopped"}
        and warm_pool(aws, "wp-conf")
    )
    assert len(pool) == 2
    for iid in pool:
        assert aws.instance_state(iid) == "stopped"
    page = aws.asg.describe_warm_pool(AutoScalingGroupName="wp-conf", MaxRecords=1)
    assert page["WarmPoolConfiguration"] == {
        "MaxGroupPreparedCapacity": 3,
        "MinSize": 2,
        "PoolState": "Stopped",
        "InstanceReusePolicy": {"ReuseOnScaleIn": True},
    }
    assert len(page["Instances"]) == 1 and page["NextToken"]
    assert page["Instances"][0]["LifecycleState"] == "Warmed:Stopped"
    rest = aws.asg.describe_warm_pool(
        AutoScalingGroupName="wp-conf", MaxRecords=1, NextToken=page["NextToken"]
    )
    assert "NextToken" not in rest
    assert {page["Instances"][0]["InstanceId"], rest["Instances"][0]["InstanceId"]} == set(pool)

    group = aws.asg.describe_auto_scaling_groups(AutoScalingGroupNames=["wp-conf"])[
        "AutoScalingGroups"
    ][0]
    assert group["WarmPoolSize"] == 2 and group["WarmPoolConfiguration"]["MinSize"] == 2
    assert [i["LifecycleState"] for i in group["Instances"]] == ["InService"]
    assert not set(pool) & {i["InstanceId"] for i in group["Instances"]}
    listed = aws.asg.describe_auto_scaling_instances()["AutoScalingInstances"]
    assert sorted(i["LifecycleState"] for i in listed) == [
        "InService",
        "Warmed:Stopped",
        "Warmed:Stopped",
    ]
    assert aws.control("events") == []  # no hooks, no events

    aws.asg.delete_warm_pool(AutoScalingGroupName="wp-conf")
    assert warm_pool(aws, "wp-conf") == {}
    group = aws.asg.describe_auto_scaling_groups(AutoScalingGroupNames=["wp-conf"])[
        "AutoScalingGroups"
    ][0]
    assert "WarmPoolConfiguration" not in group and "WarmPoolSize" not in group
    for iid in pool:
        assert aws.instance_state(iid) == "terminated"
    with pytest.raises(ClientError) as err:
        aws.asg.put_warm_pool(AutoScalingGroupName="wp-conf", PoolState="Frozen")
    assert err.value.response["Error"]["Code"] == "ValidationError"


def test_filling_the_pool_through_the_launch_hook(aws: Aws, emulator: dict) -> None:
    aws.group(
        "wp-fill",
        0,
        [launch_hook("prepare"), terminate_hook("drain")],
        user_data='#!/bin/bash\necho "first boot target=$JOINKEEPER_TARGET_LIFECYCLE_STATE" >> "$JOINKEEPER_NODE_DIR/boots"\nsleep 30\n',
    )
    put_pool(aws, "wp-fill", min_size=2, prepared=2)
    pool = warm_pool(aws, "wp-fill")
    assert list(pool.values()) == ["Warmed:Pending:Wait", "Warmed:Pending:Wait"]
    kept, dropped = pool
    events = aws.control("events")
    assert sorted(moves(events)) == sorted(
        [(i, "EC2_INSTANCE_LAUNCHING", "EC2", "WarmPool") for i in pool]
    )
    assert {e["detail-type"] for e in events} == {"EC2 Instance-launch Lifecycle Action"}
    assert target_state(emulator, kept) == "Warmed:Stopped"
    boots = emulator["state"] / "nodes" / kept / "boots"
    assert (
        wait_for(lambda: boots.exists() and boots.read_text())
        == "first boot target=Warmed:Stopped\n"
    )
    assert aws.instance_state(kept) == "running"

    for wrong in ("drain", "other"):
        with pytest.raises(ClientError) as err:
            complete(aws, "wp-fill", wrong, kept)
        assert err.value.response["Error"]["Code"] == "ValidationError"
        assert (
            err.value.response["Error"]["Message"]
            == f"No active Lifecycle Action found with instance ID {kept}"
        )
    complete(aws, "wp-fill", "prepare", kept)
    assert warm_pool(aws, "wp-fill")[kept] == "Warmed:Stopped"
    assert aws.instance_state(kept) == "stopped"
    # the stop killed the user data still running
    run = wait_for(
        lambda: [
            r
            for r in aws.control("user-data")
            if r["instance_id"] == kept and r["status"] == "done"
        ]
    )
    assert run and run[0]["exit_code"] != 0

    complete(aws, "wp-fill", "prepare", dropped, "ABANDON")
    assert aws.instance_state(dropped) == "terminated"
    assert warm_pool(aws, "wp-fill") == {kept: "Warmed:Stopped"}
    assert target_state(emulator, dropped) == "Terminated"
    assert aws.control("events") == []  # not refilled after an ABANDON ...
    assert aws.control("warm-pools/maintain", method="POST") == {"maintained": ["wp-fill"]}
    (refill,) = set(warm_pool(aws, "wp-fill")) - {kept}  # ... until asked
    assert moves(aws.control("events")) == [(refill, "EC2_INSTANCE_LAUNCHING", "EC2", "WarmPool")]


def test_running_pool_and_timeout_default_result(aws: Aws, emulator: dict) -> None:
    aws.group("wp-run", 0, [launch_hook("prepare", timeout=1, default="CONTINUE")])
    put_pool(aws, "wp-run", min_size=1, prepared=1, state="Running")
    ((iid, state),) = warm_pool(aws, "wp-run").items()
    assert state == "Warmed:Pending:Wait" and target_state(emulator, iid) == "Warmed:Running"
    assert wait_for(lambda: warm_pool(aws, "wp-run")[iid] == "Warmed:Running", 3)
    assert aws.instance_state(iid) == "running"
    (action,) = aws.control("lifecycle-actions")
    assert (action["origin"], action["destination"], action["ended_by"]) == (
        "EC2",
        "WarmPool",
        "timeout",
    )


def test_scale_out_restarts_a_pool_instance_with_boot_units_not_user_data(
    aws: Aws, emulator: dict
) -> None:
    user_data = """#!/bin/bash
echo ran >> "$JOINKEEPER_NODE_DIR/user-data-runs"
mkdir -p "$JOINKEEPER_NODE_DIR/boot-units"
cat > "$JOINKEEPER_NODE_DIR/boot-units/10-join" <<'UNIT'
#!/bin/bash
echo "env=$JOINKEEPER_TARGET_LIFECYCLE_STATE imds=$(cat "$JOINKEEPER_NODE_DIR/imds/autoscaling/target-lifecycle-state")" >> "$JOINKEEPER_NODE_DIR/unit-runs"
UNIT
chmod +x "$JOINKEEPER_NODE_DIR/boot-units/10-join"
echo 'echo not executable >> "$JOINKEEPER_NODE_DIR/unit-runs"' > "$JOINKEEPER_NODE_DIR/boot-units/20-disabled"
"""
    aws.group("wp-out", 0, [launch_hook("join")], user_data=user_data)
    put_pool(aws, "wp-out", min_size=1, prepared=1)
    ((iid, _),) = warm_pool(aws, "wp-out").items()
    node = emulator["state"] / "nodes" / iid
    assert wait_for(lambda: [r for r in aws.control("user-data") if r["status"] == "done"])
    aws.control("events")
    complete(aws, "wp-out", "join", iid)
    assert aws.instance_state(iid) == "stopped" and not (node / "unit-runs").exists()

    aws.asg.set_desired_capacity(AutoScalingGroupName="wp-out", DesiredCapacity=1)
    assert aws.group_instances("wp-out") == {iid: "Pending:Wait"}
    assert aws.instance_state(iid) == "running"
    assert target_state(emulator, iid) == "InService"
    events = aws.control("events")
    (refill,) = set(warm_pool(aws, "wp-out"))  # the pool keeps its minimum size
    assert moves(events) == [
        (iid, "EC2_INSTANCE_LAUNCHING", "WarmPool", "AutoScalingGroup"),
        (refill, "EC2_INSTANCE_LAUNCHING", "EC2", "WarmPool"),
    ]
    runs = wait_for(lambda: (node / "unit-runs").exists() and (node / "unit-runs").read_text())
    assert runs == "env=InService imds=InService\n"
    (boot,) = wait_for(lambda: [r for r in aws.control("boot-units") if r["status"] == "done"])
    assert (boot["instance_id"], boot["restart"], boot["target_lifecycle_state"]) == (
        iid,
        1,
        "InService",
    )
    assert boot["units"] == [{"name": "10-join", "exit_code": 0}]
    assert (node / "user-data-runs").read_text() == "ran\n"  # user data ran once, at first boot
    complete(aws, "wp-out", "join", iid)
    assert aws.group_instances("wp-out") == {iid: "InService"}
    rows = {r["instance_id"]: r for r in aws.control("instances?group=wp-out")}
    assert (
        rows[iid]["lifecycle_state"],
        rows[iid]["ec2_state"],
        rows[iid]["target_lifecycle_state"],
    ) == (
        "InService",
        "running",
        "InService",
    )
    assert rows[refill]["lifecycle_state"] == "Warmed:Pending:Wait"


def test_scale_in_returns_to_the_pool_with_reuse(aws: Aws, emulator: dict) -> None:
    aws.group("wp-in", 2, [terminate_hook("drain")])
    put_pool(aws, "wp-in", min_size=0, prepared=2, reuse=True)  # size max(0, 2 - 2) = 0
    assert warm_pool(aws, "wp-in") == {}
    aws.asg.set_desired_capacity(AutoScalingGroupName="wp-in", DesiredCapacity=1)
    (back,) = warm_pool(aws, "wp-in")
    assert warm_pool(aws, "wp-in") == {back: "Warmed:Pending:Wait"}
    assert list(aws.group_instances("wp-in").values()) == ["InService"]
    (event,) = aws.control("events")
    assert event["detail-type"] == "EC2 Instance-terminate Lifecycle Action"
    assert moves([event]) == [(back, "EC2_INSTANCE_TERMINATING", "AutoScalingGroup", "WarmPool")]
    assert target_state(emulator, back) == "Warmed:Stopped"
    assert aws.instance_state(back) == "running"  # still running while drained
    aws.asg.record_lifecycle_action_heartbeat(
        AutoScalingGroupName="wp-in", LifecycleHookName="drain", InstanceId=back
    )
    complete(aws, "wp-in", "drain", back)
    assert warm_pool(aws, "wp-in") == {back: "Warmed:Stopped"}
    assert aws.instance_state(back) == "stopped"

    # without ReuseOnScaleIn the group terminates on scale-in, as without a pool
    put_pool(aws, "wp-in", min_size=0, prepared=2, reuse=False)
    (staying,) = aws.group_instances("wp-in")
    aws.asg.set_desired_capacity(AutoScalingGroupName="wp-in", DesiredCapacity=0)
    assert aws.group_instances("wp-in") == {staying: "Terminating:Wait"}
    assert moves(aws.control("events")) == [
        (staying, "EC2_INSTANCE_TERMINATING", "AutoScalingGroup", "EC2")
    ]
    assert target_state(emulator, staying) == "Terminated"
    complete(aws, "wp-in", "drain", staying)
    assert aws.instance_state(staying) == "terminated"


def test_pool_shrink_and_delete_go_through_the_terminate_hook(aws: Aws, emulator: dict) -> None:
    aws.group("wp-shrink", 0, [terminate_hook("drain")])
    put_pool(aws, "wp-shrink", min_size=3, prepared=0)
    pool = wait_for(
        lambda: set(warm_pool(aws, "wp-shrink").values()) == {"Warmed:Stopped"}
        and warm_pool(aws, "wp-shrink")
    )
    assert len(pool) == 3
    put_pool(aws, "wp-shrink", min_size=2, prepared=0)
    leaving = [i for i, s in warm_pool(aws, "wp-shrink").items() if s == "Warmed:Terminating:Wait"]
    assert len(leaving) == 1
    assert moves(aws.control("events")) == [
        (leaving[0], "EC2_INSTANCE_TERMINATING", "WarmPool", "EC2")
    ]
    assert target_state(emulator, leaving[0]) == "Terminated"
    complete(aws, "wp-shrink", "drain", leaving[0])
    assert aws.instance_state(leaving[0]) == "terminated"
    assert len(warm_pool(aws, "wp-shrink")) == 2

    aws.asg.delete_warm_pool(AutoScalingGroupName="wp-shrink")
    page = aws.asg.describe_warm_pool(AutoScalingGroupName="wp-shrink")
    assert page["WarmPoolConfiguration"]["Status"] == "PendingDelete"
    assert {i["LifecycleState"] for i in page["Instances"]} == {"Warmed:Terminating:Wait"}
    for iid in warm_pool(aws, "wp-shrink"):
        complete(aws, "wp-shrink", "drain", iid, "ABANDON")
    page = aws.asg.describe_warm_pool(AutoScalingGroupName="wp-shrink")
    assert page["Instances"] == [] and "WarmPoolConfiguration" not in page


def test_terminating_a_pool_instance_refills_the_pool(aws: Aws) -> None:
    aws.group("wp-kill", 0)
    put_pool(aws, "wp-kill", min_size=1, prepared=0)
    (first,) = wait_for(lambda: warm_pool(aws, "wp-kill"))
    aws.asg.terminate_instance_in_auto_scaling_group(
        InstanceId=first, ShouldDecrementDesiredCapacity=False
    )
    assert aws.instance_state(first) == "terminated"
    (second,) = warm_pool(aws, "wp-kill")
    assert second != first
