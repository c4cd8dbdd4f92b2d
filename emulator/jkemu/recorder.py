"""Recording every AWS request the emulator serves (--record-calls PATH, or the environment
variable JOINKEEPER_RECORD_CALLS): one JSON line per request once it is answered, with the caller
(the `app/<id>` token of its User-Agent), the IAM action, the resources it is authorized against
and their condition keys, for an offline check against IAM policies. SSM's own KMS calls for
SecureString parameters are recorded as calls of the same caller."""

from __future__ import annotations

import io
import json
import os
import re
import threading
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs

from .common import ACCOUNT_KEY, DEFAULT_ACCOUNT, LOG, STATE, iso_z, utcnow
from .iam_compute import autoscaling, ec2
from .iam_context import Authorization, Request, wildcard
from .iam_s3 import s3, s3_request
from .iam_sqs import sqs, sqs_request
from .iam_ssm import decrypted_reads, kms, ssm

SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/(?P<region>[a-z0-9-]+)/(?P<service>[a-z0-9-]+)/")
INSTANCE_SESSION = re.compile(r"^jkemu-instance-role/(i-[0-9a-f]{8}(?:[0-9a-f]{9})?)$")
APP_ID = re.compile(r"(?:^|\s)app/(?P<id>[^\s/]+)")
SECRET_NAME = re.compile(r"token|secret|password|passphrase|credential|ciphertext|plaintext", re.I)
REDACTED = "<redacted>"
RULES: dict[str, Callable[[Request], Authorization]] = {
    "ssm": ssm,
    "kms": kms,
    "ec2": ec2,
    "autoscaling": autoscaling,
    "s3": s3,
    "sqs": sqs,
}


class Recorder:
    def __init__(self) -> None:
        self.path: Path | None = None
        self.lock = threading.Lock()

    def open(self, path: str | None) -> None:
        self.path = Path(path).resolve() if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            LOG.info("recording AWS calls to %s", self.path)

    def write(self, entries: list[dict[str, Any]]) -> None:
        if not self.path or not entries:
            return
        text = "".join(json.dumps(e, sort_keys=True, default=str) + "\n" for e in entries)
        with self.lock, open(self.path, "a", encoding="utf-8") as out:
            out.write(text)


RECORDER = Recorder()


def principal(environ: dict[str, Any]) -> str:
    """Contract 1: the `app/<id>` token of the User-Agent (the SDKs put the app id in
    User-Agent, the Rust SDK in x-amz-user-agent too)."""
    for header in ("HTTP_X_AMZ_USER_AGENT", "HTTP_USER_AGENT"):
        match = APP_ID.search(environ.get(header) or "")
        if match:
            return match.group("id")
    return "unknown"


def source_instance(environ: dict[str, Any]) -> str | None:
    """The instance of an instance role session: the emulator hands each instance's scripts the
    session token `jkemu-instance-role/<instance-id>` (see scripts.py), as EC2 delivers each
    instance role credentials of its own."""
    match = INSTANCE_SESSION.match(environ.get("HTTP_X_AMZ_SECURITY_TOKEN") or "")
    return match.group(1) if match else None


def account_of(environ: dict[str, Any]) -> str:
    """The moto account the request acts in (accounts patch: header, 12-digit key, default)."""
    if environ.get("HTTP_X_MOTO_ACCOUNT_ID"):
        return environ["HTTP_X_MOTO_ACCOUNT_ID"]
    if os.environ.get("MOTO_ACCOUNT_ID"):
        return os.environ["MOTO_ACCOUNT_ID"]
    match = ACCOUNT_KEY.search(environ.get("HTTP_AUTHORIZATION") or "")
    return match.group(1) if match else DEFAULT_ACCOUNT


