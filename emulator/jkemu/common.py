"""Shared pieces: constants, configuration, the extension's state beside moto's models,
times and offset pagination."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .invocations import CommandRecord
    from .lifecycle import LifecycleAction


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
# App ids of scripts on instances (their role): never "the functions" for the fault injector.
# The emulator adds every role it hands a script (AWS_SDK_UA_APP_ID).
SCRIPT_APP_IDS: set[str] = {"control-plane", "worker"}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso_z(moment: dt.datetime, millis: bool = False) -> str:
    text = moment.astimezone(dt.timezone.utc).isoformat(
        timespec="milliseconds" if millis else "seconds"
    )
    return text.replace("+00:00", "Z")


@dataclasses.dataclass
class Config:
    state_dir: Path = Path(".emulator-state").resolve()
    scripts_dir: Path = Path(__file__).resolve().parents[2] / "node-scripts"
    endpoint: str = "http://127.0.0.1:5000"
    venv_bin: Path = Path(sys.prefix) / "bin"
    # argv that runs user data instead of bash (its last argument: the saved user data file)
    user_data_runner: list[str] = dataclasses.field(default_factory=list)


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
        self.exit_events: list[dict[str, Any]] = []  # EC2 and AWS Health events (exits.py)
        self.interruptions: list[dict[str, Any]] = []  # Spot instances to reclaim, with when
        self.lifecycle_log: list[dict[str, Any]] = []
        self.lifecycle_actions: dict[str, LifecycleAction] = {}
        self.user_data_runs: dict[str, dict[str, Any]] = {}
        self.processes: set[subprocess.Popen] = set()
        self.owners: dict[subprocess.Popen, str] = {}  # process -> instance id it runs on
        self.boot_runs: list[dict[str, Any]] = []
        self.warming: dict[str, Any] = {}  # instance id -> InstanceState in Warmed:Pending
        self.agents: dict[str, Any] = {}  # instance id -> agent.Agent (SSM agent's state)
        self.activities: list[Any] = []  # activities.Activity, oldest first
        self.activity_seq = 0


STATE = ExtensionState()


def parse_time(value: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def paginate(
    items: list[Any], max_results: int | None, token: str | None, default: int = 50
) -> tuple[list[Any], str | None]:
    """Offset tokens: enough for clients that follow NextToken."""
    start = int(token) if token and token.isdigit() else 0
    size = max_results or default
    page = items[start : start + size]
    return page, (str(start + size) if start + size < len(items) else None)
