#!/usr/bin/env python3
"""joinkeeper's local AWS API emulator: moto 5.2.5 in server mode, plus the behaviour it lacks.

    python emulator/joinkeeper_emulator.py --host 127.0.0.1 --port 0 --state-dir DIR \
        [--scripts-dir node-scripts]

Prints one line `ready http://HOST:PORT` on stdout once it accepts connections (port 0 picks a
free port); everything else goes to stderr.

Gaps in moto that this launcher fills, by monkeypatching moto's classes at start:

 1. SSM Run Command does nothing in moto: SendCommand answers Success at once, executes nothing,
    and with only InstanceIds targets *every* instance of the region (its Targets filter is empty,
    so it matches everything). GetCommandInvocation always says Success/exit 0/empty output;
    ListCommandInvocations and CancelCommand are not implemented (HTTP 500).
    -> SendCommand, GetCommandInvocation, ListCommands, ListCommandInvocations and CancelCommand
       are replaced (SimpleSystemManagerResponse methods). The command targets exactly the listed
       instances (or the Targets `InstanceIds`/`tag:<k>`/`tag-key` match), its document (schema
       2.2, aws:runShellScript steps) is rendered with the parameters and run with bash on this
       machine in a background thread, with real statuses, exit codes and captured output.
 2. DescribeInstanceInformation is not implemented (HTTP 500).
    -> every running instance whose tag `emulator:agent` is not `offline` is a managed node with
       PingStatus Online.
 3. Auto Scaling lifecycle hooks are stored but have no effect; CompleteLifecycleAction and
    RecordLifecycleActionHeartbeat are not implemented (HTTP 500); NotificationMetadata and
    CreateAutoScalingGroup's LifecycleHookSpecificationList are dropped.
    -> launching/terminating instances wait in Pending:Wait / Terminating:Wait until the action is
       completed, or until the heartbeat timeout applies the hook's DefaultResult (checked lazily
       before every request). FakeAutoScalingGroup.set_desired_capacity and
       AutoScalingBackend.terminate_instance are replaced so that instances in the wait states
       count (or not) toward capacity as on AWS.
 4. No service emits events. -> each lifecycle action appends an EventBridge-shaped event
    (`EC2 Instance-launch Lifecycle Action` / `EC2 Instance-terminate Lifecycle Action`) to an
    outbox read through the control API under /_joinkeeper/.
 5. User data is stored but never runs. -> like cloud-init, it runs once in the background when an
    instance is launched (RunInstances or an Auto Scaling group).
 6. Scripts calling back into the emulator with the aws CLI cannot pick a moto account (no way to
    send the x-moto-account-id header). -> an access key id made of 12 digits selects that account
    (as LocalStack does); scripts of instances outside the default account get such a key.

Choices (also in emulator/README.md):
 - An undeliverable command invocation (tag emulator:agent=undeliverable) ends as Status Failed,
   StatusDetails Undeliverable, ResponseCode -1: what GetCommandInvocation reports on AWS when the
   agent cannot be reached. An execution timeout ends as TimedOut / ExecutionTimedOut with
   ResponseCode 137 (the Linux SSM agent's CommandStoppedPreemptivelyExitCode); so does a cancel
   of a running command (Cancelled / Cancelled / 137).
 - ABANDON of a launch action terminates the instance and removes it from the group, but the group
   is *not* refilled (AWS would launch a replacement); set the desired capacity again to refill.
 - Multiple hooks for one transition: the instance moves on when every action has been completed
   with CONTINUE; the first ABANDON ends the wait at once.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import datetime as dt
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs

try:
    from moto.autoscaling.exceptions import ValidationError
    from moto.autoscaling.models import (
        AutoScalingBackend,
        FakeAutoScalingGroup,
        InstanceState,
        TerminateInstanceActivity,
    )
    from moto.autoscaling.responses import AutoScalingResponse
    from moto.core.responses import ActionResult, BaseResponse, EmptyResult
    from moto.ec2.models import EC2Backend, ec2_backends
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from moto.ssm.exceptions import SSMException
    from moto.ssm.models import ssm_backends
    from moto.ssm.responses import SimpleSystemManagerResponse
    from werkzeug.serving import make_server
except ImportError as missing:  # pragma: no cover - set-up hint
    sys.exit(
        f"joinkeeper emulator: {missing}; run `bash scripts/bootstrap-python.sh` and use .venv/bin/python"
    )

LOG = logging.getLogger("joinkeeper-emulator")

DEFAULT_ACCOUNT = "123456789012"
STDOUT_LIMIT = 24000  # GetCommandInvocation StandardOutputContent: first 24,000 characters
STDERR_LIMIT = 8000  # GetCommandInvocation StandardErrorContent: first 8,000 characters
PLUGIN_OUTPUT_LIMIT = 2500  # ListCommandInvocations CommandPlugin.Output: first 2,500 characters
STOPPED_EXIT_CODE = 137  # Linux SSM agent: command stopped by timeout or cancel (128 + SIGKILL)
DEFAULT_EXECUTION_TIMEOUT = 3600  # aws:runShellScript default timeoutSeconds
LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
COUNTED_STATES = {"Pending", "Pending:Wait", "Pending:Proceed", "InService"}
TERMINAL_INVOCATION = {"Success", "Failed", "TimedOut", "Cancelled"}
ACCOUNT_KEY = re.compile(r"Credential=(\d{12})/")  # SigV4 header of a 12-digit access key id
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.:-]+)\s*\}\}")

# The one AWS-managed document the emulator knows, for ad-hoc shell commands.
AWS_RUN_SHELL_SCRIPT = {
    "schemaVersion": "2.2",
    "description": "Run a shell script (emulator's stand-in for the AWS-managed document).",
    "parameters": {
        "commands": {"type": "StringList"},
        "workingDirectory": {"type": "String", "default": ""},
        "executionTimeout": {"type": "String", "default": "3600"},
    },
    "mainSteps": [
        {
            "action": "aws:runShellScript",
            "name": "runShellScript",
            "inputs": {
                "runCommand": "{{ commands }}",
                "workingDirectory": "{{ workingDirectory }}",
                "timeoutSeconds": "{{ executionTimeout }}",
            },
        }
    ],
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso_z(moment: dt.datetime, millis: bool = False) -> str:
    text = moment.astimezone(dt.timezone.utc).isoformat(
        timespec="milliseconds" if millis else "seconds"
    )
    return text.replace("+00:00", "Z")


# --------------------------------------------------------------------------------------------
# Configuration and the extension's own state
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Config:
    state_dir: Path = Path(".emulator-state").resolve()
    scripts_dir: Path = Path(__file__).resolve().parent.parent / "node-scripts"
    endpoint: str = "http://127.0.0.1:5000"
    venv_bin: Path = Path(sys.prefix) / "bin"


CONFIG = Config()


class ExtensionState:
    """Everything the patches keep beside moto's models. One lock guards it (and the Auto Scaling
    mutations the patches make), since the server is threaded and commands run in threads."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.clear()

    def clear(self) -> None:
        self.commands: dict[tuple[str, str], list[CommandRecord]] = {}
        self.command_log: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.lifecycle_log: list[dict[str, Any]] = []
        self.lifecycle_actions: dict[str, LifecycleAction] = {}
        self.user_data_runs: dict[str, dict[str, Any]] = {}
        self.processes: set[subprocess.Popen] = set()


STATE = ExtensionState()


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


# --------------------------------------------------------------------------------------------
# Running scripts as if on an instance (shared by Run Command and user data)
# --------------------------------------------------------------------------------------------


def instance_tags(instance: Any) -> dict[str, str]:
    return dict(instance.ec2_backend.tags.get(instance.id, {}))


def access_key_for(account: str) -> str:
    """Dummy credentials; a 12-digit key id selects a non-default account (see patch 6)."""
    return "testing" if account == DEFAULT_ACCOUNT else account


