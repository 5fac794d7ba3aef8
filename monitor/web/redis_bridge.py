"""Several servers share one floor through Redis pub/sub: each publishes what its own monitors send and
feeds every other server's messages into its floor, checked exactly as a local monitor's are.

A batch is one pub/sub message: a header line `{"hub": id}` then one JSON object per line, re-encoded here
from checked fields (never a monitor's raw text). Batches are also the heartbeat (one at least every
second), so other servers notice one that went away. A malformed line is logged (one line, at most once a
second) and skipped; nothing a peer sends can end the subscriber. Both halves run supervised: any failure
is logged and retried with backoff, while the server goes on serving its own monitors.

Everything that knows the transport is in this module, so that moving to Redis Streams stays local.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque

from .jsonwire import dumps
from .monitors import DroppedMessage, EventMessage, loads, parse_message

log = logging.getLogger("calmline.redis")

CHANNEL = "calmline:events"
MAX_BATCH_LINES = 2000
MAX_AGENT_CHARS = 64


class RedisBridge:
    """Publishes this server's monitor messages and applies other servers' to `floor`."""

    def __init__(self, url: str, floor, channel: str = CHANNEL):
        self.url, self.floor, self.channel = url, floor, channel
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

    def _queue(self, line: str) -> None:
        self.outgoing.append(line)
        self.wake.set()

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._supervised("publish", self._publish)),
                       asyncio.create_task(self._supervised("subscribe", self._subscribe))]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

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
            backoff = min(backoff * 2, 5.0)

    def _up(self, what: str) -> None:
        if what in self._down:
            self._down.discard(what)
            log.warning("redis %s working again", what)

    # -- the two halves --

    async def _publish(self, client) -> None:
        header = json.dumps({"hub": self.floor.id})
        await client.ping()
        self._up("publish")
        log.info("redis publishing to %s on %s", self.channel, self.url)
        while True:
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                pass
            self.wake.clear()
            lines = [header]
            while self.outgoing and len(lines) <= MAX_BATCH_LINES:
                lines.append(self.outgoing.popleft())
            try:
                await client.publish(self.channel, "\n".join(lines))
            except BaseException:
                self.outgoing.extendleft(reversed(lines[1:]))  # not lost: sent once Redis is back
                raise
            self.healthy = True

    async def _subscribe(self, client) -> None:
        pubsub = client.pubsub()
        await pubsub.subscribe(self.channel)
        self._up("subscribe")
        log.info("redis subscribed to %s", self.channel)
        async for message in pubsub.listen():
            if message.get("type") == "message":
                data = message["data"]
                self.on_batch(data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data))

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
