"""The worker's boot unit (joinkeeper-boot-unit, joinkeeper-join --watch / --at-boot): what it
does with the kubelet, which target lifecycle states it acts on, and how it retries.

The kubelet exists only on a real node's code path (no JOINKEEPER_NODE_DIR): `RealNode` runs the
scripts in a private mount namespace whose /etc is an overlay with a folder of the test as its
writable layer (so /etc/kubernetes/kubelet.conf and /etc/systemd/system are the test's own, and
nothing of this machine changes), with a `systemctl` that only records its calls and a `kubectl`
that answers as kubectl does when the API server cannot be reached while `api_down` is set (else
the stand-in answers). The other tests run in local emulation (JOINKEEPER_NODE_DIR), where the
target lifecycle state is a file the test changes."""
import configparser
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import BIN, STANDINS

FAST = {"JOINKEEPER_JOIN_RETRY_INITIAL_SECONDS": "1", "JOINKEEPER_JOIN_RETRY_MAX_SECONDS": "1",
        "JOINKEEPER_JOIN_TARGET_POLL_SECONDS": "1", "JOINKEEPER_JOIN_SERVICE_POLL_SECONDS": "1"}

SYSTEMCTL = '#!/bin/bash\nprintf "%s\\n" "$*" >> "$JK_TEST_SYSTEMCTL_LOG"\n'
KUBECTL = """#!/bin/bash
if [[ -e "$JK_TEST_API_DOWN" ]]; then
  echo "The connection to the server 10.0.0.10:6443 was refused - did you specify the right host or port?" >&2
  exit 1
fi
exec "$JK_TEST_KUBECTL" "$@"
"""
# Runs "$@" with an overlay on /etc ($1 upper, $2 work), in the mount namespace unshare made.
OVERLAY_ETC = 'mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1,workdir=$2" /etc && shift 2 && exec "$@"'


def unshare_prefix():
    argv = ["unshare", "--mount", "--fork", "--propagation", "private"]
    if os.geteuid() != 0:
        argv[1:1] = ["--user", "--map-root-user"]
    return argv


