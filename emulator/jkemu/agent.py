"""The SSM agent on each managed node, as it runs (always on, not only under faults):

- at most `agent_workers` commands execute at once (amazon-ssm-agent Mds.CommandWorkersLimit, 5)
  and `agent_buffer` more wait in its buffer (Mds.CommandWorkerBufferLimit, 5). A buffered
  command has been accepted: the agent answered InProgress, nothing runs yet. A command beyond
  that is not accepted (the agent's processor answers CommandBufferFull and the message is not
  acknowledged, so the service delivers it again): it stays Pending, undelivered, and is taken as
  soon as the buffer has room; if SendCommand's TimeoutSeconds (the delivery timeout) passes
  first, it ends TimedOut / DeliveryTimedOut.
- its state, set by POST /_joinkeeper/agents/<instance-id> (else the tag emulator:agent):
  `online`; `offline`: takes no command from that moment, while DescribeInstanceInformation
  still says PingStatus Online for ping_lag_seconds (SSM notices a lost agent only by missed
  pings), then ConnectionLost; commands sent meanwhile stay undelivered until it is back or their
  delivery timeout ends them; `undeliverable`: listed Online, every new invocation ends
  Failed / Undeliverable.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
from typing import Any

from moto.ec2.models import ec2_backends

from .common import LOG, STATE, TERMINAL_INVOCATION, iso_z, utcnow
from .faults import FAULTS
from .invocations import CommandRecord, Invocation, finish_invocation, run_invocation
from .scripts import in_background, instance_tags

STATES = ("online", "offline", "undeliverable")


@dataclasses.dataclass(eq=False)  # compared by identity
class Delivery:
    command: CommandRecord
    inv: Invocation
    instance: Any  # moto's EC2 instance
    deadline: dt.datetime  # RequestedDateTime + TimeoutSeconds


@dataclasses.dataclass
class Agent:
    instance_id: str
    state: str | None = None  # set through the control API; None: the tag decides
    since: dt.datetime = dataclasses.field(default_factory=utcnow)
    ping_lag_seconds: float = 0.0
    running: list[Delivery] = dataclasses.field(default_factory=list)
    buffered: collections.deque = dataclasses.field(default_factory=collections.deque)
    waiting: collections.deque = dataclasses.field(default_factory=collections.deque)

    def as_dict(self, instance: Any = None) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "state": self.state,
            "since": iso_z(self.since, millis=True),
            "ping_lag_seconds": self.ping_lag_seconds,
            "ping_status": ping_status(instance) if instance is not None else None,
            "running": [d.command.command_id for d in self.running],
            "buffered": [d.command.command_id for d in self.buffered],
            "waiting": [d.command.command_id for d in self.waiting],
        }


def find_instance(instance_id: str) -> Any:
    """moto's EC2 instance of that id in any account and Region (None if there is none)."""
    for regions in list(dict.values(ec2_backends)):
        for backend in list(dict.values(regions)):
            instance = backend.get_instance_by_id(instance_id)
            if instance is not None:
                return instance
    return None


def agent_of(instance_id: str) -> Agent:
    agent = STATE.agents.get(instance_id)
    if agent is None:
        agent = STATE.agents[instance_id] = Agent(instance_id)
    return agent


def agent_mode(instance: Any) -> str:
    """online, offline or undeliverable: the control API's state, else the emulator:agent tag."""
    agent = STATE.agents.get(instance.id)
    if agent is not None and agent.state is not None:
        return agent.state
    return instance_tags(instance).get("emulator:agent", "online")


def ping_status(instance: Any, now: dt.datetime | None = None) -> str | None:
    """DescribeInstanceInformation's PingStatus, or None for an instance that is no managed node
    (not running, or tagged emulator:agent=offline)."""
    if instance.state != "running":
        return None
    agent = STATE.agents.get(instance.id)
    if agent is None or agent.state is None:
        return None if agent_mode(instance) == "offline" else "Online"
    if agent.state != "offline":
        return "Online"
    lost_at = agent.since + dt.timedelta(seconds=agent.ping_lag_seconds)
    return "Online" if (now or utcnow()) < lost_at else "ConnectionLost"


def last_ping(instance: Any, now: dt.datetime) -> dt.datetime:
    agent = STATE.agents.get(instance.id)
    return agent.since if agent is not None and agent.state == "offline" else now


