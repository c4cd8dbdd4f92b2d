"""The demo's warm-pool step (scripts/demo.py): a warm pool for the worker group, an instance
that leaves it for service, and a worker that goes back to it; the lifecycle events go through
the lifecycle queue (Demo.through_queue)."""
import time

from demo_services import GROUP, STATE, record


class WarmPoolStep:
    """Demo.warm_pool, on DemoClient's helpers."""

    def warm_pool(self):
        """The worker group gets a warm pool (Stopped, ReuseOnScaleIn): instances enter it without
        joining, one leaves it for service and its boot unit joins, and a scale-in sends a worker
        back to it, its Node drained and deleted."""
        def pool():
            res = self.asg.describe_warm_pool(AutoScalingGroupName=GROUP)
            return {i["InstanceId"]: i["LifecycleState"] for i in res.get("Instances", [])}

        def move(desired, kind, side, where, what):
            """Sets the desired capacity, takes the lifecycle event whose Origin/Destination (side)
            is `where`, delivers it through the queue: (instance, final action, error), or None."""
            self.asg.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=desired)
            events = [e for e in self.wait_events(1, kind=kind) if e["detail"].get(side) == where]
            if not events:
                record(what, f"no {kind} event with {side} {where}", "", ok=False)
                return None
            iid = events[0]["detail"]["EC2InstanceId"]
            decided, err = self.through_queue(events[:1])
            return iid, decided.get(iid, {}), err

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
        actions, _ = self.through_queue(into_pool)  # one batch: the cluster reconciled once
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
        moved = move(3, "launch", "Origin", "WarmPool", "scale-out from the warm pool")
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
        moved = move(2, "terminate", "Destination", "WarmPool", "scale-in with reuse")
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
