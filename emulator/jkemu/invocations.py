"""Run Command invocations: their records and the background runs of each step."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import subprocess
from pathlib import Path
from typing import Any

from .common import (
    CONFIG,
    STATE,
    STDERR_LIMIT,
    STDOUT_LIMIT,
    STOPPED_EXIT_CODE,
    TERMINAL_INVOCATION,
    utcnow,
)
from .scripts import forget_process, kill_process_group, start_script


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
                if i.status in ("Failed", "TimedOut")
                and i.status_details not in ("Undeliverable", "DeliveryTimedOut")
            ),
            "DeliveryTimedOutCount": sum(
                1 for i in invs if i.status_details == "DeliveryTimedOut"
            ),
        }

    def status(self) -> str:
        statuses = [i.status for i in self.invocations.values()]
        if any(s not in TERMINAL_INVOCATION for s in statuses):
            return "Pending" if all(s == "Pending" for s in statuses) else "InProgress"
        for worst in ("Cancelled", "Failed", "TimedOut"):
            if worst in statuses:
                return worst
        return "Success"


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
        proc = start_script(script, inv.env, cwd, out, err, owner=inv.instance_id)
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
