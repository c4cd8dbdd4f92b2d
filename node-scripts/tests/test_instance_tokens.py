"""Join mode per-instance on the control plane and the worker: the plan (which tokens to mint and
revoke, which certificate requests to approve or deny), joinkeeper-node-status minting a token
per waiting worker into a parameter of its instance, the real joinkeeper-join waiting for that
parameter and for its certificate, and the stand-ins' certificate request flow (no
auto-approval for the extra group, `kubectl certificate approve|deny`)."""
import base64
import json
import os
import sys
import time

from conftest import BIN, STANDINS, VENV_BIN

sys.path.insert(0, BIN)
sys.path.insert(0, STANDINS)
from joinkeeper_json.instance_tokens import PER_INSTANCE_GROUP, plan  # noqa: E402

A, B, C = "i-0000000a", "i-0000000b", "i-0000000c"


def token(tid, cluster, instance, groups=(PER_INSTANCE_GROUP,)):
    return {"id": tid, "description": "joinkeeper per-instance %s %s" % (cluster, instance), "groups": list(groups)}


def csr(name, tid, node, conditions=()):
    import standin_csr
    request = base64.b64encode(standin_csr.node_csr_pem(node).encode()).decode()
    return {"metadata": {"name": name}, "status": {"conditions": list(conditions)},
            "spec": {"signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                     "username": "system:bootstrap:" + tid, "request": request}}


def test_the_plan_approves_only_the_instance_s_own_name_and_denies_the_rest():
    tokens = [token("aaaaaa", "demo", A), token("bbbbbb", "demo", B), token("cccccc", "demo", C),
              token("dddddd", "other", A), token("eeeeee", "demo", "i-0000000e", groups=("system:bootstrappers:x",)),
              {"id": "ffffff", "description": "kubeadm init", "groups": []}]
    csrs = {"items": [
        csr("csr-a", "aaaaaa", "ip-a.ec2.internal"),
        csr("csr-b", "bbbbbb", "ip-a.ec2.internal"),  # B's token, A's name
        csr("csr-c", "cccccc", "ip-c.ec2.internal"),  # C's wait ended
        csr("csr-d", "dddddd", "ip-a.ec2.internal"),  # another cluster's token: not ours
        csr("csr-f", "ffffff", "ip-f.ec2.internal"),  # a shared token: not ours
        csr("csr-done", "aaaaaa", "ip-a.ec2.internal", [{"type": "Approved", "status": "True"}]),
    ]}
    wanted = {A: "ip-a.ec2.internal", B: "ip-b.ec2.internal", "i-0000000d": "ip-d.ec2.internal"}
    steps = plan("demo", tokens, csrs, wanted, [C])
    assert ("revoke", C, "cccccc") in steps
    assert ("approve", A, "csr-a", "ip-a.ec2.internal") in steps
    assert ("deny", B, "csr-b", "ip-a.ec2.internal") in steps
    assert ("deny", C, "csr-c", "ip-c.ec2.internal") in steps
    assert ("held", A, "aaaaaa") in steps and ("held", B, "bbbbbb") in steps
    assert ("mint", "i-0000000d") in steps
    assert not [s for s in steps if s[0] in ("approve", "deny") and s[2] in ("csr-d", "csr-f", "csr-done")]
    # A token whose instance this command was not asked about is a stray, left to the caller.
    assert plan("demo", tokens, {"items": []}, {A: "ip-a.ec2.internal"}, []) == [
        ("held", A, "aaaaaa"), ("stray", B, "bbbbbb"), ("stray", C, "cccccc")]
    # Another batch's instance: its requests are that batch's to judge.
    assert plan("demo", tokens, csrs, {}, []) == [("stray", A, "aaaaaa"), ("stray", B, "bbbbbb"), ("stray", C, "cccccc")]
    # Revoking an instance with no token still removes its record.
    assert plan("demo", [], {"items": []}, {}, [A]) == [("revoke", A, "-")]


def test_a_request_with_several_names_or_a_hostile_one_is_denied():
    tokens = [token("aaaaaa", "demo", A)]
    weird = csr("csr-x", "aaaaaa", "ip-a.ec2.internal")
    weird["spec"]["request"] = "not base64 !"
    steps = plan("demo", tokens, {"items": [weird, csr("csr-y", "aaaaaa", "a;reboot")]}, {A: "ip-a.ec2.internal"}, [])
    assert ("deny", A, "csr-x", "-") in steps and ("deny", A, "csr-y", "-") in steps


def status(jk, ids, wanted="-", revoke="-", ttl=600):
    proc = jk.run("joinkeeper-node-status", "--tokens", jk.cluster, jk.prefix, str(ttl), wanted, revoke,
                  "--output", "facts", "--private-dns-names", "-", "--private-ips", "-", ids)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def parameter(jk, instance, decrypt=False):
    name = "%s/%s/join/%s" % (jk.prefix, jk.cluster, instance)
    args = [os.path.join(VENV_BIN, "aws"), "ssm", "get-parameter", "--name", name, "--output", "json"]
    proc = jk.tool(*(args + (["--with-decryption"] if decrypt else [])), check=False)
    return json.loads(proc.stdout)["Parameter"] if proc.returncode == 0 else None


def test_a_worker_joins_with_its_own_token_once_approved_and_everything_is_revoked(jk):
    jk.publish()  # the stand-in cluster (its shared record is never read in this mode)
    open(jk.argv_log, "w").close()  # what runs from here on
    worker, dns = "i-0123456789abcdef0", "ip-10-0-0-7.ec2.internal"
    env = dict(jk.node_env(worker, dns=dns), JOINKEEPER_JOIN_RETRY_INITIAL_SECONDS="1",
               JOINKEEPER_JOIN_RETRY_MAX_SECONDS="1")
    join = jk.start("joinkeeper-join", "--cluster", jk.cluster, "--prefix", jk.prefix, "--deadline-seconds", "60",
                    "--join-mode", "per-instance", env=env)

    out = status(jk, worker, wanted="%s=%s" % (worker, dns))
    minted = [line.split() for line in out.splitlines() if line.startswith("token ")]
    assert len(minted) == 1 and minted[0][1] == worker and minted[0][3] == "minted", out
    token_id = minted[0][2]
    p = parameter(jk, worker, decrypt=True)
    assert p["Type"] == "SecureString" and json.loads(p["Value"])["token_id"] == token_id
    tags = json.loads(jk.tool(os.path.join(VENV_BIN, "aws"), "ssm", "list-tags-for-resource", "--resource-type",
                              "Parameter", "--resource-id", p["Name"], "--output", "json").stdout)["TagList"]
    assert {"Key": "joinkeeper:instance", "Value": "arn:aws:ec2:us-east-1:123456789012:instance/%s" % worker} in tags
    t = jk.state()["tokens"][token_id]
    assert t["groups"] == [PER_INSTANCE_GROUP] and t["expires"] - time.time() <= 600
    written = open(jk.argv_log).read()
    assert "joinkeeper-json.py put-records" in written and "ssm put-parameter" not in written, \
        "the record is written by one process signing its own call, not an AWS CLI process a record"

    # The kubelet's request waits: no auto-approval for this group. The next pass approves it.
    deadline = time.time() + 30
    while not jk.state().get("csrs") and time.time() < deadline:
        time.sleep(0.3)
    assert [c.get("status") for c in jk.state()["csrs"]] == [None]
    again = status(jk, worker, wanted="%s=%s" % (worker, dns))
    assert "csr %s " % worker in again and " approved %s" % dns in again
    assert "minted" not in again and list(jk.state()["tokens"]).count(token_id) == 1, "one token per worker, not one per pass"
    assert [t for t in jk.state()["tokens"].values() if t["groups"] == [PER_INSTANCE_GROUP]] == [t], again
    result = jk.finish(join, "joinkeeper-join")
    assert result.returncode == 0, result.stdout[-2000:]
    assert "joined cluster=%s node=%s token_id=%s" % (jk.cluster, dns, token_id) in result.stdout
    assert dns in jk.state()["nodes"]
    argv = open(jk.argv_log).read()
    assert "ssm get-parameter --name %s/%s/join-record" % (jk.prefix, jk.cluster) not in argv, \
        "the shared record is never read in this mode"

    # The wait ended: token and parameter go, whatever the Node does.
    gone = status(jk, worker, revoke=worker)
    assert "token %s %s revoked" % (worker, token_id) in gone
    assert token_id not in jk.state()["tokens"] and parameter(jk, worker) is None
    assert "token %s - revoked" % worker in status(jk, worker, revoke=worker), "revoking twice is fine"


def test_a_kubelet_asking_for_another_name_is_denied_and_its_join_fails(jk):
    jk.publish()
    worker, dns = "i-0123456789abcdef1", "ip-10-0-0-8.ec2.internal"
    env = dict(jk.node_env(worker, dns=dns, node_name="ip-10-0-0-99.ec2.internal"),
               JOINKEEPER_JOIN_RETRY_INITIAL_SECONDS="1", JOINKEEPER_JOIN_RETRY_MAX_SECONDS="1",
               JOINKEEPER_JOIN_ATTEMPTS="1")
    join = jk.start("joinkeeper-join", "--cluster", jk.cluster, "--prefix", jk.prefix, "--deadline-seconds", "60",
                    "--join-mode", "per-instance", env=env)
    status(jk, worker, wanted="%s=%s" % (worker, dns))
    deadline = time.time() + 30
    while not jk.state().get("csrs") and time.time() < deadline:
        time.sleep(0.3)
    out = status(jk, worker, wanted="%s=%s" % (worker, dns))
    assert " denied ip-10-0-0-99.ec2.internal" in out, out
    result = jk.finish(join, "joinkeeper-join")
    assert result.returncode == 1 and "join FAILED" in result.stdout
    assert "ip-10-0-0-99.ec2.internal" not in jk.state()["nodes"]
    assert [c["status"] for c in jk.state()["csrs"]] == ["KubectlDeny"]


def test_records_are_written_with_the_aws_cli_when_the_writer_is_told_to(jk):
    # The same path serves a writer with no credentials of its own (exit 5, test_ssm_put.py).
    jk.publish()
    workers = {"i-0123456789abcdef2": "ip-10-0-0-9.ec2.internal", "i-0123456789abcdef3": "ip-10-0-0-10.ec2.internal"}
    wanted = " ".join("%s=%s" % kv for kv in workers.items())
    for setting in ({"JOINKEEPER_RECORD_WRITER": "cli"},):
        open(jk.argv_log, "w").close()
        proc = jk.run("joinkeeper-node-status", "--tokens", jk.cluster, jk.prefix, "600", wanted, "-",
                      "--output", "facts", "--private-dns-names", "-", "--private-ips", "-", " ".join(workers),
                      env=setting)
        assert proc.returncode == 0, proc.stderr
        minted = sorted(line.split()[1] for line in proc.stdout.splitlines() if line.endswith(" minted"))
        assert minted == sorted(workers), (setting, proc.stdout)
        assert open(jk.argv_log).read().count("ssm put-parameter") == 2, setting
        for worker in workers:
            record = json.loads(parameter(jk, worker, decrypt=True)["Value"])
            assert record["token_id"] in jk.state()["tokens"]
        status(jk, " ".join(workers), revoke=" ".join(workers))


def test_a_held_token_whose_record_is_gone_is_replaced_by_a_new_token_and_record(jk):
    jk.publish()
    worker, dns = "i-0123456789abcdef4", "ip-10-0-0-11.ec2.internal"
    for setting in ({}, {"JOINKEEPER_RECORD_WRITER": "cli"}):
        first = status(jk, worker, wanted="%s=%s" % (worker, dns))
        old = [line.split()[2] for line in first.splitlines() if line.endswith(" minted")]
        assert len(old) == 1, first
        # The write's answer was lost and the record never landed (deleted here behind its back).
        jk.tool(os.path.join(VENV_BIN, "aws"), "ssm", "delete-parameter", "--name",
                "%s/%s/join/%s" % (jk.prefix, jk.cluster, worker))
        proc = jk.run("joinkeeper-node-status", "--tokens", jk.cluster, jk.prefix, "600", "%s=%s" % (worker, dns), "-",
                      "--output", "facts", "--private-dns-names", "-", "--private-ips", "-", worker, env=setting)
        assert proc.returncode == 0, proc.stderr
        new = [line.split()[2] for line in proc.stdout.splitlines() if line.endswith(" minted")]
        assert len(new) == 1 and new != old, (setting, proc.stdout)
        assert old[0] not in jk.state()["tokens"] and new[0] in jk.state()["tokens"]
        assert json.loads(parameter(jk, worker, decrypt=True)["Value"])["token_id"] == new[0]
        again = status(jk, worker, wanted="%s=%s" % (worker, dns))
        assert "token %s %s held" % (worker, new[0]) in again, again
        status(jk, worker, revoke=worker)


def test_the_standins_auto_approve_only_kubeadm_s_default_group(jk):
    jk.publish()
    state = jk.state()
    assert all(c.get("status", "AutoApproved") == "AutoApproved" for c in state.get("csrs", []))
    created = jk.tool("kubeadm", "token", "create", "--groups", "system:bootstrappers:not;valid", check=False)
    assert created.returncode != 0 and "invalid" in created.stderr
    denied = jk.tool("kubectl", "certificate", "approve", "csr-nope", check=False)
    assert denied.returncode == 1 and "not found" in denied.stderr
