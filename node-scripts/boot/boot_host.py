"""The host side of the boot harness (world.py): the repository's paths, the emulator process,
the process sampler, what a sandbox hides of this machine, and the stand-in call counts."""
import json
import os
import shutil
import signal
import stat
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_SCRIPTS = os.path.dirname(HERE)
REPO = os.path.dirname(NODE_SCRIPTS)
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # cloud-init's PATH
STANDINS = os.path.join(NODE_SCRIPTS, "standins")
VENV = os.path.join(REPO, ".venv")
VENV_PYTHON = os.path.join(VENV, "bin", "python")
BOOT_TOOLS = ("apt-get", "apt-mark", "snap", "systemctl", "modprobe", "sysctl", "swapoff", "hostnamectl",
              "gpg", "curl", "kubeadm", "kubectl", "kubelet", "containerd", "aws", "kurl-install", "kurl-join")
sys.path.insert(0, os.path.join(REPO, "emulator"))
import launch  # noqa: E402  (emulator/launch.py)


def system_python():
    for path in ("/usr/bin/python3", "/bin/python3"):
        if os.access(path, os.X_OK):
            return path
    return shutil.which("python3", path=SYSTEM_PATH) or "python3"


# Programs a fresh Ubuntu instance does not have before its packages are installed: when this
# machine has them (a kubectl of some SDK, an aws CLI), the sandbox hides them with overlay
# whiteouts, so a boot can only use what its own steps installed.
PACKAGE_PROGRAMS = ("kubeadm", "kubectl", "kubelet", "containerd", "ctr", "crictl", "aws")
PROGRAM_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def hide_host_programs(upper):
    hidden = []
    for folder in PROGRAM_DIRS:
        if os.path.islink(folder) or not os.path.isdir(folder):
            continue  # /bin -> usr/bin: hidden through the real folder
        for name in PACKAGE_PROGRAMS:
            host, mine = os.path.join(folder, name), os.path.join(upper, folder.lstrip("/"), name)
            if os.path.lexists(host) and not os.path.lexists(mine):
                os.makedirs(os.path.dirname(mine), exist_ok=True)
                try:
                    os.mknod(mine, 0o600 | stat.S_IFCHR, os.makedev(0, 0))  # an overlayfs whiteout
                    hidden.append(host)
                except PermissionError:
                    pass  # without CAP_MKNOD (user namespace): the host's program stays visible
    return hidden


def _pdeathsig():
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the harness
    except (OSError, AttributeError):
        pass


class Emulator:
    """emulator/joinkeeper_emulator.py on a free loopback port, state in <workdir>/state, every
    AWS request it serves recorded in <workdir>/aws-calls.jsonl (caller, action, resources)."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.state = os.path.join(workdir, "state")
        os.makedirs(self.state, exist_ok=True)
        self.calls_file = os.path.join(workdir, "aws-calls.jsonl")
        self.running = launch.start(self.state, log=os.path.join(workdir, "emulator.log"), append_log=True,
                                    scripts_dir=NODE_SCRIPTS, record_calls=self.calls_file,
                                    preexec_fn=_pdeathsig)  # DidNotStart (a RuntimeError) with its log's end
        self.proc, self.url = self.running.proc, self.running.url

    def control(self, path, account):
        import urllib.request
        sep = "&" if "?" in path else "?"
        with urllib.request.urlopen("%s/_joinkeeper/%s%saccount=%s" % (self.url, path, sep, account)) as resp:
            return json.loads(resp.read())

    def aws_calls(self, account=None):
        """The AWS requests served so far (one dict each), optionally of one account."""
        if not os.path.exists(self.calls_file):
            return []
        with open(self.calls_file) as fh:
            calls = [json.loads(line) for line in fh if line.strip()]
        return [c for c in calls if account is None or c.get("account") == account]

    def stop(self):
        self.running.stop(grace=15)


class ProcessSampler(threading.Thread):
    """Samples, every `interval` seconds, the command line of every process inside a boot sandbox
    (another PID namespace than ours) and of every process the emulator started (Run Command
    scripts and their children). Complements the stand-ins' own records with what they do not
    see (bash, jq, python3, the AWS CLI's interpreter, kURL's scripts)."""

    def __init__(self, emulator_pid, interval=0.05):
        super().__init__(daemon=True)
        self.emulator_pid = emulator_pid
        self.interval = interval
        self.own_ns = os.readlink("/proc/self/ns/pid")
        self.seen = {}  # pid -> argv (first sighting)
        self.argvs = set()
        self.samples = 0
        self._halt = threading.Event()

    def snapshot(self):
        parents, ns = {}, {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % entry) as fh:
                    stat = fh.read()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
                ns[int(entry)] = os.readlink("/proc/%s/ns/pid" % entry)
            except (OSError, IndexError, ValueError):
                continue
        watched = set()
        for pid in parents:
            chain, p = [], pid
            while p > 1 and p not in watched and len(chain) < 64:
                chain.append(p)
                if p == self.emulator_pid or ns.get(p, self.own_ns) != self.own_ns:
                    watched.update(chain)
                    break
                p = parents.get(p, 0)
        for pid in watched:
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as fh:
                    raw = fh.read()
            except OSError:
                continue
            if raw:
                argv = tuple(a.decode(errors="replace") for a in raw.rstrip(b"\0").split(b"\0"))
                self.argvs.add(argv)
        self.samples += 1

    def run(self):
        while not self._halt.is_set():
            self.snapshot()
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join(timeout=5)


def format_counts(title, counts):
    order = [t for t in BOOT_TOOLS if t in counts] + sorted(t for t in counts if t not in BOOT_TOOLS)
    return "%s: %s (total %d)" % (title, ", ".join("%s %d" % (t, counts[t]) for t in order), sum(counts.values()))


def print_counts(title, counts):
    sys.stdout.write(format_counts(title, counts) + "\n")