def script_environment(instance: Any, account: str, region: str) -> dict[str, str]:
    """The environment of a script 'on' an instance, as docs/contracts.md (Local emulation) says.
    Creates the instance's node folder (with log/ and lock/) and its cluster's kube folder."""
    tags = instance_tags(instance)
    node_dir = CONFIG.state_dir / "nodes" / instance.id
    kube_dir = CONFIG.state_dir / "clusters" / (tags.get("joinkeeper:cluster") or "_none")
    for folder in (node_dir / "log", node_dir / "lock", kube_dir):
        folder.mkdir(parents=True, exist_ok=True)
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
        JOINKEEPER_AVAILABILITY_ZONE=instance.placement.zone,
        JOINKEEPER_NODE_DIR=f"{node_dir}/",
        JOINKEEPER_KUBE_STATE=f"{kube_dir}/",
        JOINKEEPER_LOG_DIR=str(node_dir / "log"),
        JOINKEEPER_LOCK_DIR=str(node_dir / "lock"),
    )
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
    script: Path, env: dict[str, str], cwd: Path, stdout: Any, stderr: Any
) -> subprocess.Popen:
    """Start a script file in its own process group (so a timeout kills all it started). A file
    with a shebang line runs by it; anything else runs with bash."""
    script.chmod(0o755)
    argv = (
        [str(script)]
        if script.read_text(errors="replace").startswith("#!")
        else ["bash", str(script)]
    )
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
    return proc


def forget_process(proc: subprocess.Popen) -> None:
    with STATE.lock:
        STATE.processes.discard(proc)


# --------------------------------------------------------------------------------------------
# Patch 1: SSM Run Command that runs
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class PluginResult:
    name: str
    status: str = "Pending"
    status_details: str = "Pending"
    response_code: int = -1
    started: dt.datetime | None = None
    finished: dt.datetime | None = None
    stdout: str = ""
    stderr: str = ""


@dataclasses.dataclass
class Invocation:
    instance_id: str
    instance_name: str
    undeliverable: bool
    env: dict[str, str]
    plugins: list[PluginResult]
    status: str = "Pending"
    status_details: str = "Pending"
    process: subprocess.Popen | None = None
    cancel_requested: bool = False

    @property
    def response_code(self) -> int:
        """-1 until it ends or when nothing ran; else the first failing step's code, or 0."""
        ran = [p for p in self.plugins if p.started]
        if self.status not in TERMINAL_INVOCATION or not ran:
            return -1
        return next((p.response_code for p in ran if p.response_code != 0), 0)

    @property
    def started(self) -> dt.datetime | None:
        return next((p.started for p in self.plugins if p.started), None)

    @property
    def finished(self) -> dt.datetime | None:
        ends = [p.finished for p in self.plugins if p.finished]
        return ends[-1] if ends and self.status in TERMINAL_INVOCATION else None

    def output(self, plugin_name: str | None) -> tuple[str, str]:
        chosen = [p for p in self.plugins if plugin_name in (None, p.name)]
        return (
            "".join(p.stdout for p in chosen)[:STDOUT_LIMIT],
            "".join(p.stderr for p in chosen)[:STDERR_LIMIT],
        )


@dataclasses.dataclass
class CommandRecord:
    command_id: str
    account: str
    region: str
    document_name: str
    document_version: str
    steps: list[dict[str, Any]]
    request: dict[str, Any]
    requested: dt.datetime
    invocations: dict[str, Invocation]

    def counts(self) -> dict[str, int]:
        invs = list(self.invocations.values())
        return {
            "TargetCount": len(invs),
            "CompletedCount": sum(1 for i in invs if i.status in TERMINAL_INVOCATION),
            "ErrorCount": sum(
                1
                for i in invs
                if i.status in ("Failed", "TimedOut") and i.status_details != "Undeliverable"
            ),
            "DeliveryTimedOutCount": 0,
        }

    def status(self) -> str:
        statuses = [i.status for i in self.invocations.values()]
        if any(s not in TERMINAL_INVOCATION for s in statuses):
            return "Pending" if all(s == "Pending" for s in statuses) else "InProgress"
        for worst in ("Cancelled", "Failed", "TimedOut"):
            if worst in statuses:
                return worst
        return "Success"


def ssm_error(code: str, message: str) -> SSMException:
    """An SSM error (moto finds the error's shape through the exception's module: moto.ssm)."""
    return SSMException(code, message)


def load_document(
    account: str, region: str, name: str, version: str | None
) -> tuple[dict[str, Any], str]:
    """The document's parsed content and version, from moto's SSM backend (moto internals:
    SimpleSystemManagerBackend._documents / Documents / Document.content_json)."""
    documents = ssm_backends[account][region]._documents.get(name)
    if documents is None:
        if name == "AWS-RunShellScript":
            return AWS_RUN_SHELL_SCRIPT, "1"
        raise ssm_error("InvalidDocument", "The specified document does not exist.")
    if version in (None, "", "$DEFAULT"):
        doc = documents.get_default_version()
    elif version == "$LATEST":
        doc = documents.get_latest_version()
    else:
        doc = documents.find_by_version(version)
        if doc is None:
            raise ssm_error("InvalidDocumentVersion", f"Document version {version} does not exist.")
    return doc.content_json, doc.document_version


def resolve_parameters(
    document: dict[str, Any], name: str, given: dict[str, list[str]]
) -> dict[str, list[str]]:
    """Given values, else the document's defaults; checked against the declarations as SSM does
    at SendCommand (unknown or missing parameters, allowedValues, allowedPattern)."""
    declared = document.get("parameters") or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ssm_error(
            "InvalidParameters",
            f"document {name} does not support parameters {', '.join(unknown)}.",
        )
    values: dict[str, list[str]] = {}
    for pname, decl in declared.items():
        if pname in given:
            raw = given[pname]
        elif "default" in decl:
            raw = decl["default"]
        else:
            raise ssm_error("InvalidParameters", f"document {name} requires parameter {pname}.")
        items = [str(v) for v in (raw if isinstance(raw, list) else [raw])]
        for item in items:
            if "allowedValues" in decl and item not in [str(v) for v in decl["allowedValues"]]:
                raise ssm_error(
                    "InvalidParameters",
                    f'Parameter "{pname}" value "{item}" is not one of its allowed values.',
                )
            if (
                decl.get("allowedPattern")
                and pname in given
                and not re.search(decl["allowedPattern"], item)
            ):
                raise ssm_error(
                    "InvalidParameters",
                    f'Parameter "{pname}" value "{item}" failed to satisfy constraint: {decl["allowedPattern"]}',
                )
        values[pname] = items
    return values


def substitute(text: str, values: dict[str, list[str]]) -> str:
    """{{ Name }} / {{Name}} -> the parameter's value (a list joined with spaces)."""
    return PLACEHOLDER.sub(
        lambda m: " ".join(values[m.group(1)]) if m.group(1) in values else m.group(0), text
    )


def render_lines(run_command: Any, values: dict[str, list[str]]) -> list[str]:
    """runCommand lines with parameters filled in; a line that is only a placeholder of a list
    parameter (AWS-RunShellScript's `{{ commands }}`) expands to one line per element."""
    lines = run_command if isinstance(run_command, list) else [run_command]
    rendered: list[str] = []
    for line in lines:
        whole = PLACEHOLDER.fullmatch(str(line).strip())
        if whole and whole.group(1) in values:
            rendered.extend(map_paths(v) for v in values[whole.group(1)])
        else:
            rendered.append(substitute(map_paths(str(line)), values))
    return rendered


