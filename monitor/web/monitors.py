"""The desktop monitors' stream, `/monitor`: each agent's monitor signs in with its token in a first `hello`
(the token says who the agent is: a name in the hello is optional, and one that differs is logged and ignored),
then sends its call's events wrapped with the call id and a sequence number (docs/protocol.md, "The floor").

Every message is checked field by field before anything uses it (the event itself by monitor.events), and a
bad one gets `{"type":"error",...}` while the connection stays open. Each agent has caps on open connections
and open calls, and each connection a token bucket checked before any JSON parsing, so one agent can neither
flood the server nor crowd out the others.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import time
from dataclasses import dataclass, field

from starlette.websockets import WebSocket, WebSocketDisconnect

from ..analysis.redact import Redactor
from ..config import RedactConfig
from ..events import CallEnd, Event, Transcript
from .jsonwire import dumps
from .outbox import close_websocket
from .ratelimit import TokenBucket

log = logging.getLogger("calmline.monitors")

PROTOCOL_VERSION = 1
MAX_SEQ = 2 ** 53 - 1
"""Largest sequence number (the largest integer every JSON reader holds exactly)."""
MAX_SEQ_JUMP = 1_000_000
"""How far ahead of a call's last sequence number a message may be (a monitor offline for hours)."""
MAX_ID_CHARS = 128


MAX_REDACTORS = 10_000
"""Calls whose transcripts the server keeps redaction state for (each ends with its call_end)."""


@dataclass
class MonitorLimits:
    rate_per_s: float = 50.0
    """Messages per second per connection (token bucket, bursts of 2 s)."""
    max_connections: int = 4
    """Open connections per agent (their open calls are capped by the floor: FloorOptions.max_calls_per_agent)."""
    hello_timeout_s: float = 5.0
    flood_close_s: float = 5.0
    """A connection still over its rate after this many seconds of drops is closed."""
    max_message_bytes: int = 65536


@dataclass
class EventMessage:
    """A monitor's `event` message, checked: its call, sequence number, wall clock and the event."""

    call_id: str
    seq: int
    at: float | None
    event: Event
    raw: dict
    """The event's JSON form with only its known keys (what supervisors and other servers are sent)."""

    def to_wire(self) -> dict:
        return {"type": "event", "call_id": self.call_id, "seq": self.seq, "at": self.at, "event": self.raw}


@dataclass
class DroppedMessage:
    """A monitor's `dropped` notice: events it let go while the server was unreachable."""

    call_id: str | None
    count: int

    def to_wire(self) -> dict:
        return {"type": "dropped", "call_id": self.call_id, "count": self.count}


def parse_message(msg) -> EventMessage | DroppedMessage:
    """A monitor's message (parsed JSON) checked field by field; a ValueError names the first bad field."""
    if not isinstance(msg, dict):
        raise ValueError("not a JSON object")
    kind = msg.get("type")
    if kind == "event":
        call_id = _call_id(msg.get("call_id"))
        seq = msg.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq <= MAX_SEQ:
            raise ValueError(f"seq must be an integer from 1 to {MAX_SEQ}")
        at = msg.get("at")
        if at is not None and (not isinstance(at, (int, float)) or isinstance(at, bool) or not 0 <= at <= 1e11):
            raise ValueError("at must be a wall clock time (Unix seconds)")
        raw = msg.get("event")
        event = Event.from_dict(raw)
        names = _KEYS.get(type(event))
        if names is None:
            names = _KEYS[type(event)] = {"v", "type", *event.__dataclass_fields__}
        return EventMessage(call_id, seq, float(at) if at is not None else None, event,
                            {k: v for k, v in raw.items() if k in names})
    if kind == "dropped":
        count = msg.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_SEQ:
            raise ValueError("count must be a non-negative integer")
        call_id = msg.get("call_id")
        return DroppedMessage(None if call_id is None else _call_id(call_id), count)
    raise ValueError(f"unknown message type {str(kind)[:40]!r}")


_KEYS: dict[type, set[str]] = {}


def _call_id(value) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS or not value.isprintable():
        raise ValueError(f"call_id must be a string of 1 to {MAX_ID_CHARS} printable characters")
    return value


