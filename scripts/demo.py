#!/usr/bin/env python3
"""joinkeeper's local end-to-end demo: the whole join flow on one machine, no AWS account.

The functions run as their own processes under the real Lambda runtime client, polling cargo lambda's
Lambda Runtime API (`cargo lambda watch --only-lambda-apis`), and are invoked with
`cargo lambda invoke`: the schedule with its EventBridge event, the lifecycle events through the
lifecycle queue as the account stack deploys them (EventBridge's rule puts each event into the
queue; each lifecycle function's event source mapping polls it and invokes the function with SQS
batches: scripts/demo_queue.py). The AWS APIs are the local
emulator (moto plus joinkeeper's extension), which executes Run Command documents and user data
with the real node scripts and a stand-in `kubeadm`/`kubectl` (a test double, not a Kubernetes).

Scenario: cluster `demo` booted from the cluster stack's own user data (the synthesized
single-kubeadm variant; the emulator hands each launched instance's user data to a sandboxed boot,
node-scripts/boot): the control plane publishes the first record, aged 23 h -> the schedule rotates
it; the worker group scales out by 3 -> every worker joins with the fresh record -> hooks CONTINUE;
a 4th worker whose join fails -> ABANDON with its reason; scale-in of one worker -> drained and
deleted; scale-in of a worker whose pod a PodDisruptionBudget keeps -> the drain times out, the
action completes naming the pod, the Node is deleted once the instance is gone; a second schedule
tick -> no change; the cluster moves to join mode per-instance and a second group's 2 workers join
with tokens of their own, approved and revoked by the functions; a Spot interruption -> cordoned at
once, drained before the reclaim, its Node deleted after (scripts/demo_spot.py). Prints a timeline
and a summary; exit 1 on any miss.
"""
import argparse
import json
import shutil
import sys
import time
from datetime import datetime, timedelta, timezone

import demo_queue
from demo_client import DemoClient
from demo_per_instance import PerInstanceStep
from demo_services import (CLUSTER, FAILURES, FUNCTION_ENV, GROUP, REGION, ROOT, STATE, TIMELINE, Services,
                           build_functions, free_port, print_log_tails, record, say)
from demo_drains import BlockedDrainStep
from demo_spot import SpotStep
from demo_warm_pool import WarmPoolStep


