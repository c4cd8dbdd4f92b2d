"""Starts the emulator (joinkeeper_emulator.py, next to this file) for a harness and waits for it.

    import sys; sys.path.insert(0, "<repository>/emulator")   # the folder of this file
    import launch

    emulator = launch.start(state_dir, scripts_dir=..., record_calls=...)
    ... emulator.url ...                                      # http://127.0.0.1:PORT
    emulator.stop()                                           # or: with launch.start(...) as emulator:

Every Python harness (the emulator and node-script tests, the boot harness, the demo, the
benchmark) starts it this way: on a free loopback port (--port 0), its stderr (its log) in a file,
then it reads the one line the emulator prints on stdout once it accepts connections,
`ready http://127.0.0.1:PORT`. When that line does not come (the emulator exited, printed something
else, or said nothing for `timeout` seconds), the process is killed and `DidNotStart` is raised
with the end of the log. Standard library only, so it imports without the emulator's packages;
nothing is installed: a harness puts this folder on sys.path, as joinkeeper_emulator.py does for
jkemu/, and imports `launch`.
"""
import os
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(HERE, "joinkeeper_emulator.py")
VENV_PYTHON = os.path.join(os.path.dirname(HERE), ".venv", "bin", "python")
LOG_TAIL_LINES = 30


class DidNotStart(RuntimeError):
    """The emulator gave no `ready` line; the message ends with the tail of its log."""


class Emulator:
    """A running emulator: its process, its endpoint (`url`) and its log file."""

    def __init__(self, proc, url, log):
        self.proc, self.url, self.log = proc, url, log

    def stop(self, grace=10):
        """SIGTERM, then SIGKILL when it has not exited after `grace` seconds."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start(state_dir, *, log=None, scripts_dir=None, record_calls=None, user_data_runner=None, python=None,
          env=None, append_log=False, preexec_fn=None, timeout=60):
    """Starts the emulator with --state-dir `state_dir` (and --scripts-dir, --record-calls,
    --user-data-runner when given) under `python` (default: the repository's .venv/bin/python),
    its stderr written to `log` (default: <state_dir>/emulator.log; appended to with
    `append_log`), and returns it once ready. `env` and `preexec_fn` are passed to Popen."""
    log = str(log or os.path.join(state_dir, "emulator.log"))
    cmd = [str(python or VENV_PYTHON), EMULATOR, "--host", "127.0.0.1", "--port", "0", "--state-dir", str(state_dir)]
    for flag, value in (("--scripts-dir", scripts_dir), ("--record-calls", record_calls),
                        ("--user-data-runner", user_data_runner)):
        if value is not None:
            cmd += [flag, str(value)]
    os.makedirs(os.path.dirname(os.path.abspath(log)), exist_ok=True)
    with open(log, "ab" if append_log else "wb") as stderr:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, preexec_fn=preexec_fn)
    first = []
    reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    line = first[0].strip() if first else None
    if line and line.startswith("ready http://"):
        return Emulator(proc, line.split()[1], log)
    Emulator(proc, None, log).stop(grace=0)
    if line is None:
        why = "no ready line within %s s" % timeout
    elif line:
        why = "its first line is %r, not `ready http://...`" % line
    else:
        why = "it exited (code %s) before it was ready" % proc.returncode
    raise DidNotStart("the emulator did not start: %s; %s" % (why, log_tail(log)))


def log_tail(log, lines=LOG_TAIL_LINES):
    try:
        with open(log, errors="replace") as fh:
            tail = fh.read().splitlines()[-lines:]
    except OSError as err:
        return "its log %s cannot be read (%s)" % (log, err)
    if not tail:
        return "its log %s is empty" % log
    return "its log %s ends with:\n%s" % (log, "\n".join("    " + t for t in tail))


if __name__ == "__main__":  # a smoke test: start one in a temporary folder, print its endpoint, stop it
    import tempfile
    with tempfile.TemporaryDirectory() as tmp, start(tmp, python=sys.executable) as emulator:
        print(emulator.url)
