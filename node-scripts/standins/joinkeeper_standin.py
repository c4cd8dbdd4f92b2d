"""State shared by the stand-in `kubeadm` and `kubectl` (TEST DOUBLES, NOT A KUBERNETES).

The stand-ins keep a pretend cluster in $JOINKEEPER_KUBE_STATE/state.json: bootstrap tokens (id,
secret, description, creation and expiry), Nodes (name, providerID, Ready condition,
unschedulable flag, how long a drain takes, how many pods a PodDisruptionBudget blocks), the
pods on each Node, and the kubelets' bootstrap CertificateSigningRequests (standin_csr.py). Every
read-modify-write holds an exclusive flock on state.lock, and the file is replaced atomically, so parallel calls are safe. Expired tokens disappear on the next access, as
the token cleaner in kube-controller-manager would remove them.

Nothing here talks to a network or starts a process. It exists so that the real joinkeeper
scripts can run unchanged in tests and in the local demo, with these programs first on PATH.
"""
import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import string
import sys
import time

DEFAULT_ENDPOINT = "10.0.0.10:6443"
KUBERNETES_VERSION = "v1.30.4"
ALPHABET = string.ascii_lowercase + string.digits


def state_dir():
    path = os.environ.get("JOINKEEPER_KUBE_STATE", "")
    if not path:
        sys.stderr.write("stand-in: JOINKEEPER_KUBE_STATE is not set; this is a test double, "
                         "not a Kubernetes, and it needs a state folder\n")
        sys.exit(1)
    os.makedirs(path, exist_ok=True)
    return path


def now():
    return int(time.time())