def render_steps(document: dict[str, Any], values: dict[str, list[str]]) -> list[dict[str, Any]]:
    """mainSteps of a schema 2.2 command document, ready to run: {name, action, script,
    timeout, workdir}."""
    steps = []
    for index, step in enumerate(document.get("mainSteps") or []):
        inputs = step.get("inputs") or {}
        timeout_text = substitute(str(inputs.get("timeoutSeconds") or ""), values).strip()
        if not timeout_text and "executionTimeout" in values:
            timeout_text = " ".join(values["executionTimeout"]).strip()
        workdir = substitute(map_paths(str(inputs.get("workingDirectory") or "")), values).strip()
        steps.append(
            {
                "name": step.get("name") or f"step{index + 1}",
                "action": step.get("action", ""),
                "script": "\n".join(render_lines(inputs.get("runCommand", []), values)) + "\n",
                "timeout": (
                    int(timeout_text) if timeout_text.isdigit() else DEFAULT_EXECUTION_TIMEOUT
                ),
                "workdir": workdir,
            }
        )
    if not steps:
        raise ssm_error(
            "InvalidDocument",
            "The document has no mainSteps (the emulator runs schema 2.2 command documents).",
        )
    return steps


def agent_state(instance: Any) -> str:
    return instance_tags(instance).get("emulator:agent", "online")


def is_managed(instance: Any) -> bool:
    """A managed node: running, with an agent that is not offline."""
    return instance.state == "running" and agent_state(instance) != "offline"


def resolve_targets(
    account: str, region: str, instance_ids: list[str], targets: list[dict[str, Any]]
) -> list[Any]:
    """Exactly the instances the request names. InstanceIds must all be managed nodes (else
    InvalidInstanceId, as SSM answers); Targets select the managed nodes that match."""
    ec2 = ec2_backends[account][region]
    known = {i.id: i for i in ec2.all_instances()}
    if instance_ids:
        bad = [i for i in instance_ids if i not in known or not is_managed(known[i])]
        if bad:
            raise ssm_error(
                "InvalidInstanceId",
                f"Instances [[{', '.join(bad)}]] not in a valid state for account {account}",
            )
        return [known[i] for i in dict.fromkeys(instance_ids)]
    chosen = [i for i in known.values() if is_managed(i)]
    for target in targets:
        key, wanted = target.get("Key", ""), [str(v) for v in target.get("Values", [])]
        if key in ("InstanceIds", "instanceids"):
            chosen = [i for i in chosen if i.id in wanted]
        elif key.startswith("tag:"):
            chosen = [i for i in chosen if instance_tags(i).get(key[4:]) in wanted]
        elif key == "tag-key":
            chosen = [i for i in chosen if any(k in instance_tags(i) for k in wanted)]
        else:
            raise ssm_error("InvalidTarget", f"Target key {key} is not supported by the emulator.")
    if not targets:
        raise ssm_error("ValidationException", "InstanceIds or Targets must be specified.")
    return chosen


def run_invocation(command: CommandRecord, inv: Invocation) -> None:
    """Background thread: deliver (or not) and run each step, recording statuses as SSM does."""
    if inv.undeliverable:
        finish_invocation(inv, "Failed", "Undeliverable")
        return
    node_dir = CONFIG.state_dir / "nodes" / inv.instance_id
    for step, plugin in zip(command.steps, inv.plugins):
        with STATE.lock:
            if inv.cancel_requested:
                break
            inv.status = inv.status_details = "InProgress"
            plugin.status = plugin.status_details = "InProgress"
            plugin.started = utcnow()
        if step["action"] != "aws:runShellScript":
            finish_plugin(
                plugin,
                "Failed",
                "Failed",
                1,
                "",
                f"emulator: action {step['action']} is not supported\n",
            )
            break
        run_step(command, inv, step, plugin, node_dir)
        if plugin.status != "Success":
            break
    status = next(
        (p.status for p in inv.plugins if p.status not in ("Success", "Pending")), "Success"
    )
    if inv.cancel_requested:
        status = "Cancelled"
    details = {"TimedOut": "ExecutionTimedOut"}.get(status, status)
    finish_invocation(inv, status, details)


def run_step(
    command: CommandRecord,
    inv: Invocation,
    step: dict[str, Any],
    plugin: PluginResult,
    node_dir: Path,
) -> None:
    """Run one aws:runShellScript step with its execution timeout; the files are kept under
    <node dir>/ssm/<command id>/<step>/ like the agent's orchestration folder."""
    work = node_dir / "ssm" / command.command_id / re.sub(r"[^A-Za-z0-9_.-]", "_", plugin.name)
    work.mkdir(parents=True, exist_ok=True)
    script = work / "_script.sh"
    script.write_text(step["script"])
    cwd = Path(step["workdir"]) if step["workdir"] and Path(step["workdir"]).is_dir() else work
    with open(work / "stdout", "wb") as out, open(work / "stderr", "wb") as err:
        proc = start_script(script, inv.env, cwd, out, err)
        with STATE.lock:
            inv.process = proc
            if inv.cancel_requested:  # cancelled while it was starting
                kill_process_group(proc)
        timed_out = False
        try:
            code = proc.wait(timeout=step["timeout"])
        except subprocess.TimeoutExpired:
            timed_out = True
            kill_process_group(proc)
            code = proc.wait()
        finally:
            forget_process(proc)
    stdout = (work / "stdout").read_text(errors="replace")
    stderr = (work / "stderr").read_text(errors="replace")
    if inv.cancel_requested:
        finish_plugin(plugin, "Cancelled", "Cancelled", STOPPED_EXIT_CODE, stdout, stderr)
    elif timed_out:
        finish_plugin(plugin, "TimedOut", "ExecutionTimedOut", STOPPED_EXIT_CODE, stdout, stderr)
    elif code == 0:
        finish_plugin(plugin, "Success", "Success", 0, stdout, stderr)
    else:
        finish_plugin(plugin, "Failed", "Failed", code if code > 0 else 128 - code, stdout, stderr)


def finish_plugin(
    plugin: PluginResult, status: str, details: str, code: int, stdout: str, stderr: str
) -> None:
    with STATE.lock:
        plugin.status, plugin.status_details, plugin.response_code = status, details, code
        plugin.stdout, plugin.stderr = stdout[:STDOUT_LIMIT], stderr[:STDERR_LIMIT]
        plugin.started = plugin.started or utcnow()
        plugin.finished = utcnow()


def finish_invocation(inv: Invocation, status: str, details: str) -> None:
    with STATE.lock:
        for plugin in inv.plugins:
            if plugin.status in ("Pending", "InProgress"):
                plugin.status, plugin.status_details = status, details
                plugin.finished = utcnow() if plugin.started else None
        inv.status, inv.status_details, inv.process = status, details, None


def invocation_dict(command: CommandRecord, inv: Invocation, details: bool) -> dict[str, Any]:
    """ListCommandInvocations' CommandInvocation shape."""
    req = command.request
    result = {
        "CommandId": command.command_id,
        "InstanceId": inv.instance_id,
        "InstanceName": inv.instance_name,
        "Comment": req["Comment"],
        "DocumentName": command.document_name,
        "DocumentVersion": command.document_version,
        "RequestedDateTime": command.requested,
        "Status": inv.status,
        "StatusDetails": inv.status_details,
        "TraceOutput": "",
        "StandardOutputUrl": "",
        "StandardErrorUrl": "",
        "CommandPlugins": [],
        "ServiceRole": req["ServiceRoleArn"],
        "NotificationConfig": req["NotificationConfig"],
        "CloudWatchOutputConfig": req["CloudWatchOutputConfig"],
    }
    if details:
        result["CommandPlugins"] = [plugin_dict(p) for p in inv.plugins]
    return result


