"""The demo's per-instance step (scripts/demo.py): cluster `demo` moves to join mode per-instance
(the `join-mode` parameter its stack writes with joinMode=per-instance), a second worker group
carries the per-instance variant's shipped worker user data, and two workers each join with a
token of their own, minted and approved through the functions' node-status pass; then no token
and no per-instance record is left. The lifecycle events go through the lifecycle queue."""
import json
import sys
import time

from demo_services import CLUSTER, ROOT, STATE, record

PI_GROUP = "demo-pi-workers"


class PerInstanceStep:
    """Demo.per_instance, on DemoClient's helpers."""

    def per_instance(self):
        sys.path.insert(0, str(ROOT / "node-scripts/boot"))
        import userdata
        variant = userdata.Variant(str(STATE / "synth"), "per-instance")
        user_data = variant.user_data(variant.node("worker"), self.shipped_world.values)
        self.ssm.put_parameter(Name=f"/joinkeeper/{CLUSTER}/join-mode", Value="per-instance", Type="String",
                               Overwrite=True)
        self.launch_group(PI_GROUP, user_data)
        self.asg.set_desired_capacity(AutoScalingGroupName=PI_GROUP, DesiredCapacity=2)
        events = [e for e in self.wait_events(2) if e["detail"]["AutoScalingGroupName"] == PI_GROUP]
        record("join mode per-instance: a group of 2", "shipped per-instance worker user data",
               f"{len(events)} in Pending:Wait", len(events) == 2)
        if not events:
            return
        decided, err = self.through_queue(events)
        group = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[PI_GROUP])["AutoScalingGroups"][0]
        states = {i["InstanceId"]: i["LifecycleState"] for i in group["Instances"]}
        state = json.loads((STATE / "emulator" / "clusters" / CLUSTER / "state.json").read_text())
        for ev in events:
            iid = ev["detail"]["EC2InstanceId"]
            action = decided.get(iid, {})
            log = STATE / "emulator" / "nodes" / iid / "var/log/joinkeeper/joinkeeper-join.log"
            joined = next((line.split(": ", 1)[-1] for line in reversed(log.read_text().splitlines())
                           if "joined cluster=" in line), "") if log.exists() else ""
            record(f"per-instance launch {iid}", f"{action.get('outcome', 'undecided')}: {action.get('reason', err)[:50]}",
                   f"{states.get(iid)}; {' '.join(joined.split()[:1] + joined.split()[3:]) or 'no join line'}",
                   action.get("outcome") == "continue" and states.get(iid) == "InService" and bool(joined))
        csrs = [c for c in state.get("csrs", []) if c.get("groups") == ["system:bootstrappers:joinkeeper:per-instance"]]
        approved = sum(1 for c in csrs if c.get("status") == "KubectlApprove")
        left = [t for t in state.get("tokens", {}).values() if t.get("description", "").startswith("joinkeeper per-instance")]
        deadline = time.monotonic() + 30
        records = self.join_records()
        while records and time.monotonic() < deadline:
            time.sleep(0.5)
            records = self.join_records()
        record("per-instance tokens", f"{approved} certificate(s) approved by joinkeeper", f"left: {len(left)} token(s), "
               f"{len(records)} record(s)", approved == 2 and not left and not records)

    def join_records(self):
        out = self.ssm.get_parameters_by_path(Path=f"/joinkeeper/{CLUSTER}/join")
        return [p["Name"] for p in out.get("Parameters", [])]

    def launch_group(self, group, user_data):
        """A worker group (launch and terminate hooks) whose launch template carries `user_data`."""
        import base64
        self.ec2.create_launch_template(LaunchTemplateName=f"{group}-lt", LaunchTemplateData={
            "ImageId": "ami-12c6146b", "InstanceType": "t3.medium", "UserData": base64.b64encode(user_data.encode()).decode()})
        tags = [{"Key": k, "Value": v, "PropagateAtLaunch": True, "ResourceId": group, "ResourceType": "auto-scaling-group"}
                for k, v in (("joinkeeper:cluster", CLUSTER), ("joinkeeper:role", "worker"))]
        self.asg.create_auto_scaling_group(AutoScalingGroupName=group, LaunchTemplate={"LaunchTemplateName": f"{group}-lt",
                                                                                       "Version": "$Latest"},
                                           MinSize=0, MaxSize=10, DesiredCapacity=0, AvailabilityZones=["us-east-1a"], Tags=tags)
        for name, transition in (("joinkeeper-launch", "autoscaling:EC2_INSTANCE_LAUNCHING"),
                                 ("joinkeeper-terminate", "autoscaling:EC2_INSTANCE_TERMINATING")):
            self.asg.put_lifecycle_hook(AutoScalingGroupName=group, LifecycleHookName=name, LifecycleTransition=transition,
                                        HeartbeatTimeout=300, DefaultResult="ABANDON")
