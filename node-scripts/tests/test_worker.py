"""joinkeeper-join and joinkeeper-join-log on a worker."""
import os
import time

from contract import epoch

FAST = {"JOINKEEPER_JOIN_RETRY_INITIAL_SECONDS": "1", "JOINKEEPER_JOIN_RETRY_MAX_SECONDS": "1"}


def join_args(jk, deadline=60):
    return ["--cluster", jk.cluster, "--prefix", jk.prefix, "--deadline-seconds", str(deadline)]


def last_line(text):
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def test_join_succeeds_with_a_fresh_record(jk):
    jk.publish()
    record = jk.record()
    env = jk.node_env("i-0aaaaaaaaaaaaaaa1", dns="ip-10-0-1-17.ec2.internal")
    proc = jk.run("joinkeeper-join", *join_args(jk), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert last_line(proc.stdout).endswith(
        "joinkeeper-join: joined cluster=%s node=ip-10-0-1-17.ec2.internal token_id=%s"
        % (jk.cluster, record["token_id"]))

    node = jk.state()["nodes"]["ip-10-0-1-17.ec2.internal"]
    assert node["providerID"] == "aws:///us-east-1a/i-0aaaaaaaaaaaaaaa1"
    assert node["ready"] == "True"
    assert os.path.exists(os.path.join(env["JOINKEEPER_NODE_DIR"], "etc/kubernetes/kubelet.conf"))
    log = jk.log_text()
    assert "join record ok" in log and "This node has joined the cluster" in log
    # Same lines on stdout (for cloud-init) and in the log file.
    assert proc.stdout == log

    again = jk.run("joinkeeper-join", *join_args(jk), env=env)
    assert again.returncode == 0
    assert "already joined" in again.stdout


def test_join_waits_while_the_record_is_missing_or_stale_then_joins(jk):
    env = jk.node_env("i-0aaaaaaaaaaaaaaa2", dns="ip-10-0-1-18.ec2.internal")
    env.update(FAST)
    started = time.time()
    proc = jk.start("joinkeeper-join", *join_args(jk), env=env)
    time.sleep(1.5)
    # A record that expires in two minutes: valid, but too close to expiry to start a join.
    now = int(time.time())
    jk.put_record({
        "version": 1, "cluster": jk.cluster, "source": "kubeadm", "endpoint": "10.0.0.10:6443",
        "token_id": "stale0", "token_secret": "stalestalestale0",
        "ca_cert_hash": "sha256:" + "0" * 64,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 86280)),
        "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 120)),
    })
    jk.extra_secrets.add("stalestalestale0")
    time.sleep(2)
    assert proc.poll() is None, "join must keep waiting while the record is stale"
    jk.publish()
    result = jk.finish(proc, "joinkeeper-join", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    log = jk.log_text()
    assert "no join record at %s yet" % jk.parameter in log
    assert "join record is stale (token_id=stale0" in log
    assert "joined cluster=%s node=ip-10-0-1-18.ec2.internal token_id=%s" % (jk.cluster, jk.record()["token_id"]) in log
    assert "ip-10-0-1-18.ec2.internal" in jk.state()["nodes"]
    assert time.time() - started >= 3.5


def test_an_instance_chosen_for_scale_in_while_it_waits_for_its_record_never_joins(jk):
    env = jk.node_env("i-0aaaaaaaaaaaaaaa7", dns="ip-10-0-1-27.ec2.internal")
    env.update(FAST)
    assert env.get("JOINKEEPER_NODE_DIR"), "the emulated IMDS lives in the node's folder"
    target = os.path.join(env["JOINKEEPER_NODE_DIR"], "imds", "autoscaling", "target-lifecycle-state")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "w") as fh:
        fh.write("InService\n")
    proc = jk.start("joinkeeper-join", *join_args(jk), env=env)
    time.sleep(1.5)
    assert proc.poll() is None, "waiting for the record"
    # Auto Scaling picks the instance for a scale-in before the record arrives.
    with open(target, "w") as fh:
        fh.write("Terminated\n")
    jk.publish()
    result = jk.finish(proc, "joinkeeper-join", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    log = jk.log_text()
    assert "join deferred cluster=%s node=ip-10-0-1-27.ec2.internal target=Terminated" % jk.cluster in log
    assert "kubeadm join" not in log.replace("no kubeadm join", "")
    assert "ip-10-0-1-27.ec2.internal" not in jk.state()["nodes"], "no Node for an instance on its way out"


def test_join_fails_clearly_when_kubeadm_fails(jk):
    jk.publish()
    env = jk.node_env("i-0aaaaaaaaaaaaaaa3", dns="ip-10-0-1-19.ec2.internal", join="fail")
    env.update(FAST)
    env["JOINKEEPER_JOIN_ATTEMPTS"] = "2"
    proc = jk.run("joinkeeper-join", *join_args(jk), env=env)
    assert proc.returncode == 1
    assert last_line(proc.stdout).endswith(
        "join FAILED cluster=%s node=ip-10-0-1-19.ec2.internal reason=kubeadm-join-failed" % jk.cluster)
    log = jk.log_text()
    # kubeadm's own error is in the log, and so is what joinkeeper did about it.
    assert "error execution phase preflight: couldn't validate the identity of the API Server" in log
    assert "connection refused" in log
    assert "kubeadm join failed with exit code 1 (attempt 1/2)" in log
    assert "kubeadm reset -f" in log
    assert "kubeadm join failed 2 time(s); last exit code 1" in log
    assert not os.path.exists(os.path.join(env["JOINKEEPER_NODE_DIR"], "etc/kubernetes/kubelet.conf"))
    assert "ip-10-0-1-19.ec2.internal" not in jk.state()["nodes"]

    # The launch hook reads the same story through joinkeeper-join-log.
    tail = jk.run("joinkeeper-join-log", "--lines", "3", env=env)
    assert tail.returncode == 0
    assert len(tail.stdout.splitlines()) == 3
    assert "reason=kubeadm-join-failed" in last_line(tail.stdout)
    assert jk.run("joinkeeper-join-log", "--lines", "5;id", env=env).returncode == 2


def test_join_gives_up_at_the_deadline_with_the_reason(jk):
    now = int(time.time())
    jk.put_record({
        "version": 1, "cluster": jk.cluster, "source": "kubeadm", "endpoint": "10.0.0.10:6443",
        "token_id": "stale1", "token_secret": "stalestalestale1", "ca_cert_hash": "sha256:" + "1" * 64,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 86300)),
        "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 100)),
    })
    jk.extra_secrets.add("stalestalestale1")
    env = jk.node_env("i-0aaaaaaaaaaaaaaa4", dns="ip-10-0-1-20.ec2.internal")
    env["JOINKEEPER_JOIN_RETRY_INITIAL_SECONDS"] = "30"
    proc = jk.run("joinkeeper-join", *join_args(jk, deadline=10), env=env)
    assert proc.returncode == 1
    assert last_line(proc.stdout).endswith("reason=record-stale")
    assert "gave up after" in proc.stdout


