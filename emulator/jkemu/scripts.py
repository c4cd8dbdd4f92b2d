"""Running scripts as if on an instance (shared by Run Command and user data): environment,
node folder, path mapping, process groups that die with the emulator."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any, Callable

from moto.autoscaling.models import autoscaling_backends

from .common import CONFIG, DEFAULT_ACCOUNT, LOG, SCRIPT_APP_IDS, STATE


def kill_process_group(proc: subprocess.Popen) -> None:
    """Kill a child started with start_new_session=True, with everything it started."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_all_children() -> None:
    with STATE.lock:
        procs = list(STATE.processes)
    for proc in procs:
        kill_process_group(proc)


def kill_instance_processes(instance_id: str) -> None:
    """Everything running 'on' one instance (user data, commands, boot units): a stop kills it."""
    with STATE.lock:
        procs = [p for p, owner in STATE.owners.items() if owner == instance_id]
    for proc in procs:
        kill_process_group(proc)


def reset_extension(wipe_files: bool) -> None:
    """Forget commands, events, logs and lifecycle actions; kill running scripts. A full reset
    (POST /moto-api/reset) also wipes the node and cluster folders of the state directory."""
    kill_all_children()
    with STATE.lock:
        STATE.clear()
    if wipe_files:
        for sub in ("nodes", "clusters"):
            shutil.rmtree(CONFIG.state_dir / sub, ignore_errors=True)
    LOG.info("extension state reset%s", " (with node and cluster folders)" if wipe_files else "")


def instance_tags(instance: Any) -> dict[str, str]:
    return dict(instance.ec2_backend.tags.get(instance.id, {}))


def access_key_for(account: str) -> str:
    """Dummy credentials; a 12-digit key id selects a non-default account (see patch 6)."""
    return "testing" if account == DEFAULT_ACCOUNT else account


def node_dir_of(instance_id: str) -> Path:
    return CONFIG.state_dir / "nodes" / instance_id


def target_state_file(instance_id: str) -> Path:
    """Stand-in for IMDS latest/meta-data/autoscaling/target-lifecycle-state."""
    return node_dir_of(instance_id) / "imds" / "autoscaling" / "target-lifecycle-state"


def role_of(instance: Any, tags: dict[str, str], account: str, region: str) -> str | None:
    """The instance's joinkeeper:role tag, else its group's (an instance of a worker group whose
    tag did not propagate is a worker)."""
    if tags.get("joinkeeper:role"):
        return tags["joinkeeper:role"]
    group = getattr(instance, "autoscaling_group", None)
    group_name = tags.get("aws:autoscaling:groupName")
    if group is None and group_name:
        backend = dict.get(autoscaling_backends, account, {})
        group = dict.get(backend, region) and backend[region].autoscaling_groups.get(group_name)
    group_tags = {t["Key"]: t["Value"] for t in (group.tags if group else [])}
    return group_tags.get("joinkeeper:role")


def kube_folder(tags: dict[str, str]) -> str:
    """The pretend cluster an instance's kubectl talks to: its `joinkeeper:cluster`, or the one
    `emulator:kube-state` names (an instance that serves another, e.g. forged, cluster)."""
    for value in (tags.get("emulator:kube-state"), tags.get("joinkeeper:cluster")):
        if value and re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,62}", value):
            return value
    return "_none"


