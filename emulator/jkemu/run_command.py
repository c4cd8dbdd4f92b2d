"""Run Command (patch 1): SendCommand and GetCommandInvocation, and the response shapes."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from moto.core.responses import ActionResult
from moto.ssm.responses import SimpleSystemManagerResponse

from .common import LOG, PLUGIN_OUTPUT_LIMIT, STATE, iso_z, utcnow
from .documents import load_document, render_steps, resolve_parameters, ssm_error
from .agent import submit
from .invocations import CommandRecord, Invocation, PluginResult
from .managed_nodes import resolve_targets
from .scripts import script_environment


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
                undeliverable=False,
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
        for instance in instances:
            submit(command, command.invocations[instance.id], instance)
        response = command_dict(command)
    LOG.info(
        "send-command %s %s -> %s",
        command.command_id,
        name,
        ",".join(command.invocations) or "(no target)",
    )
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