def plugin_dict(plugin: PluginResult) -> dict[str, Any]:
    output = plugin.stdout + (f"\n----------ERROR-------\n{plugin.stderr}" if plugin.stderr else "")
    entry: dict[str, Any] = {
        "Name": plugin.name,
        "Status": plugin.status,
        "StatusDetails": plugin.status_details,
        "ResponseCode": plugin.response_code,
        "Output": output[:PLUGIN_OUTPUT_LIMIT],
        "StandardOutputUrl": "",
        "StandardErrorUrl": "",
        "OutputS3Region": "",
        "OutputS3BucketName": "",
        "OutputS3KeyPrefix": "",
    }
    if plugin.started:
        entry["ResponseStartDateTime"] = plugin.started
    if plugin.finished:
        entry["ResponseFinishDateTime"] = plugin.finished
    return entry


def command_dict(command: CommandRecord) -> dict[str, Any]:
    """ListCommands' / SendCommand's Command shape."""
    req = command.request
    status = command.status()
    return {
        "CommandId": command.command_id,
        "DocumentName": command.document_name,
        "DocumentVersion": command.document_version,
        "Comment": req["Comment"],
        "ExpiresAfter": command.requested + dt.timedelta(seconds=req["TimeoutSeconds"]),
        "Parameters": req["Parameters"],
        "InstanceIds": req["InstanceIds"],
        "Targets": req["Targets"],
        "RequestedDateTime": command.requested,
        "Status": status,
        "StatusDetails": status,
        "OutputS3Region": req["OutputS3Region"],
        "OutputS3BucketName": req["OutputS3BucketName"],
        "OutputS3KeyPrefix": req["OutputS3KeyPrefix"],
        "MaxConcurrency": req["MaxConcurrency"],
        "MaxErrors": req["MaxErrors"],
        "ServiceRole": req["ServiceRoleArn"],
        "NotificationConfig": req["NotificationConfig"],
        "CloudWatchOutputConfig": req["CloudWatchOutputConfig"],
        "TimeoutSeconds": req["TimeoutSeconds"],
        **command.counts(),
    }


def find_command(account: str, region: str, command_id: str) -> CommandRecord | None:
    return next(
        (c for c in STATE.commands.get((account, region), []) if c.command_id == command_id), None
    )


