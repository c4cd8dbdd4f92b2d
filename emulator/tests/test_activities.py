"""Scaling activities: one per instance move, as Auto Scaling records them, newest first, paged;
a launch from a Running warm pool starts when the instance leaves the pool, while its EC2
LaunchTime stays its first launch."""

from __future__ import annotations

import time

from support import Aws, complete, launch_hook, terminate_hook, wait_for, warm_pool


def activities(aws: Aws, group: str, **kwargs) -> list[dict]:
    return aws.asg.describe_scaling_activities(AutoScalingGroupName=group, **kwargs)["Activities"]


def launch_time(aws: Aws, instance_id: str):
    res = aws.ec2.describe_instances(InstanceIds=[instance_id])
    return res["Reservations"][0]["Instances"][0]["LaunchTime"]


def test_a_fresh_launch_is_one_activity_held_by_its_hook_then_successful(aws: Aws) -> None:
    aws.group("act-fresh", 0, hooks=[launch_hook()])
    aws.asg.set_desired_capacity(AutoScalingGroupName="act-fresh", DesiredCapacity=1)
    (iid,) = aws.group_instances("act-fresh")
    (act,) = activities(aws, "act-fresh")
    assert act["Description"] == f"Launching a new EC2 instance: {iid}"
    assert act["AutoScalingGroupName"] == "act-fresh"
    assert act["StatusCode"] == "MidLifecycleAction" and "EndTime" not in act
    assert "increasing the capacity from 0 to 1." in act["Cause"]
    assert '"Availability Zone":"us-east-1a"' in act["Details"]
    complete(aws, "act-fresh", "launch", iid)
    (done,) = activities(aws, "act-fresh")
    assert done["ActivityId"] == act["ActivityId"]
    assert (done["StatusCode"], done["Progress"]) == ("Successful", 100)
    assert done["EndTime"] >= done["StartTime"]
    # Another group's activities are not listed; unknown ids are ignored.
    assert activities(aws, "act-fresh", ActivityIds=["nope"]) == []
    assert activities(aws, "act-fresh", ActivityIds=[act["ActivityId"]])[0]["Description"]


def test_an_abandoned_launch_is_cancelled_with_aws_status_reason(aws: Aws) -> None:
    aws.group("act-abandon", 1, hooks=[launch_hook()])
    (iid,) = aws.group_instances("act-abandon")
    complete(aws, "act-abandon", "launch", iid, "ABANDON")
    (act,) = activities(aws, "act-abandon")
    assert act["StatusCode"] == "Cancelled"
    assert act["Description"].startswith(f"Launching a new EC2 instance: {iid}.  Status Reason: ")
    assert act["StatusMessage"].endswith("Lifecycle Action Completed with ABANDON Result")


def test_a_running_pool_exit_starts_its_activity_when_it_leaves_not_at_first_launch(
    aws: Aws,
) -> None:
    group = "act-running"
    aws.group(group, 0, hooks=[launch_hook(), terminate_hook()])
    aws.asg.put_warm_pool(
        AutoScalingGroupName=group, MinSize=1, MaxGroupPreparedCapacity=1, PoolState="Running"
    )
    (iid,) = wait_for(lambda: warm_pool(aws, group))
    (into,) = activities(aws, group)
    assert into["Description"] == f"Launching a new EC2 instance into warm pool: {iid}"
    assert into["StatusCode"] == "MidLifecycleAction"
    complete(aws, group, "launch", iid)
    assert wait_for(lambda: warm_pool(aws, group) == {iid: "Warmed:Running"})
    assert activities(aws, group)[0]["StatusCode"] == "Successful"
    first_launch = launch_time(aws, iid)

    time.sleep(2.1)  # sits in the pool
    aws.asg.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=1)
    assert aws.group_instances(group) == {iid: "Pending:Wait"}
    # Newest first: the pool's refill, the exit, the first launch into the pool.
    refill, out, first = activities(aws, group)
    assert refill["Description"].startswith("Launching a new EC2 instance into warm pool: ")
    assert first["ActivityId"] == into["ActivityId"]
    assert out["Description"] == f"Launching a new EC2 instance from warm pool: {iid}"
    assert out["StatusCode"] == "MidLifecycleAction"
    assert "increasing the capacity from 0 to 1." in out["Cause"]
    assert (out["StartTime"] - first_launch).total_seconds() >= 2
    assert launch_time(aws, iid) == first_launch  # EC2 still says the first launch
    complete(aws, group, "launch", iid)
    exit_id = [out["ActivityId"]]
    assert activities(aws, group, ActivityIds=exit_id)[0]["StatusCode"] == "Successful"

    # Scale-in without reuse: terminated through the terminate hook.
    aws.asg.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=0)
    gone = activities(aws, group)[0]
    assert gone["Description"] == f"Terminating EC2 instance: {iid}"
    assert "shrinking the capacity from 1 to 0." in gone["Cause"]
    assert f"instance {iid} was selected for termination." in gone["Cause"]
    complete(aws, group, "terminate", iid)
    assert activities(aws, group, MaxRecords=1)[0]["StatusCode"] == "Successful"


def test_pages_newest_first_and_retirements_from_the_pool(aws: Aws) -> None:
    group = "act-pages"
    aws.group(group, 5)
    seen, token = [], None
    while True:
        page = aws.asg.describe_scaling_activities(
            AutoScalingGroupName=group, MaxRecords=2, **({"NextToken": token} if token else {})
        )
        assert len(page["Activities"]) <= 2
        seen += page["Activities"]
        token = page.get("NextToken")
        if not token:
            break
        # A new activity between pages does not shift the next page.
        if len(seen) == 2:
            aws.asg.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=6)
    assert len(seen) == 5 and len({a["ActivityId"] for a in seen}) == 5
    assert all(a["StatusCode"] == "Successful" for a in seen)  # no hook: in service at once
    starts = [a["StartTime"] for a in seen]
    assert starts == sorted(starts, reverse=True)
    assert len(activities(aws, group)) == 6

    aws.asg.put_warm_pool(AutoScalingGroupName=group, MinSize=1, MaxGroupPreparedCapacity=7)
    (pooled,) = wait_for(lambda: warm_pool(aws, group))
    aws.asg.delete_warm_pool(AutoScalingGroupName=group)
    retired = activities(aws, group)[0]
    assert retired["Description"] == f"Terminating EC2 instance from warm pool: {pooled}"
    assert retired["StatusCode"] == "Successful"

    aws.asg.delete_auto_scaling_group(AutoScalingGroupName=group, ForceDelete=True)
    assert activities(aws, group) == []
    deleted = activities(aws, group, IncludeDeletedGroups=True)
    assert deleted and all(a["AutoScalingGroupState"] == "Deleted" for a in deleted)
