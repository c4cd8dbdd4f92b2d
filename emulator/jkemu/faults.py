"""AWS's failures, switched on through the control API (POST/GET/DELETE /_joinkeeper/faults):
throttling (by probability or by token buckets at AWS's rates), 5xx answers, answers lost after
the request took effect, added latency; plus the SSM agent's limits (agent_workers,
agent_buffer), which are on by default.

Reproducible: the fate of a request is drawn from random.Random("<seed>|<caller>|<action>|<n>"),
n counting the matching requests of that caller and action since the POST. The same seed and the
same sequence of requests per caller and action give the same faults, however requests of
different callers or actions interleave. Token buckets depend on time, not on the seed."""

from __future__ import annotations

import collections
import dataclasses
import random
import threading
from typing import Any

from .common import SCRIPT_APP_IDS
from .iam_context import Request
from .rate_limits import RateLimiter, validate

KINDS = (
    "throttle",
    "5xx",
    "lost_answer",
    "latency",
    "agent_busy",
    "undeliverable",
    "delivery_timed_out",
)
HARNESS_APP_IDS = {"test-harness"}  # the node-script tests' own set-up clients
DEFAULT_AGENT_WORKERS = 5  # amazon-ssm-agent Mds.CommandWorkersLimit
DEFAULT_AGENT_BUFFER = 5  # amazon-ssm-agent Mds.CommandWorkerBufferLimit


@dataclasses.dataclass
class FaultConfig:
    seed: int = 0
    throttle_probability: float = 0.0
    token_buckets: Any = False
    error_5xx_probability: float = 0.0
    lost_answer_probability: float = 0.0
    lost_answer_mode: str = "reset"
    lost_answer_hold_seconds: float = 30.0
    latency_ms: list[float] | None = None
    operations: list[str] | None = None
    services: list[str] | None = None
    callers: Any = "functions"
    accounts: list[str] | None = None
    agent_workers: int = DEFAULT_AGENT_WORKERS
    agent_buffer: int = DEFAULT_AGENT_BUFFER

    def injects(self) -> bool:
        return bool(
            self.throttle_probability
            or self.token_buckets
            or self.error_5xx_probability
            or self.lost_answer_probability
            or self.latency_ms
        )


def probability(body: dict[str, Any], name: str) -> float:
    value = body.get(name, 0.0)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ValueError(f"{name}: a number from 0 to 1")
    return float(value)


def names(body: dict[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name}: a list of strings")
    return list(value)


def count_of(body: dict[str, Any], name: str, default: int, least: int) -> int:
    value = body.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ValueError(f"{name}: a whole number, at least {least}")
    return value


def parse_config(body: Any) -> FaultConfig:
    """The whole configuration from a POST body; ValueError names the field at fault."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    known = {f.name for f in dataclasses.fields(FaultConfig)}
    unknown = sorted(set(body) - known)
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(unknown)}")
    seed = body.get("seed", random.SystemRandom().randrange(2**31))
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError("seed: an integer")
    mode = body.get("lost_answer_mode", "reset")
    if mode not in ("reset", "hold"):
        raise ValueError('lost_answer_mode: "reset" or "hold"')
    hold = body.get("lost_answer_hold_seconds", 30.0)
    if not isinstance(hold, (int, float)) or hold < 0:
        raise ValueError("lost_answer_hold_seconds: a number >= 0")
    latency = body.get("latency_ms")
    if latency is not None and (
        not isinstance(latency, list)
        or len(latency) != 2
        or not all(isinstance(v, (int, float)) and v >= 0 for v in latency)
        or latency[0] > latency[1]
    ):
        raise ValueError("latency_ms: [min, max] in milliseconds, 0 <= min <= max")
    callers = body.get("callers", "functions")
    if callers not in ("functions", "all") and not (
        isinstance(callers, list) and all(isinstance(c, str) for c in callers)
    ):
        raise ValueError('callers: "functions", "all" or a list of app ids')
    token_buckets = body.get("token_buckets", False)
    validate(token_buckets)
    return FaultConfig(
        seed=seed,
        throttle_probability=probability(body, "throttle_probability"),
        token_buckets=token_buckets,
        error_5xx_probability=probability(body, "error_5xx_probability"),
        lost_answer_probability=probability(body, "lost_answer_probability"),
        lost_answer_mode=mode,
        lost_answer_hold_seconds=float(hold),
        latency_ms=[float(v) for v in latency] if latency else None,
        operations=names(body, "operations"),
        services=names(body, "services"),
        callers=callers,
        accounts=names(body, "accounts"),
        agent_workers=count_of(body, "agent_workers", DEFAULT_AGENT_WORKERS, 1),
        agent_buffer=count_of(body, "agent_buffer", DEFAULT_AGENT_BUFFER, 0),
    )


def is_function(caller: str) -> bool:
    """A request of the functions' clients: an app id that is not an instance role (the app id
    the emulator gives scripts on instances) nor the test harness's."""
    return caller != "unknown" and caller not in SCRIPT_APP_IDS and caller not in HARNESS_APP_IDS


