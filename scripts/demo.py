#!/usr/bin/env python3
"""joinkeeper's local end-to-end demo: the whole join flow on one machine, no AWS account.

The functions run as their own processes under the real Lambda runtime client, polling cargo lambda's
Lambda Runtime API (`cargo lambda watch --only-lambda-apis`), and are invoked with
`cargo lambda invoke` and events in the documented EventBridge shapes. The AWS APIs are the local
emulator (moto plus joinkeeper's extension), which executes Run Command documents and user data
with the real node scripts and a stand-in `kubeadm`/`kubectl` (a test double, not a Kubernetes).

Scenario: cluster `demo` booted from the cluster stack's own user data (the synthesized
single-kubeadm variant; the emulator hands each launched instance's user data to a sandboxed boot,
node-scripts/boot): the control plane publishes the first record, aged 23 h -> the schedule rotates
it; the worker group scales out by 3 -> every worker joins with the fresh record -> hooks CONTINUE;
a 4th worker whose join fails -> ABANDON with its reason; scale-in of one worker -> drained and
deleted; a second schedule tick -> no change. Prints a timeline and a summary; exit 1 on any miss.
"""
import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone

from demo_services import (CLUSTER, FAILURES, FUNCTION_ENV, GROUP, INVOKE_TIMEOUT, REGION, ROOT, STATE, TIMELINE,
                           Services, binary, build_functions, free_port, print_log_tails, record, say)


