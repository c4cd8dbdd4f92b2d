"""EC2 LaunchTime is the time of the instance's last start: a stopped instance started again
(StartInstances, or leaving a Stopped warm pool) gets a new one; a Running warm-pool instance
keeps its own when it leaves the pool."""

from __future__ import annotations

import time

from support import Aws, wait_for, warm_pool


def launch_time(aws: Aws, instance_id: str):
    res = aws.ec2.describe_instances(InstanceIds=[instance_id])
    return res["Reservations"][0]["Instances"][0]["LaunchTime"]


def test_start_instances_resets_launch_time(aws: Aws) -> None:
    iid = aws.instance()
    first = launch_time(aws, iid)
    aws.ec2.stop_instances(InstanceIds=[iid])
    time.sleep(1.1)
    assert launch_time(aws, iid) == first  # stopping does not change it
    aws.ec2.start_instances(InstanceIds=[iid])
    assert launch_time(aws, iid) > first
    again = launch_time(aws, iid)
    aws.ec2.start_instances(InstanceIds=[iid])  # already running: no new start
    assert launch_time(aws, iid) == again


def pool_instance(aws: Aws, group: str, state: str) -> str:
    aws.group(group, 0)
    aws.asg.put_warm_pool(
        AutoScalingGroupName=group, MinSize=1, MaxGroupPreparedCapacity=1, PoolState=state
    )
    pool = wait_for(
        lambda: set(warm_pool(aws, group).values()) == {f"Warmed:{state}"}
        and warm_pool(aws, group)
    )
    assert len(pool) == 1, pool
    return next(iter(pool))


def test_leaving_a_stopped_pool_resets_launch_time_a_running_pool_keeps_it(aws: Aws) -> None:
    stopped = pool_instance(aws, "lt-stopped", "Stopped")
    running = pool_instance(aws, "lt-running", "Running")
    before = {iid: launch_time(aws, iid) for iid in (stopped, running)}
    time.sleep(1.1)
    for group in ("lt-stopped", "lt-running"):
        aws.asg.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=1)
    assert wait_for(lambda: aws.group_instances("lt-stopped").get(stopped) == "InService")
    assert wait_for(lambda: aws.group_instances("lt-running").get(running) == "InService")
    assert aws.instance_state(stopped) == "running"
    assert launch_time(aws, stopped) > before[stopped]
    assert launch_time(aws, running) == before[running]
