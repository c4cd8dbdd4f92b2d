"""User data (patch 5), run once at launch as cloud-init would."""

from __future__ import annotations

import base64
import binascii
import subprocess
from pathlib import Path
from typing import Any, Callable

from moto.ec2.models import EC2Backend

from .common import CONFIG, LOG, STATE, iso_z, utcnow
from .imds import LAUNCH, launching_target, set_target_state
from .scripts import (
    forget_process,
    in_background,
    instance_tags,
    map_paths,
    script_environment,
    start_script,
)


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
        proc = start_script(
            script,
            env,
            script.parent,
            log,
            subprocess.STDOUT,
            owner=record["instance_id"],
            runner=CONFIG.user_data_runner,
        )
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
    # A runner (--user-data-runner) gets the text as the instance would, paths not mapped.
    script.write_text(text if CONFIG.user_data_runner else map_paths(text))
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
    in_background(f"user-data-{instance.id}", run_user_data, record, script, env)


def wrap_run_instances(original: Callable) -> Callable:
    def run_instances(self: EC2Backend, *args: Any, **kwargs: Any) -> Any:
        """Every launched instance with user data runs it once (RunInstances and groups)."""
        reservation = original(self, *args, **kwargs)
        target, group = launching_target(), getattr(LAUNCH, "group", None)
        for instance in reservation.instances:
            if group is not None:
                instance.autoscaling_group = group  # as moto sets it right after
            if target:
                set_target_state(instance.id, target)
            schedule_user_data(instance, self.account_id, self.region_name)
        return reservation

    return run_instances