def script_environment(instance: Any, account: str, region: str) -> dict[str, str]:
    """The environment of a script 'on' an instance, as docs/contracts.md (Local emulation) says.
    Creates the instance's node folder (with log/ and lock/) and its cluster's kube folder."""
    tags = instance_tags(instance)
    node_dir = node_dir_of(instance.id)
    kube_dir = CONFIG.state_dir / "clusters" / kube_folder(tags)
    for folder in (node_dir / "log", node_dir / "lock", kube_dir):
        folder.mkdir(parents=True, exist_ok=True)
    # An instance booted in a sandbox (--user-data-runner) keeps its logs where a real node does.
    booted = node_dir / "var" / "log" / "joinkeeper"
    log_dir = booted if booted.is_dir() else node_dir / "log"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "JOINKEEPER_", "MOTO_"))
    }
    env.update(
        PATH=os.pathsep.join(
            [
                str(CONFIG.scripts_dir / "standins"),
                str(CONFIG.venv_bin),
                os.environ.get("PATH", "/usr/bin:/bin"),
            ]
        ),
        AWS_ENDPOINT_URL=CONFIG.endpoint,
        AWS_DEFAULT_REGION=region,
        AWS_REGION=region,
        AWS_ACCESS_KEY_ID=access_key_for(account),
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_PAGER="",
        JOINKEEPER_STATE=str(CONFIG.state_dir),
        JOINKEEPER_INSTANCE_ID=instance.id,
        JOINKEEPER_PRIVATE_DNS=instance.private_dns_name,
        JOINKEEPER_PRIVATE_IP=instance.private_ip or "",
        JOINKEEPER_AVAILABILITY_ZONE=instance.placement.zone,
        JOINKEEPER_NODE_DIR=f"{node_dir}/",
        JOINKEEPER_KUBE_STATE=f"{kube_dir}/",
        JOINKEEPER_LOG_DIR=str(log_dir),
        JOINKEEPER_LOCK_DIR=str(node_dir / "lock"),
    )
    role = role_of(instance, tags, account, region)
    if role:
        env["AWS_SDK_UA_APP_ID"] = role  # the principal of its AWS calls (User-Agent app/<role>)
        SCRIPT_APP_IDS.add(role)
        # This instance's role session: the recorder reads ec2:SourceInstanceARN from it.
        env["AWS_SESSION_TOKEN"] = f"jkemu-instance-role/{instance.id}"
    target = target_state_file(instance.id)
    if target.exists():
        env["JOINKEEPER_TARGET_LIFECYCLE_STATE"] = target.read_text().strip()
    for key, value in tags.items():
        if key.startswith("emulator:"):
            name = re.sub(r"[^A-Za-z0-9_]", "_", key[len("emulator:") :].upper())
            env[f"JOINKEEPER_EMULATOR_{name}"] = value
    return env


def map_paths(text: str) -> str:
    """/opt/joinkeeper/... on a real node is the repository's node-scripts/... here."""
    return text.replace("/opt/joinkeeper/", f"{CONFIG.scripts_dir}/")


# The direct child is a small bash guard around the script: when the emulator dies (even by
# SIGKILL) the kernel sends the guard SIGTERM (PR_SET_PDEATHSIG), and the guard kills its whole
# process group, so no script outlives the emulator.
GUARD = 'trap "kill -KILL 0" TERM HUP; "$@" & wait $!'
try:
    import ctypes

    _LIBC = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - not Linux
    _LIBC = None


def die_with_parent(parent: int) -> Callable[[], None] | None:
    """preexec_fn: SIGTERM this child when the emulator process exits (Linux prctl)."""
    if _LIBC is None or not hasattr(_LIBC, "prctl"):
        return None

    def preexec() -> None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the emulator already went away
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def start_script(
    script: Path,
    env: dict[str, str],
    cwd: Path,
    stdout: Any,
    stderr: Any,
    owner: str | None = None,
    runner: list[str] | None = None,
) -> subprocess.Popen:
    """Start a script file in its own process group (so a timeout kills all it started). A file
    with a shebang line runs by it; anything else runs with bash; with `runner` (an argv), the
    runner runs, the script's path its last argument. `owner`: the instance it runs on (its
    processes die when the instance stops)."""
    script.chmod(0o755)
    if runner:
        argv = [*runner, str(script)]
    elif script.read_text(errors="replace").startswith("#!"):
        argv = [str(script)]
    else:
        argv = ["bash", str(script)]
    proc = subprocess.Popen(
        ["bash", "-c", GUARD, "joinkeeper-script", *argv],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        preexec_fn=die_with_parent(os.getpid()),
    )
    with STATE.lock:
        STATE.processes.add(proc)
        if owner:
            STATE.owners[proc] = owner
    return proc


def forget_process(proc: subprocess.Popen) -> None:
    with STATE.lock:
        STATE.processes.discard(proc)
        STATE.owners.pop(proc, None)


def in_background(name: str, target: Callable[..., None], *args: Any) -> None:
    """Run target(*args) in a daemon thread (the server keeps serving)."""
    threading.Thread(target=target, args=args, name=name, daemon=True).start()
