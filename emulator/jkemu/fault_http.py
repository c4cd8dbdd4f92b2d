"""Serving a request under the fault configuration (faults.py): the error answers in each
protocol's own shape, added latency, and answers lost after the request took effect (the
connection is dropped without a response, at once or after a hold)."""

from __future__ import annotations

import json
import socket
import struct
import time
import uuid
from typing import Any, Callable

from moto.moto_server.werkzeug_app import MotoRequestHandler

from .common import LOG
from .faults import FAULTS
from .iam_context import Request
from .recorder import drain, parse_request, principal, record_unapplied, take_body

# (HTTP status, code, message) per protocol: JSON 1.1 (SSM, KMS), query (Auto Scaling, STS), EC2
ERRORS = {
    ("json", "throttle"): (400, "ThrottlingException", "Rate exceeded"),
    ("json", "5xx"): (500, "InternalServerError", "An internal error occurred."),
    ("query", "throttle"): (400, "Throttling", "Rate exceeded"),
    ("query", "5xx"): (500, "InternalFailure", "An internal error occurred."),
    ("ec2", "throttle"): (503, "RequestLimitExceeded", "Request limit exceeded."),
    ("ec2", "5xx"): (500, "InternalError", "An internal error has occurred."),
}
REASONS = {400: "Bad Request", 500: "Internal Server Error", 503: "Service Unavailable"}


class LostAnswer(ConnectionError):
    """Raised after a request was applied: the handler drops the connection unanswered."""


class FaultingRequestHandler(MotoRequestHandler):
    """moto's request handler, which closes the connection with a TCP reset (no response at all)
    when the application raised LostAnswer."""

    def connection_dropped(self, error: BaseException, environ: Any = None) -> None:
        if isinstance(error, LostAnswer):
            self.close_connection = True
            try:
                # SO_LINGER 0: the close sends RST; it happens once the handler's streams close
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
            except OSError:
                pass
            return
        super().connection_dropped(error, environ)


def protocol_of(request: Request, environ: dict[str, Any]) -> str:
    if environ.get("HTTP_X_AMZ_TARGET"):
        return "json"
    return "ec2" if request.service == "ec2" else "query"


def error_answer(request: Request, environ: dict[str, Any], kind: str) -> tuple[int, list, bytes]:
    """The service's own error response: status, headers, body."""
    protocol = protocol_of(request, environ)
    status, code, message = ERRORS[(protocol, kind)]
    request_id = str(uuid.uuid4())
    if protocol == "json":
        body = json.dumps({"__type": code, "message": message}).encode()
        content_type = "application/x-amz-json-1.1"
    elif protocol == "ec2":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
            f"<Code>{code}</Code><Message>{message}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        ).encode()
        content_type = "text/xml;charset=UTF-8"
    else:
        party = "Sender" if status < 500 else "Receiver"
        body = (
            f'<ErrorResponse xmlns="https://{request.service}.amazonaws.com/doc/">'
            f"<Error><Type>{party}</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        content_type = "text/xml"
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("x-amzn-RequestId", request_id),
    ]
    return status, headers, body


def run_captured(app: Callable, environ: dict[str, Any]) -> tuple[str, list, bytes]:
    """Run the application to the end, keeping its answer instead of sending it."""
    answer: dict[str, Any] = {}

    def capture(status: str, headers: list, exc_info: Any = None) -> Callable[[bytes], None]:
        answer["status"], answer["headers"] = status, headers
        return lambda data: None

    payload = drain(app(environ, capture))
    return answer.get("status", "500 Internal Server Error"), answer.get("headers", []), payload


def serve(app: Callable, environ: dict[str, Any], start_response: Callable) -> Any:
    """Serve one AWS request through `app` (the recorder or moto) as the fault configuration
    decides: throttled or 5xx (not applied, recorded as such), answered late, answered as usual,
    or applied and never answered."""
    if not FAULTS.active():
        return app(environ, start_response)
    request = parse_request(environ, take_body(environ))
    # S3 (the node scripts asset) is recorded but not faulted: its error answers are not modelled.
    if request is None or request.service == "s3":
        return app(environ, start_response)
    caller = principal(environ)
    fate = FAULTS.fate(request, caller)
    if fate is None:
        return app(environ, start_response)
    if fate.latency:
        FAULTS.count("latency", request.action)
    if fate.kind in ("throttle", "5xx"):
        time.sleep(fate.latency)
        status, headers, body = error_answer(request, environ, fate.kind)
        FAULTS.count(fate.kind, request.action)
        record_unapplied(environ, request, status, body, fate.kind)
        LOG.info("fault %s: %s by %s", fate.kind, request.action, caller)
        start_response(f"{status} {REASONS[status]}", headers)
        return [body]
    if fate.kind == "lost_answer":
        environ["jkemu.fault"] = {"fault": "lost_answer", "applied": True}
    status_line, headers, payload = run_captured(app, environ)
    time.sleep(fate.latency)  # the request took effect; its answer comes late
    if fate.kind == "lost_answer":
        FAULTS.count("lost_answer", request.action)
        LOG.info("fault lost_answer (%s): %s by %s", fate.mode, request.action, caller)
        if fate.mode == "hold":
            time.sleep(fate.hold)
        raise LostAnswer(f"{request.action}: answer lost")
    start_response(status_line, headers)
    return [payload]
