"""joinkeeper-node-status --output facts: the Nodes that could claim each instance, reported as
facts for the functions to judge (short hostnames, InternalIPs, duplicate providerIDs), and
joinkeeper-drain of the Node the functions named."""
from test_node_inventory import NODE_LINE, add_node as add_plain


def add_node(jk, name, provider="", ip="", labels=""):
    args = ["kubectl", "x-standin", "add-node", name, "--ready", "True"]
    if provider:
        args += ["--provider-id", provider]
    if ip:
        args += ["--internal-ip", ip]
    if labels:
        args += ["--label", labels]
    jk.tool(*args)


def facts(jk, ids, dns="-", ips="-", env=None):
    proc = jk.run("joinkeeper-node-status", "--output", "facts", "--private-dns-names", dns,
                  "--private-ips", ips, ids, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_facts_report_every_node_that_could_claim_each_instance(jk):
    a, b, c = "i-0aaaaaaaaaaaaaaa1", "i-0aaaaaaaaaaaaaaa2", "i-0aaaaaaaaaaaaaaa3"
    # An existing cluster's worker: short hostname, no providerID, found by name and address.
    add_node(jk, "ip-10-0-0-1", ip="10.0.0.1")
    # b's real Node and a Node forging b's providerID, named to sort first.
    add_node(jk, "ip-10-0-0-2.ec2.internal", "aws:///us-east-1a/" + b, "10.0.0.2")
    add_node(jk, "aaa", "aws:///us-east-1a/" + b, "10.6.6.6",
             labels="node-restriction.kubernetes.io/joinkeeper-rogue-check=ignore,team=x")
    add_node(jk, "unrelated", "", "10.9.9.9")
    lines = facts(jk, " ".join([a, b, c]),
                  dns="%s=ip-10-0-0-1.ec2.internal %s=ip-10-0-0-2.ec2.internal" % (a, b),
                  ips="%s=10.0.0.1 %s=10.0.0.2" % (a, b))
    nodes = [line for line in lines if line.startswith("node ")]
    assert all(NODE_LINE.fullmatch(line[5:]) for line in nodes), nodes
    assert [line.split()[1] for line in lines if line.startswith("node ")] == [
        "ip-10-0-0-1", "aaa", "ip-10-0-0-2.ec2.internal"]
    assert [line for line in lines if line.startswith("id ")] == ["id " + a, "id " + b, "id " + c]
    assert lines.index("id " + a) < lines.index("id " + b)
    assert nodes[0].split()[6:] == ["10.0.0.1", "-"]
    # Only the labels a kubelet cannot set on itself are reported.
    assert nodes[1].split()[7] == "node-restriction.kubernetes.io/joinkeeper-rogue-check=ignore"


def test_facts_stay_in_their_budget_in_whole_blocks_and_flag_crowds(jk, monkeypatch):
    target = "i-0bbbbbbbbbbbbbbb1"
    for i in range(6):
        add_node(jk, "claimant-%d" % i, "aws:///us-east-1a/" + target)
    lines = facts(jk, target)
    assert lines[-1] == "id %s many" % target
    assert len(lines) == 5, "at most 4 Nodes per instance"
    ids = " ".join("i-0ccccccccccccc%03d" % i for i in range(100))
    for i in range(100):
        add_plain(jk, "ip-10-3-0-%d.eu-west-1.compute.internal" % i, "aws:///eu-west-1a/i-0ccccccccccccc%03d" % i)
    env = dict(jk.env, JOINKEEPER_NODE_STATUS_MAX_CHARS="2000")
    lines = facts(jk, ids, env=env)
    assert sum(len(line) + 1 for line in lines) <= 2000
    answered = [line.split()[1] for line in lines if line.startswith("id ")]
    assert 5 < len(answered) < 100 and lines[-1].startswith("id "), "whole blocks only"
    assert answered == ids.split()[:len(answered)]


def test_facts_reject_bad_addresses(jk):
    for ips in ("i-0123456789abcdef0=10.0.0", "i-0123456789abcdef0=$(id)", "i-0123=10.0.0.1", ""):
        proc = jk.run("joinkeeper-node-status", "--output", "facts", "--private-ips", ips, "i-0123456789abcdef0")
        assert proc.returncode == 2, ips
        assert proc.stdout == ""


def test_drain_drains_the_node_it_is_named_and_refuses_to_guess_between_claimants(jk):
    # A worker of an existing cluster: short name, no providerID; the functions matched it.
    add_node(jk, "ip-10-4-0-1", ip="10.4.0.1")
    proc = jk.run("joinkeeper-drain", "--instance-id", "i-0ddddddddddddddd1", "--node", "ip-10-4-0-1",
                  "--timeout-seconds", "30")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "drain i-0ddddddddddddddd1 node=ip-10-4-0-1 result=drained"
    assert "ip-10-4-0-1" not in jk.state()["nodes"]
    # Without a name, two Nodes naming the instance: nothing drained.
    add_node(jk, "aaa", "aws:///us-east-1a/i-0ddddddddddddddd2")
    add_node(jk, "ip-10-4-0-2.ec2.internal", "aws:///us-east-1a/i-0ddddddddddddddd2")
    proc = jk.run("joinkeeper-drain", "--instance-id", "i-0ddddddddddddddd2", "--node", "-", "--timeout-seconds", "30")
    assert proc.stdout.splitlines()[-1] == "drain i-0ddddddddddddddd2 node=- result=contested"
    state = jk.state()["nodes"]
    assert not state["aaa"]["unschedulable"] and not state["ip-10-4-0-2.ec2.internal"]["unschedulable"]
    assert jk.run("joinkeeper-drain", "--instance-id", "i-0ddddddddddddddd2", "--node", "A;b",
                  "--timeout-seconds", "30").returncode == 2


def unpack(lines):
    import base64
    import zlib
    assert len(lines) == 1 and lines[0].startswith("zfacts "), lines
    return zlib.decompress(base64.b64decode(lines[0][7:], validate=True)).decode().splitlines()


def packed(jk, ids, dns="-", env=None):
    proc = jk.run("joinkeeper-node-status", "--output", "zfacts", "--private-dns-names", dns,
                  "--private-ips", "-", ids, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_packed_facts_are_the_same_facts_in_one_line_within_the_budget(jk):
    n = 300
    ids = ["i-0dddddddddddd%04d" % i for i in range(n)]
    for i, iid in enumerate(ids):
        add_plain(jk, "ip-10-4-%d-%d.ec2.internal" % (i // 200, i % 200), "aws:///us-east-1a/" + iid)
    plain = facts(jk, " ".join(ids[:100]))
    assert unpack(packed(jk, " ".join(ids[:100]))) == plain
    # 300 blocks would not fit plain (some 130 characters each); packed they do.
    whole = packed(jk, " ".join(ids))
    assert len(whole[0]) + 1 <= 23900 < sum(len(line) + 1 for line in facts(
        jk, " ".join(ids), env=dict(jk.env, JOINKEEPER_NODE_STATUS_MAX_CHARS="1000000")))
    assert [line for line in unpack(whole) if line.startswith("id ")] == ["id " + i for i in ids]
    # A budget too small for all: the longest run of whole blocks from the first that fits.
    env = dict(jk.env, JOINKEEPER_NODE_STATUS_MAX_CHARS="2000")
    cut = packed(jk, " ".join(ids), env=env)
    assert len(cut[0]) + 1 <= 2000
    got = unpack(cut)
    answered = [line[3:] for line in got if line.startswith("id ")]
    assert 10 < len(answered) < n and answered == ids[:len(answered)]
    assert got[-1] == "id " + answered[-1], "whole blocks only"