def parse_time(value: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def filter_entries(
    entries: list[Any],
    filters: list[dict[str, Any]],
    status_of: Callable[[Any], str],
    requested_of: Callable[[Any], dt.datetime],
    document_of: Callable[[Any], str],
) -> list[Any]:
    """The Filters of ListCommands / ListCommandInvocations: Status, DocumentName, InvokedAfter,
    InvokedBefore (ExecutionStage is accepted and ignored)."""
    for flt in filters or []:
        key, value = flt.get("key") or flt.get("Key"), flt.get("value") or flt.get("Value") or ""
        if key == "Status":
            entries = [e for e in entries if status_of(e) == value]
        elif key == "DocumentName":
            entries = [e for e in entries if document_of(e) == value]
        elif key == "InvokedAfter":
            entries = [e for e in entries if requested_of(e) >= parse_time(value)]
        elif key == "InvokedBefore":
            entries = [e for e in entries if requested_of(e) <= parse_time(value)]
        elif key != "ExecutionStage":
            raise ssm_error("InvalidFilterKey", f"The filter key {key} is not valid.")
    return entries


def paginate(
    items: list[Any], max_results: int | None, token: str | None, default: int = 50
) -> tuple[list[Any], str | None]:
    """Offset tokens: enough for clients that follow NextToken."""
    start = int(token) if token and token.isdigit() else 0
    size = max_results or default
    page = items[start : start + size]
    return page, (str(start + size) if start + size < len(items) else None)


def ssm_send_command(self: SimpleSystemManagerResponse) -> ActionResult:
    """Replaces SendCommand: target only the named instances, validate the document and
    parameters, and start one background run per instance."""
    account, region = self.current_account, self.region
    name = self._get_param("DocumentName")
    document, version = load_document(account, region, name, self._get_param("DocumentVersion"))
    given = self._get_param("Parameters", {}) or {}
    values = resolve_parameters(document, name, given)
    steps = render_steps(document, values)
    instances = resolve_targets(
        account,
        region,
        self._get_param("InstanceIds", []) or [],
        self._get_param("Targets", []) or [],
    )
    request = {
        "Comment": self._get_param("Comment", "") or "",
        "Parameters": given,
        "InstanceIds": self._get_param("InstanceIds", []) or [],
        "Targets": self._get_param("Targets", []) or [],
        "TimeoutSeconds": self._get_int_param("TimeoutSeconds") or 3600,
        "MaxConcurrency": self._get_param("MaxConcurrency", "50"),
        "MaxErrors": self._get_param("MaxErrors", "0"),
        "OutputS3Region": self._get_param("OutputS3Region", "") or "",
        "OutputS3BucketName": self._get_param("OutputS3BucketName", "") or "",
        "OutputS3KeyPrefix": self._get_param("OutputS3KeyPrefix", "") or "",
        "ServiceRoleArn": self._get_param("ServiceRoleArn", "") or "",
        "NotificationConfig": self._get_param("NotificationConfig")
        or {"NotificationArn": "", "NotificationEvents": [], "NotificationType": ""},
        "CloudWatchOutputConfig": self._get_param("CloudWatchOutputConfig")
        or {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False},
    }
    command = CommandRecord(
        command_id=str(uuid.uuid4()),
        account=account,
        region=region,
        document_name=name,
        document_version=version,
        steps=steps,
        request=request,
        requested=utcnow(),
        invocations={
            i.id: Invocation(
                instance_id=i.id,
                instance_name=i.private_dns_name,
                undeliverable=agent_state(i) == "undeliverable",
                env=script_environment(i, account, region),
                plugins=[PluginResult(s["name"]) for s in steps],
            )
            for i in instances
        },
    )
    with STATE.lock:
        STATE.commands.setdefault((account, region), []).append(command)
        STATE.command_log.append(
            {
                "command_id": command.command_id,
                "document": name,
                "instance_ids": list(command.invocations),
                "parameters": given,
                "time": iso_z(command.requested, millis=True),
                "account": account,
                "region": region,
                "comment": request["Comment"],
            }
        )
        response = command_dict(command)
    LOG.info(
        "send-command %s %s -> %s",
        command.command_id,
        name,
        ",".join(command.invocations) or "(no target)",
    )
    for inv in command.invocations.values():
        threading.Thread(
            target=run_invocation, args=(command, inv), name=f"cmd-{inv.instance_id}", daemon=True
        ).start()
    return ActionResult({"Command": response})


def ssm_get_command_invocation(self: SimpleSystemManagerResponse) -> ActionResult:
    """Replaces GetCommandInvocation: the invocation's real status, exit code and output."""
    command_id, instance_id = self._get_param("CommandId"), self._get_param("InstanceId")
    plugin_name = self._get_param("PluginName")
    with STATE.lock:
        command = find_command(self.current_account, self.region, command_id)
        inv = command.invocations.get(instance_id) if command else None
        if inv is None:
            raise ssm_error(
                "InvocationDoesNotExist",
                "An error occurred (InvocationDoesNotExist) when calling the GetCommandInvocation operation",
            )
        plugins = [p for p in inv.plugins if plugin_name in (None, p.name)]
        if not plugins:
            raise ssm_error(
                "InvalidPluginName", f"Plugin {plugin_name} does not exist in the document."
            )
        stdout, stderr = inv.output(plugin_name)
        start, end = inv.started, inv.finished
        code = plugins[0].response_code if plugin_name else inv.response_code
        status, details = (
            (plugins[0].status, plugins[0].status_details)
            if plugin_name
            else (inv.status, inv.status_details)
        )
        return ActionResult(
            {
                "CommandId": command_id,
                "InstanceId": instance_id,
                "Comment": command.request["Comment"],
                "DocumentName": command.document_name,
                "DocumentVersion": command.document_version,
                "PluginName": plugin_name or plugins[0].name,
                "ResponseCode": code,
                "ExecutionStartDateTime": iso_z(start, millis=True) if start else "",
                "ExecutionElapsedTime": (
                    f"PT{((end or utcnow()) - start).total_seconds():.3f}S" if start else ""
                ),
                "ExecutionEndDateTime": iso_z(end, millis=True) if end else "",
                "Status": status,
                "StatusDetails": details,
                "StandardOutputContent": stdout,
                "StandardOutputUrl": "",
                "StandardErrorContent": stderr,
                "StandardErrorUrl": "",
                "CloudWatchOutputConfig": command.request["CloudWatchOutputConfig"],
            }
        )


def ssm_list_commands(self: SimpleSystemManagerResponse) -> ActionResult:
    """Replaces ListCommands (newest first), with CommandId, InstanceId, Filters, pagination."""
    command_id, instance_id = self._get_param("CommandId"), self._get_param("InstanceId")
    with STATE.lock:
        commands = list(reversed(STATE.commands.get((self.current_account, self.region), [])))
        if command_id:
            commands = [c for c in commands if c.command_id == command_id]
            if not commands:
                raise ssm_error("InvalidCommandId", "Invalid command id.")
        if instance_id:
            commands = [c for c in commands if instance_id in c.invocations]
        commands = filter_entries(
            commands,
            self._get_param("Filters", []),
            lambda c: c.status(),
            lambda c: c.requested,
            lambda c: c.document_name,
        )
        page, token = paginate(
            commands, self._get_int_param("MaxResults"), self._get_param("NextToken")
        )
        return ActionResult({"Commands": [command_dict(c) for c in page], "NextToken": token})


def ssm_list_command_invocations(self: SimpleSystemManagerResponse) -> ActionResult:
    """Implements ListCommandInvocations (moto answers 500), with Details for the plugins."""
    command_id, instance_id = self._get_param("CommandId"), self._get_param("InstanceId")
    details = self._get_bool_param("Details", False)
    with STATE.lock:
        commands = list(reversed(STATE.commands.get((self.current_account, self.region), [])))
        if command_id:
            commands = [c for c in commands if c.command_id == command_id]
        pairs = [
            (c, i)
            for c in commands
            for i in c.invocations.values()
            if instance_id in (None, i.instance_id)
        ]
        pairs = filter_entries(
            pairs,
            self._get_param("Filters", []),
            lambda p: p[1].status,
            lambda p: p[0].requested,
            lambda p: p[0].document_name,
        )
        page, token = paginate(
            pairs, self._get_int_param("MaxResults"), self._get_param("NextToken")
        )
        return ActionResult(
            {
                "CommandInvocations": [invocation_dict(c, i, details) for c, i in page],
                "NextToken": token,
            }
        )


def ssm_cancel_command(self: SimpleSystemManagerResponse) -> ActionResult:
    """Implements CancelCommand: pending invocations end Cancelled; running ones are killed."""
    command_id, only = self._get_param("CommandId"), self._get_param("InstanceIds") or None
    with STATE.lock:
        command = find_command(self.current_account, self.region, command_id)
        if command is None:
            raise ssm_error("InvalidCommandId", "Invalid command id.")
        for inv in command.invocations.values():
            if (only and inv.instance_id not in only) or inv.status in TERMINAL_INVOCATION:
                continue
            inv.cancel_requested = True
            if inv.process is not None:
                kill_process_group(inv.process)
            elif inv.status == "Pending":
                finish_invocation(inv, "Cancelled", "Cancelled")
    return EmptyResult()


# --------------------------------------------------------------------------------------------
# Patch 2: DescribeInstanceInformation
# --------------------------------------------------------------------------------------------


def instance_information(instance: Any, now: dt.datetime) -> dict[str, Any]:
    return {
        "InstanceId": instance.id,
        "PingStatus": "Online",
        "LastPingDateTime": now,
        "AgentVersion": "3.3.0.0",
        "IsLatestVersion": True,
        "PlatformType": "Linux",
        "PlatformName": "Amazon Linux",
        "PlatformVersion": "2023",
        "ResourceType": "EC2Instance",
        "IPAddress": instance.private_ip,
        "ComputerName": instance.private_dns_name,
        "SourceId": instance.id,
        "SourceType": "AWS::EC2::Instance",
    }


def instance_info_matches(
    info: dict[str, Any], tags: dict[str, str], key: str, values: list[str]
) -> bool:
    if key == "InstanceIds":
        return info["InstanceId"] in values
    if key == "PingStatus":
        return info["PingStatus"] in values
    if key == "ResourceType":
        return info["ResourceType"] in values
    if key == "PlatformTypes":
        return info["PlatformType"] in values
    if key.startswith("tag:"):
        return tags.get(key[4:]) in values
    if key == "tag-key":
        return any(v in tags for v in values)
    raise ssm_error("InvalidFilterKey", f"The filter key {key} is not valid.")


def ssm_describe_instance_information(self: SimpleSystemManagerResponse) -> ActionResult:
    """Implements DescribeInstanceInformation (moto answers 500): running instances whose
    emulator:agent tag is not offline are Online managed nodes."""
    filters = [
        (f["key"], f.get("valueSet", []))
        for f in self._get_param("InstanceInformationFilterList", []) or []
    ]
    filters += [(f["Key"], f.get("Values", [])) for f in self._get_param("Filters", []) or []]
    now = utcnow()
    infos = []
    for instance in ec2_backends[self.current_account][self.region].all_instances():
        if not is_managed(instance):
            continue
        info, tags = instance_information(instance, now), instance_tags(instance)
        if all(instance_info_matches(info, tags, key, values) for key, values in filters):
            infos.append(info)
    page, token = paginate(infos, self._get_int_param("MaxResults"), self._get_param("NextToken"))
    return ActionResult({"InstanceInformationList": page, "NextToken": token})


# --------------------------------------------------------------------------------------------
# Patches 3 and 4: Auto Scaling lifecycle hooks and their events
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class LifecycleAction:
    token: str
    account: str
    region: str
    group: FakeAutoScalingGroup
    hook_name: str
    transition: str
    state: InstanceState
    heartbeat_timeout: int
    default_result: str
    started: dt.datetime
    last_heartbeat: dt.datetime
    result: str | None = None
    ended: dt.datetime | None = None
    ended_by: str | None = None  # api | timeout | superseded

    @property
    def instance_id(self) -> str:
        return self.state.instance.id

    @property
    def deadline(self) -> dt.datetime:
        global_timeout = min(172800, 100 * self.heartbeat_timeout)
        return min(
            self.last_heartbeat + dt.timedelta(seconds=self.heartbeat_timeout),
            self.started + dt.timedelta(seconds=global_timeout),
        )

    def alive(self) -> bool:
        """Still pending, and its instance still in its group (an instance terminated through
        EC2, or a deleted group, ends the action silently)."""
        backend = self.group.autoscaling_backend
        return (
            self.result is None
            and backend.autoscaling_groups.get(self.group.name) is self.group
            and self.state in self.group.instance_states
            and self.state.instance.state != "terminated"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "account": self.account,
            "region": self.region,
            "group": self.group.name,
            "hook": self.hook_name,
            "transition": self.transition,
            "instance_id": self.instance_id,
            "started": iso_z(self.started),
            "last_heartbeat": iso_z(self.last_heartbeat),
            "deadline": iso_z(self.deadline),
            "result": self.result,
            "ended": iso_z(self.ended) if self.ended else None,
            "ended_by": self.ended_by,
        }


def hooks_for(group: FakeAutoScalingGroup, transition: str) -> list[Any]:
    """The group's hooks for one transition (moto: AutoScalingBackend.lifecycle_hooks)."""
    hooks = group.autoscaling_backend.lifecycle_hooks.values()
    return sorted(
        (
            h
            for h in hooks
            if h.auto_scaling_group_name == group.name and h.lifecycle_transition == transition
        ),
        key=lambda h: h.name,
    )


def lifecycle_event(action: LifecycleAction, hook: Any) -> dict[str, Any]:
    """The EventBridge event Auto Scaling sends for a lifecycle action."""
    launching = action.transition == LAUNCHING
    detail = {
        "LifecycleActionToken": action.token,
        "AutoScalingGroupName": action.group.name,
        "LifecycleHookName": action.hook_name,
        "EC2InstanceId": action.instance_id,
        "LifecycleTransition": action.transition,
    }
    if getattr(hook, "notification_metadata", None):
        detail["NotificationMetadata"] = hook.notification_metadata
    detail["Origin"], detail["Destination"] = (
        ("EC2", "AutoScalingGroup") if launching else ("AutoScalingGroup", "EC2")
    )
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": (
            "EC2 Instance-launch Lifecycle Action"
            if launching
            else "EC2 Instance-terminate Lifecycle Action"
        ),
        "source": "aws.autoscaling",
        "account": action.account,
        "time": iso_z(action.started),
        "region": action.region,
        "resources": [action.group.arn],
        "detail": detail,
    }