class Demo(DemoClient, WarmPoolStep, BlockedDrainStep, PerInstanceStep, SpotStep):
    # --- scenario ------------------------------------------------------------------------------
    def shipped_cluster(self):
        """The cluster stack's single-kubeadm variant, synthesized once per run into .demo/synth
        (cluster `demo`), its node-scripts asset uploaded to the account's asset bucket as CDK
        publishes it and its KMS key made; returns the variant and the values its references
        resolve to."""
        sys.path.insert(0, str(ROOT / "node-scripts/boot"))
        import userdata
        import world
        say("synthesizing the cluster stack (its user data boots the demo's instances)")
        variant = userdata.Variant(userdata.synth(str(STATE / "synth")), "single-kubeadm")
        emulator = type("Emulator", (), {"url": self.endpoint, "state": str(STATE / "emulator")})
        shipped = world.BootWorld.existing(emulator, variant, "123456789012", REGION, CLUSTER, str(STATE / "emulator" / "boot"))
        shipped.upload_asset()
        shipped.create_keys()  # the cluster's own key (clusterKmsKey, the default)
        self.shipped_world = shipped
        return variant, shipped.values

    def setup(self):
        for doc in sorted((ROOT / "node-scripts/documents").glob("*.json")):
            self.ssm.create_document(Name=doc.stem, Content=doc.read_text(), DocumentType="Command", DocumentFormat="JSON")
        variant, values = self.shipped_cluster()
        node = variant.node("control-plane")
        cp = self.ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t3.medium",
                                    IamInstanceProfile={"Name": self.shipped_world.control_plane_profile()},
                                    UserData=variant.user_data(node, values), Placement={"AvailabilityZone": f"{REGION}a"},
                                    TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                        {"Key": k, "Value": v} for k, v in node.tags.items()]}])["Instances"][0]["InstanceId"]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            run = next((r for r in self.control("user-data") if r["instance_id"] == cp), {})
            if run.get("status") == "done":
                break
            time.sleep(0.5)
        signals = STATE / "emulator" / "boot" / "shared" / "records" / "signals.jsonl"
        signalled = [json.loads(json.loads(line)["body"])["Status"] for line in signals.read_text().splitlines()] if signals.exists() else []
        try:
            first, version = self.record()
        except self.ssm.exceptions.ParameterNotFound:
            first, version = {}, 0
        record(f"control plane {cp} boots the shipped user data", f"exit {run.get('exit_code')}, wait condition {'/'.join(signalled) or 'not signalled'}",
               f"first record published: token {first.get('token_id')}", run.get("exit_code") == 0 and signalled == ["SUCCESS"] and bool(first))
        if not first:
            sys.exit(f"the control plane published no record; see {STATE / 'emulator/nodes' / cp / 'var/log/cloud-init-output.log'}")
        # A day goes by: the record (the token stays on the control plane) is 23 h old, as the
        # control-plane scripts would have written it then.
        created = datetime.now(timezone.utc) - timedelta(hours=23)
        old = dict(first, created_at=created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                   expires_at=(created + timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M:%SZ"))
        version = self.ssm.put_parameter(Name=f"/joinkeeper/{CLUSTER}/join-record", Value=json.dumps(old), Type="SecureString",
                                         Overwrite=True)["Version"]
        # As the control-plane scripts do: the non-secret meta the functions decide on.
        meta = {"version": 1, "cluster": CLUSTER, "token_id": old["token_id"], "created_at": old["created_at"],
                "expires_at": old["expires_at"], "record_version": version, "written_by": cp}
        self.ssm.put_parameter(Name=f"/joinkeeper/{CLUSTER}/join-record-meta", Value=json.dumps(meta), Type="String", Overwrite=True)
        # The worker group's launch template carries the shipped worker user data.
        self.launch_group(GROUP, variant.user_data(variant.node("worker"), values))
        record("a day later: the record is 23 h old", "worker launch template: shipped user data", f"token {old['token_id']}")
        return old

    def schedule_tick(self, label, expect_rotation, before_token):
        result, err = self.invoke("token-refresher", self.scheduled_event(), label)
        if result is None:
            record(f"schedule tick ({label})", "invocation failed", err, ok=False)
            return None
        c = next((c for c in result["refresh"]["clusters"] if c["cluster"] == CLUSTER), {})
        rec, _ = self.record()
        rotated = rec["token_id"] != before_token
        ok = (c.get("outcome") == ("rotated" if expect_rotation else "fresh")) and rotated == expect_rotation
        record(f"schedule tick ({label})", f"{c.get('outcome')}: {c.get('reason', 'valid for ' + str(c.get('remaining_seconds', 0) // 3600) + ' h')}",
               f"token {rec['token_id']} expires {rec['expires_at']}", ok)
        if self.kube_nodes().get("ip-10-66-6-6.ec2.internal"):
            self.check_rogue(result)
        return rec["token_id"]

    def through_queue(self, events):
        """Publishes the events to the lifecycle queue as EventBridge's rule does and lets the
        event source mappings deliver them; returns the actions the functions decided (from
        their log lines), by instance, and the error of a failed delivery."""
        log = STATE / "functions.log"
        offset = log.stat().st_size if log.exists() else 0
        demo_queue.publish(self.endpoint, self.queue_url, events)
        invocations = self.mapping.deliver(len(events))
        handled = sum(n for _, n, _, _ in invocations)
        failed = sum(len(f) for _, _, f, _ in invocations)
        say(f"  {len(events)} event(s) through the queue: {len(invocations)} batch invocation(s) "
            f"({', '.join(sorted({fn for fn, _, _, _ in invocations})) or 'none'}), {failed} message(s) reported failed")
        with log.open(errors="replace") as f:
            f.seek(offset)
            lines = f.read().splitlines()
        decided = {}
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("message") == "lifecycle action decided":
                decided[entry.get("instance")] = dict(decided.get(entry.get("instance"), {}), **entry)
            elif entry.get("message") == "abandoning a worker that could not join":
                last = next((x for x in reversed(str(entry.get("join_log", "")).splitlines()) if x.strip()), "")
                decided.setdefault(entry.get("instance"), {})["join_log_last_line"] = last[:300]
        error = "" if handled == len(events) and not failed else f"{handled} of {len(events)} handled, {failed} failed: " + \
            "; ".join(str(e)[:80] for _, _, _, e in invocations if e)
        return decided, error

    def launch(self, events, expect):
        # One invocation reconciles the cluster of its batch once and decides every action.
        decided, err = self.through_queue(events)
        for iid in sorted(ev["detail"]["EC2InstanceId"] for ev in events):
            action = decided.get(iid, {})
            outcome = action.get("outcome", "undecided")
            if action.get("join_log_last_line"):
                say(f"  worker {iid} join log: {action['join_log_last_line']}")
            state = self.states().get(iid, "terminated")
            record(f"launch lifecycle event {iid}", f"{outcome}: {action.get('reason', err)[:60]}", state,
                   outcome == expect and state == ("InService" if expect == "continue" else "terminated"))

    def run(self):
        old = self.setup()
        self.queue_url = demo_queue.create_queue(self.endpoint)
        self.mapping = demo_queue.Mapping(self.endpoint, self.queue_url, self.invoke)
        self.status("before")
        token = self.schedule_tick("1", True, old["token_id"])

        self.asg.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=3)
        events = self.wait_events(3)
        record("worker group scales out by 3", f"{len(events)} instances in Pending:Wait", ", ".join(sorted(self.states())), len(events) == 3)
        self.launch(events, "continue")
        ready = [n for n, v in self.kube_nodes().items() if v.get("ready")]
        record("Nodes in the cluster", f"{len(ready)} Ready", ", ".join(sorted(ready)), len(ready) == 3)

        self.asg.create_or_update_tags(Tags=[{"Key": "emulator:join", "Value": "fail", "PropagateAtLaunch": True, "ResourceId": GROUP, "ResourceType": "auto-scaling-group"}])
        self.asg.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=4)
        fourth = self.wait_events(1)
        record("a 4th worker launches (its join will fail)", "Pending:Wait", fourth[0]["detail"]["EC2InstanceId"] if fourth else "no event", len(fourth) == 1)
        # Instances launched from now on join normally: the group's replacement for the abandoned one.
        self.asg.delete_tags(Tags=[{"Key": "emulator:join", "ResourceId": GROUP, "ResourceType": "auto-scaling-group"}])
        self.launch(fourth, "abandon")
        # On AWS the group would launch a replacement; the emulator does not refill after ABANDON,
        # so the demo settles the group at its 3 joined workers.
        self.asg.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=3)

        self.asg.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=2)
        term = self.wait_events(1, kind="terminate")
        if term:
            victim = term[0]["detail"]["EC2InstanceId"]
            decided, err = self.through_queue(term)
            action = decided.get(victim, {})
            nodes = self.kube_nodes()
            gone = not any(v.get("providerID", "").endswith("/" + victim) for v in nodes.values())
            record(f"scale-in by 1: {victim}", f"{action.get('outcome', 'error')}: {action.get('reason', err)[:50]}",
                   f"Node deleted: {gone}, {len(nodes)} Nodes left", action.get("outcome") == "drained" and gone and len(nodes) == 2)
        else:
            record("scale-in", "no terminate event", "", ok=False)

        self.blocked_drain()
        self.rogue_node()
        self.warm_pool()
        self.schedule_tick("2", False, token)
        self.rotate_revoke_all()
        self.per_instance()
        self.spot_interruption()
        self.status("after")

        _, version = self.record()
        bad = {"source": "aws.ec2", "detail-type": "Scheduled Event", "time": "not a time"}
        res, err = self.invoke("token-refresher", bad, "malformed")
        _, after = self.record()
        reason = next((line.strip() for line in err.splitlines() if "expected" in line), "rejected") if err else "accepted"
        record("malformed scheduled event", "rejected" if res is None else "ACCEPTED", f"record version {version} -> {after}; {reason[:70]}",
               res is None and after == version)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ci", action="store_true", help="no difference in behaviour; marks runs made by the test suite")
    parser.parse_args()
    if STATE.exists():
        shutil.rmtree(STATE)
    STATE.mkdir(parents=True)
    build_functions()
    services = Services()
    try:
        endpoint = services.start_emulator()
        say(f"local AWS API emulator at {endpoint}")
        port = free_port()
        services.start_runtime(endpoint, port, FUNCTION_ENV)
        say(f"functions polling cargo lambda's runtime API on 127.0.0.1:{port}\n")
        print(f"{'time':>7}  {'':6} {'event':<44} {'decision':<34} outcome")
        demo = Demo(endpoint, port, services)
        demo.run()
        demo.check_logs()
    except BaseException:
        print_log_tails()
        raise
    finally:
        services.stop()
    if FAILURES:
        print_log_tails()
    print("\nsummary")
    print(f"  steps: {len(TIMELINE)}, as expected: {sum(1 for t in TIMELINE if t[4])}, missed: {len(FAILURES)}")
    for f in FAILURES:
        print(f"  MISSED: {f}")
    print(f"  logs: {STATE / 'functions.log'}, {STATE / 'emulator.log'}; events sent: {STATE / 'events'}")
    print(f"{len(TIMELINE) - len(FAILURES)} passed, {len(FAILURES)} failed")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