def take_body(environ: dict[str, Any]) -> bytes:
    """Read the request body and put it back for moto."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def parse_request(environ: dict[str, Any], body: bytes) -> Request | None:
    """Service and region from the SigV4 credential scope; operation from X-Amz-Target (JSON
    protocols), the Action field (query protocols), or S3's method, path and query. None for
    anything else."""
    scope = SCOPE.search(environ.get("HTTP_AUTHORIZATION") or "")
    if scope is None:
        return None
    if scope.group("service") == "s3":
        return s3_request(environ, account_of(environ), scope.group("region"))
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = {}
        operation = target.rsplit(".", 1)[-1]
    else:
        form = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        form.update(parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True))
        params = {k: v[0] for k, v in form.items()}
        operation = params.pop("Action", "")
        params.pop("Version", None)
    if not operation:
        return None
    request = Request(
        scope.group("service"),
        operation,
        params if isinstance(params, dict) else {},
        account_of(environ),
        scope.group("region"),
        source_instance(environ),
    )
    return sqs_request(request) if request.service == "sqs" else request


def authorize(request: Request) -> Authorization:
    rule = RULES.get(request.service)
    if rule is None:
        return wildcard(request, modelled=request.service == "sts")
    try:
        with STATE.lock:
            return rule(request)
    except Exception:  # noqa: BLE001 - never let the record break the call
        LOG.exception("cannot model %s", request.action)
        return wildcard(request, modelled=False)


def redact(value: Any, secure: bool = False) -> Any:
    """Request parameters for the record: SecureString values and anything named like a token
    or secret become <redacted>."""
    if isinstance(value, dict):
        return {
            k: (
                REDACTED
                if SECRET_NAME.search(str(k)) or (secure and k == "Value")
                else redact(v, secure)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v, secure) for v in value]
    return value


def error_code(status: int, body: bytes) -> str | None:
    if status < 400:
        return None
    text = body.decode("utf-8", "replace")
    try:
        return str(json.loads(text).get("__type", "")).rsplit("#", 1)[-1] or None
    except (ValueError, AttributeError):
        match = re.search(r"<Code>([^<]+)</Code>", text)
        return match.group(1) if match else None


def entries_for(
    request: Request,
    auth: Authorization,
    caller: str,
    status: int,
    body: bytes,
    fault: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    secure = request.params.get("Type") == "SecureString" or any(
        f["action"] in ("kms:Encrypt", "kms:GenerateDataKey") for f in auth.follow_ups
    )
    base = {
        "time": iso_z(utcnow(), millis=True),
        "principal": caller,
        "account": request.account,
        "region": request.region,
        "status": status,
        "error_code": error_code(status, body),
        **(fault or {}),
    }
    entries = [
        {
            **base,
            "service": request.service,
            "action": request.action,
            "resources": auth.resources,
            "context": auth.context,
            "parameters": redact(request.params, secure),
            "modelled": auth.modelled,
        }
    ]
    if status < 400:
        follow_ups = list(auth.follow_ups)
        if request.service == "ssm":
            try:
                response = json.loads(body or b"{}")
                with STATE.lock:
                    follow_ups += decrypted_reads(request, response)
            except ValueError:
                pass
        for call in follow_ups:
            entries.append(
                {**base, "service": "kms", "modelled": True, "via": request.action, **call}
            )
    return entries


def drain(result: Any) -> bytes:
    """The whole body of a WSGI result, which is then closed."""
    try:
        return b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()


def recording(app: Callable, environ: dict[str, Any], start_response: Callable) -> Any:
    """Serve one request through `app`, then append its record (and its follow-ups)."""
    body = take_body(environ)
    request = parse_request(environ, body)
    if request is None:
        return app(environ, start_response)
    auth = authorize(request)
    answer: dict[str, Any] = {}

    def capture(status: str, headers: list, exc_info: Any = None) -> Any:
        answer["status"] = int(status.split()[0])
        return start_response(status, headers, exc_info)

    payload = drain(app(environ, capture))
    status = answer.get("status", 0)
    fault = environ.get("jkemu.fault")  # an answer the fault injector will lose: still applied
    RECORDER.write(entries_for(request, auth, principal(environ), status, payload, fault))
    return [payload]


def record_unapplied(
    environ: dict[str, Any], request: Request, status: int, body: bytes, fault: str
) -> None:
    """A call the fault injector answered itself (throttled, 5xx): recorded, marked not applied
    (`fault`, `applied: false`), so a policy check still sees what the caller asked for."""
    if not RECORDER.path:
        return
    auth = authorize(request)
    entries = entries_for(
        request, auth, principal(environ), status, body, {"fault": fault, "applied": False}
    )
    RECORDER.write(entries)