@dataclasses.dataclass
class Fate:
    kind: str | None  # throttle | 5xx | lost_answer | None (answered as usual)
    latency: float  # seconds added before the answer
    mode: str = "reset"
    hold: float = 0.0


class Faults:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.config = FaultConfig()
        self.limiter = RateLimiter(None, False)
        self.calls: collections.Counter[tuple[str, str]] = collections.Counter()
        self.injected: collections.Counter[str] = collections.Counter()
        self.by_operation: dict[str, collections.Counter[str]] = {}
        self.seen = 0

    def configure(self, body: Any) -> FaultConfig:
        config = parse_config(body)
        with self.lock:
            self.config = config
            self.limiter = RateLimiter(validate(config.token_buckets), config.token_buckets is True)
            self.calls.clear()
            self.injected.clear()
            self.by_operation = {}
            self.seen = 0
        return config

    def clear(self) -> None:
        """All faults off (the agent's limits back to their defaults); counters kept."""
        with self.lock:
            self.config = FaultConfig()
            self.limiter = RateLimiter(None, False)

    def active(self) -> bool:
        return self.config.injects()

    def matches(self, request: Request, caller: str) -> bool:
        c = self.config
        if c.services is not None and request.service not in c.services:
            return False
        if c.operations is not None and request.action not in c.operations:
            return False
        if c.accounts is not None and request.account not in c.accounts:
            return False
        if c.callers == "all":
            return True
        if c.callers == "functions":
            return is_function(caller)
        return caller in c.callers

    def fate(self, request: Request, caller: str) -> Fate | None:
        """What happens to one request, or None when no fault applies to it."""
        with self.lock:
            c = self.config
            if not c.injects() or not self.matches(request, caller):
                return None
            self.seen += 1
            n = self.calls[(caller, request.action)]
            self.calls[(caller, request.action)] += 1
            rng = random.Random(f"{c.seed}|{caller}|{request.action}|{n}")
            draws = [rng.random() for _ in range(4)]  # always four: the sequence stays aligned
            latency = 0.0
            if c.latency_ms:
                low, high = c.latency_ms
                latency = (low + draws[3] * (high - low)) / 1000.0
            kind = None
            if not self.limiter.allow(request) or draws[0] < c.throttle_probability:
                kind = "throttle"
            elif draws[1] < c.error_5xx_probability:
                kind = "5xx"
            elif draws[2] < c.lost_answer_probability:
                kind = "lost_answer"
            return Fate(kind, latency, c.lost_answer_mode, c.lost_answer_hold_seconds)

    def count(self, kind: str, action: str) -> None:
        with self.lock:
            self.injected[kind] += 1
            self.by_operation.setdefault(action, collections.Counter())[kind] += 1

    def agent_limits(self) -> tuple[int, int]:
        return self.config.agent_workers, self.config.agent_buffer

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "config": dataclasses.asdict(self.config),
                # The token buckets as enforced (`true` resolved to AWS's defaults).
                "token_buckets": validate(self.config.token_buckets) or {},
                "injected": {k: self.injected.get(k, 0) for k in KINDS},
                "by_operation": {a: dict(c) for a, c in sorted(self.by_operation.items())},
                "matched_requests": self.seen,
            }


FAULTS = Faults()


def fault_control(method: str, body: Any) -> tuple[int, Any]:
    """POST replaces the configuration, GET shows it with the counters, DELETE turns faults
    off."""
    if method == "POST":
        try:
            FAULTS.configure(body)
        except ValueError as err:
            return 400, {"error": str(err)}
    elif method == "DELETE":
        FAULTS.clear()
    elif method != "GET":
        return 404, {"error": f"no control endpoint {method} /_joinkeeper/faults"}
    return 200, FAULTS.snapshot()