def test_join_rejects_a_corrupt_record_and_bad_arguments(jk):
    jk.put_record({"version": 1, "cluster": jk.cluster, "source": "kubeadm", "endpoint": "10.0.0.10:6443; id",
                   "token_id": "abcdef", "token_secret": "corruptcorruptco", "ca_cert_hash": "sha256:" + "2" * 64,
                   "created_at": "2026-01-01T00:00:00Z", "expires_at": "2099-01-01T00:00:00Z"})
    jk.extra_secrets.add("corruptcorruptco")
    env = jk.node_env("i-0aaaaaaaaaaaaaaa5", dns="ip-10-0-1-21.ec2.internal")
    env["JOINKEEPER_JOIN_RETRY_INITIAL_SECONDS"] = "30"
    proc = jk.run("joinkeeper-join", *join_args(jk, deadline=10), env=env)
    assert proc.returncode == 1
    assert "join record rejected: joinkeeper-json: record endpoint is not host:port" in proc.stdout
    assert last_line(proc.stdout).endswith("reason=record-invalid")
    for args in (["--cluster", "x y", "--prefix", "/joinkeeper"],
                 ["--cluster", "demo", "--prefix", "/joinkeeper", "--deadline-seconds", "$(id)"]):
        assert jk.run("joinkeeper-join", *args, env=env).returncode == 2
