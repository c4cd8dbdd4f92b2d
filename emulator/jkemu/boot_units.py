"""Boot units (patch 8): what runs when a stopped instance starts again. User data runs only at
the first boot (cloud-init); at every later start the emulator runs the instance's boot units,
the stand-in for enabled systemd units: each executable file in `<node dir>/boot-units/`, in
lexical order. A stop kills whatever still runs on the instance."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Callable

from moto.core.utils import utcnow as moto_utcnow
from moto.ec2.models import EC2Backend

from .common import LOG, STATE, iso_z, utcnow
from .scripts import (
    forget_process,
    in_background,
    kill_instance_processes,
    map_paths,
    node_dir_of,
    script_environment,
    start_script,
)


def boot_units(instance_id: str) -> list[Path]:
    folder = node_dir_of(instance_id) / "boot-units"
    if not folder.is_dir():
        return []
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and os.access(p, os.X_OK)),
        key=lambda p: p.name,
    )


def run_boot_units(record: dict[str, Any], units: list[Path], env: dict[str, str]) -> None:
    """Background thread: the units one after the other (a failing unit does not stop the
    others), output appended to <node dir>/log/boot-units.log."""
    instance_id = record["instance_id"]
    work = node_dir_of(instance_id) / "boot" / str(record["restart"])
    work.mkdir(parents=True, exist_ok=True)
    with open(record["log"], "ab") as log:
        for unit in units:
            copy = work / unit.name
            copy.write_text(map_paths(unit.read_text(errors="replace")))
            log.write(f"--- boot unit {unit.name} (restart {record['restart']})\n".encode())
            log.flush()
            proc = start_script(
                copy, env, node_dir_of(instance_id), log, subprocess.STDOUT, instance_id
            )
            code = proc.wait()
            forget_process(proc)
            with STATE.lock:
                record["units"].append({"name": unit.name, "exit_code": code})
            LOG.info("boot unit %s of %s exited %s", unit.name, instance_id, code)
    with STATE.lock:
        record.update(status="done", finished=iso_z(utcnow(), millis=True))


def schedule_boot_units(instance: Any, account: str, region: str) -> None:
    env = script_environment(instance, account, region)
    units = boot_units(instance.id)
    with STATE.lock:
        restart = 1 + sum(1 for r in STATE.boot_runs if r["instance_id"] == instance.id)
        record = {
            "instance_id": instance.id,
            "account": account,
            "region": region,
            "restart": restart,
            "target_lifecycle_state": env.get("JOINKEEPER_TARGET_LIFECYCLE_STATE"),
            "status": "running" if units else "done",
            "units": [],
            "started": iso_z(utcnow(), millis=True),
            "finished": None if units else iso_z(utcnow(), millis=True),
            "log": str(node_dir_of(instance.id) / "log" / "boot-units.log"),
        }
        STATE.boot_runs.append(record)
    if units:
        in_background(f"boot-{instance.id}", run_boot_units, record, units, env)


def wrap_start_instances(original: Callable) -> Callable:
    def start_instances(self: EC2Backend, instance_ids: list[str]) -> Any:
        """A stopped instance that starts boots: its LaunchTime becomes now (EC2's LaunchTime is
        the time of the last start), and its boot units run (not its user data)."""
        started = original(self, instance_ids)
        for instance, previous in started:
            if previous.name in ("stopped", "stopping"):
                instance.launch_time = moto_utcnow()
                schedule_boot_units(instance, self.account_id, self.region_name)
        return started

    return start_instances


def wrap_stop_instances(original: Callable) -> Callable:
    def stop_instances(self: EC2Backend, instance_ids: list[str]) -> Any:
        """A stopped instance runs nothing: its scripts are killed."""
        stopped = original(self, instance_ids)
        for instance, previous in stopped:
            if previous.name in ("running", "pending"):
                kill_instance_processes(instance.id)
        return stopped

    return stop_instances
