"""Several servers share one floor (and agents' overlays) through a Redis Stream: each appends what its own
monitors and ingested calls send, and feeds every other server's entries into its floor, checked exactly as a
local monitor's are.

A batch is one stream entry (XADD with an approximate MAXLEN, so the stream holds the last few minutes): a
header line `{"hub": id}` then one JSON object per line, re-encoded here from checked fields (never a
monitor's raw text). Each subscriber reads with XREAD from the last id it has seen, so one that reconnects
(Redis restarted, a network blip) catches up on what was added meanwhile instead of losing those cues; a
publisher that cannot reach Redis keeps its lines and appends them when Redis is back.

Each server holds a lease in Redis (`calmline:lease:<id>`, renewed every second, `lease_s` long) and is listed
in `calmline:servers`. A server whose lease has been missing for `dead_after_s` while Redis answers was killed:
every other server ends its open calls as interrupted (Floor.interrupt). Missing for less (Redis itself
restarted empty) is not enough: its owner renews it within a second or two of Redis's return.

A malformed line is logged (one line, at most once a second) and skipped; nothing a peer sends can end the
subscriber. The three jobs (publish, subscribe, leases) run supervised: any failure is logged and retried
with backoff, while the server goes on serving its own monitors.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque

from ..events import Note
from .jsonwire import dumps
from .monitors import DroppedMessage, EventMessage, loads, parse_message

log = logging.getLogger("calmline.redis")

CHANNEL = "calmline:events"
"""The stream's key."""
MAX_BATCH_LINES = 2000
MAX_AGENT_CHARS = 64
STREAM_MAXLEN = 100_000
"""Entries the stream keeps (about: Redis trims whole nodes). An entry is one batch of up to MAX_BATCH_LINES
lines; bench/scale.py measured about 5 entries per call-second of some 400 bytes each, so 100 calls keep
about three minutes in some 40 MB. A subscriber away longer than that misses the rest; the floor then shows
what comes next."""
LEASE_S = 3.0
DEAD_AFTER_S = 5.0
MAX_BACKOFF_S = 2.0
"""Longest wait between reconnection attempts: a server is back on Redis within this after Redis is."""


