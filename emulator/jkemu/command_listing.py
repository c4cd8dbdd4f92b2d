"""Run Command (patch 1): ListCommands, ListCommandInvocations, CancelCommand."""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable

from moto.core.responses import ActionResult, EmptyResult
from moto.ssm.responses import SimpleSystemManagerResponse

from .common import STATE, TERMINAL_INVOCATION, paginate, parse_time
from .documents import ssm_error
from .invocations import finish_invocation
from .run_command import command_dict, find_command, invocation_dict
from .scripts import kill_process_group


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
            elif inv.started is None:  # not delivered, or waiting in the agent's buffer
                finish_invocation(inv, "Cancelled", "Cancelled")
    return EmptyResult()