@pytest.fixture(scope="module")
def private_etc(tmp_path_factory):
    """Skips the real-node tests where a private mount namespace with an overlay cannot be made
    (they need root, or unprivileged user namespaces and overlayfs, as the boot tests do)."""
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) is not installed")
    base = tmp_path_factory.mktemp("overlay-probe")
    os.makedirs(str(base / "u"))
    os.makedirs(str(base / "w"))
    proc = subprocess.run(unshare_prefix() + ["bash", "-c", OVERLAY_ETC, "probe", str(base / "u"), str(base / "w"),
                                              "mkdir", "/etc/joinkeeper-probe"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        pytest.skip("no private mount namespace with an overlay here: %s" % proc.stdout.strip())
    assert not os.path.exists("/etc/joinkeeper-probe")


class RealNode:
    """A worker on a real node's code path, its /etc an overlay (see the module's docstring)."""

    def __init__(self, jk, instance_id, target="InService", joined=True):
        self.jk = jk
        self.dns = "ip-10-0-9-%d.ec2.internal" % int(instance_id[-2:], 16)
        folder = os.path.join(str(jk.root), "real-" + instance_id)
        self.upper, self.work = os.path.join(folder, "etc"), os.path.join(folder, "work")
        shims = os.path.join(folder, "shims")
        for d in (self.upper, self.work, shims):
            os.makedirs(d)
        for name, text in (("systemctl", SYSTEMCTL), ("kubectl", KUBECTL)):
            with open(os.path.join(shims, name), "w") as fh:
                fh.write(text)
            os.chmod(os.path.join(shims, name), 0o755)
        self.systemctl_log = os.path.join(folder, "systemctl.log")
        self.api_flag = os.path.join(folder, "api-down")
        self.env = {
            "JOINKEEPER_INSTANCE_ID": instance_id,
            "JOINKEEPER_PRIVATE_DNS": self.dns,
            "JOINKEEPER_AVAILABILITY_ZONE": "us-east-1a",
            "JOINKEEPER_TARGET_LIFECYCLE_STATE": target,
            "JK_TEST_SYSTEMCTL_LOG": self.systemctl_log,
            "JK_TEST_API_DOWN": self.api_flag,
            "JK_TEST_KUBECTL": os.path.join(str(jk.root), "spy", "kubectl"),
            "PATH": os.pathsep.join([shims, jk.env["PATH"]]),
        }
        if joined:
            # What a join left on the node: the kubelet's kubeconfig, and its Node in the cluster.
            os.makedirs(os.path.join(self.upper, "kubernetes"))
            with open(os.path.join(self.upper, "kubernetes", "kubelet.conf"), "w") as fh:
                fh.write("apiVersion: v1\nkind: Config\n")
            jk.tool(os.path.join(STANDINS, "kubectl"), "x-standin", "add-node", self.dns,
                    "--provider-id", "aws:///us-east-1a/%s" % instance_id, "--ready", "True")

    def api_down(self, down):
        if down:
            open(self.api_flag, "w").close()
        elif os.path.exists(self.api_flag):
            os.remove(self.api_flag)

    def argv(self, script, args):
        return unshare_prefix() + ["bash", "-c", OVERLAY_ETC, "jk-node", self.upper, self.work,
                                   os.path.join(BIN, script)] + list(args)

    def env_of(self, script, env):
        merged = dict(self.env)
        merged.update(env or {})
        return self.jk.script_env(script, merged)

    def run(self, script, *args, env=None, timeout=120):
        proc = subprocess.run(self.argv(script, args), env=self.env_of(script, env), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=timeout)
        self.jk.outputs.append((script, proc.stdout, proc.stderr))
        return proc

    def start(self, script, *args, env=None):
        return subprocess.Popen(self.argv(script, args), env=self.env_of(script, env), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)

    def systemctl(self):
        if not os.path.exists(self.systemctl_log):
            return []
        with open(self.systemctl_log) as fh:
            return [line.strip() for line in fh if line.strip()]

    def kubelet(self):
        """What was asked of the kubelet's unit, in order: "stop", "start"..."""
        return [line.split()[0] for line in self.systemctl() if line.split()[1:] == ["kubelet"]]


@pytest.fixture
def real_node(jk, private_etc):
    return lambda *args, **kwargs: RealNode(jk, *args, **kwargs)


def join_args(jk, deadline=60):
    return ["--cluster", jk.cluster, "--prefix", jk.prefix, "--deadline-seconds", str(deadline)]


def last_line(text):
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def start_watch(jk, env, deadline=60):
    """joinkeeper-join --watch in emulation, in a session of its own (stopped with stop_watch)."""
    return subprocess.Popen([os.path.join(BIN, "joinkeeper-join"), "--watch"] + join_args(jk, deadline),
                            env=jk.script_env("joinkeeper-join", env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def stop_watch(jk, proc):
    """Stops the watch and everything it started, as stopping the instance would; its output."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    jk.outputs.append(("joinkeeper-join", out, err))
    return out


def wait_for(what, check, timeout=40):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


def set_target(env, state):
    path = os.path.join(env["JOINKEEPER_NODE_DIR"], "imds", "autoscaling", "target-lifecycle-state")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as fh:
        fh.write(state + "\n")
    os.replace(path + ".tmp", path)


# --- 1. a joined worker is never left with its kubelet stopped; the unit never gives up --------

def test_a_joined_worker_whose_api_server_stays_unreachable_at_boot_gets_its_kubelet_back(jk, real_node):
    node = real_node("i-0b0000000000000a1")
    node.api_down(True)
    started = time.time()
    proc = node.run("joinkeeper-join", "--at-boot", *join_args(jk, deadline=10), env=FAST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert node.kubelet() == ["stop", "start"], "the kubelet must run again, whatever the check found"
    assert "cannot tell whether Node %s exists: The connection to the server 10.0.0.10:6443 was refused" \
        % node.dns in proc.stdout
    assert "Node %s not verified: the API server did not answer within 10s; the kubelet runs again" \
        % node.dns in proc.stdout
    assert last_line(proc.stdout).endswith("joined cluster=%s node=%s token_id=-" % (jk.cluster, node.dns))
    assert time.time() - started >= 8, "it waited for the API server until the deadline"
    assert os.path.exists(os.path.join(node.upper, "kubernetes", "kubelet.conf")), "no reset on missing information"
    assert "kubeadm reset" not in proc.stdout


def test_a_joined_worker_whose_api_server_answers_keeps_its_node_and_its_kubelet(jk, real_node):
    node = real_node("i-0b0000000000000a2")
    node.api_down(True)
    proc = node.start("joinkeeper-join", "--at-boot", *join_args(jk, deadline=60), env=FAST)
    wait_for("a failed check", lambda: "cannot tell whether Node %s exists" % node.dns in jk.log_text())
    assert node.kubelet() == ["stop"], "stopped while the boot unit checks its Node"
    node.api_down(False)
    out, err = proc.communicate(timeout=60)
    jk.outputs.append(("joinkeeper-join", out, err))
    assert proc.returncode == 0, out + err
    assert node.kubelet() == ["stop", "start"]
    assert "already joined (/etc/kubernetes/kubelet.conf exists and Node %s is registered)" % node.dns in out


def test_the_watch_runs_a_failed_pass_again_while_the_instance_stays_in_service(jk):
    # No join record yet (a Parameter Store or control-plane outage longer than the deadline):
    # the first pass fails; the watch runs it again, and the worker joins once the record is back.
    env = jk.node_env("i-0b0000000000000a3")
    env.update(FAST)
    proc = start_watch(jk, env, deadline=10)
    try:
        wait_for("the first pass to fail", lambda: "reason=record-missing" in jk.log_text(), timeout=40)
        jk.publish()
        joined = "joined cluster=%s node=%s token_id=%s" % (jk.cluster, env["JOINKEEPER_PRIVATE_DNS"],
                                                            jk.record()["token_id"])
        wait_for("a later pass to join", lambda: joined in jk.log_text(), timeout=40)
        assert "the boot unit's pass failed (exit code 1): it runs again in 1s if the instance is still bound " \
            "for service" in jk.log_text()
        assert jk.state()["nodes"][env["JOINKEEPER_PRIVATE_DNS"]]["ready"] == "True"
        assert proc.poll() is None, "the watch goes on"
    finally:
        stop_watch(jk, proc)


def test_the_systemd_unit_restarts_the_watch_after_a_failure_and_never_gives_up(jk, real_node):
    node = real_node("i-0b0000000000000a4", joined=False)
    proc = node.run("joinkeeper-boot-unit", *join_args(jk, deadline=900))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert node.systemctl() == ["daemon-reload", "enable joinkeeper-join.service"]
    path = os.path.join(node.upper, "systemd", "system", "joinkeeper-join.service")
    assert last_line(proc.stdout) == "boot unit installed: /etc/systemd/system/joinkeeper-join.service started=no"
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str
    unit.read(path)
    assert unit["Service"]["ExecStart"] == "%s --watch %s" % (os.path.join(BIN, "joinkeeper-join"),
                                                              " ".join(join_args(jk, deadline=900)))
    assert unit["Service"]["Restart"] == "on-failure"
    assert unit["Service"]["RestartSec"] == "30"
    assert unit["Service"]["RestartPreventExitStatus"] == "2"
    # The start limit belongs to [Unit] (systemd ignores StartLimitIntervalSec in [Service]); 0:
    # no limit, so a run of failures never leaves the unit failed for good.
    assert unit["Unit"]["StartLimitIntervalSec"] == "0"
    assert "StartLimitIntervalSec" not in unit["Service"] and "StartLimitBurst" not in unit["Service"]
    analyze = shutil.which("systemd-analyze")
    if analyze:
        verify = subprocess.run([analyze, "verify", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, timeout=60)
        assert verify.returncode == 0 and verify.stdout.strip() == "", verify.stdout


# --- 2. only the target states it knows --------------------------------------------------------

@pytest.mark.parametrize("state", ["Standby", "Detached"])
def test_a_standby_or_detached_worker_keeps_its_kubelet_across_watch_polls(jk, real_node, state):
    node = real_node("i-0b0000000000000b%d" % (1 if state == "Standby" else 2), target=state)
    proc = node.start("joinkeeper-join", "--watch", *join_args(jk), env=FAST)
    try:
        time.sleep(5)  # about five polls of the target state
        assert proc.poll() is None, "the watch goes on"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        jk.outputs.append(("joinkeeper-join", out, err))
    assert node.kubelet() == [], "the kubelet of a %s instance is left alone" % state
    assert out.count("target lifecycle state %s: not bound for service; the kubelet is left alone" % state) == 1
    assert "starting (boot unit)" not in out


def test_the_watch_acts_only_on_the_target_states_it_knows(jk):
    jk.publish()
    env = jk.node_env("i-0b0000000000000b3")
    env.update(FAST)
    set_target(env, "InService")
    assert jk.run("joinkeeper-join", *join_args(jk), env=env).returncode == 0
    passes = lambda: jk.log_text().count("starting (boot unit)")  # noqa: E731
    proc = start_watch(jk, env)
    try:
        wait_for("the first pass", lambda: "Node %s is registered" % env["JOINKEEPER_PRIVATE_DNS"] in jk.log_text())
        for state in ("Standby", "Detached", "InService"):
            set_target(env, state)
            time.sleep(3)  # a few polls
            assert passes() == 1, "no pass (no kubelet restart) for %s" % state
        for state in ("Standby", "Detached"):
            assert jk.log_text().count("target lifecycle state %s: not bound for service" % state) == 1
        # Back to a Running warm pool: a pass waits there; Warmed:Terminated ends it and the watch.
        set_target(env, "Warmed:Running")
        wait_for("a pass waiting in the pool",
                 lambda: "target lifecycle state Warmed:Running: waiting in the warm pool" in jk.log_text())
        set_target(env, "Warmed:Terminated")
        assert proc.wait(timeout=20) == 0
        log = jk.log_text()
        assert "join deferred cluster=%s node=%s target=Warmed:Terminated" % (jk.cluster, env["JOINKEEPER_PRIVATE_DNS"]) \
            in log
        assert last_line(log).endswith("target lifecycle state Warmed:Terminated: the instance is leaving for good; "
                                       "the boot unit stops watching")
        assert passes() == 2
    finally:
        stop_watch(jk, proc)
