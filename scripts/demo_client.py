"""The demo's client side (scripts/demo.py): the AWS clients and the emulator's control API, the
functions invoked through `cargo lambda invoke`, and the operator's view (the joinkeeper CLI, the
stand-in cluster, the log check)."""
import json
import os
import subprocess
import time
import urllib.request
from datetime import datetime, timezone

from demo_services import (CLUSTER, FUNCTION_ENV, GROUP, INVOKE_TIMEOUT, REGION, ROOT, STATE, binary, print_log_tails,
                           record, say)


class DemoClient:
    """What the scenario (demo.py's Demo) calls: no step of it is decided here."""

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
        mode = next((c.get("join_mode") for c in (out or {}).get("clusters", [])), None)
        record(f"joinkeeper status ({label})", f"exit {code}, join mode {mode}", f"token {token} shown: {token in text}; secret shown: "
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
        # A cluster starts report-only; the operator turns action on.
        self.ssm.put_parameter(Name=f"/joinkeeper/{CLUSTER}/rogue-nodes", Value="cordon", Type="String",
                               Overwrite=True)

    def check_rogue(self, result):
        rogues = [n for c in (result or {}).get("rogue_checks", []) for n in c.get("nodes", [])]
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
