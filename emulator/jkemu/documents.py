"""SSM command documents: loading from moto, parameter checks, rendering the steps to run."""

from __future__ import annotations

import json
import re
from typing import Any

from moto.ssm.exceptions import SSMException
from moto.ssm.models import ssm_backends

from .common import DEFAULT_EXECUTION_TIMEOUT, PLACEHOLDER
from .scripts import map_paths

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


DOCUMENT_QUOTA = 64 * 1024


def resolve_parameters(
    document: dict[str, Any], name: str, given: dict[str, list[str]]
) -> dict[str, list[str]]:
    """Given values, else the document's defaults; checked against the declarations as SSM does
    at SendCommand (unknown or missing parameters, allowedValues, allowedPattern)."""
    # SSM counts the runtime parameter values with the document's content against one 64 KB
    # quota (CreateDocument's reference; SendCommand answers MaxDocumentSizeExceeded). The
    # content is measured as compact JSON, at most its size as written.
    size = len(json.dumps(document, separators=(",", ":")).encode()) + sum(
        len(str(v).encode())
        for values in given.values()
        for v in (values if isinstance(values, list) else [values])
    )
    if size > DOCUMENT_QUOTA:
        raise ssm_error("MaxDocumentSizeExceeded", "The size limit of a document is 64 KB.")
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
