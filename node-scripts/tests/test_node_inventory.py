"""Nodes that no instance stands behind: joinkeeper-nodes (the inventory the token refresher
reads), joinkeeper-cordon, and the providerID rules of joinkeeper-node-status."""
import json
import os
import re
import sys

from conftest import STANDINS

sys.path.insert(0, STANDINS)
import joinkeeper_standin as st  # noqa: E402

NODE_LINE = re.compile(r"([a-z0-9][-a-z0-9.]*) (\S+) (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ|-) (Ready|NotReady|Unknown) (yes|no)"
                       r" (\S+) (\S+)")


def add_node(jk, name, provider="", ready="True", age=0):
    args = ["kubectl", "x-standin", "add-node", name, "--ready", ready, "--age-seconds", str(age)]
    if provider:
        args += ["--provider-id", provider]
    jk.tool(*args)


def aws_calls(jk, service):
    if not os.path.exists(jk.argv_log):
        return []
    with open(jk.argv_log) as fh:
        return [line for line in fh if line.startswith("aws ") and (" %s " % service) in line]


def test_nodes_prints_one_line_per_node_with_provider_age_status_and_cordon(jk):
    add_node(jk, "ip-10-9-0-1.ec2.internal", "aws:///us-east-1a/i-0aaaaaaaaaaaaaaa1", age=3600)
    add_node(jk, "ip-10-9-0-2.ec2.internal", "", ready="False", age=60)
    add_node(jk, "rogue", "aws:///us-east-1a/i-0fffffffffffffff9", ready="Unknown")
    jk.tool("kubectl", "cordon", "rogue")
    proc = jk.run("joinkeeper-nodes")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3
    parsed = [NODE_LINE.fullmatch(line) for line in lines]
    assert all(parsed), lines
    assert [(m.group(1), m.group(2), m.group(4), m.group(5)) for m in parsed] == [
        ("ip-10-9-0-1.ec2.internal", "aws:///us-east-1a/i-0aaaaaaaaaaaaaaa1", "Ready", "no"),
        ("ip-10-9-0-2.ec2.internal", "-", "NotReady", "no"),
        ("rogue", "aws:///us-east-1a/i-0fffffffffffffff9", "Unknown", "yes"),
    ]
    state = jk.state()["nodes"]
    for m in parsed:
        assert m.group(3) == st.fmt_ts(state[m.group(1)]["created"])
    assert st.fmt_ts(state["ip-10-9-0-1.ec2.internal"]["created"]) < st.fmt_ts(state["rogue"]["created"])


