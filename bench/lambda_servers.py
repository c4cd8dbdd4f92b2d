"""The cold-start benchmark's servers (bench/cold_start.py): one fake Lambda Runtime API per
function process, and the timing proxy in front of the emulator."""
import http.client
import json
import queue
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

REGION = "us-east-1"
ARN = f"arn:aws:lambda:{REGION}:123456789012:function:"

now = time.perf_counter


# ---- fake Lambda Runtime API ----------------------------------------------------------------------


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class RuntimeApi(QuietServer):
    """One function process's Runtime API: events are queued with `invoke`, answers collected."""

    def __init__(self, function):
        super().__init__(("127.0.0.1", 0), RuntimeHandler)
        self.function = function
        self.events = queue.Queue()
        self.first_next = None
        self.first_connection = None
        self.handed = {}
        self.answers = {}
        self.answered = threading.Condition()
        self.init_error = None
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def address(self):
        return f"127.0.0.1:{self.server_address[1]}"

    def get_request(self):
        # A runtime connects when it first asks for an event. The accept is the earliest sign of
        # that poll this process can see; the handler thread it then starts and the parsing of the
        # request (Python, about a millisecond under load) are the harness's time, not the function's.
        connection = super().get_request()
        if self.first_connection is None:
            self.first_connection = now()
        return connection

    def invoke(self, event, timeout=120):
        """Queues one event; returns (handed over at, answered at, kind, body)."""
        request_id = str(uuid.uuid4())
        self.events.put((request_id, event))
        with self.answered:
            self.answered.wait_for(lambda: request_id in self.answers or self.init_error, timeout)
        if request_id not in self.answers:
            raise RuntimeError(f"{self.function}: no answer ({self.init_error or 'timeout'})")
        done, kind, body = self.answers[request_id]
        return self.handed[request_id], done, kind, body

    def wait_first_poll(self, proc, timeout=60):
        deadline = now() + timeout
        while self.first_next is None and self.init_error is None and now() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{self.function} exited with {proc.returncode} before polling")
            time.sleep(0.0002)
        if self.first_next is None:
            raise RuntimeError(f"{self.function}: no poll ({self.init_error or 'timeout'})")
        return self.first_next

    def stop(self):
        self.events.put(None)
        self.shutdown()
        self.server_close()


class RuntimeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK would add ~40 ms to an answer and count it as the function's time.
    disable_nagle_algorithm = True
    BASE = "/2018-06-01/runtime"

    def log_message(self, *args):
        pass

    def do_GET(self):
        api = self.server
        if self.path != f"{self.BASE}/invocation/next":
            return self.reply(404, {"errorType": "NotFound"})
        if api.first_next is None:
            api.first_next = api.first_connection or now()
        item = api.events.get()
        if item is None:  # stopping: the process is gone
            self.close_connection = True
            return
        request_id, event = item
        body = json.dumps(event).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 900_000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", ARN + api.function)
        self.send_header("Lambda-Runtime-Trace-Id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0")
        # Noted before the event goes out: a fast function's first AWS request can reach the proxy
        # before this thread runs again.
        api.handed[request_id] = now()
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def do_POST(self):
        api = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        at = now()
        parts = self.path[len(self.BASE):].strip("/").split("/")
        if parts == ["init", "error"]:
            self.reply(202, {"status": "OK"})
            with api.answered:
                api.init_error = body.decode(errors="replace") or "init error"
                api.answered.notify_all()
            return
        if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
            self.reply(202, {"status": "OK"})
            with api.answered:
                api.answers[parts[1]] = (at, parts[2], body)
                api.answered.notify_all()
            return
        self.reply(404, {"errorType": "NotFound"})

    def reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


# ---- timing proxy in front of the emulator ------------------------------------------------------


class Proxy(QuietServer):
    """Forwards every request to the emulator and records (start, end, operation) for each."""

    def __init__(self, upstream):
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        self.upstream = urlsplit(upstream)
        self.lock = threading.Lock()
        self.calls = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def settled(self, end):
        """The calls that started before `end`, once each has been answered (the function can
        read an answer before the proxy thread notes the time it finished writing it)."""
        deadline = now() + 1.0
        while True:
            with self.lock:
                calls = [tuple(c) for c in self.calls if c[0] < end]
            if all(c[1] is not None for c in calls) or now() > deadline:
                return [c for c in calls if c[1] is not None]
            time.sleep(0.0002)

    def outside(self, start, end):
        """Seconds of [start, end] during which at least one request was in the proxy/emulator."""
        spans = sorted((max(s, start), min(e, end)) for s, e, _ in self.settled(end) if e > start)
        total, cur_s, cur_e = 0.0, None, None
        for s, e in spans:
            if cur_e is None or s > cur_e:
                total += (cur_e - cur_s) if cur_e is not None else 0.0
                cur_s, cur_e = s, e
            else:
                cur_e = max(cur_e, e)
        return total + ((cur_e - cur_s) if cur_e is not None else 0.0)

    def operations(self, start, end):
        return [op for s, _, op in self.settled(end) if s >= start]


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as RuntimeHandler

    def log_message(self, *args):
        pass

    def parse_request(self):
        # The clock starts once the request line is in: the proxy's own parsing of the headers
        # (Python, tenths of a millisecond) is not the function's time.
        self.arrived = now()
        return super().parse_request()

    def forward(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        call = [self.arrived, None, operation(self.headers, body)]
        with self.server.lock:
            self.server.calls.append(call)
        up = self.server.upstream
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
        call[1] = now()

    do_GET = do_POST = do_PUT = do_DELETE = forward


def operation(headers, body):
    """`service:Action` of an AWS request (JSON protocol target header, else query `Action`)."""
    auth = headers.get("Authorization", "")
    service = auth.split("Credential=", 1)[1].split("/")[3] if "Credential=" in auth else "?"
    target = headers.get("X-Amz-Target")
    if target:
        return f"{service}:{target.rsplit('.', 1)[-1]}"
    action = parse_qs(body.decode(errors="replace")).get("Action", ["?"])[0]
    return f"{service}:{action}"