class Demo:
    def __init__(self, endpoint, port, services):
        import boto3
        self.services = services
        self.endpoint = endpoint
        self.port = port
        kw = dict(endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
        self.ssm = boto3.client("ssm", **kw)
        self.ec2 = boto3.client("ec2", **kw)
        self.asg = boto3.client("autoscaling", **kw)
        (STATE / "events").mkdir(exist_ok=True)
        self.pending = []

    # --- helpers -------------------------------------------------------------------------------
    def control(self, path):
        with urllib.request.urlopen(f"{self.endpoint}/_joinkeeper/{path}", timeout=10) as r:
            return json.loads(r.read())

    def invoke(self, function, event, name):
        """Invokes `function` with `event` through `cargo lambda invoke`. An invocation that has not
        returned well after the function timeout is treated as Lambda treats it: timed out, and
        the asynchronous event retried once, by a fresh runtime (the log tails are printed first)."""
        path = STATE / "events" / f"{name}.json"
        path.write_text(json.dumps(event, indent=2))
        for attempt in (1, 2):
            try:
                proc = subprocess.run(["cargo", "lambda", "invoke", function, "--invoke-port", str(self.port), "--data-file", str(path)],
                                      cwd=ROOT, capture_output=True, text=True, timeout=INVOKE_TIMEOUT)
                break
            except subprocess.TimeoutExpired:
                say(f"  {function} invocation {name} (attempt {attempt}) did not return within {INVOKE_TIMEOUT} s")
                print_log_tails()
                if attempt == 2:
                    return None, f"timed out twice after {INVOKE_TIMEOUT} s"
                self.services.restart_runtime()
                say("  runtime restarted; the event is sent again, as Lambda retries an asynchronous invocation")
        if proc.returncode != 0:
            return None, (proc.stdout + proc.stderr).strip()[-600:]
        try:
            return json.loads(proc.stdout), ""
        except json.JSONDecodeError:
            return None, proc.stdout[-600:]

    def wait_events(self, n, kind="launch", timeout=60):
        """Waits for n lifecycle events of one kind (launch or terminate) from the emulator."""
        detail_type = f"EC2 Instance-{kind} Lifecycle Action"
        events, deadline = [], time.monotonic() + timeout
        while len(events) < n and time.monotonic() < deadline:
            self.pending += self.control("events")
            events += [e for e in self.pending if e.get("detail-type") == detail_type][: n - len(events)]
            self.pending = [e for e in self.pending if e not in events]
            time.sleep(0.3)
        return events

    def states(self):
        g = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])["AutoScalingGroups"][0]
        return {i["InstanceId"]: i["LifecycleState"] for i in g["Instances"]}

    def record(self):
        p = self.ssm.get_parameter(Name=f"/joinkeeper/{CLUSTER}/join-record", WithDecryption=True)["Parameter"]
        return json.loads(p["Value"]), p["Version"]

    def scheduled_event(self):
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = json.loads((ROOT / "events/scheduled-refresh.json").read_text())
        event["time"] = now
        return event

    def kube_nodes(self):
        """The cluster's Nodes but the control plane's."""
        path = STATE / "emulator" / "clusters" / CLUSTER / "state.json"
        nodes = json.loads(path.read_text()).get("nodes", {}) if path.exists() else {}
        return {n: v for n, v in nodes.items() if v.get("role") != "control-plane"}

    # --- scenario ------------------------------------------------------------------------------
    def shipped_cluster(self):
        """The cluster stack's single-kubeadm variant, synthesized once per run into .demo/synth
        (cluster `demo`), its node-scripts asset uploaded to the account's asset bucket as CDK
        publishes it; returns the variant and the values its references resolve to."""
        sys.path.insert(0, str(ROOT / "node-scripts/boot"))
        import userdata
        import world
        say("synthesizing the cluster stack (its user data boots the demo's instances)")
        variant = userdata.Variant(userdata.synth(str(STATE / "synth")), "single-kubeadm")
        emulator = type("Emulator", (), {"url": self.endpoint, "state": str(STATE / "emulator")})
        shipped = world.BootWorld.existing(emulator, variant, "123456789012", REGION, CLUSTER, str(STATE / "emulator" / "boot"))
        shipped.upload_asset()
        return variant, shipped.values

    def setup(self):
        for doc in sorted((ROOT / "node-scripts/documents").glob("*.json")):
            self.ssm.create_document(Name=doc.stem, Content=doc.read_text(), DocumentType="Command", DocumentFormat="JSON")
        variant, values = self.shipped_cluster()
        node = variant.node("control-plane")
        cp = self.ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t3.medium",
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
        user_data = variant.user_data(variant.node("worker"), values)
        self.ec2.create_launch_template(LaunchTemplateName=f"{GROUP}-lt", LaunchTemplateData={
            "ImageId": "ami-12c6146b", "InstanceType": "t3.medium", "UserData": base64.b64encode(user_data.encode()).decode()})
        tags = [{"Key": k, "Value": v, "PropagateAtLaunch": True, "ResourceId": GROUP, "ResourceType": "auto-scaling-group"}
                for k, v in (("joinkeeper:cluster", CLUSTER), ("joinkeeper:role", "worker"))]
        self.asg.create_auto_scaling_group(AutoScalingGroupName=GROUP, LaunchTemplate={"LaunchTemplateName": f"{GROUP}-lt", "Version": "$Latest"},
                                           MinSize=0, MaxSize=10, DesiredCapacity=0, AvailabilityZones=["us-east-1a"], Tags=tags)
        for name, transition in (("joinkeeper-launch", "autoscaling:EC2_INSTANCE_LAUNCHING"), ("joinkeeper-terminate", "autoscaling:EC2_INSTANCE_TERMINATING")):
            self.asg.put_lifecycle_hook(AutoScalingGroupName=GROUP, LifecycleHookName=name, LifecycleTransition=transition,
                                        HeartbeatTimeout=300, DefaultResult="ABANDON")
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

    def launch(self, events, expect):
        results = {}

        def one(ev):
            iid = ev["detail"]["EC2InstanceId"]
            results[iid] = self.invoke("launch-hook", ev, f"launch-{iid}")

        threads = [threading.Thread(target=one, args=(ev,)) for ev in events]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # One invocation reconciles the cluster and decides every action; the others find it held.
        decided = {}
        for res, _ in results.values():
            for action in (res or {}).get("actions", []):
                decided[action["instance"]] = action
        holders = sorted({res.get("request_id", "") for res, _ in results.values() if res and res.get("result") == "held-elsewhere"})
        if holders:
            say(f"  {len(holders)} invocation(s) found the cluster reconciled by another and returned at once")
        for iid, (res, err) in sorted(results.items()):
            action = decided.get(iid, {})
            outcome = action.get("outcome", "error" if res is None else "undecided")
            if action.get("join_log_last_line"):
                say(f"  worker {iid} join log: {action['join_log_last_line']}")
            state = self.states().get(iid, "terminated")
            record(f"launch lifecycle event {iid}", f"{outcome}: {action.get('reason', err)[:60]}", state,
                   outcome == expect and state == ("InService" if expect == "continue" else "terminated"))

    def run(self):
        old = self.setup()
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
            res, err = self.invoke("terminate-hook", term[0], f"terminate-{victim}")
            action = next((a for a in (res or {}).get("actions", []) if a["instance"] == victim), {})
            nodes = self.kube_nodes()
            gone = not any(v.get("providerID", "").endswith("/" + victim) for v in nodes.values())
            record(f"scale-in by 1: {victim}", f"{action.get('outcome', 'error')}: {action.get('reason', err)[:50]}",
                   f"Node deleted: {gone}, {len(nodes)} Nodes left", action.get("outcome") == "drained" and gone and len(nodes) == 2)
        else:
            record("scale-in", "no terminate event", "", ok=False)

        self.rogue_node()
        self.warm_pool()
        self.schedule_tick("2", False, token)
        self.rotate_revoke_all()
        self.status("after")

        _, version = self.record()
        bad = {"source": "aws.ec2", "detail-type": "Scheduled Event", "time": "not a time"}
        res, err = self.invoke("token-refresher", bad, "malformed")
        _, after = self.record()
        reason = next((line.strip() for line in err.splitlines() if "expected" in line), "rejected") if err else "accepted"
        record("malformed scheduled event", "rejected" if res is None else "ACCEPTED", f"record version {version} -> {after}; {reason[:70]}",
               res is None and after == version)

    def warm_pool(self):
        """The worker group gets a warm pool (Stopped, ReuseOnScaleIn): instances enter it without
        joining, one leaves it for service and its boot unit joins, and a scale-in sends a worker
        back to it, its Node drained and deleted."""
        def pool():
            res = self.asg.describe_warm_pool(AutoScalingGroupName=GROUP)
            return {i["InstanceId"]: i["LifecycleState"] for i in res.get("Instances", [])}

        def move(desired, kind, side, where, hook, what):
            """Sets the desired capacity, takes the lifecycle event whose Origin/Destination (side)
            is `where`, invokes `hook` with it: (instance, final action, error), or None."""
            self.asg.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=desired)
            events = [e for e in self.wait_events(1, kind=kind) if e["detail"].get(side) == where]
            if not events:
                record(what, f"no {kind} event with {side} {where}", "", ok=False)
                return None
            iid = events[0]["detail"]["EC2InstanceId"]
            res, err = self.invoke(hook, events[0], f"warm-pool-{kind}-{iid}")
            return iid, next((a for a in (res or {}).get("actions", []) if a["instance"] == iid), {}), err

        def join_log_last_line(iid):
            logs = [STATE / "emulator" / "nodes" / iid / p for p in ("var/log/joinkeeper/joinkeeper-join.log", "log/joinkeeper-join.log")]
            text = next((p.read_text(errors="replace") for p in logs if p.exists()), "")
            return (text.strip().splitlines() or [""])[-1].split(": ", 1)[-1]

        # At least 1 in the pool; prepared capacity 4 with 2 workers in service: 2 instances.
        self.asg.put_warm_pool(AutoScalingGroupName=GROUP, MinSize=1, MaxGroupPreparedCapacity=4, PoolState="Stopped",
                               InstanceReusePolicy={"ReuseOnScaleIn": True})
        entering = self.wait_events(2)
        into_pool = [e for e in entering if (e["detail"].get("Origin"), e["detail"].get("Destination")) == ("EC2", "WarmPool")]
        record("worker group gets a warm pool", "min 1, prepared 4, Stopped, reuse",
               f"{len(into_pool)} in Warmed:Pending:Wait: " + ", ".join(e["detail"]["EC2InstanceId"] for e in into_pool),
               len(into_pool) == 2 == len(entering))
        # The instances prepare (first boot: their user data) before the hook lets them stop.
        ids = [e["detail"]["EC2InstanceId"] for e in into_pool]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not all(
                any(r["instance_id"] == i and r["status"] == "done" for r in self.control("user-data")) for i in ids):
            time.sleep(0.5)
        results = {}
        threads = [threading.Thread(target=lambda e=e: results.__setitem__(e["detail"]["EC2InstanceId"], self.invoke(
            "launch-hook", e, f"warm-pool-enter-{e['detail']['EC2InstanceId']}"))) for e in into_pool]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        actions = {}
        for res, _ in results.values():  # one invocation decides both, the other finds the cluster held
            for a in (res or {}).get("actions", []):
                actions[a["instance"]] = a
        states = pool()
        nodes = self.kube_nodes()
        for iid in ids:
            action = actions.get(iid, {})
            has_node = any(v.get("providerID", "").endswith("/" + iid) for v in nodes.values())
            last = join_log_last_line(iid)
            record(f"enters the warm pool: {iid}", f"{action.get('outcome', 'error')} once prepared (EC2 → WarmPool)",
                   f"{states.get(iid)}; Node: {has_node}; {' '.join(last.split()[:2]) or 'no join log'}",
                   action.get("outcome") == "continue" and states.get(iid) == "Warmed:Stopped" and not has_node
                   and last.startswith("join deferred"))

        # Scale-out takes the oldest prepared instance: it starts again and its boot unit joins.
        moved = move(3, "launch", "Origin", "WarmPool", "launch-hook", "scale-out from the warm pool")
        if not moved:
            return
        iid, action, err = moved
        name, node = next(((n, v) for n, v in self.kube_nodes().items() if v.get("providerID", "").endswith("/" + iid)), (None, {}))
        booted = [r for r in self.control("boot-units") if r["instance_id"] == iid]
        state = self.states().get(iid)
        record(f"scale-out, leaves pool: {iid}", f"{action.get('outcome', 'error')}: {action.get('reason', err)[:50]}",
               f"{state}; its boot unit joined {name}", action.get("outcome") == "continue" and state == "InService"
               and node.get("ready") == "True" and len(booted) == 1 and join_log_last_line(iid).startswith("joined"))

        # Scale-in with reuse: back to the pool through the terminate hook, drained first.
        moved = move(2, "terminate", "Destination", "WarmPool", "terminate-hook", "scale-in with reuse")
        if not moved:
            return
        victim, action, err = moved
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and pool().get(victim) != "Warmed:Stopped":
            time.sleep(0.3)
        gone = not any(v.get("providerID", "").endswith("/" + victim) for v in self.kube_nodes().values())
        record(f"scale-in, back to pool: {victim}", f"{action.get('outcome', 'error')}: {action.get('reason', err)[:50]}",
               f"{pool().get(victim)}; Node deleted: {gone}",
               action.get("outcome") == "drained" and gone and pool().get(victim) == "Warmed:Stopped")

    # --- the operator's view ------------------------------------------------------------------
    def cli(self, *args):
        """Runs `joinkeeper ARGS --json` against the emulator; (exit code, parsed JSON or None)."""
        env = dict(os.environ, AWS_ENDPOINT_URL=self.endpoint, AWS_REGION=REGION, AWS_ACCESS_KEY_ID="testing",
                   AWS_SECRET_ACCESS_KEY="testing", RUST_LOG="warn", **FUNCTION_ENV)
        proc = subprocess.run([str(binary("joinkeeper")), *args, "--json"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        (STATE / "cli.log").open("a").write(f"$ joinkeeper {' '.join(args)} --json\n{proc.stdout}{proc.stderr}\n")
        try:
            return proc.returncode, json.loads(proc.stdout)
        except ValueError:
            return proc.returncode, None

    def status(self, label):
        code, out = self.cli("status", "--cluster", CLUSTER)
        text = json.dumps(out or {})
        token = self.record()[0]["token_id"]
        record(f"joinkeeper status ({label})", f"exit {code}", f"token {token} shown: {token in text}; secret shown: "
               f"{self.record()[0]['token_secret'] in text}", code == 0 and token in text and self.record()[0]["token_secret"] not in text)

    def rotate_revoke_all(self):
        before, _ = self.record()
        tokens_before = set(self.kube_tokens())
        code, out = self.cli("rotate", "--cluster", CLUSTER, "--revoke-all")
        after, _ = self.record()
        left = set(self.kube_tokens())
        record("joinkeeper rotate --revoke-all (suspected leak)", f"exit {code}: {before['token_id']} -> {after['token_id']}",
               f"tokens on the control plane: {len(tokens_before)} -> {len(left)}",
               code == 0 and after["token_id"] != before["token_id"] and after["token_id"] in left and before["token_id"] not in left)

    def kube_tokens(self):
        path = STATE / "emulator" / "clusters" / CLUSTER / "state.json"
        return json.loads(path.read_text()).get("tokens", {}) if path.exists() else {}

    def rogue_node(self):
        """A Node registered with a valid token by something that is no instance of the cluster."""
        env = dict(os.environ, JOINKEEPER_KUBE_STATE=str(STATE / "emulator" / "clusters" / CLUSTER))
        subprocess.run([str(ROOT / "node-scripts/standins/kubectl"), "x-standin", "add-node", "ip-10-66-6-6.ec2.internal",
                        "--provider-id", "aws:///us-east-1a/i-0badc0ffee0badc0f", "--age-seconds", "3600"],
                       env=env, check=True, capture_output=True)
        record("a Node appears with no instance behind it", "registered 1 h ago", "ip-10-66-6-6.ec2.internal")

    def check_rogue(self, result):
        rogues = (result or {}).get("rogue_nodes", [])
        node = self.kube_nodes().get("ip-10-66-6-6.ec2.internal", {})
        record("rogue Node found by the schedule", f"{len(rogues)} reported: {(rogues[0]['reason'] if rogues else '')[:40]}",
               f"cordoned: {bool(node.get('unschedulable'))}", len(rogues) == 1 and bool(node.get("unschedulable")))

    def check_logs(self):
        state = STATE / "emulator" / "clusters" / CLUSTER / "state.json"
        secrets = {t.get("secret") for t in json.loads(state.read_text()).get("tokens", {}).values()} if state.exists() else set()
        secrets |= {"0ld0ld0ld0ld0ld0"}
        rec, _ = self.record()
        secrets.add(rec["token_secret"])
        logs = (STATE / "functions.log").read_text(errors="replace")
        leaked = [s for s in secrets if s and s in logs]
        record("function logs checked for token secrets", f"{len(secrets)} secrets searched", "none found" if not leaked else "LEAKED", not leaked)


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
