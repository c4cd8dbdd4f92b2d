"""The emulator's server: installs the patches on moto's classes, wraps moto's WSGI app with the
control API and the lazy lifecycle timeouts, and serves it."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs

from moto.autoscaling.models import AutoScalingBackend, FakeAutoScalingGroup
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import BaseResponse
from moto.ec2.models import EC2Backend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.ssm.responses import SimpleSystemManagerResponse
import werkzeug.serving
from werkzeug.serving import make_server

from . import speedups
from . import __doc__ as PACKAGE_DOC
from . import agent
from .activities import asg_describe_scaling_activities
from .accounts import wrap_get_current_account
from .boot_units import wrap_start_instances, wrap_stop_instances
from .capacity import (
    asg_set_desired_capacity,
    asg_terminate_instance,
    wrap_delete_group,
    wrap_replace_instances,
)
from .command_listing import ssm_cancel_command, ssm_list_command_invocations, ssm_list_commands
from .common import CONFIG, LOG
from .control_api import control, read_json
from .exits import due_interruptions, wrap_state_changes
from .fault_http import FaultingRequestHandler, serve
from .lifecycle import expire_lifecycle_actions
from .lifecycle_api import (
    asg_complete_lifecycle_action,
    asg_record_lifecycle_action_heartbeat,
    wrap_create_auto_scaling_group,
    wrap_put_lifecycle_hook,
)
from .managed_nodes import ssm_describe_instance_information
from . import sampler
from .recorder import RECORDER, recording
from .run_command import ssm_get_command_invocation, ssm_send_command
from .scripts import kill_all_children, reset_extension
from .user_data import wrap_run_instances
from .warm_pool import settle_warming
from .warm_pool_api import (
    asg_delete_warm_pool,
    asg_describe_warm_pool,
    asg_put_warm_pool,
    group_instances,
    group_warm_pool_size,
)


def install_patches() -> None:
    """Monkeypatch moto's classes (see the package docstring for each gap)."""
    speedups.install()
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
    asg.put_warm_pool = asg_put_warm_pool
    asg.describe_warm_pool = asg_describe_warm_pool
    asg.delete_warm_pool = asg_delete_warm_pool
    asg.describe_scaling_activities = asg_describe_scaling_activities
    FakeAutoScalingGroup.instances = property(group_instances)
    FakeAutoScalingGroup.warm_pool_size = property(group_warm_pool_size)
    FakeAutoScalingGroup.set_desired_capacity = asg_set_desired_capacity
    AutoScalingBackend.terminate_instance = asg_terminate_instance
    AutoScalingBackend.delete_auto_scaling_group = wrap_delete_group(
        AutoScalingBackend.delete_auto_scaling_group
    )

    EC2Backend.run_instances = wrap_run_instances(EC2Backend.run_instances)
    EC2Backend.start_instances = wrap_start_instances(EC2Backend.start_instances)
    EC2Backend.stop_instances = wrap_state_changes(
        wrap_stop_instances(EC2Backend.stop_instances), ("stopping", "stopped")
    )
    EC2Backend.start_instances = wrap_state_changes(
        EC2Backend.start_instances, ("pending", "running")
    )
    EC2Backend.terminate_instances = wrap_state_changes(
        EC2Backend.terminate_instances, ("shutting-down", "terminated")
    )
    BaseResponse.get_current_account = wrap_get_current_account(BaseResponse.get_current_account)


# Lifecycle timeouts, warm-pool settling and agent deliveries are applied lazily, before requests,
# each a sweep of the whole state under STATE.lock: at most every HOUSEKEEPING_SECONDS and by one
# request at a time (the others go on), else a burst's hundreds of concurrent requests (a queue's
# pollers, a thousand waiting instances) each wait for a sweep of their own. Completions and
# heartbeats still apply due timeouts first (lifecycle_api).
HOUSEKEEPING_SECONDS = 0.2
_HOUSEKEEPING = threading.Lock()
_LAST_HOUSEKEEPING = [0.0]


def housekeeping() -> None:
    if time.monotonic() - _LAST_HOUSEKEEPING[0] < HOUSEKEEPING_SECONDS:
        return
    if not _HOUSEKEEPING.acquire(blocking=False):
        return
    try:
        expire_lifecycle_actions()
        due_interruptions()
        settle_warming()
        agent.tick()
        _LAST_HOUSEKEEPING[0] = time.monotonic()
    finally:
        _HOUSEKEEPING.release()


class EmulatorApp:
    """WSGI wrapper: serves /_joinkeeper/, resets the extension with moto, applies due lifecycle
    timeouts and agent deliveries before handing any other request to moto, through the fault
    injector (AWS requests only: never control or /moto-api calls) and the call recorder."""

    def __init__(self, moto_app: Any) -> None:
        self.moto_app = moto_app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        full_reset = path.rstrip("/") == "/moto-api/reset" and method == "POST"
        if full_reset:
            reset_extension(wipe_files=True)
        else:
            housekeeping()
        if path.startswith("/_joinkeeper/"):
            query = parse_qs(environ.get("QUERY_STRING", ""))
            account = query.get("account", [None])[0] or environ.get("HTTP_X_MOTO_ACCOUNT_ID")
            try:
                given = read_json(environ)
            except ValueError as err:
                status, body = 400, {"error": f"the body is not JSON: {err}"}
            else:
                sub = path[len("/_joinkeeper/") :].strip("/")
                status, body = control(method, sub, query, account, given)
            payload = json.dumps(body, indent=1).encode()
            reason = {200: "OK", 400: "Bad Request"}.get(status, "Not Found")
            start_response(
                f"{status} {reason}",
                [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
            )
            return [payload]
        if path.startswith("/moto-api"):
            return self.moto_app(environ, start_response)
        if RECORDER.path:
            return serve(self.record, environ, start_response)
        return serve(self.moto_app, environ, start_response)

    def record(self, environ: dict[str, Any], start_response: Callable) -> Any:
        return recording(self.moto_app, environ, start_response)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=PACKAGE_DOC.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--state-dir", required=True, help="node and cluster folders of the emulated instances"
    )
    parser.add_argument(
        "--scripts-dir",
        default=str(Path(__file__).resolve().parents[2] / "node-scripts"),
        help="what /opt/joinkeeper/ maps to",
    )
    parser.add_argument(
        "--record-calls",
        default=os.environ.get("JOINKEEPER_RECORD_CALLS") or None,
        metavar="PATH",
        help="append one JSON line per AWS request served (env JOINKEEPER_RECORD_CALLS)",
    )
    parser.add_argument(
        "--user-data-runner",
        default="",
        metavar="CMD",
        help="run each launched instance's user data with CMD (split like a shell command line; "
        "the saved user data file is its last argument) instead of running it directly",
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
    CONFIG.user_data_runner = shlex.split(args.user_data_runner)
    if not (CONFIG.venv_bin / "aws").exists():
        CONFIG.venv_bin = Path(sys.executable).parent
    install_patches()
    RECORDER.open(args.record_calls)
    sampler.start_if_asked()

    app = EmulatorApp(DomainDispatcherApplication(create_backend_app))
    # A burst of hundreds of Lambda invocations opens hundreds of connections at once; werkzeug's
    # default listen queue (128) would refuse them. Keep them waiting instead, as AWS does.
    werkzeug.serving.BaseWSGIServer.request_queue_size = 4096
    server = make_server(
        args.host, args.port, app, threaded=True, request_handler=FaultingRequestHandler
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