def _reject_constant(name: str):
    raise ValueError(f"non-finite number {name}")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def loads(text: str):
    """Parsed JSON, or None when it isn't valid (NaN and infinities included: browsers can't parse them)."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8", "replace")
    try:
        return _DECODER.decode(text)
    except (ValueError, TypeError, RecursionError):
        return None


@dataclass(eq=False)
class MonitorConnection:
    ws: WebSocket
    agent: str
    bucket: TokenBucket
    calls: set = field(default_factory=set)
    dropped: int = 0
    flood_since: float | None = None
    last_drop: float = 0.0
    last_notice: float = 0.0
    replies: int = 0
    closing: bool = False


class Monitors:
    """Serves `/monitor` connections into a floor (monitor.web.floor_room.Floor)."""

    def __init__(self, floor, tokens: dict[str, str], limits: MonitorLimits | None = None,
                 redact: RedactConfig | None = None):
        self.floor = floor
        self.tokens = tokens
        self.limits = limits or MonitorLimits()
        self.redact = redact or RedactConfig()
        self.connections: dict[str, set[MonitorConnection]] = {}
        self._redactors: dict[tuple[str, str], Redactor] = {}

    def __len__(self) -> int:
        return sum(len(c) for c in self.connections.values())

    async def serve(self, ws: WebSocket) -> None:
        """One monitor connection, from the handshake to its end."""
        await ws.accept()
        agent = await self._hello(ws)
        if agent is None:
            return
        rate = self.limits.rate_per_s
        conn = MonitorConnection(ws, agent, TokenBucket(rate, 2 * rate))
        self.connections.setdefault(agent, set()).add(conn)  # no await since the cap was checked: no race
        log.info("monitor %s connected from %s", agent, _peer(ws))
        try:
            limits = self.limits
            await ws.send_text(dumps({"type": "welcome", "v": PROTOCOL_VERSION, "hub": self.floor.id, "agent": agent,
                                      "rate_per_s": limits.rate_per_s, "burst": 2 * limits.rate_per_s,
                                      "max_message_bytes": limits.max_message_bytes,
                                      "max_calls": self.floor.options.max_calls_per_agent}))
            handled = 0
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None:
                    text = (message.get("bytes") or b"").decode("utf-8", "replace")
                try:
                    self._on_message(conn, text)
                except Exception:  # a fault of ours: logged, and that message alone is lost
                    log.exception("monitor %s: message failed", agent)
                    self._reply(conn, {"type": "error", "reason": "server error"})
                handled += 1
                if handled % 32 == 0:  # a connection with a deep backlog lets the others in between
                    await asyncio.sleep(0)
                if conn.closing:
                    await close_websocket(ws, 1008, "rate limit exceeded")
                    break
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            agents = self.connections.get(agent)
            if agents is not None:
                agents.discard(conn)
                if not agents:
                    del self.connections[agent]
            log.info("monitor %s disconnected (%d messages over its rate dropped)", agent, conn.dropped)
            self.floor.monitor_gone(conn)

    async def _hello(self, ws: WebSocket) -> str | None:
        """The agent name once a valid `hello` came first and the agent has a connection to spare (the caller
        welcomes it), else None after refusing the connection."""
        try:
            message = await asyncio.wait_for(ws.receive(), timeout=self.limits.hello_timeout_s)
        except asyncio.TimeoutError:
            return await self._refuse(ws, f"no hello within {self.limits.hello_timeout_s:g} s")
        except (WebSocketDisconnect, RuntimeError):
            return None
        if message["type"] == "websocket.disconnect":
            return None
        hello = loads(message.get("text") or message.get("bytes") or "")
        if not isinstance(hello, dict) or hello.get("type") != "hello":
            return await self._refuse(ws, "expected hello first")
        named = hello.get("agent")
        agent = self._agent_of(hello.get("token"))
        if agent is None:
            log.warning("monitor refused from %s: bad token (hello names %.40r)", _peer(ws), named)
            return await self._refuse(ws, "bad token")
        if named is not None and named != agent:
            log.info("monitor from %s says it is %.40r; its token is %s's, so it is %s", _peer(ws), named, agent,
                     agent)
        if len(self.connections.get(agent, ())) >= self.limits.max_connections:
            log.warning("monitor refused from %s: agent %s already has %d connections", _peer(ws), agent,
                        self.limits.max_connections)
            return await self._refuse(ws, f"too many connections for this agent ({self.limits.max_connections})")
        return agent

    def _agent_of(self, token) -> str | None:
        """The agent whose token this is: compared in constant time with every token (all of them, whatever
        matches first, so the time taken says nothing of which), or None."""
        if not isinstance(token, str) or not token:
            return None
        given = token.encode()
        found = None
        for agent, expected in self.tokens.items():
            if hmac.compare_digest(given, expected.encode()) and found is None:
                found = agent
        return found

    async def _refuse(self, ws: WebSocket, reason: str) -> None:
        try:
            await asyncio.wait_for(ws.send_text(dumps({"type": "error", "reason": reason})), 2.0)
        except (asyncio.TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
            pass
        await close_websocket(ws, 1008, reason)
        return None

    def _on_message(self, conn: MonitorConnection, text: str) -> None:
        # The bucket is checked before parsing, so a flood costs little; levels give way first.
        reserve = conn.bucket.burst / 2 if '"type":"levels"' in text else 0.0
        if not conn.bucket.take(reserve):
            self._rate_drop(conn)
            return
        msg = loads(text)
        try:
            checked = parse_message(msg)
        except ValueError as error:
            reply = {"type": "error", "reason": str(error)}
            if isinstance(msg, dict):
                reply.update({k: msg[k] for k in ("call_id", "seq") if _small(msg.get(k))})
            return self._reply(conn, reply)
        if isinstance(checked, EventMessage):
            self._redact(conn.agent, checked)
            error = self.floor.ingest(conn.agent, checked, self.floor.id, conn)
        else:
            error = self.floor.dropped(conn.agent, checked, self.floor.id)
        if error is not None:
            reply = {"type": "error", "reason": error, "call_id": checked.call_id}
            if isinstance(checked, EventMessage):
                reply["seq"] = checked.seq
            self._reply(conn, reply)

    def _redact(self, agent: str, msg: EventMessage) -> None:
        """A monitor redacts its own transcripts, but an old or modified one may not: the server redacts them
        again before anyone sees them (redacting a redacted line changes nothing). One redactor per call, so
        that a number read across lines is still found; it goes with the call's end."""
        key = (agent, msg.call_id)
        if isinstance(msg.event, CallEnd):
            self._redactors.pop(key, None)
        if not isinstance(msg.event, Transcript):
            return
        redactor = self._redactors.get(key)
        if redactor is None:
            if len(self._redactors) >= MAX_REDACTORS:  # calls that never ended: forget the oldest
                self._redactors.pop(next(iter(self._redactors)))
            redactor = self._redactors[key] = Redactor(self.redact)
        msg.event = redactor(msg.event)
        msg.raw.update(text=msg.event.text, words=msg.event.words)

    def _rate_drop(self, conn: MonitorConnection) -> None:
        now = time.monotonic()
        conn.dropped += 1
        if conn.flood_since is None or now - conn.last_drop > 1.0:
            conn.flood_since = now
        conn.last_drop = now
        if now - conn.flood_since > self.limits.flood_close_s and not conn.closing:
            conn.closing = True
            log.warning("monitor %s closed: over its rate for %.0f s", conn.agent, now - conn.flood_since)
        elif now - conn.last_notice >= 1.0:
            conn.last_notice = now
            log.info("monitor %s over its rate: %d messages dropped", conn.agent, conn.dropped)
            self._reply(conn, {"type": "rate_limited", "dropped": conn.dropped, "rate_per_s": self.limits.rate_per_s})

    def _reply(self, conn: MonitorConnection, message: dict) -> None:
        """Send a notice without waiting; a monitor that doesn't read gets no more than a few in flight."""
        if conn.replies >= 8:
            return

        async def send():
            try:
                await conn.ws.send_text(dumps(message))
            except (WebSocketDisconnect, RuntimeError, OSError):
                pass
            finally:
                conn.replies -= 1

        conn.replies += 1
        asyncio.ensure_future(send())


def _small(value) -> bool:
    """Safe to echo back in an error reply: a short string or a finite number."""
    if isinstance(value, str):
        return len(value) <= MAX_ID_CHARS
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and \
        abs(value) <= MAX_SEQ


def _peer(ws: WebSocket) -> str:
    client = ws.client
    return f"{client.host}:{client.port}" if client else "?"
