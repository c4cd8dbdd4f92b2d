"""joinkeeper-node-status and joinkeeper-drain on the control plane."""
import json
import os
import re
import subprocess
import sys

from conftest import VENV_BIN
from contract import JSON_HELPER

LEFT = re.compile(r"left [a-z0-9]([-a-z0-9.]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])? "
                  r"(pdb|unmanaged|local-storage|daemonset|terminating|eviction)")
LB_EXCLUDE = "node.kubernetes.io/exclude-from-external-load-balancers"


def add_node(jk, name, instance_id=None, ready="True", drain_seconds=0, stuck_pods=0):
    args = ["kubectl", "x-standin", "add-node", name, "--ready", ready,
            "--drain-seconds", str(drain_seconds), "--stuck-pods", str(stuck_pods)]
    if instance_id:
        args += ["--provider-id", "aws:///us-east-1b/" + instance_id]
    jk.tool(*args)


def test_node_status_reports_each_id_in_order(jk):
    # A worker joined for real, one that joined but never became Ready, one whose kubelet went
    # silent, and one Node registered without a providerID, found by its private DNS name.
    jk.publish()
    ready_env = jk.node_env("i-0bbbbbbbbbbbbbbb1", dns="ip-10-1-0-1.ec2.internal")
    assert jk.run("joinkeeper-join", "--cluster", jk.cluster, "--prefix", jk.prefix, env=ready_env).returncode == 0
    add_node(jk, "ip-10-1-0-2.ec2.internal", "i-0bbbbbbbbbbbbbbb2", ready="False")
    add_node(jk, "ip-10-1-0-3.ec2.internal", "i-0bbbbbbb", ready="Unknown")
    ec2 = json.loads(jk.tool(os.path.join(VENV_BIN, "aws"), "ec2", "run-instances", "--image-id", "ami-12c6146b",
                             "--count", "1", "--output", "json").stdout)["Instances"][0]
    add_node(jk, ec2["PrivateDnsName"])

    ids = ["i-0bbbbbbbbbbbbbbb2", "i-0bbbbbbbbbbbbbbb9", "i-0bbbbbbbbbbbbbbb1", ec2["InstanceId"], "i-0bbbbbbb"]
    proc = jk.run("joinkeeper-node-status", " ".join(ids[:3]), ids[3], ids[4])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "i-0bbbbbbbbbbbbbbb2 ip-10-1-0-2.ec2.internal NotReady",
        "i-0bbbbbbbbbbbbbbb9 - Absent",
        "i-0bbbbbbbbbbbbbbb1 ip-10-1-0-1.ec2.internal Ready",
        "%s %s Ready" % (ec2["InstanceId"], ec2["PrivateDnsName"]),
        "i-0bbbbbbb ip-10-1-0-3.ec2.internal Unknown",
    ]

    never = jk.node_env("i-0bbbbbbbbbbbbbbb4", dns="ip-10-1-0-4.ec2.internal", join="never-ready")
    assert jk.run("joinkeeper-join", "--cluster", jk.cluster, "--prefix", jk.prefix, env=never).returncode == 0
    proc = jk.run("joinkeeper-node-status", "i-0bbbbbbbbbbbbbbb4")
    assert proc.stdout == "i-0bbbbbbbbbbbbbbb4 ip-10-1-0-4.ec2.internal NotReady\n"


def test_node_status_rejects_anything_but_instance_ids(jk):
    for args in (["i-0123456789abcdef0; rm -rf /"], ["$(id)"], ["`id`"], ["i-0123456789abcdef0\nid"],
                 ["i-0123456789ABCDEF0"], [], [" ".join(["i-0123456789abcdef0"] * 601)]):
        proc = jk.run("joinkeeper-node-status", *args)
        assert proc.returncode == 2, args
        assert proc.stdout == ""


def test_drain_drains_deletes_and_is_idempotent(jk):
    add_node(jk, "ip-10-2-0-1.ec2.internal", "i-0ccccccccccccccc1", drain_seconds=1)
    proc = jk.run("joinkeeper-drain", "--instance-id", "i-0ccccccccccccccc1", "--timeout-seconds", "30")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "drain i-0ccccccccccccccc1 node=ip-10-2-0-1.ec2.internal result=drained\n"
    assert "ip-10-2-0-1.ec2.internal" not in jk.state()["nodes"]
    assert "evicting pod default/web-" in proc.stderr  # kubectl's own lines go to stderr

    again = jk.run("joinkeeper-drain", "--instance-id", "i-0ccccccccccccccc1", "--timeout-seconds", "30")
    assert again.returncode == 0
    assert again.stdout == "drain i-0ccccccccccccccc1 node=- result=absent\n"


