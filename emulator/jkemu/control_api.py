"""Control API under /_joinkeeper/: what tests and the demo read and reset."""

from __future__ import annotations

import json
from typing import Any, Iterator

from moto.autoscaling.models import FakeAutoScalingGroup, autoscaling_backends

from .agent import set_agent, show_agents
from .common import CONFIG, DEFAULT_ACCOUNT, STATE
from .exits import exit_control
from .faults import fault_control
from .scripts import reset_extension, target_state_file
from .warm_pool import maintain_pool


def groups(account: str | None) -> Iterator[tuple[str, str, FakeAutoScalingGroup]]:
    """(account, region, group) of every group that exists (without creating backends)."""
    for acct, regions in list(dict.items(autoscaling_backends)):
        if account and acct != account:
            continue
        for region, backend in list(dict.items(regions)):
            for group in list(backend.autoscaling_groups.values()):
                yield acct, region, group


def group_instance_rows(account: str | None) -> list[dict[str, Any]]:
    rows = []
    for acct, region, group in groups(account):
        for state in group.instance_states:
            target = target_state_file(state.instance.id)
            rows.append(
                {
                    "account": acct,
                    "region": region,
                    "group": group.name,
                    "instance_id": state.instance.id,
                    "lifecycle_state": state.lifecycle_state,
                    "ec2_state": state.instance.state,
                    "target_lifecycle_state": (
                        target.read_text().strip() if target.exists() else None
                    ),
                }
            )
    return rows


def maintain_pools(account: str | None, query: dict[str, list[str]]) -> list[str]:
    """Bring every warm pool (of one account / group) to its size, as Auto Scaling keeps doing."""
    done = []
    for _, _, group in groups(account):
        if (
            getattr(group, "warm_pool", None) is not None
            and query.get("group", [group.name])[0] == group.name
        ):
            maintain_pool(group)
            done.append(group.name)
    return done


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


def read_json(environ: dict[str, Any]) -> Any:
    """A control call's JSON body (None when empty); ValueError when it is not JSON."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    return json.loads(raw) if raw.strip() else None


def control(
    method: str,
    path: str,
    query: dict[str, list[str]],
    account: str | None,
    body: Any = None,
) -> tuple[int, Any]:
    """Handle one control API call; returns (HTTP status, JSON body)."""
    if path == "faults":
        return fault_control(method, body if body is not None else {})
    if path == "agents" and method == "GET":
        return show_agents(None)
    if path.startswith("agents/") and "/" not in path[len("agents/") :]:
        instance_id = path[len("agents/") :]
        if method == "POST":
            return set_agent(instance_id, body)
        if method == "GET":
            return show_agents(instance_id)
    exit_answer = exit_control(method, path, account or DEFAULT_ACCOUNT, body)
    if exit_answer is not None:
        return exit_answer
    with STATE.lock:
        if method == "GET" and path == "exit-events":
            events = selected(STATE.exit_events, query, account)
            if query.get("keep", ["0"])[0] not in ("1", "true"):
                drained = set(map(id, events))
                STATE.exit_events = [e for e in STATE.exit_events if id(e) not in drained]
            return 200, events
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
        if method == "GET" and path == "boot-units":
            return 200, selected(STATE.boot_runs, query, account)
        if method == "GET" and path == "instances":
            return 200, selected(group_instance_rows(account), query, account)
        if method == "POST" and path == "warm-pools/maintain":
            return 200, {"maintained": maintain_pools(account, query)}
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
