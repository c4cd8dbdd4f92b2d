"""The demo's harness: the timeline it prints, the build of the functions, and the services it runs
(the local AWS API emulator, cargo lambda's Lambda Runtime API and the functions), with their logs for a failure's diagnosis.
The scenario itself is scripts/demo.py."""
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "emulator"))
import launch  # noqa: E402  (emulator/launch.py)

STATE = ROOT / ".demo"
REGION = "us-east-1"
CLUSTER = "demo"
GROUP = "demo-workers"
FUNCTIONS = ["token-refresher", "launch-hook", "terminate-hook"]
# The operator's command (status, rotate); built with the functions.
CLI = "joinkeeper-cli"
# The settings the functions get; the operator's command gets the same. The join deadline outlasts
# the queue's batch window (infra/lib/event-source.json, 15 s) and a poll: a per-instance worker
# cannot join before the first reconcile of its launch event mints its token.
FUNCTION_ENV = {
    "JOINKEEPER_COMMAND_POLL_MILLIS": "200", "JOINKEEPER_COMMAND_DEADLINE_SECONDS": "60",
    "JOINKEEPER_JOIN_DEADLINE_SECONDS": "40", "JOINKEEPER_FUNCTION_TIMEOUT_SECONDS": "120",
    "JOINKEEPER_NODE_POLL_SECONDS": "2", "JOINKEEPER_DRAIN_TIMEOUT_SECONDS": "20",
}
# `cargo lambda invoke` waits this long before the invocation counts as timed out (the functions
# stop themselves before JOINKEEPER_FUNCTION_TIMEOUT_SECONDS).
INVOKE_TIMEOUT = int(FUNCTION_ENV["JOINKEEPER_FUNCTION_TIMEOUT_SECONDS"]) + 60
START = time.monotonic()
TIMELINE = []
FAILURES = []


def elapsed():
    return f"{time.monotonic() - START:6.1f}s"


def say(text):
    print(f"{elapsed()}  {text}", flush=True)


def record(event, decision, outcome, ok=True):
    TIMELINE.append((elapsed(), event, decision, outcome, ok))
    mark = "ok  " if ok else "MISS"
    print(f"{elapsed()}  [{mark}] {event:<44} {decision:<34} {outcome}", flush=True)
    if not ok:
        FAILURES.append(f"{event}: {outcome}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_functions():
    """Builds the three functions, showing progress while the first (slow) build runs."""
    say("building the functions (the first build compiles the AWS SDK: a few minutes)")
    cmd = ["cargo", "build", "--message-format", "short"] + sum([["-p", f] for f in FUNCTIONS + [CLI]], [])
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    compiled = 0
    last = time.monotonic()
    for line in proc.stderr:
        if line.strip().startswith("Compiling"):
            compiled += 1
            if time.monotonic() - last > 5:
                say(f"  ... {compiled} crates compiled ({line.strip().split()[1]})")
                last = time.monotonic()
        elif "error" in line:
            print(line, end="", file=sys.stderr)
    if proc.wait() != 0:
        sys.exit("build failed")
    say(f"functions built ({compiled} crates compiled this time)")


def binary(name):
    """A binary of the debug build (honours CARGO_TARGET_DIR, as cargo does)."""
    return Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target") / "debug" / name


class Services:
    """The emulator, cargo lambda's runtime API and the function processes, stopped on exit."""

    def __init__(self):
        self.procs = []

    def start_emulator(self):
        # Every AWS call is recorded for the IAM check of the test suite (.calls/).
        (ROOT / ".calls").mkdir(exist_ok=True)
        env = dict(os.environ, JOINKEEPER_RECORD_CALLS=str(ROOT / ".calls" / f"demo-{os.getpid()}.jsonl"))
        try:
            emulator = launch.start(
                STATE / "emulator", log=STATE / "emulator.log", scripts_dir=ROOT / "node-scripts", env=env,
                # Launched instances boot their user data in sandboxes (node-scripts/boot), not on this machine.
                user_data_runner=f"{ROOT / '.venv/bin/python'} {ROOT / 'node-scripts/boot/world.py'} run-user-data")
        except launch.DidNotStart as err:
            sys.exit(str(err))
        self.procs.append(emulator.proc)
        return emulator.url

    def restart_runtime(self):
        """Stops the runtime API and the function processes, and starts them again."""
        for proc in self.runtime:
            stop_process(proc)
            self.procs.remove(proc)
        self.start_runtime(*self.runtime_args)

    def start_runtime(self, endpoint, port, env_overrides):
        """cargo lambda's Lambda Runtime API (`cargo lambda watch --only-lambda-apis`, which
        `cargo lambda invoke` talks to) and one process per function, each polling it through the
        real runtime client. The demo starts the functions itself: when `cargo lambda watch` starts
        them, its file watcher restarts every function on a file event that names no path (seen
        while the sandboxes write their files; an inotify queue overflow produces such events),
        `--ignore-changes` or not, and the invocation in flight is lost."""
        self.runtime_args = (endpoint, port, env_overrides)
        log = open(STATE / "functions.log", "a")
        watch = subprocess.Popen(["cargo", "lambda", "watch", "--invoke-port", str(port), "--only-lambda-apis"],
                                 cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.runtime = [watch]
        self.procs.append(watch)
        deadline = time.monotonic() + 120
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if watch.poll() is not None:
                sys.exit(f"cargo lambda watch exited; see {STATE / 'functions.log'}")
            if time.monotonic() > deadline:
                sys.exit("cargo lambda watch did not start")
            time.sleep(0.3)
        for function in FUNCTIONS:
            env = dict(os.environ)
            env.update({
                "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "RUST_LOG": "info",
                "AWS_LAMBDA_RUNTIME_API": f"http://127.0.0.1:{port}/.rt/{function}",
                "AWS_LAMBDA_FUNCTION_NAME": function, "AWS_LAMBDA_FUNCTION_VERSION": "1",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            })
            env.update(env_overrides)
            proc = subprocess.Popen([str(binary(function))], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            self.runtime.append(proc)
            self.procs.append(proc)

    def stop(self):
        for proc in reversed(self.procs):
            stop_process(proc)


def stop_process(proc):
    """Stops one service. `cargo lambda watch` runs in its own process group with the function
    process group: the whole group gets SIGTERM, then SIGKILL. Other processes get SIGTERM, then
    SIGKILL after 10 s (a function that hangs, or was stopped, ignores SIGTERM)."""
    if proc.args[0] != "cargo":
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        return
    for sig in (15, 9):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=10)
        except (ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
            pass


def print_log_tails(lines=40):
    """The end of the functions' and the emulator's logs (its HTTP access lines left out), so that
    a failure on a CI machine can be read from its output alone. Token shapes are masked anyway."""
    token = re.compile(r"\b([a-z0-9]{6})\.[a-z0-9]{16}\b")
    for name in ("functions.log", "emulator.log"):
        path = STATE / name
        text = path.read_text(errors="replace").splitlines() if path.exists() else []
        tail = [line for line in text if " werkzeug " not in line][-lines:]
        print(f"--- last {len(tail)} lines of {path}")
        for line in tail:
            print("    " + token.sub(r"\1.<secret>", line)[:400])