def test_nodes_output_is_bounded_and_pages_through_300_nodes(jk, monkeypatch):
    monkeypatch.setenv("JOINKEEPER_KUBE_STATE", jk.kube)
    with st.locked_state() as state:
        for i in range(300):
            name = "ip-10-%d-%d-%d.eu-west-1.compute.internal" % (i // 250, (i // 10) % 25, i % 250)
            st.add_node(state, name, "aws:///eu-west-1a/i-%017x" % (0x0100000000000000 + i))
    seen, start, pages, sizes = [], "-", 0, []
    while True:
        proc = jk.run("joinkeeper-nodes", "--start-after", start)
        assert proc.returncode == 0, proc.stderr
        sizes.append(len(proc.stdout))
        assert len(proc.stdout) <= 24000
        lines = proc.stdout.splitlines()
        pages += 1
        more = lines[-1].split() if lines and lines[-1].startswith("more ") else None
        if more:
            lines = lines[:-1]
        assert all(NODE_LINE.fullmatch(line) for line in lines)
        seen += [line.split()[0] for line in lines]
        if not more:
            break
        assert more[1] == seen[-1]
        start = more[1]
        assert pages < 5
    assert seen == sorted(state["nodes"]) and len(seen) == 300
    print("joinkeeper-nodes, 300 Nodes with eu-west-1 names: %d page(s) of %s characters" % (pages, sizes))


def test_nodes_rejects_bad_arguments(jk):
    for args in (["--start-after", "$(id)"], ["--start-after", "A"], ["--bogus"], ["--start-after"]):
        proc = jk.run("joinkeeper-nodes", *args)
        assert proc.returncode == 2, args
        assert proc.stdout == ""


def test_cordon_cordons_deletes_and_reports_absent(jk):
    add_node(jk, "rogue-1", "aws:///us-east-1a/i-0fffffffffffffff1")
    add_node(jk, "rogue-2", "")
    proc = jk.run("joinkeeper-cordon", "--node", "rogue-1", "--delete", "false")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "cordon node=rogue-1 result=cordoned"
    assert jk.state()["nodes"]["rogue-1"]["unschedulable"] is True
    proc = jk.run("joinkeeper-cordon", "--node", "rogue-1")
    assert proc.stdout.splitlines()[-1] == "cordon node=rogue-1 result=already-cordoned"
    proc = jk.run("joinkeeper-cordon", "--node", "rogue-2", "--delete", "true")
    assert proc.stdout.splitlines()[-1] == "cordon node=rogue-2 result=deleted"
    assert "rogue-2" not in jk.state()["nodes"]
    proc = jk.run("joinkeeper-cordon", "--node", "rogue-2", "--delete")
    assert proc.returncode == 0
    assert proc.stdout.splitlines()[-1] == "cordon node=rogue-2 result=absent"
    for args in (["--node", "Rogue"], ["--node", "a;id"], [], ["--node", "x", "--bogus"]):
        assert jk.run("joinkeeper-cordon", *args).returncode == 2, args


def test_cordon_finds_the_node_of_an_instance_and_uncordons(jk):
    add_node(jk, "ip-10-3-0-1.ec2.internal", "aws:///us-east-1a/i-0ddddddddddddddd1")
    add_node(jk, "ip-10-3-0-2.ec2.internal", "")
    by_id = jk.run("joinkeeper-cordon", "--node", "-", "--instance-id", "i-0ddddddddddddddd1")
    assert by_id.stdout.splitlines()[-1] == "cordon node=ip-10-3-0-1.ec2.internal result=cordoned"
    # A Node without a providerID, by the private DNS name the caller gives: no EC2 call.
    by_dns = jk.run("joinkeeper-cordon", "--node", "-", "--instance-id", "i-0ddddddddddddddd2",
                    "--private-dns-name", "ip-10-3-0-2.ec2.internal")
    assert by_dns.stdout.splitlines()[-1] == "cordon node=ip-10-3-0-2.ec2.internal result=cordoned"
    assert aws_calls(jk, "ec2") == []
    back = jk.run("joinkeeper-cordon", "--node", "-", "--instance-id", "i-0ddddddddddddddd1",
                  "--uncordon", "true")
    assert back.stdout.splitlines()[-1] == "cordon node=ip-10-3-0-1.ec2.internal result=uncordoned"
    assert jk.state()["nodes"]["ip-10-3-0-1.ec2.internal"]["unschedulable"] is False
    assert jk.state()["nodes"]["ip-10-3-0-2.ec2.internal"]["unschedulable"] is True
    gone = jk.run("joinkeeper-cordon", "--node", "-", "--instance-id", "i-0ddddddddddddddd9",
                  "--private-dns-name", "ip-10-3-0-9.ec2.internal")
    assert gone.stdout.splitlines()[-1] == "cordon node=- result=absent"
    for args in (["--node", "-"], ["--node", "-", "--instance-id", "i-1"],
                 ["--node", "x", "--uncordon", "yes"], ["--node", "x", "--private-dns-name", "A;B"]):
        assert jk.run("joinkeeper-cordon", *args).returncode == 2, args


def test_node_status_never_lends_another_instances_node(jk):
    # i-...1's private DNS name was reused: the Node of that name belongs (by providerID) to a
    # terminated instance i-...9. It must not answer for i-...1, even with the DNS name given.
    add_node(jk, "ip-10-7-0-1.ec2.internal", "aws:///us-east-1a/i-0eeeeeeeeeeeeeee9", ready="True")
    add_node(jk, "ip-10-7-0-2.ec2.internal", "", ready="True")
    pairs = "i-0eeeeeeeeeeeeeee1=ip-10-7-0-1.ec2.internal i-0eeeeeeeeeeeeeee2=ip-10-7-0-2.ec2.internal"
    proc = jk.run("joinkeeper-node-status", "--private-dns-names", pairs,
                  "i-0eeeeeeeeeeeeeee1 i-0eeeeeeeeeeeeeee2 i-0eeeeeeeeeeeeeee9")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "i-0eeeeeeeeeeeeeee1 - Absent",
        "i-0eeeeeeeeeeeeeee2 ip-10-7-0-2.ec2.internal Ready",
        "i-0eeeeeeeeeeeeeee9 ip-10-7-0-1.ec2.internal Ready",
    ]
    assert aws_calls(jk, "ec2") == [], "the DNS names were given: no EC2 call"


