"""The demo's blocked-drain step (scripts/demo.py): a worker whose pod a PodDisruptionBudget keeps
is scaled in; the drain times out, the action completes naming the pod, and the Node is deleted
once the instance is gone (no Node outlives its instance)."""
import os
import subprocess
import time

from demo_services import CLUSTER, GROUP, ROOT, STATE, record


class BlockedDrainStep:
    """Demo.blocked_drain, on DemoClient's helpers."""

    def blocked_drain(self):
        victim = sorted(i for i, s in self.states().items() if s == "InService")[0]
        node = next((n for n, v in self.kube_nodes().items() if v.get("providerID", "").endswith("/" + victim)), None)
        if node is None:
            record(f"PodDisruptionBudget on {victim}", "no Node", "", ok=False)
            return
        # An application whose PodDisruptionBudget allows no disruption runs one pod there.
        subprocess.run([str(ROOT / "node-scripts/standins/kubectl"), "x-standin", "add-pod", node, "shop/cart-0",
                        "--pdb-blocked"], check=True, capture_output=True,
                       env=dict(os.environ, JOINKEEPER_KUBE_STATE=str(STATE / "emulator" / "clusters" / CLUSTER)))
        self.asg.terminate_instance_in_auto_scaling_group(InstanceId=victim, ShouldDecrementDesiredCapacity=True)
        term = self.wait_events(1, kind="terminate")
        if not term:
            record(f"scale-in of {victim} (a budget keeps shop/cart-0)", "no terminate event", "", ok=False)
            return
        decided, err = self.through_queue(term)
        action = decided.get(victim, {})
        named = "shop/cart-0 (pdb)" in str(action.get("left_pods", ""))
        record(f"scale-in of {victim} (a budget keeps shop/cart-0)",
               f"{action.get('outcome', 'error')}: {action.get('reason', err)[:40]}",
               f"blocked by {action.get('left_pods', '[]')}", action.get("outcome") == "completed" and named)
        deadline = time.monotonic() + 60
        while node in self.kube_nodes() and time.monotonic() < deadline:
            time.sleep(0.5)
        state = self.ec2.describe_instances(InstanceIds=[victim])["Reservations"][0]["Instances"][0]["State"]["Name"]
        gone = node not in self.kube_nodes()
        record("its Node once the instance is gone", f"instance {state}", f"Node deleted: {gone}",
               state == "terminated" and gone)
        # The group back to 2 workers for the steps after this one.
        self.asg.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=2)
        self.launch(self.wait_events(1), "continue")