class RedisBridge:
    """Publishes this server's monitor messages and applies other servers' to `floor`."""

    def __init__(self, url: str, floor, channel: str = CHANNEL, lease_s: float = LEASE_S,
                 dead_after_s: float = DEAD_AFTER_S, maxlen: int = STREAM_MAXLEN):
        self.url, self.floor, self.channel = url, floor, channel
        self.lease_s, self.dead_after_s, self.maxlen = lease_s, dead_after_s, maxlen
        self.last_id: str | None = None
        """The last stream entry read: where a reconnecting subscriber goes on from."""
        self.missing: dict[str, float] = {}
        """Servers whose lease is missing -> since when (monotonic)."""
        self.caught_up = 0
        """Entries read on reconnecting that were added while this server was away."""
        self.outgoing: deque[str] = deque(maxlen=20000)
        self.wake = asyncio.Event()
        self.healthy = False
        self.rejected = 0
        """Lines from other servers refused by the checks."""
        self._down: set[str] = set()
        self._last_complaint = 0.0
        self._tasks: list[asyncio.Task] = []

    # -- this server's side --

    def send(self, agent: str, message: dict) -> None:
        """Queue one checked monitor message (`EventMessage.to_wire()` / `DroppedMessage.to_wire()`)."""
        self._queue(dumps({"agent": agent, "msg": message}))

    def send_lost(self, agent: str, call_id: str) -> None:
        self._queue(dumps({"agent": agent, "lost": call_id}))

    def send_note(self, agent: str, call_id: str, note: dict) -> None:
        """A supervisor's note (monitor/web/notes.py), for the agent's overlay or monitor on another server."""
        self._queue(dumps({"agent": agent, "note": note, "call_id": call_id}))

    def _queue(self, line: str) -> None:
        self.outgoing.append(line)
        self.wake.set()

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._supervised("publish", self._publish)),
                       asyncio.create_task(self._supervised("subscribe", self._subscribe)),
                       asyncio.create_task(self._supervised("lease", self._leases))]

    async def stop(self, drain_s: float = 2.0) -> None:
        """Append what is still queued (the call_ends of a stopping server's calls), then stop the jobs."""
        deadline = time.monotonic() + drain_s
        while self.outgoing and self.healthy and time.monotonic() < deadline:
            self.wake.set()
            await asyncio.sleep(0.02)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:  # a server stopped on purpose gives its lease back: its calls ended cleanly, nothing to interrupt
            import redis.asyncio as redis

            client = redis.from_url(self.url, socket_connect_timeout=1.0, socket_timeout=1.0)
            await client.delete(self._lease_key(self.floor.id))
            await client.srem(self._servers_key, self.floor.id)
            await client.aclose()
        except Exception:  # noqa: BLE001 - Redis away: the lease runs out by itself
            pass

    # -- supervision --

    async def _supervised(self, what: str, job) -> None:
        """Run `job(client)` for ever: after any failure, log it (once per outage) and retry with backoff."""
        import redis.asyncio as redis
        from redis.exceptions import RedisError

        backoff = 0.25
        while True:
            client = redis.from_url(self.url, socket_connect_timeout=2.0)
            began = time.monotonic()
            try:
                await job(client)
                raise RuntimeError("ended")  # jobs run for ever: an end is a failure too
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as error:
                if what not in self._down:
                    log.warning("redis %s failed (%s); retrying", what, error)
                    self._down.add(what)
            except Exception:
                log.exception("redis %s stopped on an error; restarting it", what)
            finally:
                self.healthy = False
                try:
                    await client.aclose()
                except Exception:
                    pass
            if time.monotonic() - began > 10.0:  # it had been working: retry soon
                backoff = 0.25
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    def _up(self, what: str) -> None:
        if what in self._down:
            self._down.discard(what)
            log.warning("redis %s working again", what)

    # -- appending and reading --

    async def _publish(self, client) -> None:
        header = json.dumps({"hub": self.floor.id})
        await client.ping()
        self._up("publish")
        log.info("redis appending to stream %s on %s", self.channel, self.url)
        self.healthy = True
        while True:
            if not self.outgoing:
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout=1.0)
                except asyncio.TimeoutError:
                    pass
            self.wake.clear()
            if not self.outgoing:
                continue  # the lease, not empty batches, says this server is alive
            lines = [header]
            while self.outgoing and len(lines) <= MAX_BATCH_LINES:
                lines.append(self.outgoing.popleft())
            try:
                await client.xadd(self.channel, {"b": "\n".join(lines)}, maxlen=self.maxlen, approximate=True)
            except BaseException:
                self.outgoing.extendleft(reversed(lines[1:]))  # not lost: sent once Redis is back
                raise
            self.healthy = True

    async def _subscribe(self, client) -> None:
        if self.last_id is None:  # first start: from now on (the floor fills as the calls go on)
            newest = await client.xrevrange(self.channel, count=1)
            self.last_id = newest[0][0].decode() if newest else "0-0"
        reconnected = "subscribe" in self._down  # what is read first was added while this server was away
        self._up("subscribe")
        log.info("redis reading stream %s from %s", self.channel, self.last_id)
        while True:
            answer = await client.xread({self.channel: self.last_id}, count=500, block=1000)
            for _, entries in answer or ():
                if reconnected:
                    self.caught_up += len(entries)
                for entry_id, fields in entries:
                    self.last_id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                    data = fields.get(b"b", b"") if isinstance(fields, dict) else b""
                    self.on_batch(data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data))
            reconnected = False

    # -- leases --

    _servers_key = "calmline:servers"

    @staticmethod
    def _lease_key(server: str) -> str:
        return f"calmline:lease:{server}"

    async def _leases(self, client) -> None:
        """Renew this server's lease every second; end the calls of servers whose lease stays missing."""
        await client.ping()
        self._up("lease")
        while True:
            async with client.pipeline(transaction=False) as pipe:
                pipe.set(self._lease_key(self.floor.id), "1", px=int(self.lease_s * 1000))
                pipe.sadd(self._servers_key, self.floor.id)
                pipe.smembers(self._servers_key)
                *_, members = await pipe.execute()
            listed = {m.decode() if isinstance(m, bytes) else str(m) for m in members}
            origins = {c.origin for c in list(self.floor.calls.values()) if c.status != "ended"}  # Redis may
            others = sorted((listed | origins) - {self.floor.id})                # have restarted empty
            others = [s for s in others if 0 < len(s) <= 64]
            alive = await client.mget([self._lease_key(s) for s in others]) if others else []
            now = time.monotonic()
            for server, lease in zip(others, alive):
                if lease is not None:
                    self.missing.pop(server, None)
                    self.floor.heard_from(server)
                    continue
                since = self.missing.setdefault(server, now)
                if now - since >= self.dead_after_s:
                    ended = self.floor.interrupt(server)
                    log.warning("redis: server %s lost its lease %.0f s ago; %d of its calls ended as interrupted",
                                server, now - since, len(ended))
                    await client.srem(self._servers_key, server)
                    self.missing.pop(server, None)
            await asyncio.sleep(1.0)

    # -- other servers' batches --

    def on_batch(self, payload: str) -> None:
        """Apply one batch from another server; bad lines are counted, logged and skipped."""
        lines = payload.split("\n")
        header = loads(lines[0])
        server = header.get("hub") if isinstance(header, dict) else None
        if not isinstance(server, str) or not 0 < len(server) <= 64:
            return self._complain("a batch without a server id", lines[0])
        if server == self.floor.id:
            return None
        self.floor.heard_from(server)
        for line in lines[1:MAX_BATCH_LINES + 1]:
            try:
                why = self._apply(server, loads(line))
            except Exception as error:  # a bug of ours must not end the subscriber either
                log.exception("redis: line from server %s failed", server)
                why = f"failed: {type(error).__name__}"
            if why is not None:
                self._complain(why, line, server)
        return None

    def _apply(self, server: str, item) -> str | None:
        """Why the line was refused, or None once applied."""
        if not isinstance(item, dict):
            return "not a JSON object"
        agent = item.get("agent")
        if not isinstance(agent, str) or not 0 < len(agent) <= MAX_AGENT_CHARS:
            return "bad agent"
        if "lost" in item:
            call_id = item["lost"]
            if not isinstance(call_id, str) or len(call_id) > 128:
                return "bad lost call id"
            self.floor.remote_lost(agent, call_id)
            return None
        if "note" in item:
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or not 0 < len(call_id) <= 128:
                return "bad note call id"
            try:
                note = Note.from_dict(item["note"]).to_dict()
            except ValueError as error:
                return str(error)
            return self.floor.remote_note(agent, call_id, note)
        try:
            msg = parse_message(item.get("msg"))
        except ValueError as error:
            return str(error)
        if isinstance(msg, EventMessage):
            return self.floor.ingest(agent, msg, server)
        if isinstance(msg, DroppedMessage):
            return self.floor.dropped(agent, msg, server)
        return "unknown message"

    def _complain(self, why: str, line: str, server: str = "?") -> None:
        self.rejected += 1
        now = time.monotonic()
        if now - self._last_complaint >= 1.0:
            self._last_complaint = now
            log.warning("redis: refused a message from server %s: %s (%.80r; %d refused so far)", server, why,
                        line, self.rejected)