def set_agent(instance_id: str, body: Any) -> tuple[int, Any]:
    """POST /_joinkeeper/agents/<instance-id> {"state": ..., "ping_lag_seconds": N}."""
    if not isinstance(body, dict) or body.get("state") not in STATES:
        return 400, {"error": f"state: one of {', '.join(STATES)}"}
    lag = body.get("ping_lag_seconds", 0)
    if not isinstance(lag, (int, float)) or isinstance(lag, bool) or lag < 0:
        return 400, {"error": "ping_lag_seconds: a number >= 0"}
    instance = find_instance(instance_id)
    if instance is None:
        return 404, {"error": f"no instance {instance_id}"}
    with STATE.lock:
        agent = agent_of(instance_id)
        agent.state, agent.since, agent.ping_lag_seconds = body["state"], utcnow(), float(lag)
        LOG.info("agent of %s: %s (ping lag %ss)", instance_id, agent.state, lag)
        pump(agent)
        return 200, agent.as_dict(instance)


def show_agents(instance_id: str | None) -> tuple[int, Any]:
    with STATE.lock:
        if instance_id is None:
            return 200, [a.as_dict(find_instance(a.instance_id)) for a in STATE.agents.values()]
        agent = STATE.agents.get(instance_id)
        if agent is None:
            return 404, {"error": f"no agent record for {instance_id}"}
        return 200, agent.as_dict(find_instance(instance_id))


def submit(command: CommandRecord, inv: Invocation, instance: Any) -> None:
    """SendCommand hands each invocation to the instance's agent (under STATE.lock)."""
    timeout = int(command.request["TimeoutSeconds"])
    delivery = Delivery(command, inv, instance, command.requested + dt.timedelta(seconds=timeout))
    if agent_mode(instance) == "undeliverable":
        inv.undeliverable = True
        FAULTS.count("undeliverable", "ssm:SendCommand")
        in_background(f"cmd-{inv.instance_id}", run_invocation, command, inv)
        return
    agent = agent_of(instance.id)
    agent.waiting.append(delivery)
    pump(agent)
    if any(d is delivery for d in agent.waiting) and accepting(agent, instance):
        FAULTS.count("agent_busy", "ssm:SendCommand")
        LOG.info("agent of %s busy: %s waits undelivered", instance.id, command.command_id)


def accepting(agent: Agent, instance: Any) -> bool:
    return instance.state == "running" and agent_mode(instance) == "online"


def pending(delivery: Delivery) -> bool:
    return delivery.inv.status not in TERMINAL_INVOCATION and not delivery.inv.cancel_requested


def pump(agent: Agent, now: dt.datetime | None = None) -> None:
    """Under STATE.lock: end undelivered invocations past their delivery timeout, then (agent
    online, instance running) start buffered commands on free workers and accept waiting ones
    into the buffer, oldest first."""
    now = now or utcnow()
    for delivery in list(agent.waiting):
        if not pending(delivery):
            agent.waiting.remove(delivery)
        elif now >= delivery.deadline:
            agent.waiting.remove(delivery)
            finish_invocation(delivery.inv, "TimedOut", "DeliveryTimedOut")
            FAULTS.count("delivery_timed_out", "ssm:SendCommand")
            LOG.info("%s on %s: delivery timed out", delivery.command.command_id, agent.instance_id)
    agent.buffered = collections.deque(d for d in agent.buffered if pending(d))
    if not agent.waiting and not agent.buffered:
        return
    instance = (agent.waiting or agent.buffered)[0].instance
    if not accepting(agent, instance):
        return
    workers, buffer = FAULTS.agent_limits()
    while True:
        if agent.buffered and len(agent.running) < workers:
            start(agent, agent.buffered.popleft())
        elif agent.waiting and len(agent.buffered) < buffer:
            delivery = agent.waiting.popleft()
            delivery.inv.status = delivery.inv.status_details = "InProgress"
            agent.buffered.append(delivery)
        elif agent.waiting and buffer == 0 and len(agent.running) < workers:
            start(agent, agent.waiting.popleft())
        else:
            return


def start(agent: Agent, delivery: Delivery) -> None:
    agent.running.append(delivery)
    in_background(f"cmd-{agent.instance_id}", run_and_release, agent, delivery)


def run_and_release(agent: Agent, delivery: Delivery) -> None:
    """Background thread: run the invocation, then free its worker for the next command."""
    try:
        run_invocation(delivery.command, delivery.inv)
    finally:
        with STATE.lock:
            if delivery in agent.running:
                agent.running.remove(delivery)
            pump(agent)


def tick() -> None:
    """Lazily (before requests, server.housekeeping): delivery timeouts, and delivery to agents back online or
    instances started again."""
    now = utcnow()
    with STATE.lock:
        for agent in list(STATE.agents.values()):
            if agent.waiting or agent.buffered:
                pump(agent, now)