def test_node_status_makes_no_ec2_call_when_every_node_has_a_provider_id(jk):
    add_node(jk, "ip-10-6-0-1.ec2.internal", "aws:///us-east-1a/i-0ddddddddddddd001")
    ids = " ".join("i-0ddddddddddddd%03d" % i for i in range(1, 41))
    proc = jk.run("joinkeeper-node-status", "--private-dns-names", "-", ids)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 40 and lines[0] == "i-0ddddddddddddd001 ip-10-6-0-1.ec2.internal Ready"
    assert all(line.endswith(" - Absent") for line in lines[1:])
    assert aws_calls(jk, "ec2") == [], "no Node lacks a providerID: the DNS fallback cannot match"
    # One Node without a providerID: one EC2 call for all the unmatched ids, not one per id.
    add_node(jk, "ip-10-6-0-9.ec2.internal", "")
    proc = jk.run("joinkeeper-node-status", ids)
    assert proc.returncode == 0, proc.stderr
    assert len(aws_calls(jk, "ec2")) == 1


def test_node_status_rejects_bad_dns_pairs(jk):
    for pairs in ("i-0123=ip-1", "i-0123456789abcdef0=$(id)", "i-0123456789abcdef0=IP-1", ""):
        proc = jk.run("joinkeeper-node-status", "--private-dns-names", pairs, "i-0123456789abcdef0")
        assert proc.returncode == 2, pairs
        assert proc.stdout == ""


def test_cordon_cordons_many_nodes_in_one_kubectl_call(jk):
    # A scale-in of several workers: every Node is cordoned before any is drained, by one kubectl
    # call, and a Node already gone is reported, not failed.
    for name in ("w-1", "w-2", "w-3"):
        add_node(jk, name, "")
    jk.tool("kubectl", "cordon", "w-3")
    proc = jk.run("joinkeeper-cordon", "--node", "w-1,w-2,w-3,w-9", "--delete", "false")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "cordon node=w-1 result=cordoned",
        "cordon node=w-2 result=cordoned",
        "cordon node=w-3 result=already-cordoned",
        "cordon node=w-9 result=absent",
    ]
    assert all(jk.state()["nodes"][n]["unschedulable"] for n in ("w-1", "w-2", "w-3"))
    with open(os.path.join(jk.kube, "calls.jsonl")) as fh:
        calls = [json.loads(line) for line in fh]
    cordons = [c["argv"] for c in calls if c["tool"] == "kubectl" and c["argv"][:1] == ["cordon"]]
    assert cordons[-1] == ["cordon", "w-1", "w-2", "w-3", "w-9"], cordons
    assert len(cordons) == 2, "one kubectl call for the four Nodes"
    for bad in ("w-1,", ",w-1", "w-1,,w-2", "w-1;id,w-2", ",".join(["w"] * 51)):
        assert jk.run("joinkeeper-cordon", "--node", bad).returncode == 2, bad
