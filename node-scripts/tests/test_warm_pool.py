"""Workers of a group with a warm pool, run by the emulator: the user data (joinkeeper-join and
joinkeeper-boot-unit) at the first boot, the boot unit at every later start. An instance launched
into the pool does not join; leaving the pool for service its boot unit joins; sent back to the
pool on scale-in (its Node drained and deleted, as the terminate hook does) and taken out again,
it joins again after `kubeadm reset`. Lifecycle actions are completed here the way the joinkeeper
functions complete them (CONTINUE into the pool at once; out of it once the Node is Ready)."""
import base64
import json
import os
import re
import time
import urllib.request
import uuid

import boto3
from botocore.config import Config

STOPPED = "Warmed:Stopped"


class WarmPoolGroup:
    """A worker group of the test's cluster in the emulator, with launch and terminate hooks and
    a warm pool; the record is published into the stand-in cluster the workers join."""

    def __init__(self, jk, emulator, pool_state="Stopped", max_size=2):
        self.jk, self.emulator = jk, emulator
        jk.kube = os.path.join(emulator["state"], "clusters", jk.cluster)
        os.makedirs(jk.kube, exist_ok=True)
        jk.env["JOINKEEPER_KUBE_STATE"] = jk.kube
        jk.publish()
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
        config = Config(retries={"max_attempts": 2}, user_agent_appid="test-harness")
        self.asg = session.client("autoscaling", endpoint_url=emulator["url"], config=config)
        self.ec2 = session.client("ec2", endpoint_url=emulator["url"], config=config)
        self.name = "%s-workers-%s" % (jk.cluster, uuid.uuid4().hex[:6])
        # The worker's user data: the boot unit first (it starts waiting at once in a Running or
        # Hibernated pool), then the join, which is deferred while the instance warms.
        args = "--cluster %s --prefix %s --deadline-seconds 60" % (jk.cluster, jk.prefix)
        user_data = ("#!/bin/bash\nset -euo pipefail\n"
                     "export JOINKEEPER_JOIN_TARGET_POLL_SECONDS=1 JOINKEEPER_JOIN_SERVICE_POLL_SECONDS=1\n"
                     "/opt/joinkeeper/bin/joinkeeper-boot-unit %s\n/opt/joinkeeper/bin/joinkeeper-join %s\n"
                     % (args, args))
        self.ec2.create_launch_template(LaunchTemplateName=self.name, LaunchTemplateData={
            "ImageId": "ami-12c6146b", "InstanceType": "t3.medium",
            "UserData": base64.b64encode(user_data.encode()).decode()})
        tags = [{"Key": k, "Value": v, "PropagateAtLaunch": True, "ResourceId": self.name,
                 "ResourceType": "auto-scaling-group"}
                for k, v in (("joinkeeper:cluster", jk.cluster), ("joinkeeper:role", "worker"))]
        hooks = [{"LifecycleHookName": "joinkeeper-" + kind, "LifecycleTransition": transition,
                  "HeartbeatTimeout": 300, "DefaultResult": "ABANDON"}
                 for kind, transition in (("launch", "autoscaling:EC2_INSTANCE_LAUNCHING"),
                                          ("terminate", "autoscaling:EC2_INSTANCE_TERMINATING"))]
        self.asg.create_auto_scaling_group(
            AutoScalingGroupName=self.name, MinSize=0, MaxSize=max_size, DesiredCapacity=0,
            LaunchTemplate={"LaunchTemplateName": self.name, "Version": "$Latest"},
            AvailabilityZones=["us-east-1a"], LifecycleHookSpecificationList=hooks, Tags=tags)
        # MinSize 1; the prepared capacity defaults to MaxSize: MaxSize minus desired in the pool.
        self.asg.put_warm_pool(AutoScalingGroupName=self.name, MinSize=1, PoolState=pool_state,
                               InstanceReusePolicy={"ReuseOnScaleIn": True})

    def close(self):
        self.asg.delete_auto_scaling_group(AutoScalingGroupName=self.name, ForceDelete=True)

    # --- the emulator's view ---------------------------------------------------------------------
    def control(self, path):
        """A control API list (user-data and boot-units rows name no group: filtered by id)."""
        with urllib.request.urlopen("%s/_joinkeeper/%s" % (self.emulator["url"], path), timeout=10) as resp:
            return json.loads(resp.read())

    def instances(self):
        return {r["instance_id"]: r for r in self.control("instances") if r["group"] == self.name}

    def wait(self, what, check, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError("timed out waiting for %s: %s" % (what, json.dumps(self.instances(), indent=1)))

    def wait_states(self, wanted, count):
        return self.wait("%d instance(s) in %s" % (count, wanted), lambda: (
            lambda ids: ids if len(ids) >= count else None)(
                sorted(i for i, r in self.instances().items() if r["lifecycle_state"] == wanted)))

    def user_data_done(self, instance_id):
        return any(r["instance_id"] == instance_id and r["status"] == "done" for r in self.control("user-data"))

    def node_dir(self, instance_id):
        return os.path.join(self.emulator["state"], "nodes", instance_id)

    def join_log(self, instance_id):
        path = os.path.join(self.node_dir(instance_id), "log", "joinkeeper-join.log")
        if not os.path.exists(path):
            return ""
        with open(path, errors="replace") as fh:
            return fh.read()

    def dns(self, instance_id):
        res = self.ec2.describe_instances(InstanceIds=[instance_id])
        return res["Reservations"][0]["Instances"][0]["PrivateDnsName"]

    def node_of(self, instance_id):
        for name, node in self.jk.state()["nodes"].items():
            if node.get("providerID", "").endswith("/" + instance_id):
                return name, node
        return None, None

    def ready(self, instance_id):
        _, node = self.node_of(instance_id)
        return node is not None and node.get("ready") == "True"

    def joined(self, instance_id, times=1):
        """Its Node is Ready and its join log says it joined (with a token) `times` times."""
        joins = re.findall(r"joined cluster=%s node=\S+ token_id=[a-z0-9]{6}$" % self.jk.cluster,
                           self.join_log(instance_id), re.M)
        return self.ready(instance_id) and len(joins) == times

    def kubeadm_calls(self, verb):
        """The instances that ran `kubeadm <verb>` (the stand-in cluster's record of every call)."""
        path = os.path.join(self.jk.kube, "calls.jsonl")
        with open(path) as fh:
            calls = [json.loads(line) for line in fh if line.strip()]
        return [c["instance"] for c in calls if c["tool"] == "kubeadm" and c["argv"][:1] == [verb]]

    # --- what the joinkeeper functions do --------------------------------------------------------
    def complete(self, instance_id, hook):
        self.asg.complete_lifecycle_action(AutoScalingGroupName=self.name, LifecycleHookName="joinkeeper-" + hook,
                                           InstanceId=instance_id, LifecycleActionResult="CONTINUE")

    def drain(self, instance_id):
        proc = self.jk.run("joinkeeper-drain", "--instance-id", instance_id, "--timeout-seconds", "30")
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip().splitlines()[-1]

    def check_node_logs_hold_no_secret(self, instance_ids):
        secrets = self.jk.secrets()
        assert secrets
        for iid in instance_ids:
            for folder, _, files in os.walk(os.path.join(self.node_dir(iid), "log")):
                for name in files:
                    with open(os.path.join(folder, name), errors="replace") as fh:
                        text = fh.read()
                    for secret in secrets:
                        assert secret not in text, "a token secret in %s of %s" % (name, iid)


def test_pool_instance_joins_only_when_it_leaves_the_pool_and_again_after_returning(jk, emulator):
    g = WarmPoolGroup(jk, emulator)
    try:
        # The pool fills (MaxSize 2, desired 0): two instances launch into it, and wait in
        # Warmed:Pending:Wait on the launch hook while their user data runs.
        pool = g.wait_states("Warmed:Pending:Wait", 2)
        first, second = pool
        for iid in pool:
            g.wait("user data of %s" % iid, lambda iid=iid: g.user_data_done(iid))
            assert g.instances()[iid]["target_lifecycle_state"] == STOPPED
            log = g.join_log(iid)
            assert "target lifecycle state Warmed:Stopped: this instance is being prepared for the warm pool" in log
            assert log.strip().splitlines()[-1].endswith(
                "join deferred cluster=%s node=%s target=Warmed:Stopped" % (jk.cluster, g.dns(iid)))
            unit = os.path.join(g.node_dir(iid), "boot-units", "50-joinkeeper-join")
            assert os.access(unit, os.X_OK)
            assert "joinkeeper-join --watch --cluster %s --prefix /joinkeeper --deadline-seconds 60" % jk.cluster \
                in open(unit).read()
            assert g.node_of(iid) == (None, None), "an instance entering the pool has no Node"
        assert not set(g.kubeadm_calls("join")) & set(pool)
        # joinkeeper's launch hook: CONTINUE at once into the pool; the instances stop there.
        for iid in pool:
            g.complete(iid, "launch")
        g.wait_states(STOPPED, 2)
        assert {g.instances()[i]["ec2_state"] for i in pool} == {"stopped"}

        # Scale-out takes the oldest prepared instance out of the pool: it starts again, its boot
        # unit (not its user data) runs and joins; the launch hook then completes CONTINUE.
        g.asg.set_desired_capacity(AutoScalingGroupName=g.name, DesiredCapacity=1)
        g.wait("an instance leaving the pool", lambda: [i for i in pool if g.instances()[i]["lifecycle_state"] == "Pending:Wait"])
        leaving = next(i for i in pool if g.instances()[i]["lifecycle_state"] == "Pending:Wait")
        staying = second if leaving == first else first
        assert g.instances()[leaving]["target_lifecycle_state"] == "InService"
        g.wait("%s joined" % leaving, lambda: g.joined(leaving))
        name, node = g.node_of(leaving)
        assert name == g.dns(leaving) and node["providerID"] == "aws:///us-east-1a/%s" % leaving
        runs = [r for r in g.control("boot-units") if r["instance_id"] == leaving]
        assert len(runs) == 1 and runs[0]["target_lifecycle_state"] == "InService"
        assert [u["name"] for u in runs[0]["units"]] in ([], ["50-joinkeeper-join"])  # the unit keeps watching
        log = g.join_log(leaving)
        assert "joined cluster=%s node=%s token_id=%s" % (jk.cluster, name, jk.record()["token_id"]) in log
        assert len([r for r in g.control("user-data") if r["instance_id"] == leaving]) == 1, "user data ran once"
        g.complete(leaving, "launch")
        g.wait_states("InService", 1)
        assert g.node_of(staying) == (None, None) and g.instances()[staying]["lifecycle_state"] == STOPPED

        # Scale-in with ReuseOnScaleIn: back to the pool through the terminate hook; joinkeeper
        # drains and deletes the Node, then completes; the instance stops in the pool.
        g.asg.set_desired_capacity(AutoScalingGroupName=g.name, DesiredCapacity=0)
        g.wait("%s going back to the pool" % leaving,
               lambda: g.instances()[leaving]["lifecycle_state"] == "Warmed:Pending:Wait")
        assert g.instances()[leaving]["target_lifecycle_state"] == STOPPED
        assert g.drain(leaving) == "drain %s node=%s result=drained" % (leaving, name)
        g.complete(leaving, "terminate")
        g.wait("%s stopped in the pool" % leaving, lambda: g.instances()[leaving]["lifecycle_state"] == STOPPED)
        assert g.node_of(leaving) == (None, None)
        assert os.path.exists(os.path.join(g.node_dir(leaving), "etc", "kubernetes", "kubelet.conf")), \
            "the returning instance still holds its old kubelet credentials"

        # Both leave the pool: the returning one finds its Node gone, resets and joins again; the
        # other joins for the first time.
        g.asg.set_desired_capacity(AutoScalingGroupName=g.name, DesiredCapacity=2)
        for iid in pool:
            g.wait("%s joined" % iid, lambda iid=iid: g.joined(iid, 2 if iid == leaving else 1))
        log = g.join_log(leaving)
        assert "Node %s is gone (deleted when the instance went back to the warm pool): kubeadm reset -f, then join again" \
            % name in log
        assert log.count("joined cluster=%s node=%s token_id=%s" % (jk.cluster, name, jk.record()["token_id"])) == 2
        assert g.kubeadm_calls("reset") == [leaving], "only the returning instance resets"
        assert "is gone" not in g.join_log(staying)
        assert sorted(g.kubeadm_calls("join")) == sorted([leaving, leaving, staying])
        for iid in pool:
            g.complete(iid, "launch")
        g.wait_states("InService", 2)
        g.check_node_logs_hold_no_secret(pool)
    finally:
        g.close()


def test_running_pool_instance_is_joined_by_the_unit_started_at_first_boot(jk, emulator):
    # A Running pool's instance is not booted again when it leaves the pool (no boot units run):
    # the unit started by the user data waits in the pool, joins, and keeps watching, so the
    # instance joins again after a round trip through the pool.
    g = WarmPoolGroup(jk, emulator, pool_state="Running")
    try:
        pool = g.wait_states("Warmed:Pending:Wait", 2)
        for iid in pool:
            g.wait("user data of %s" % iid, lambda iid=iid: g.user_data_done(iid))
            unit = os.path.join(g.node_dir(iid), "boot-units", "50-joinkeeper-join")
            with open(os.path.join(g.node_dir(iid), "log", "cloud-init-output.log")) as fh:
                assert "boot unit installed: %s started=yes" % unit in fh.read()
            g.wait("the unit of %s waiting" % iid,
                   lambda iid=iid: "waiting in the warm pool until the instance is bound for service" in g.join_log(iid))
            g.complete(iid, "launch")
        g.wait_states("Warmed:Running", 2)
        assert {g.instances()[i]["ec2_state"] for i in pool} == {"running"}
        assert [g.node_of(i) for i in pool] == [(None, None)] * 2

        g.asg.set_desired_capacity(AutoScalingGroupName=g.name, DesiredCapacity=1)
        g.wait("an instance leaving the pool", lambda: [i for i in pool if g.instances()[i]["lifecycle_state"] == "Pending:Wait"])
        leaving = next(i for i in pool if g.instances()[i]["lifecycle_state"] == "Pending:Wait")
        g.wait("%s joined" % leaving, lambda: g.joined(leaving))
        assert [r for r in g.control("boot-units") if r["instance_id"] in pool] == [], "no restart, no boot unit run"
        g.complete(leaving, "launch")
        g.wait_states("InService", 1)
        name, _ = g.node_of(leaving)

        g.asg.set_desired_capacity(AutoScalingGroupName=g.name, DesiredCapacity=0)
        g.wait("%s going back to the pool" % leaving,
               lambda: g.instances()[leaving]["lifecycle_state"] == "Warmed:Pending:Wait")
        assert g.drain(leaving) == "drain %s node=%s result=drained" % (leaving, name)
        g.complete(leaving, "terminate")
        g.wait_states("Warmed:Running", 2)
        # It stays in the pool a while (here: until its unit, polling each second, noticed).
        waiting = "waiting in the warm pool until the instance is bound for service"
        g.wait("the unit of %s waiting again" % leaving, lambda: g.join_log(leaving).count(waiting) == 2)

        g.asg.set_desired_capacity(AutoScalingGroupName=g.name, DesiredCapacity=2)
        for iid in pool:
            g.wait("%s joined" % iid, lambda iid=iid: g.joined(iid, 2 if iid == leaving else 1))
        log = g.join_log(leaving)
        assert "Node %s is gone (deleted when the instance went back to the warm pool)" % name in log
        assert log.count("joined cluster=%s node=%s token_id=" % (jk.cluster, name)) == 2
        assert g.kubeadm_calls("reset") == [leaving]
        g.check_node_logs_hold_no_secret(pool)
    finally:
        g.close()