def begin_wait(
    group: FakeAutoScalingGroup, state: InstanceState, transition: str, hooks: list[Any]
) -> None:
    """Put an instance in Pending:Wait / Terminating:Wait with one action (and event) per hook."""
    state.lifecycle_state = "Pending:Wait" if transition == LAUNCHING else "Terminating:Wait"
    now = utcnow()
    for hook in hooks:
        action = LifecycleAction(
            token=str(uuid.uuid4()),
            account=group.account_id,
            region=group.region,
            group=group,
            hook_name=hook.name,
            transition=transition,
            state=state,
            heartbeat_timeout=int(hook.heartbeat_timeout),
            default_result=hook.default_result,
            started=now,
            last_heartbeat=now,
        )
        STATE.lifecycle_actions[action.token] = action
        STATE.events.append(lifecycle_event(action, hook))
        LOG.info(
            "%s %s %s hook=%s token=%s",
            group.name,
            state.instance.id,
            state.lifecycle_state,
            hook.name,
            action.token,
        )


def begin_launch(group: FakeAutoScalingGroup, state: InstanceState) -> None:
    hooks = hooks_for(group, LAUNCHING)
    if hooks:
        begin_wait(group, state, LAUNCHING, hooks)


def pending_actions(state: InstanceState, transition: str | None = None) -> list[LifecycleAction]:
    return [
        a
        for a in STATE.lifecycle_actions.values()
        if a.state is state and a.result is None and transition in (None, a.transition)
    ]


def end_action(action: LifecycleAction, result: str, by: str) -> None:
    action.result, action.ended, action.ended_by = result, utcnow(), by


def begin_termination(group: FakeAutoScalingGroup, state: InstanceState) -> None:
    """Scale-in of one instance: Terminating:Wait when the group has a terminate hook, else
    terminated now. A deleted group (flag set by the delete patch) skips the hooks."""
    for action in pending_actions(state):
        end_action(action, "ABANDON", "superseded")
    hooks = [] if getattr(group, "_jk_deleting", False) else hooks_for(group, TERMINATING)
    if hooks:
        begin_wait(group, state, TERMINATING, hooks)
    else:
        terminate_now(group, state)


def terminate_now(group: FakeAutoScalingGroup, state: InstanceState) -> None:
    """Remove the instance from its group and terminate it, without refilling the group."""
    state.lifecycle_state = "Terminated"
    if state in group.instance_states:
        group.instance_states.remove(state)
    if state.instance.state != "terminated":
        group.ec2_backend.terminate_instances([state.instance.id])
    if group.name in group.autoscaling_backend.autoscaling_groups:
        group.autoscaling_backend.update_attached_elbs(group.name)
        group.autoscaling_backend.update_attached_target_groups(group.name)


def finish_action(action: LifecycleAction, result: str, by: str) -> None:
    """Apply a completed (or timed-out) action: InService once every launch action said
    CONTINUE; terminated on a launch ABANDON or once the terminate actions are done."""
    end_action(action, result, by)
    state, group = action.state, action.group
    others = pending_actions(state, action.transition)
    if result == "ABANDON":
        for other in others:
            end_action(other, "ABANDON", "superseded")
        others = []
    if others:
        return
    if action.transition == LAUNCHING and result == "CONTINUE":
        state.lifecycle_state = "InService"
        group.autoscaling_backend.update_attached_elbs(group.name)
        group.autoscaling_backend.update_attached_target_groups(group.name)
    else:
        terminate_now(group, state)
    LOG.info(
        "%s %s lifecycle %s by %s -> %s",
        group.name,
        state.instance.id,
        result,
        by,
        state.lifecycle_state,
    )


def expire_lifecycle_actions() -> None:
    """Lazily (before each request) apply the DefaultResult of actions past their deadline, and
    drop actions whose instance went away."""
    now = utcnow()
    with STATE.lock:
        for action in list(STATE.lifecycle_actions.values()):
            if action.result is not None:
                continue
            if not action.alive():
                end_action(action, "ABANDON", "superseded")
            elif action.deadline <= now:
                finish_action(action, action.default_result, "timeout")


def find_active_action(
    account: str,
    region: str,
    group_name: str,
    hook_name: str,
    token: str | None,
    instance_id: str | None,
) -> LifecycleAction | None:
    for action in STATE.lifecycle_actions.values():
        if (action.account, action.region, action.group.name, action.hook_name) != (
            account,
            region,
            group_name,
            hook_name,
        ):
            continue
        matches = action.token == token if token else action.instance_id == instance_id
        if matches and action.alive():
            return action
    return None


def record_lifecycle_call(
    account: str,
    region: str,
    group: str,
    hook: str,
    instance_id: str | None,
    token: str | None,
    kind: str,
    ok: bool,
) -> None:
    STATE.lifecycle_log.append(
        {
            "time": iso_z(utcnow(), millis=True),
            "account": account,
            "region": region,
            "group": group,
            "instance_id": instance_id,
            "hook": hook,
            "token": token,
            "action": kind,
            "result": "ok" if ok else "rejected",
        }
    )


def lifecycle_call(response: AutoScalingResponse, kind: str) -> LifecycleAction:
    """Shared body of CompleteLifecycleAction and RecordLifecycleActionHeartbeat: find the
    pending action or answer ValidationError as AWS does; log the call either way."""
    account, region = response.current_account, response.region
    group, hook = response._get_param("AutoScalingGroupName"), response._get_param(
        "LifecycleHookName"
    )
    token, instance_id = response._get_param("LifecycleActionToken"), response._get_param(
        "InstanceId"
    )
    action = find_active_action(account, region, group, hook, token, instance_id)
    record_lifecycle_call(
        account,
        region,
        group,
        hook,
        action.instance_id if action else instance_id,
        token,
        kind,
        action is not None,
    )
    if action is None:
        if token:
            raise ValidationError(f"No active Lifecycle Action found with token {token}")
        raise ValidationError(f"No active Lifecycle Action found with instance ID {instance_id}")
    return action


def asg_complete_lifecycle_action(self: AutoScalingResponse) -> ActionResult:
    """Implements CompleteLifecycleAction (moto answers 500)."""
    result = self._get_param("LifecycleActionResult")
    if result not in ("CONTINUE", "ABANDON"):
        raise ValidationError(
            f"Invalid value for LifecycleActionResult: {result}. Valid values are CONTINUE and ABANDON."
        )
    with STATE.lock:
        expire_lifecycle_actions()
        action = lifecycle_call(self, result)
        finish_action(action, result, "api")
    return EmptyResult()


