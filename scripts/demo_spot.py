"""The demo's Spot step (scripts/demo.py): a worker's Spot interruption, which no lifecycle hook
announces in time. The emulator emits EC2's warning and reclaims the instance after the notice;
the account stack's rule sends the warning, then the instance's state changes, straight to the
terminate function (here: `cargo lambda invoke`, as the rule's asynchronous invocation)."""
import json
import threading
import time
import urllib.request

from demo_services import STATE, record

# The emulator's notice: shorter than EC2's 120 s, a warning delivered late (its time is still
# 120 s before the reclaim, so the drain's budget is what is left of the two minutes).
NOTICE_SECONDS = 30


class SpotStep:
    """Demo.spot_interruption, on DemoClient's helpers."""

    def exit_events(self):
        return self.control("exit-events")

    def spot_interruption(self):
        """One worker in service is interrupted: cordoned at once, drained before the reclaim with
        its Node kept, the Node deleted once the instance has terminated."""
        victim = sorted(i for i, s in self.states().items() if s == "InService")[0]
        self.exit_events()  # earlier state changes (scale-in, warm pool) were delivered by their steps
        req = urllib.request.Request(f"{self.endpoint}/_joinkeeper/spot-interruptions", method="POST",
                                     data=json.dumps({"instance_ids": [victim], "notice_seconds": NOTICE_SECONDS}).encode())
        with urllib.request.urlopen(req, timeout=10) as r:
            reclaim = json.loads(r.read())["reclaimed_at"]
        started = time.monotonic()
        warnings = [e for e in self.exit_events() if e["detail-type"] == "EC2 Spot Instance Interruption Warning"]
        if not warnings:
            record(f"Spot interruption of {victim}", "no warning emitted", "", ok=False)
            return
        answer = {}
        worker = threading.Thread(target=lambda: answer.update(zip(("result", "error"),
                                                                   self.invoke("terminate-hook", warnings[0], "spot-warning"))))
        worker.start()

        def node():
            return next(((n, v) for n, v in self.kube_nodes().items() if v.get("providerID", "").endswith("/" + victim)), (None, None))

        def workload_pods(name):
            path = STATE / "emulator" / "clusters" / "demo" / "state.json"
            pods = json.loads(path.read_text()).get("pods", []) if path.exists() else []
            return [p for p in pods if p.get("node") == name and not p.get("daemonset")]

        cordoned = drained = deleted = None
        name = node()[0]
        while time.monotonic() - started < NOTICE_SECONDS + 60:
            now = time.monotonic() - started
            n, v = node()
            if n is None:
                deleted = now
                break
            if cordoned is None and v.get("unschedulable"):
                cordoned = now
            if drained is None and not workload_pods(n):
                drained = now
            time.sleep(0.2)
        worker.join(timeout=120)
        result = answer.get("result") or {}
        record(f"Spot warning for {victim}", f"door {result.get('door')}: cordoned at once",
               f"cordoned after {cordoned or -1:.1f} s", result.get("door") == "spot" and cordoned is not None and cordoned < 5)
        record(f"Spot drain of {name}", "budget: what is left of the notice",
               f"drained after {drained or -1:.1f} s, reclaim at {NOTICE_SECONDS} s ({reclaim})",
               drained is not None and drained < NOTICE_SECONDS)
        # The rule delivers the reclaim's state changes too: nothing comes back.
        changes = [e for e in self.exit_events() if e["detail-type"] == "EC2 Instance State-change Notification"]
        for i, e in enumerate(changes):
            self.invoke("terminate-hook", e, f"spot-state-{i}")
        state = self.states().get(victim, "gone from the group")
        record(f"Spot reclaim of {victim}", f"{len(changes)} state change(s) delivered",
               f"{state}; Node deleted after {deleted or -1:.1f} s",
               deleted is not None and deleted >= NOTICE_SECONDS - 1 and node()[0] is None and state != "InService")