def test_drain_may_keep_the_node_cordoned(jk):
    add_node(jk, "ip-10-2-0-5.ec2.internal", "i-0ccccccccccccccc5", drain_seconds=0)
    proc = jk.run("joinkeeper-drain", "--instance-id", "i-0ccccccccccccccc5", "--timeout-seconds", "30",
                  "--keep-node", "true")
    assert proc.stdout == "drain i-0ccccccccccccccc5 node=ip-10-2-0-5.ec2.internal result=drained\n"
    node = jk.state()["nodes"]["ip-10-2-0-5.ec2.internal"]
    assert node["unschedulable"] is True
    assert not [p for p in jk.state()["pods"] if p["node"] == "ip-10-2-0-5.ec2.internal" and not p["daemonset"]]
    bad = jk.run("joinkeeper-drain", "--instance-id", "i-0ccccccccccccccc5", "--timeout-seconds", "30",
                 "--keep-node", "maybe")
    assert bad.returncode == 2


def test_drain_times_out_on_pods_a_disruption_budget_protects(jk):
    add_node(jk, "ip-10-2-0-2.ec2.internal", "i-0ccccccccccccccc2", drain_seconds=0, stuck_pods=2)
    proc = jk.run("joinkeeper-drain", "--instance-id", "i-0ccccccccccccccc2", "--timeout-seconds", "2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == "drain i-0ccccccccccccccc2 node=ip-10-2-0-2.ec2.internal result=timeout"
    left = lines[:-1]
    assert len(left) == 2 and all(LEFT.fullmatch(line) for line in left)
    guarded = sorted("left %s/%s pdb" % (p["namespace"], p["name"]) for p in jk.state()["pods"] if p["pdb_blocked"])
    assert sorted(left) == guarded, "each pod a PodDisruptionBudget kept is named, with why"
    node = jk.state()["nodes"]["ip-10-2-0-2.ec2.internal"]
    assert node["unschedulable"] is True, "a Node that did not drain stays, cordoned"
    assert node["labels"][LB_EXCLUDE] == "true", "out of external load balancers"
    assert node["labelled_at"][LB_EXCLUDE] <= node["cordoned_at"], "labelled before the drain"

    # A drain slower than the timeout also times out, naming the pods still terminating.
    add_node(jk, "ip-10-2-0-3.ec2.internal", "i-0ccccccccccccccc3", drain_seconds=30)
    slow = jk.run("joinkeeper-drain", "--instance-id", "i-0ccccccccccccccc3", "--timeout-seconds", "1")
    lines = slow.stdout.splitlines()
    assert lines[-1] == "drain i-0ccccccccccccccc3 node=ip-10-2-0-3.ec2.internal result=timeout"
    assert len(lines) == 3 and all(LEFT.fullmatch(line) and "/web-" in line and line.endswith(" terminating")
                                   for line in lines[:-1])


def test_drain_left_names_each_pod_once_with_why_from_real_kubectl_messages(jk):
    # kubectl drain's own messages (k8s.io/kubectl/pkg/drain): a PodDisruptionBudget's refusal on
    # the retry lines, the timeout in the aggregate, pods it will not delete, a pod still going.
    text = (
        'evicting pod shop/cart-7d9\n'
        'error when evicting pods/"cart-7d9" -n "shop" (will retry after 5s): Cannot evict pod as it would '
        "violate the pod's disruption budget.\n"
        'error: unable to drain node "n1" due to error: cannot delete Pods declare no controller '
        '(use --force to override): default/bare, cannot delete Pods with local storage (use '
        '--delete-emptydir-data to override): default/scratch, continuing command...\n'
        'There are pending pods in node "n1" when an error occurred: [error when evicting pods/"cart-7d9" '
        '-n "shop": global timeout reached: 30s, error when waiting for pod "web-1" in namespace '
        '"default" to terminate: global timeout reached: 30s]\n'
        'error when evicting pods/"x;id" -n "default": nope\n'
    )
    proc = subprocess.run([sys.executable, JSON_HELPER, "drain-left"], input=text, capture_output=True,
                          text=True, check=True)
    assert proc.stdout.splitlines() == [
        "kind timeout",
        "left shop/cart-7d9 pdb",
        "left default/bare unmanaged",
        "left default/scratch local-storage",
        "left default/web-1 terminating",
    ], proc.stdout


def test_drain_of_an_unknown_instance_and_bad_input(jk):
    proc = jk.run("joinkeeper-drain", "--instance-id", "i-0ccccccccccccccc9", "--timeout-seconds", "5")
    assert proc.returncode == 0
    assert proc.stdout == "drain i-0ccccccccccccccc9 node=- result=absent\n"
    for args in (["--instance-id", "i-0ccc'; rm -rf /", "--timeout-seconds", "5"],
                 ["--instance-id", "i-0ccccccccccccccc9", "--timeout-seconds", "0"],
                 ["--instance-id", "i-0ccccccccccccccc9", "--timeout-seconds", "$(id)"],
                 ["--instance-id", "i-0ccccccccccccccc9"]):
        bad = jk.run("joinkeeper-drain", *args)
        assert bad.returncode == 2 and bad.stdout == "", args