def asg_record_lifecycle_action_heartbeat(self: AutoScalingResponse) -> ActionResult:
    """Implements RecordLifecycleActionHeartbeat (moto answers 500): restarts the timeout."""
    with STATE.lock:
        expire_lifecycle_actions()
        action = lifecycle_call(self, "HEARTBEAT")
        action.last_heartbeat = utcnow()
    return EmptyResult()


def wrap_put_lifecycle_hook(original: Callable) -> Callable:
    def put_lifecycle_hook(self: AutoScalingResponse) -> ActionResult:
        """PutLifecycleHook also keeps NotificationMetadata (moto drops it), so that events
        and DescribeLifecycleHooks carry it."""
        result = original(self)
        key = f"{self._get_param('AutoScalingGroupName')}_{self._get_param('LifecycleHookName')}"
        hook = self.autoscaling_backend.lifecycle_hooks.get(key)
        if hook is not None:
            hook.notification_metadata = self._get_param("NotificationMetadata")
        return result

    return put_lifecycle_hook


def wrap_create_auto_scaling_group(original: Callable) -> Callable:
    def create_auto_scaling_group(self: AutoScalingResponse) -> ActionResult:
        """CreateAutoScalingGroup honours LifecycleHookSpecificationList (moto drops it): the
        hooks exist before the first instances launch, so those wait too."""
        name = self._get_param("AutoScalingGroupName")
        created = []
        for spec in self._get_param("LifecycleHookSpecificationList", []) or []:
            hook = self.autoscaling_backend.create_lifecycle_hook(
                name=spec["LifecycleHookName"],
                as_name=name,
                transition=spec["LifecycleTransition"],
                timeout=int(spec["HeartbeatTimeout"]) if spec.get("HeartbeatTimeout") else None,
                result=spec.get("DefaultResult"),
            )
            hook.notification_metadata = spec.get("NotificationMetadata")
            created.append(f"{name}_{hook.name}")
        try:
            with STATE.lock:
                return original(self)
        except Exception:
            for key in created:
                self.autoscaling_backend.lifecycle_hooks.pop(key, None)
            raise

    return create_auto_scaling_group


def wrap_replace_instances(original: Callable) -> Callable:
    def replace_autoscaling_group_instances(
        self: FakeAutoScalingGroup, count_needed: int, propagated_tags: dict[str, str]
    ) -> None:
        """New group instances go to Pending:Wait when the group has a launch hook."""
        with STATE.lock:
            before = set(map(id, self.instance_states))
            original(self, count_needed, propagated_tags)
            for state in [s for s in self.instance_states if id(s) not in before]:
                begin_launch(self, state)

    return replace_autoscaling_group_instances


def instances_wanted(group: FakeAutoScalingGroup) -> int:
    """Instances needed for the desired capacity (mixed-instances groups: the first override's
    WeightedCapacity, as moto uses)."""
    desired = group.desired_capacity or 0
    overrides = ((group.mixed_instances_policy or {}).get("LaunchTemplate") or {}).get(
        "Overrides"
    ) or []
    weight = str(overrides[0].get("WeightedCapacity", "1")) if overrides else "1"
    return math.ceil(desired / max(int(weight) if weight.isdigit() else 1, 1))


def asg_set_desired_capacity(self: FakeAutoScalingGroup, new_capacity: int | None) -> None:
    """Replaces FakeAutoScalingGroup.set_desired_capacity: instances in Pending:Wait count toward
    capacity (moto counts only InService, so it would launch again), and scale-in goes through
    the terminate hooks (Terminating:Wait) instead of terminating at once."""
    with STATE.lock:
        self.desired_capacity = self.min_size if new_capacity is None else new_capacity
        counted = [s for s in self.instance_states if s.lifecycle_state in COUNTED_STATES]
        delta = instances_wanted(self) - len(counted)
        if delta > 0:
            self.replace_autoscaling_group_instances(delta, self.get_propagated_tags())
        elif delta < 0:
            for state in [s for s in counted if not s.protected_from_scale_in][:-delta]:
                begin_termination(self, state)
        if self.name in self.autoscaling_backend.autoscaling_groups:
            self.autoscaling_backend.update_attached_elbs(self.name)
            self.autoscaling_backend.update_attached_target_groups(self.name)


def asg_terminate_instance(
    self: AutoScalingBackend, instance_id: str, should_decrement: bool
) -> TerminateInstanceActivity:
    """Replaces AutoScalingBackend.terminate_instance (TerminateInstanceInAutoScalingGroup): the
    instance goes through the terminate hooks; without decrement a replacement is launched."""
    with STATE.lock:
        state = next(
            (
                s
                for g in self.autoscaling_groups.values()
                for s in g.instance_states
                if s.instance.id == instance_id
            ),
            None,
        )
        if state is None:
            raise ValidationError(
                f"Instance Id not found - No managed instance found for instance ID: {instance_id}"
            )
        group = state.auto_scaling_group
        original_size = group.desired_capacity
        if state.lifecycle_state in COUNTED_STATES:
            if should_decrement:
                if (group.desired_capacity or 0) <= (group.min_size or 0):
                    raise ValidationError(
                        f"Currently, desiredSize equals minSize ({group.min_size}). Terminating instance without replacement will violate "
                        "group's min size constraint. Either set shouldDecrementDesiredCapacity flag to false or lower group's min size."
                    )
                group.desired_capacity -= 1
            begin_termination(group, state)
            group.set_desired_capacity(group.desired_capacity)
        return TerminateInstanceActivity(state.instance, original_size)


def wrap_delete_group(original: Callable) -> Callable:
    def delete_auto_scaling_group(self: AutoScalingBackend, group_name: str) -> None:
        """Deleting a group terminates its instances without hooks, ends their pending
        actions and deletes the group's hooks (moto keeps them for a same-named group)."""
        with STATE.lock:
            group = self.autoscaling_groups.get(group_name)
            if group is not None:
                group._jk_deleting = True
            original(self, group_name)
            if group is not None:
                for state in list(group.instance_states):
                    for action in pending_actions(state):
                        end_action(action, "ABANDON", "superseded")
                    terminate_now(group, state)
            for key in [
                k
                for k, h in self.lifecycle_hooks.items()
                if h.auto_scaling_group_name == group_name
            ]:
                del self.lifecycle_hooks[key]

    return delete_auto_scaling_group


# --------------------------------------------------------------------------------------------
# Patch 5: user data, as cloud-init runs it
# --------------------------------------------------------------------------------------------


def user_data_text(user_data: Any) -> str | None:
    """moto keeps user data as a Base64EncodedString, or (launch templates) a base64 str."""
    if user_data is None:
        return None
    if hasattr(user_data, "decode") and not isinstance(user_data, (str, bytes)):
        return user_data.decode()
    raw = user_data.decode() if isinstance(user_data, bytes) else str(user_data)
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return raw


def run_user_data(record: dict[str, Any], script: Path, env: dict[str, str]) -> None:
    """Background thread: run the user data, output appended to cloud-init-output.log."""
    with open(record["log"], "ab") as log:
        proc = start_script(script, env, script.parent, log, subprocess.STDOUT)
        code = proc.wait()
        forget_process(proc)
    with STATE.lock:
        record.update(status="done", exit_code=code, finished=iso_z(utcnow(), millis=True))
    LOG.info("user data of %s exited %s", record["instance_id"], code)


