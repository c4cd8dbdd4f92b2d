"""Fixtures for the node-script tests.

The project's AWS emulator (emulator/: moto with Run Command, lifecycle hooks and a record of
every call) runs on a free loopback port for the whole session. Each test gets its own cluster
name, stand-in kube state, log, lock and node folders, and runs the real scripts from
node-scripts/bin with the stand-in kubeadm/kubectl first on PATH and the real AWS CLI pointed at
the emulator through AWS_ENDPOINT_URL, as its instance role (AWS_SDK_UA_APP_ID).

Secret hygiene is checked for every test: an "argv spy" directory first on PATH records the
command line of every kubeadm, kubectl, aws and python3 call the scripts make, and at the end of
the test no token secret (from the stand-in state or from any version of the join record) may
appear in those command lines, in any script's stdout or stderr, or in any log file.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_SCRIPTS = os.path.dirname(HERE)
REPO = os.path.dirname(NODE_SCRIPTS)
BIN = os.path.join(NODE_SCRIPTS, "bin")
STANDINS = os.path.join(NODE_SCRIPTS, "standins")
VENV_BIN = os.path.join(REPO, ".venv", "bin")
sys.path.insert(0, os.path.join(REPO, "emulator"))
import launch  # noqa: E402  (emulator/launch.py)

TOKEN_SHAPE = re.compile(r"[a-z0-9]{6}\.[a-z0-9]{16}")
SPIED = ("kubeadm", "kubectl", "aws", "python3")
# Which instance role runs each script: its AWS calls carry that principal (contract 1: the
# User-Agent app id), as the emulator sets it for what it runs; the harness's own calls are
# "test-harness".
WORKER_SCRIPTS = ("joinkeeper-join", "joinkeeper-join-log")


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    """The project's AWS emulator (moto plus Run Command, lifecycle hooks...) for the session. It
    records every AWS call the scripts make, with their instance role as principal, in
    .calls/node-scripts.jsonl (or $JOINKEEPER_CALLS_DIR/node-scripts.jsonl), which the IAM check
    (infra/scripts/iam-check.ts) evaluates against the instance roles' policies."""
    python = os.path.join(VENV_BIN, "python")
    if not os.path.exists(python):
        pytest.fail("no .venv: run scripts/bootstrap-python.sh")
    calls_dir = os.environ.get("JOINKEEPER_CALLS_DIR") or os.path.join(REPO, ".calls")
    os.makedirs(calls_dir, exist_ok=True)
    calls = os.path.join(calls_dir, "node-scripts.jsonl")
    open(calls, "w").close()  # this suite's own recording, fresh each session
    state = tmp_path_factory.mktemp("emulator-state")
    with launch.start(state, record_calls=calls, python=python) as emu:  # launch.DidNotStart: its log's end
        yield {"url": emu.url, "state": str(state), "calls": calls}


@pytest.fixture(scope="session")
def moto_url(emulator):
    return emulator["url"]


def make_spy_dir(path, real_path):
    os.makedirs(path)
    for tool in SPIED:
        real = shutil.which(tool, path=real_path)
        assert real, "%s not found on PATH" % tool
        shim = os.path.join(path, tool)
        with open(shim, "w") as fh:
            fh.write('#!/bin/bash\nprintf "%%s\\n" "%s $*" >> "$JK_TEST_ARGV_LOG"\nexec "%s" "$@"\n'
                     % (tool, real))
        os.chmod(shim, 0o755)


