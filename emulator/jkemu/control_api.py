"""Control API under /_joinkeeper/: what tests and the demo read and reset."""

from __future__ import annotations

from typing import Any

from .common import CONFIG, STATE
from .scripts import reset_extension


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