def schedule_user_data(instance: Any, account: str, region: str) -> None:
    text = user_data_text(getattr(instance, "user_data", None))
    if not text or instance_tags(instance).get("emulator:user-data") == "skip":
        return
    env = script_environment(instance, account, region)
    node_dir = Path(env["JOINKEEPER_NODE_DIR"])
    if text.lstrip().startswith(("#cloud-config", "Content-Type:", "#include")):
        LOG.warning(
            "user data of %s is not a script; cloud-config and MIME are not run", instance.id
        )
        return
    script = node_dir / "user-data"
    script.write_text(map_paths(text))
    record = {
        "instance_id": instance.id,
        "account": account,
        "region": region,
        "status": "running",
        "exit_code": None,
        "started": iso_z(utcnow(), millis=True),
        "finished": None,
        "log": str(node_dir / "log" / "cloud-init-output.log"),
    }
    with STATE.lock:
        STATE.user_data_runs[instance.id] = record
    threading.Thread(
        target=run_user_data,
        args=(record, script, env),
        name=f"user-data-{instance.id}",
        daemon=True,
    ).start()


def wrap_run_instances(original: Callable) -> Callable:
    def run_instances(self: EC2Backend, *args: Any, **kwargs: Any) -> Any:
        """Every launched instance with user data runs it once (RunInstances and groups)."""
        reservation = original(self, *args, **kwargs)
        for instance in reservation.instances:
            schedule_user_data(instance, self.account_id, self.region_name)
        return reservation

    return run_instances


# --------------------------------------------------------------------------------------------
# Patch 6: account from a 12-digit access key id
# --------------------------------------------------------------------------------------------


def wrap_get_current_account(original: Callable) -> Callable:
    def get_current_account(self: BaseResponse) -> str:
        """A request signed with access key id `<12 digits>` acts in that account (unless
        MOTO_ACCOUNT_ID or the x-moto-account-id header says otherwise)."""
        if "MOTO_ACCOUNT_ID" not in os.environ and "x-moto-account-id" not in self.headers:
            match = ACCOUNT_KEY.search(self.headers.get("Authorization") or "")
            if match:
                return match.group(1)
        return original(self)

    return get_current_account


def install_patches() -> None:
    """Monkeypatch moto's classes (see the module docstring for each gap)."""
    ssm = SimpleSystemManagerResponse
    ssm.send_command = ssm_send_command
    ssm.get_command_invocation = ssm_get_command_invocation
    ssm.list_commands = ssm_list_commands
    ssm.list_command_invocations = ssm_list_command_invocations
    ssm.cancel_command = ssm_cancel_command
    ssm.describe_instance_information = ssm_describe_instance_information

    asg = AutoScalingResponse
    asg.complete_lifecycle_action = asg_complete_lifecycle_action
    asg.record_lifecycle_action_heartbeat = asg_record_lifecycle_action_heartbeat
    asg.put_lifecycle_hook = wrap_put_lifecycle_hook(asg.put_lifecycle_hook)
    asg.create_auto_scaling_group = wrap_create_auto_scaling_group(asg.create_auto_scaling_group)
    FakeAutoScalingGroup.replace_autoscaling_group_instances = wrap_replace_instances(
        FakeAutoScalingGroup.replace_autoscaling_group_instances
    )
    FakeAutoScalingGroup.set_desired_capacity = asg_set_desired_capacity
    AutoScalingBackend.terminate_instance = asg_terminate_instance
    AutoScalingBackend.delete_auto_scaling_group = wrap_delete_group(
        AutoScalingBackend.delete_auto_scaling_group
    )

    EC2Backend.run_instances = wrap_run_instances(EC2Backend.run_instances)
    BaseResponse.get_current_account = wrap_get_current_account(BaseResponse.get_current_account)


# --------------------------------------------------------------------------------------------
# Control API (/_joinkeeper/...) and the WSGI wrapper around moto's app
# --------------------------------------------------------------------------------------------


def selected(
    entries: list[dict[str, Any]], query: dict[str, list[str]], account: str | None
) -> list[dict[str, Any]]:
    """Entries of one account (query ?account= or header x-moto-account-id) and group."""
    if account:
        entries = [e for e in entries if e.get("account") == account]
    if "group" in query:
        entries = [
            e
            for e in entries
            if query["group"][0]
            in (e.get("group"), (e.get("detail") or {}).get("AutoScalingGroupName"))
        ]
    return entries


def control(
    method: str, path: str, query: dict[str, list[str]], account: str | None
) -> tuple[int, Any]:
    """Handle one control API call; returns (HTTP status, JSON body)."""
    with STATE.lock:
        if method == "GET" and path == "events":
            events = selected(STATE.events, query, account)
            if query.get("keep", ["0"])[0] not in ("1", "true"):
                drained = set(map(id, events))
                STATE.events = [e for e in STATE.events if id(e) not in drained]
            return 200, events
        if method == "GET" and path == "lifecycle-log":
            return 200, selected(STATE.lifecycle_log, query, account)
        if method == "GET" and path == "lifecycle-actions":
            return 200, selected(
                [a.as_dict() for a in STATE.lifecycle_actions.values()], query, account
            )
        if method == "GET" and path == "commands":
            return 200, selected(STATE.command_log, query, account)
        if method == "GET" and path == "user-data":
            return 200, selected(list(STATE.user_data_runs.values()), query, account)
        if method == "GET" and path == "health":
            return 200, {
                "ok": True,
                "endpoint": CONFIG.endpoint,
                "state_dir": str(CONFIG.state_dir),
                "scripts_dir": str(CONFIG.scripts_dir),
            }
    if method == "POST" and path == "reset":
        reset_extension(wipe_files=False)
        return 200, {"reset": True}
    return 404, {"error": f"no control endpoint {method} /_joinkeeper/{path}"}


class EmulatorApp:
    """WSGI wrapper: serves /_joinkeeper/, resets the extension with moto, and applies due
    lifecycle timeouts before handing any other request to moto."""

    def __init__(self, moto_app: Any) -> None:
        self.moto_app = moto_app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        full_reset = path.rstrip("/") == "/moto-api/reset" and method == "POST"
        if full_reset:
            reset_extension(wipe_files=True)
        else:
            expire_lifecycle_actions()
        if path.startswith("/_joinkeeper/"):
            query = parse_qs(environ.get("QUERY_STRING", ""))
            account = query.get("account", [None])[0] or environ.get("HTTP_X_MOTO_ACCOUNT_ID")
            status, body = control(method, path[len("/_joinkeeper/") :].strip("/"), query, account)
            payload = json.dumps(body, indent=1).encode()
            start_response(
                f"{status} {'OK' if status == 200 else 'Not Found'}",
                [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
            )
            return [payload]
        return self.moto_app(environ, start_response)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--state-dir", required=True, help="node and cluster folders of the emulated instances"
    )
    parser.add_argument(
        "--scripts-dir",
        default=str(Path(__file__).resolve().parent.parent / "node-scripts"),
        help="what /opt/joinkeeper/ maps to",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    CONFIG.state_dir = Path(args.state_dir).resolve()
    CONFIG.state_dir.mkdir(parents=True, exist_ok=True)
    CONFIG.scripts_dir = Path(args.scripts_dir).resolve()
    if not (CONFIG.venv_bin / "aws").exists():
        CONFIG.venv_bin = Path(sys.executable).parent
    install_patches()

    app = EmulatorApp(DomainDispatcherApplication(create_backend_app))
    server = make_server(
        args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler
    )
    port = server.server_port
    client_host = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host
    CONFIG.endpoint = f"http://{client_host}:{port}"
    os.environ.setdefault("MOTO_PORT", str(port))

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    LOG.info(
        "serving on %s (state %s, scripts %s)",
        CONFIG.endpoint,
        CONFIG.state_dir,
        CONFIG.scripts_dir,
    )
    print(f"ready http://{client_host}:{port}", flush=True)
    code = 0
    try:
        server.serve_forever()
    except SystemExit:
        pass
    except BaseException:  # noqa: BLE001 - log whatever stopped the server, then exit non-zero
        LOG.exception("server stopped")
        code = 1
    kill_all_children()
    LOG.info("stopped")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip joining request threads and tearing down moto's models: stop at once


if __name__ == "__main__":
    main()