class Harness:
    """One test's world: a cluster name, folders, environment and recorded outputs."""

    def __init__(self, tmp_path, moto_url):
        self.cluster = "t" + uuid.uuid4().hex[:10]
        self.prefix = "/joinkeeper"
        self.root = tmp_path
        self.kube = str(tmp_path / "kube")
        self.logs = str(tmp_path / "log")
        self.locks = str(tmp_path / "lock")
        self.argv_log = str(tmp_path / "argv.log")
        for d in (self.kube, self.logs, self.locks):
            os.makedirs(d)
        real_path = os.pathsep.join([STANDINS, VENV_BIN, os.environ.get("PATH", "")])
        spy = str(tmp_path / "spy")
        make_spy_dir(spy, real_path)
        self.env = {
            "PATH": os.pathsep.join([spy, real_path]),
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "JOINKEEPER_KUBE_STATE": self.kube,
            "JOINKEEPER_LOG_DIR": self.logs,
            "JOINKEEPER_LOCK_DIR": self.locks,
            "JK_TEST_ARGV_LOG": self.argv_log,
            "TMPDIR": str(tmp_path),
            "AWS_SDK_UA_APP_ID": "test-harness",
        }
        # The control plane the control-plane scripts run on (written_by of the record's meta).
        self.control_plane_id = "i-0c" + uuid.uuid4().hex[:15]
        self.outputs = []
        self.kurl_argv_allowed = False
        self.extra_secrets = set()

    # --- running things ----------------------------------------------------------------------
    def node_env(self, instance_id, dns=None, az="us-east-1a", **tags):
        """Environment of an emulated worker (its node folder, metadata and emulator tags)."""
        node_dir = os.path.join(str(self.root), "nodes", instance_id)
        os.makedirs(node_dir, exist_ok=True)
        env = {
            "JOINKEEPER_INSTANCE_ID": instance_id,
            "JOINKEEPER_PRIVATE_DNS": dns or "ip-10-0-%d-%d.ec2.internal" % (int(instance_id[-4:-2], 16),
                                                                         int(instance_id[-2:], 16)),
            "JOINKEEPER_AVAILABILITY_ZONE": az,
            "JOINKEEPER_NODE_DIR": node_dir,
        }
        for key, value in tags.items():
            env["JOINKEEPER_EMULATOR_" + key.upper()] = str(value)
        return env

    def full_env(self, extra=None):
        env = dict(self.env)
        env.update(extra or {})
        return env

    def script_env(self, script, env):
        """The environment of a node script: its instance role's principal; a control-plane
        script runs on this test's control plane unless env names another instance."""
        extra = {"AWS_SDK_UA_APP_ID": "worker" if script in WORKER_SCRIPTS else "control-plane"}
        if script not in WORKER_SCRIPTS:
            extra["JOINKEEPER_INSTANCE_ID"] = self.control_plane_id
        extra.update(env or {})
        # The instance's own role session, as the emulator hands it (ec2:SourceInstanceARN).
        if extra.get("JOINKEEPER_INSTANCE_ID"):
            extra.setdefault("AWS_SESSION_TOKEN", "jkemu-instance-role/" + extra["JOINKEEPER_INSTANCE_ID"])
        return self.full_env(extra)

    def run(self, script, *args, env=None, timeout=120):
        """Runs a node script; its stdout and stderr are kept for the secret check."""
        proc = subprocess.run([os.path.join(BIN, script)] + list(args), env=self.script_env(script, env),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=timeout)
        self.outputs.append((script, proc.stdout, proc.stderr))
        return proc

    def start(self, script, *args, env=None):
        return subprocess.Popen([os.path.join(BIN, script)] + list(args), env=self.script_env(script, env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(self, proc, script, timeout=120):
        out, err = proc.communicate(timeout=timeout)
        self.outputs.append((script, out, err))
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def tool(self, *argv, env=None, check=True):
        """Runs a stand-in or the AWS CLI directly (setup and inspection; output not checked)."""
        return subprocess.run(list(argv), env=self.full_env(env), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, check=check, timeout=60)

    def publish(self, ttl=86400, mode=None, env=None):
        return self._write_record("joinkeeper-publish", ttl, mode, env)

    def regenerate(self, ttl=86400, mode=None, env=None):
        return self._write_record("joinkeeper-regenerate", ttl, mode, env)

    def _write_record(self, script, ttl, mode, env):
        """Runs a script that writes this cluster's record (publish, regenerate); it must succeed."""
        args = ["--cluster", self.cluster, "--prefix", self.prefix, "--ttl-seconds", str(ttl)]
        if mode:
            args += ["--mode", mode]
        proc = self.run(script, *args, env=env)
        assert proc.returncode == 0, proc.stderr
        return proc

    # --- inspecting --------------------------------------------------------------------------
    @property
    def parameter(self):
        return "%s/%s/join-record" % (self.prefix, self.cluster)

    def get_parameter(self):
        out = self.tool(os.path.join(VENV_BIN, "aws"), "ssm", "get-parameter", "--name", self.parameter,
                        "--with-decryption", "--output", "json").stdout
        return json.loads(out)["Parameter"]

    def record(self):
        return json.loads(self.get_parameter()["Value"])

    def history(self):
        proc = self.tool(os.path.join(VENV_BIN, "aws"), "ssm", "get-parameter-history", "--name",
                         self.parameter, "--with-decryption", "--output", "json", check=False)
        if proc.returncode != 0:
            return []
        return sorted(json.loads(proc.stdout)["Parameters"], key=lambda p: p["Version"])

    def put_record(self, record):
        path = os.path.join(str(self.root), "put.json")
        with open(path, "w") as fh:
            json.dump({"Name": self.parameter, "Type": "SecureString", "Overwrite": True,
                       "Value": json.dumps(record)}, fh)
        self.tool(os.path.join(VENV_BIN, "aws"), "ssm", "put-parameter", "--cli-input-json", "file://" + path)
        os.remove(path)

    def state(self):
        path = os.path.join(self.kube, "state.json")
        if not os.path.exists(path):
            return {"tokens": {}, "nodes": {}, "pods": []}
        with open(path) as fh:
            return json.load(fh)

    def log_text(self):
        text = ""
        for name in sorted(os.listdir(self.logs)):
            with open(os.path.join(self.logs, name), errors="replace") as fh:
                text += fh.read()
        return text

    def secrets(self):
        found = set(self.extra_secrets)
        for t in self.state()["tokens"].values():
            found.add(t["secret"])
        for version in self.history():
            try:
                found.add(json.loads(version["Value"])["token_secret"])
            except (ValueError, KeyError, TypeError):
                pass
        return {s for s in found if s}

    def check_no_secrets(self):
        secrets = self.secrets()
        texts = [("%s stdout" % s, o) for s, o, _ in self.outputs]
        texts += [("%s stderr" % s, e) for s, _, e in self.outputs]
        texts.append(("logs", self.log_text()))
        for where, text in texts:
            assert not TOKEN_SHAPE.search(text), "token-shaped text in %s" % where
            for secret in secrets:
                assert secret not in text, "a token secret leaked into %s" % where
        if os.path.exists(self.argv_log):
            with open(self.argv_log) as fh:
                for line in fh:
                    words = line.split()
                    if len(words) > 1 and words[0] == "python3" and os.path.basename(words[1]) in SPIED:
                        line = " ".join([os.path.basename(words[1])] + words[2:])  # a stand-in's shebang
                    if self.kurl_argv_allowed and line.startswith("kubeadm token create "):
                        continue  # kURL's own tasks.sh passes its token to kubeadm (see README)
                    for secret in secrets:
                        assert secret not in line, "a token secret was on a command line: %s" % line.split()[:3]


@pytest.fixture
def jk(tmp_path, moto_url):
    harness = Harness(tmp_path, moto_url)
    yield harness
    harness.check_no_secrets()