def fmt_ts(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def rand(n):
    return "".join(secrets.choice(ALPHABET) for _ in range(n))


def new_state(directory):
    seed = hashlib.sha256((directory + str(time.time()) + rand(8)).encode()).hexdigest()
    return {
        "endpoint": os.environ.get("JOINKEEPER_KUBE_ENDPOINT", DEFAULT_ENDPOINT),
        "ca_cert_hash": "sha256:" + hashlib.sha256(seed.encode()).hexdigest(),
        "tokens": {},
        "nodes": {},
        "pods": [],
        "csrs": [],
    }


@contextlib.contextmanager
def locked_state(write=True):
    """Yields the state dict under an exclusive lock; saves it on exit when write is True."""
    directory = state_dir()
    path = os.path.join(directory, "state.json")
    with open(os.path.join(directory, "state.lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if os.path.exists(path):
                with open(path) as fh:
                    state = json.load(fh)
            else:
                state = new_state(directory)
                write = True
            current = now()
            for token_id in [t for t, v in state["tokens"].items()
                             if v.get("expires") is not None and v["expires"] <= current]:
                del state["tokens"][token_id]
            yield state
            if write:
                tmp = path + ".tmp.%d" % os.getpid()
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as fh:
                    json.dump(state, fh, indent=1, sort_keys=True)
                os.replace(tmp, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def parse_go_duration(text):
    """Seconds in a Go duration such as 86400s, 24h0m0s, 1h30m, 90m or 0."""
    if text == "0":
        return 0
    units = {"h": 3600, "m": 60, "s": 1}
    total, number = 0.0, ""
    for ch in text:
        if ch.isdigit() or ch == ".":
            number += ch
        elif ch in units and number:
            total += float(number) * units[ch]
            number = ""
        else:
            raise ValueError("invalid duration %r" % text)
    if number:
        raise ValueError("missing unit in duration %r" % text)
    return int(total)


def go_duration(seconds):
    """Go's time.Duration String() for whole seconds: 2s, 5m0s, 1h30m0s."""
    seconds = int(seconds)
    if seconds == 0:
        return "0s"
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return "%dh%dm%ds" % (h, m, s)
    if m:
        return "%dm%ds" % (m, s)
    return "%ds" % s


def human_ttl(seconds):
    """kubeadm's TTL column (duration.ShortHumanDuration): 23h, 59m, 45s, <forever>."""
    if seconds is None:
        return "<forever>"
    if seconds < 0:
        return "<invalid>"
    if seconds < 120:
        return "%ds" % seconds
    if seconds < 7200:
        return "%dm" % (seconds // 60)
    if seconds < 48 * 3600:
        return "%dh" % (seconds // 3600)
    return "%dd" % (seconds // 86400)


def node_object(name, node):
    ready = node.get("ready", "True")
    reason = {"True": "KubeletReady", "False": "KubeletNotReady"}.get(ready, "NodeStatusUnknown")
    message = {"True": "kubelet is posting ready status",
               "False": "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady",
               }.get(ready, "Kubelet stopped posting node status.")
    spec = {}
    if node.get("providerID"):
        spec["providerID"] = node["providerID"]
    if node.get("unschedulable"):
        spec["unschedulable"] = True
        spec["taints"] = [{"effect": "NoSchedule", "key": "node.kubernetes.io/unschedulable",
                           "timeAdded": fmt_ts(node.get("cordoned_at", now()))}]
    stamp = fmt_ts(node.get("created", now()))
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "creationTimestamp": stamp,
            "labels": dict({
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
            }, **(node.get("labels") or {})),
            "name": name,
            "resourceVersion": str(node.get("resource_version", 1)),
            "uid": node.get("uid", "00000000-0000-0000-0000-000000000000"),
        },
        "spec": spec,
        "status": {
            "addresses": ([{"type": "InternalIP", "address": node["internal_ip"]}] if node.get("internal_ip") else [])
            + [{"type": "Hostname", "address": name}],
            "conditions": [{
                "lastHeartbeatTime": fmt_ts(now()),
                "lastTransitionTime": node.get("ready_since", stamp),
                "message": message,
                "reason": reason,
                "status": ready,
                "type": "Ready",
            }],
            "nodeInfo": {"kubeletVersion": KUBERNETES_VERSION, "operatingSystem": "linux",
                         "architecture": "amd64"},
        },
    }


def add_node(state, name, provider_id="", ready="True", drain_seconds=0, stuck_pods=0, role="worker",
             internal_ip=None, labels=None):
    """Registers (or re-registers) a Node with a DaemonSet pod, two workload pods and
    `stuck_pods` pods whose eviction a PodDisruptionBudget refuses. `internal_ip`: its
    InternalIP (default: the instance's private IP, as the kubelet reports it); `labels`: extra
    labels (a control plane gets kubeadm's role label)."""
    if internal_ip is None:
        internal_ip = os.environ.get("JOINKEEPER_PRIVATE_IP", "")
    extra = dict(labels or {})
    if role == "control-plane":
        extra.setdefault("node-role.kubernetes.io/control-plane", "")
    state["nodes"][name] = {
        "internal_ip": internal_ip,
        "labels": extra,
        "providerID": provider_id,
        "ready": ready,
        "ready_since": fmt_ts(now()),
        "unschedulable": False,
        "drain_seconds": int(drain_seconds),
        "stuck_pods": int(stuck_pods),
        "created": now(),
        "role": role,
        "uid": "%s-%s-%s-%s-%s" % (rand(8), rand(4), rand(4), rand(4), rand(12)),
    }
    state["pods"] = [p for p in state["pods"] if p["node"] != name]
    suffix = rand(5)
    state["pods"].append({"namespace": "kube-system", "name": "kube-proxy-" + suffix, "node": name,
                          "daemonset": True, "pdb_blocked": False})
    if role == "worker":
        for i in range(2):
            state["pods"].append({"namespace": "default", "name": "web-%s-%s" % (rand(10), rand(5)),
                                  "node": name, "daemonset": False, "pdb_blocked": False})
        for i in range(int(stuck_pods)):
            state["pods"].append({"namespace": "default", "name": "guarded-%d-%s" % (i, rand(5)),
                                  "node": name, "daemonset": False, "pdb_blocked": True})


def calling_script():
    """The node script (`joinkeeper-<name>`, from node-scripts/bin) this process runs under: the
    nearest ancestor whose command line runs one, through wrappers such as `timeout` or the tests'
    argv spy; "" for a test's or the emulator's own call."""
    pid = os.getppid()
    for _ in range(12):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as fh:
                argv = fh.read().split(b"\0")
            with open("/proc/%d/stat" % pid, "rb") as fh:
                pid = int(fh.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return ""
        for arg in argv[:2]:
            name = os.path.basename(arg.decode("utf-8", "replace"))
            if name.startswith("joinkeeper-") and not name.endswith(".py"):
                return name
        if pid <= 1:
            return ""
    return ""


def record_call(tool):
    """Appends this call's command line to <kube state>/calls.jsonl: the tests' record of every
    kubeadm/kubectl process, wherever it ran (a boot sandbox, a Run Command, a test), with the
    node script that made it ("caller", "" for the harness's own calls)."""
    path = os.environ.get("JOINKEEPER_KUBE_STATE", "")
    if not path:
        return
    os.makedirs(path, exist_ok=True)
    line = json.dumps({"time": time.time(), "tool": tool, "argv": sys.argv[1:],
                       "instance": os.environ.get("JOINKEEPER_INSTANCE_ID") or os.environ.get("JOINKEEPER_BOOT_INSTANCE", ""),
                       "caller": calling_script()})
    fd = os.open(os.path.join(path, "calls.jsonl"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as fh:
        fh.write(line + "\n")


def remember_secret(state, value):
    """Every secret the pretend cluster ever minted (tokens, certificate keys), so a test can look
    for all of them, including those already revoked or expired."""
    minted = state.setdefault("minted_secrets", [])
    if value not in minted:
        minted.append(value)


def env_int(name, default=0):
    value = os.environ.get(name, "")
    try:
        return max(0, int(value)) if value else default
    except ValueError:
        return default
