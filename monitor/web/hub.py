"""Supervisor hub: every agent's monitor streams its call here; supervisors watch all live calls on one floor page.

One asyncio loop in a daemon thread serves, on one port:

- `/monitor` (WebSocket): monitors authenticate with their agent token in a first `hello` message, then send
  events wrapped with their call id and a sequence number (see docs/protocol.md, "The hub").
- `/login`, `/logout`, `/floor`, `/session`, `/ui/...` (HTTP) and `/floor/ws` (WebSocket): supervisors log in
  for a server-side session held in an HttpOnly, SameSite=Strict cookie; the floor WebSocket also checks Origin.

Nothing a client does may delay another: each monitor has a token bucket (cheap drops before any JSON parsing),
each supervisor its own bounded queue where tiles of one call replace each other and a watched call's `levels`
may be dropped. With `redis_url`, hubs share what their monitors send over one Redis pub/sub channel, so a
supervisor on any hub sees every call; without Redis the hub needs nothing else.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import http
import json
import logging
import mimetypes
import os
import re
import secrets
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

import monitor

from ..errors import UsageError
from .floor import Alert, CallState, _num
from .ratelimit import TokenBucket

log = logging.getLogger("calmline.hub")

UI_DIR = Path(monitor.__file__).resolve().parent.parent / "ui"
TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".json": "application/json", ".svg": "image/svg+xml",
         ".png": "image/png"}
SECURITY_HEADERS = [
    ("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                                "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "same-origin"), ("Cache-Control", "no-store"),
]
COOKIE = "calmline_session"
PROTOCOL_VERSION = 1
SEND_BUFFER = 64 * 1024
"""Bytes websockets and the kernel may hold per supervisor; a backlog beyond waits in our queue, where tiles
of one call coalesce and stale levels can be dropped."""

ALERT_KINDS = ("raised_voice", "acknowledge", "cues", "dead_air", "lost")
MAX_CALLS = 20000


# ---- passwords ----

_SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    """A salted scrypt hash as one string: `scrypt$n$r$p$salt$hash` (base64), for the supervisors table."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt)}${b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    """True when `password` matches a `hash_password` string; compared in constant time, False on any bad input."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                                dklen=len(expected), maxmem=64 * 1024 * 1024)
    except (ValueError, TypeError, AttributeError):
        return False
    return hmac.compare_digest(actual, expected)


_DUMMY_HASH = hash_password(secrets.token_hex(8))
"""Checked against for unknown users, so a wrong username costs as long as a wrong password."""


# ---- options ----

@dataclass
class HubOptions:
    host: str = "127.0.0.1"
    port: int = 8766
    redis_url: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    """Agent name -> the token its monitor presents."""
    supervisors: dict[str, str] = field(default_factory=dict)
    """Username -> `hash_password()` string."""
    allowed_origins: list[str] | None = None
    """Origins allowed to open /floor/ws and post /login; None: the hub's own origin (as the browser sees it)."""
    max_message_bytes: int = 65536
    rate_per_s: float = 50.0
    """Messages per second per monitor connection (token bucket, bursts of 2 s)."""
    queue_size: int = 512
    """Per-supervisor queue length beyond which watched `levels` are dropped; 4x this of others closes it."""
    session_ttl_s: float = 12 * 3600.0
    hello_timeout_s: float = 5.0
    flood_close_s: float = 5.0
    """A monitor still over its rate after this many seconds of drops is disconnected."""
    tile_interval_s: float = 0.2
    """About one tile per call per this interval to each supervisor (a bucket 25% faster, bursts of 3, so that a
    cue between two `levels` costs no lasting delay); changes beyond it coalesce."""
    ended_linger_s: float = 10.0
    """An ended call stays on the floor this long."""
    lost_forget_s: float = 600.0
    """A call whose connection was lost and never came back is dropped after this long."""
    redis_channel: str = "calmline:events"
    peer_timeout_s: float = 5.0
    """Calls of a hub not heard from over Redis for this long show as connection lost."""


# ---- supervisors ----

@dataclass
class _Session:
    user: str
    expires: float  # monotonic


class _Outbox:
    """One supervisor's bounded queue, drained by its own task at its own pace: a newer tile of a call replaces
    the one still waiting, a watched call's oldest `levels` go first when full, and queued messages leave
    together as one WebSocket message of newline-separated JSON objects."""

    BATCH_BYTES = 64 * 1024

    def __init__(self, ws: ServerConnection, size: int):
        self.ws = ws
        self.size = size
        self.items: deque[tuple[str, str]] = deque()  # (kind, text or call id for tiles)
        self.tiles: dict[str, str] = {}
        self.ready = asyncio.Event()
        self.dropped = 0

    def put_tile(self, call_id: str, text: str) -> None:
        if call_id not in self.tiles:
            self.items.append(("tile", call_id))
        self.tiles[call_id] = text
        self.ready.set()

    def put(self, kind: str, text: str) -> bool:
        """Queue one message; False when the supervisor is hopelessly behind on messages it may not miss."""
        backlog = len(self.items) - len(self.tiles)
        if backlog >= self.size:
            oldest = next((i for i, (k, _) in enumerate(self.items) if k == "levels"), None)
            if oldest is not None:
                del self.items[oldest]
                self.dropped += 1
            elif kind == "levels":
                self.dropped += 1
                return True
            elif backlog >= 4 * self.size:
                return False
        self.items.append((kind, text))
        self.ready.set()
        return True

    async def run(self) -> None:
        while True:
            while not self.items:
                self.ready.clear()
                await self.ready.wait()
            batch, size = [], 0
            while self.items and size < self.BATCH_BYTES:
                kind, text = self.items.popleft()
                if kind == "tile":
                    text = self.tiles.pop(text)
                batch.append(text)
                size += len(text)
            try:
                await self.ws.send("\n".join(batch))
            except ConnectionClosed:
                return


@dataclass(eq=False)
class _Supervisor:
    ws: ServerConnection
    user: str
    token: str
    outbox: _Outbox
    watching: str | None = None
    sender: asyncio.Task | None = None


@dataclass(eq=False)
class _Monitor:
    ws: ServerConnection
    agent: str
    bucket: TokenBucket
    calls: set = field(default_factory=set)
    dropped: int = 0
    flood_since: float | None = None
    last_drop: float = 0.0
    last_notice: float = 0.0
    replies: int = 0
    closing: bool = False


class _Connection(ServerConnection):
    """websockets' handshake parser refuses request bodies: read a POST's small body here first, hand the request
    on with `Content-Length: 0`, and keep the body on the connection for `process_request`."""

    MAX_HEAD = 16 * 1024
    MAX_BODY = 8 * 1024

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.body: bytes | None = b""  # None: the body was too large
        self._head = bytearray()
        self._mode = "head"  # head -> pass (to websockets) or swallow (a body too large; we answer 413)

    def data_received(self, data: bytes) -> None:
        if self._mode == "pass":
            return super().data_received(data)
        if self._mode == "swallow":
            return None
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > self.MAX_HEAD:  # let websockets refuse it
                self._pass(bytes(self._head))
            return None
        head, rest = bytes(self._head[:end + 4]), bytes(self._head[end + 4:])
        length = _content_length(head)
        if not length:
            return self._pass(head + rest)
        head = re.sub(rb"(?im)^content-length:[^\r\n]*\r\n", b"Content-Length: 0\r\n", head)
        if length > self.MAX_BODY:
            self.body = None
            self._mode = "swallow"
            return super().data_received(head)
        if len(rest) < length:
            return None  # wait for the rest of the body
        self.body = rest[:length]
        return self._pass(head + rest[length:])

    def _pass(self, data: bytes) -> None:
        self._mode = "pass"
        self._head = bytearray()
        super().data_received(data)


def _content_length(head: bytes) -> int:
    match = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    return int(match.group(1)) if match else 0


# ---- Redis: what each hub's monitors send, shared with every other hub ----

class _RedisBridge:
    """Publishes this hub's monitor messages in batches and hands every other hub's batches to `on_batch`.

    A batch is one pub/sub message: a header line `{"hub": id}` then one JSON object per line. Batches are also
    the heartbeat (one at least every second), so other hubs notice a hub that went away. When Redis is down
    both halves retry with backoff; the hub meanwhile serves its own monitors as usual."""

    def __init__(self, url: str, channel: str, hub_id: str, on_batch):
        self.url, self.channel, self.hub_id, self.on_batch = url, channel, hub_id, on_batch
        self.outgoing: deque[str] = deque(maxlen=20000)
        self.wake = asyncio.Event()
        self.healthy = False
        self._down: set[str] = set()

    def send(self, line: str) -> None:
        self.outgoing.append(line)
        self.wake.set()

    async def run(self) -> None:
        await asyncio.gather(self._retrying("publish", self._publish), self._retrying("subscribe", self._subscribe))

    async def _retrying(self, what: str, job) -> None:
        import redis.asyncio as redis
        from redis.exceptions import RedisError

        backoff = 0.25
        while True:
            client = redis.from_url(self.url, socket_connect_timeout=2.0)
            began = time.monotonic()
            try:
                await job(client)
                return
            except (RedisError, OSError) as error:
                if what not in self._down:  # once per outage
                    log.warning("redis %s failed (%s); retrying", what, error)
                    self._down.add(what)
                self.healthy = False
            finally:
                try:
                    await client.aclose()
                except (RedisError, OSError):
                    pass
            if time.monotonic() - began > 10.0:  # it had been working: retry soon
                backoff = 0.25
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _up(self, what: str) -> None:
        if what in self._down:
            self._down.discard(what)
            log.warning("redis %s working again", what)

    async def _publish(self, client) -> None:
        header = json.dumps({"hub": self.hub_id})
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
            while self.outgoing and len(lines) < 2000:
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


# ---- the hub ----

class Hub:
    """The supervisor floor server: monitors in, supervisors out (see the module docstring)."""

    def __init__(self, options: HubOptions | None = None):
        self.options = options or HubOptions()
        self.id = secrets.token_hex(4)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._port: int | None = None
        self._ssl = self._ssl_context()
        self.calls: dict[str, CallState] = {}
        self.alerts: deque[Alert] = deque(maxlen=50)
        self._alert_id = 0
        self._monitors: set[_Monitor] = set()
        self._supervisors: set[_Supervisor] = set()
        self._watchers: dict[str, set[_Supervisor]] = {}
        self._sessions: dict[str, _Session] = {}
        self._failures: dict[str, deque[float]] = {}
        self._peers: dict[str, float] = {}
        self._bridge: _RedisBridge | None = None

    # -- public --

    @property
    def port(self) -> int:
        return self._port if self._port is not None else self.options.port

    @property
    def scheme(self) -> str:
        return "https" if self._ssl else "http"

    @property
    def url(self) -> str:
        """The floor's base URL (log in at `url + "login"`)."""
        return f"{self.scheme}://{self.options.host}:{self.port}/"

    @property
    def monitor_url(self) -> str:
        return f"{'wss' if self._ssl else 'ws'}://{self.options.host}:{self.port}/monitor"

    def stats(self) -> dict:
        """Counts for logs and tests: live calls, connected monitors and supervisors, Redis health."""
        return {"calls": len(self.calls), "monitors": len(self._monitors), "supervisors": len(self._supervisors),
                "redis": None if self._bridge is None else self._bridge.healthy}

    def start(self) -> None:
        """Listen in a daemon thread; return once listening, or raise UsageError (e.g. port taken)."""
        started = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(started, failure), name="calmline-hub", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            self._thread.join()
            error = failure[0]
            reason = str(error)
            if isinstance(error, OSError):
                reason = os.strerror(error.errno) if (error.errno or 0) > 0 else error.strerror or reason
            raise UsageError(f"cannot listen on {self.options.host}:{self.options.port}: {reason.lower()}") from error
        log.info("hub %s: floor at %s, monitors at %s", self.id, self.url, self.monitor_url)

    def stop(self) -> None:
        """Close every connection and the listening socket; waits for the loop thread to end."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=5)
        self._loop = None

    # -- loop thread --

    def _ssl_context(self) -> ssl.SSLContext | None:
        cert, key = self.options.tls_cert, self.options.tls_key
        if not cert and not key:
            return None
        if not (cert and key):
            raise UsageError("TLS needs both a certificate and a key")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as error:
            raise UsageError(f"cannot load TLS certificate {cert} / key {key}: {error}") from error
        return context

    def _run(self, started: threading.Event, failure: list) -> None:
        try:
            asyncio.run(self._main(started))
        except BaseException as error:
            if not started.is_set():
                failure.append(error)
                started.set()
            else:
                log.exception("hub stopped on an error")

    async def _main(self, started: threading.Event) -> None:
        self._stop = asyncio.Event()
        opts = self.options
        async with serve(self._handle, opts.host, opts.port, process_request=self._http, ssl=self._ssl,
                         create_connection=_Connection, compression=None, max_size=opts.max_message_bytes,
                         max_queue=64, write_limit=SEND_BUFFER, close_timeout=2,
                         logger=log.getChild("websockets")) as server:
            self._port = server.sockets[0].getsockname()[1]
            self._loop = asyncio.get_running_loop()
            tasks = [asyncio.create_task(self._sweep())]
            if opts.redis_url:
                self._bridge = _RedisBridge(opts.redis_url, opts.redis_channel, self.id, self._on_redis)
                tasks.append(asyncio.create_task(self._bridge.run()))
            started.set()
            await self._stop.wait()
            self._loop = None
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(self, ws: ServerConnection) -> None:
        path = urlsplit(ws.request.path).path
        if path == "/monitor":
            await self._monitor(ws)
        elif path == "/floor/ws":
            await self._floor(ws)

    # ---- monitors ----

    async def _monitor(self, ws: ServerConnection) -> None:
        agent = await self._hello(ws)
        if agent is None:
            return
        rate = self.options.rate_per_s
        conn = _Monitor(ws, agent, TokenBucket(rate, 2 * rate))
        self._monitors.add(conn)
        log.info("monitor %s connected from %s", agent, ws.remote_address)
        try:
            handled = 0
            async for message in ws:
                self._on_monitor_message(conn, message)
                handled += 1
                if handled % 32 == 0:  # a connection with a deep backlog lets the others in between
                    await asyncio.sleep(0)
                if conn.closing:
                    await _close(ws, 1008, "rate limit exceeded")
                    break
        except ConnectionClosed:
            pass
        finally:
            self._monitors.discard(conn)
            self._monitor_gone(conn)

    async def _hello(self, ws: ServerConnection) -> str | None:
        """The agent name once a valid `hello` came first, else None after refusing the connection."""
        try:
            message = await asyncio.wait_for(ws.recv(), timeout=self.options.hello_timeout_s)
        except asyncio.TimeoutError:
            return await self._refuse(ws, f"no hello within {self.options.hello_timeout_s:g} s")
        except ConnectionClosed:
            return None
        hello = _loads(message)
        if not isinstance(hello, dict) or hello.get("type") != "hello":
            return await self._refuse(ws, "expected hello first")
        if not self._token_ok(hello.get("agent"), hello.get("token")):
            agent = hello.get("agent")
            log.warning("monitor refused from %s: bad token for agent %.40r", ws.remote_address, agent)
            return await self._refuse(ws, "bad token")
        await ws.send(_dumps({"type": "welcome", "v": PROTOCOL_VERSION, "hub": self.id,
                              "rate_per_s": self.options.rate_per_s, "burst": 2 * self.options.rate_per_s,
                              "max_message_bytes": self.options.max_message_bytes}))
        return hello["agent"]

    def _token_ok(self, agent, token) -> bool:
        expected = self.options.tokens.get(agent) if isinstance(agent, str) else None
        if expected is None or not isinstance(token, str):
            return False
        return hmac.compare_digest(token.encode(), expected.encode())

    async def _refuse(self, ws: ServerConnection, reason: str) -> None:
        try:
            await asyncio.wait_for(ws.send(_dumps({"type": "error", "reason": reason})), 2.0)
        except (asyncio.TimeoutError, ConnectionClosed):
            pass
        await _close(ws, 1008, reason)
        return None

    def _on_monitor_message(self, conn: _Monitor, message: str | bytes) -> None:
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        # The bucket is checked before parsing, so a flood costs little; levels give way first.
        reserve = conn.bucket.burst / 2 if '"type":"levels"' in message else 0.0
        if not conn.bucket.take(reserve):
            self._rate_drop(conn)
            return
        msg = _loads(message)
        if not isinstance(msg, dict):
            return self._reply(conn, {"type": "error", "reason": "not a JSON object"})
        kind = msg.get("type")
        if kind == "event":
            error = _check_event(msg)
            if error is None:
                error = self._ingest(conn.agent, msg, self.id, conn)
            if error is None and self._bridge is not None:
                # Batches are newline-framed: JSON may hold raw newlines between tokens, so re-encode those.
                raw = message if "\n" not in message else _dumps(msg)
                self._bridge.send(f'{{"agent":{_dumps(conn.agent)},"msg":{raw}}}')
        elif kind == "dropped":
            error = self._on_dropped(conn.agent, msg)
            if error is None and self._bridge is not None:
                self._bridge.send(_dumps({"agent": conn.agent, "msg": msg}))
        else:
            error = f"unknown message type {str(kind)[:40]!r}"
        if error is not None:
            self._reply(conn, {"type": "error", "reason": error})

    def _rate_drop(self, conn: _Monitor) -> None:
        now = time.monotonic()
        conn.dropped += 1
        if conn.flood_since is None or now - conn.last_drop > 1.0:
            conn.flood_since = now
        conn.last_drop = now
        if now - conn.flood_since > self.options.flood_close_s and not conn.closing:
            conn.closing = True
            log.warning("monitor %s closed: over its rate for %.0f s", conn.agent, now - conn.flood_since)
        elif now - conn.last_notice >= 1.0:
            conn.last_notice = now
            log.info("monitor %s over its rate: %d messages dropped", conn.agent, conn.dropped)
            self._reply(conn, {"type": "rate_limited", "dropped": conn.dropped, "rate_per_s": self.options.rate_per_s})

    def _reply(self, conn: _Monitor, message: dict) -> None:
        """Send a notice without waiting; a monitor that doesn't read gets no more than a few in flight."""
        if conn.replies >= 8:
            return

        async def send():
            try:
                await conn.ws.send(_dumps(message))
            except ConnectionClosed:
                pass
            finally:
                conn.replies -= 1

        conn.replies += 1
        asyncio.ensure_future(send())

    def _monitor_gone(self, conn: _Monitor) -> None:
        log.info("monitor %s disconnected (%d messages over its rate dropped)", conn.agent, conn.dropped)
        for call_id in conn.calls:
            call = self.calls.get(call_id)
            if call is not None and call.conn is conn:
                call.conn = None
                if call.status == "live":
                    self._lose(call)
                    if self._bridge is not None:
                        self._bridge.send(_dumps({"agent": conn.agent, "lost": call_id}))

    def _lose(self, call: CallState) -> None:
        call.status = "lost"
        call.changed_at = time.monotonic()
        self._changed(call)

    # ---- calls ----

    def _ingest(self, agent: str, msg: dict, origin: str, conn: _Monitor | None = None) -> str | None:
        """Apply one monitor's event (from a local monitor or another hub); an error reason, or None."""
        call_id, event = msg["call_id"], msg["event"]
        call = self.calls.get(call_id)
        at = _num(msg.get("at"))
        if call is None:
            if len(self.calls) >= MAX_CALLS:
                return "too many calls on this hub"
            if event["type"] == "call_start":
                self._supersede(agent, call_id)
            started = _num(event.get("started_at")) or (at or time.time()) - float(event["t"])
            call = self.calls[call_id] = CallState(call_id, agent, origin, started, self.options.tile_interval_s)
        elif call.agent != agent:
            return "call_id belongs to another agent"
        call.origin = origin
        if conn is not None:
            call.conn = conn
            conn.calls.add(call_id)
        resumed = call.status == "lost"
        if resumed:
            call.status = "live"
        if not call.accept_seq(int(msg["seq"])):
            if resumed:
                self._changed(call)
            return None
        call.apply(event, at)
        if event["type"] == "call_end":
            call.changed_at = time.monotonic()
        self._forward(call, event, at)
        self._changed(call, ended=event["type"] == "call_end")
        return None

    def _supersede(self, agent: str, call_id: str) -> None:
        """An agent has one call at a time: their new call ends any earlier one left open (a crashed monitor)."""
        for call in list(self.calls.values()):
            if call.agent == agent and call.call_id != call_id and call.status != "ended":
                call.status = "ended"
                call.changed_at = time.monotonic()
                self._changed(call, ended=True)

    def _on_dropped(self, agent: str, msg: dict) -> str | None:
        count = msg.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            return "dropped needs a count"
        call = self.calls.get(msg.get("call_id")) if isinstance(msg.get("call_id"), str) else None
        if call is not None and call.agent == agent:
            call.dropped += count
            self._changed(call)
        log.info("monitor %s reports %d events dropped while the hub was unreachable", agent, count)
        return None

    def _changed(self, call: CallState, ended: bool = False) -> None:
        conditions = call.conditions()
        for kind in ALERT_KINDS:
            if kind in conditions and kind not in call.alerted:
                self._alert(call, kind, conditions[kind][1])
        call.alerted = {k for k in conditions if k in ALERT_KINDS}
        if ended:
            self._send_tile(call, conditions)
            self._broadcast(_dumps({"type": "call_end", "call_id": call.call_id, "agent": call.agent}))
        else:
            self._schedule_tile(call)

    def _alert(self, call: CallState, kind: str, text: str) -> None:
        self._alert_id += 1
        alert = Alert(self._alert_id, call.call_id, call.agent, kind, text, round(time.time(), 3))
        self.alerts.append(alert)
        log.info("alert: %s %s: %s", call.agent, call.call_id, text)
        self._broadcast(_dumps({"type": "alert", **asdict(alert)}))

    def _schedule_tile(self, call: CallState) -> None:
        """A change goes out at once while the call's tile bucket allows, else once it does (changes coalesce)."""
        if call.tile_timer is not None:
            return
        if call.tiles.take():
            self._send_tile(call)
        else:
            call.tile_timer = asyncio.get_running_loop().call_later(call.tiles.wait_s(), self._tile_due, call)

    def _tile_due(self, call: CallState) -> None:
        call.tile_timer = None
        call.tiles.take()
        self._send_tile(call)

    def _send_tile(self, call: CallState, conditions: dict | None = None) -> None:
        if call.tile_timer is not None:
            call.tile_timer.cancel()
            call.tile_timer = None
        if self.calls.get(call.call_id) is not call or not self._supervisors:
            return
        text = _dumps({"type": "tile", "call": call.tile(conditions)})
        for sup in self._supervisors:
            sup.outbox.put_tile(call.call_id, text)

    def _forward(self, call: CallState, event: dict, at: float | None) -> None:
        watchers = self._watchers.get(call.call_id)
        if not watchers:
            return
        text = _dumps({"type": "event", "call_id": call.call_id, "at": at, "event": event})
        kind = "levels" if event["type"] == "levels" else "event"
        for sup in list(watchers):
            self._put(sup, kind, text)

    def _broadcast(self, text: str) -> None:
        for sup in list(self._supervisors):
            self._put(sup, "event", text)

    def _put(self, sup: _Supervisor, kind: str, text: str) -> None:
        if not sup.outbox.put(kind, text):
            log.warning("closing supervisor %s: too far behind", sup.user)
            self._drop_supervisor(sup, 1013, "client too slow")

    def _remove(self, call: CallState) -> None:
        self.calls.pop(call.call_id, None)
        if call.tile_timer is not None:
            call.tile_timer.cancel()
        self._watchers.pop(call.call_id, None)
        self._broadcast(_dumps({"type": "remove", "call_id": call.call_id}))

    async def _sweep(self) -> None:
        """Once a second: drop calls ended a while ago, forget lost ones, notice silent peers and expired sessions."""
        while True:
            await asyncio.sleep(1.0)
            try:
                self._sweep_once()
            except Exception:
                log.exception("sweep failed")

    def _sweep_once(self) -> None:
        now = time.monotonic()
        opts = self.options
        dead_peers = {hub for hub, seen in self._peers.items() if now - seen > opts.peer_timeout_s}
        for call in list(self.calls.values()):
            if call.status == "ended" and now - call.changed_at > opts.ended_linger_s:
                self._remove(call)
            elif call.status == "lost" and now - call.changed_at > opts.lost_forget_s:
                self._remove(call)
            elif call.status == "live" and call.origin in dead_peers:
                self._lose(call)
        for token, session in list(self._sessions.items()):
            if session.expires < now:
                self._end_session(token, "session expired")

    # ---- Redis ----

    def _on_redis(self, payload: str) -> None:
        lines = payload.split("\n")
        header = _loads(lines[0])
        hub = header.get("hub") if isinstance(header, dict) else None
        if not isinstance(hub, str) or hub == self.id:
            return
        self._peers[hub] = time.monotonic()
        for line in lines[1:]:
            item = _loads(line)
            if not isinstance(item, dict) or not isinstance(item.get("agent"), str):
                continue
            msg = item.get("msg")
            if isinstance(msg, dict) and msg.get("type") == "event" and _check_event(msg) is None:
                self._ingest(item["agent"], msg, hub)
            elif isinstance(msg, dict) and msg.get("type") == "dropped":
                self._on_dropped(item["agent"], msg)
            elif isinstance(item.get("lost"), str):
                call = self.calls.get(item["lost"])
                if call is not None and call.agent == item["agent"] and call.status == "live":
                    self._lose(call)

    # ---- supervisors: the floor WebSocket ----

    async def _floor(self, ws: ServerConnection) -> None:
        token = _session_token(ws.request)
        session = self._sessions.get(token or "")
        if session is None:  # expired between the handshake check and now
            await _close(ws, 1008, "not logged in")
            return
        sup = _Supervisor(ws, session.user, token, _Outbox(ws, self.options.queue_size))
        sock = ws.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        sup.outbox.put("floor", _dumps(self._floor_snapshot(session.user)))
        sup.sender = asyncio.create_task(sup.outbox.run())
        self._supervisors.add(sup)
        log.info("supervisor %s connected from %s (%d now)", sup.user, ws.remote_address, len(self._supervisors))
        try:
            async for message in ws:
                self._on_supervisor_message(sup, message)
        except ConnectionClosed:
            pass
        finally:
            self._forget_supervisor(sup)
            log.info("supervisor %s gone (%d watched levels dropped)", sup.user, sup.outbox.dropped)

    def _floor_snapshot(self, user: str) -> dict:
        tiles = [call.tile() for call in self.calls.values()]
        tiles.sort(key=lambda tile: (not tile["needs_attention"], -tile["attention"], tile["started_at"]))
        return {"type": "floor", "v": PROTOCOL_VERSION, "hub": self.id, "user": user, "calls": tiles,
                "alerts": [asdict(alert) for alert in self.alerts]}

    def _on_supervisor_message(self, sup: _Supervisor, message) -> None:
        msg = _loads(message)
        if not isinstance(msg, dict) or msg.get("type") != "watch":
            self._put(sup, "event", _dumps({"type": "error", "reason": "expected a watch message"}))
            return
        self._unwatch(sup)
        call_id = msg.get("call_id")
        if call_id is None:
            return
        call = self.calls.get(call_id) if isinstance(call_id, str) else None
        if call is None:
            self._put(sup, "event", _dumps({"type": "error", "reason": "no such call", "call_id": call_id}))
            return
        sup.watching = call_id
        self._watchers.setdefault(call_id, set()).add(sup)
        self._put(sup, "event", _dumps({"type": "watching", "call_id": call_id, "agent": call.agent,
                                         "events": call.snapshot()}))

    def _unwatch(self, sup: _Supervisor) -> None:
        if sup.watching is not None:
            watchers = self._watchers.get(sup.watching)
            if watchers is not None:
                watchers.discard(sup)
                if not watchers:
                    del self._watchers[sup.watching]
            sup.watching = None

    def _forget_supervisor(self, sup: _Supervisor) -> None:
        self._supervisors.discard(sup)
        self._unwatch(sup)
        if sup.sender is not None:
            sup.sender.cancel()

    def _drop_supervisor(self, sup: _Supervisor, code: int, reason: str) -> None:
        self._forget_supervisor(sup)
        sup.outbox.items.clear()
        asyncio.ensure_future(_close(sup.ws, code, reason))

    def _end_session(self, token: str, reason: str) -> None:
        self._sessions.pop(token, None)
        for sup in [s for s in self._supervisors if s.token == token]:
            self._drop_supervisor(sup, 1008, reason)

    # ---- HTTP ----

    async def _http(self, connection: _Connection, request: Request) -> Response | None:
        path = unquote(urlsplit(request.path).path)
        method = request.method
        if path == "/monitor":
            return None
        if path == "/floor/ws":
            return self._floor_handshake(connection, request)
        if method == "POST" and path == "/login":
            return await self._login(connection, request)
        if method == "POST" and path == "/logout":
            return self._logout(request)
        if method != "GET":
            return _text(http.HTTPStatus.METHOD_NOT_ALLOWED, "Method not allowed\n")
        if path == "/":
            return _redirect("/floor", status=http.HTTPStatus.FOUND)
        if path == "/floor":
            if self._session(request) is None:
                return _redirect("/login", status=http.HTTPStatus.FOUND)
            return _file(UI_DIR / "floor.html")
        if path == "/login":
            return _login_page(failed="failed" in parse_qs(urlsplit(request.path).query))
        if path == "/session":
            session = self._session(request)
            if session is None:
                return _json(http.HTTPStatus.UNAUTHORIZED, {"error": "not logged in"})
            return _json(http.HTTPStatus.OK, {"user": session.user, "hub": self.id})
        if path.startswith("/ui/"):
            return _static(path[len("/ui/"):])
        return _text(http.HTTPStatus.NOT_FOUND, "Not found\n")

    def _floor_handshake(self, connection: _Connection, request: Request) -> Response | None:
        if self._session(request) is None:
            return _text(http.HTTPStatus.UNAUTHORIZED, "Log in first\n")
        if not self._origin_allowed(request, required=True):
            log.warning("floor connection refused: origin %.80r", request.headers.get("Origin"))
            return _text(http.HTTPStatus.FORBIDDEN, "Origin not allowed\n")
        return None

    def _origin_allowed(self, request: Request, required: bool) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return not required
        if self.options.allowed_origins is not None:
            return origin in self.options.allowed_origins
        own = {self.url.rstrip("/")}
        host = request.headers.get("Host")
        if host:
            own.add(f"{self.scheme}://{host}")
        return origin in own

    def _session(self, request: Request) -> _Session | None:
        session = self._sessions.get(_session_token(request) or "")
        if session is not None and session.expires < time.monotonic():
            return None
        return session

    async def _login(self, connection: _Connection, request: Request) -> Response:
        if not self._origin_allowed(request, required=False):
            return _text(http.HTTPStatus.FORBIDDEN, "Origin not allowed\n")
        if connection.body is None:
            return _text(http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Too large\n")
        is_json = "json" in (request.headers.get("Content-Type") or "")
        username, password = _credentials(connection.body, is_json)
        where = str((connection.remote_address or ("?",))[0])
        failures = self._failures.setdefault(where, deque(maxlen=20))
        while failures and failures[0] < time.monotonic() - 60:
            failures.popleft()
        if len(failures) >= 10:
            return _text(http.HTTPStatus.TOO_MANY_REQUESTS, "Too many failed logins; wait a minute\n")
        stored = self.options.supervisors.get(username or "")
        ok = await asyncio.get_running_loop().run_in_executor(
            None, check_password, password or "", stored or _DUMMY_HASH)
        if not (ok and stored and username):
            failures.append(time.monotonic())
            log.warning("failed login for %.40r from %s", username, where)
            if is_json:
                return _json(http.HTTPStatus.UNAUTHORIZED, {"error": "wrong username or password"})
            return _redirect("/login?failed=1")
        token = secrets.token_urlsafe(32)
        if len(self._sessions) >= 10000:  # bounded: forget the oldest
            self._sessions.pop(next(iter(self._sessions)))
        self._sessions[token] = _Session(username, time.monotonic() + self.options.session_ttl_s)
        log.info("supervisor %s logged in from %s", username, where)
        cookie = (f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; "
                  f"Max-Age={int(self.options.session_ttl_s)}{'; Secure' if self._ssl else ''}")
        return _redirect("/floor", cookie)

    def _logout(self, request: Request) -> Response:
        token = _session_token(request)
        if token and self._origin_allowed(request, required=False):
            self._end_session(token, "logged out")
        return _redirect("/login", f"{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")


# ---- helpers ----

async def _close(ws: ServerConnection, code: int, reason: str, timeout: float = 2.0) -> None:
    """Close, or abort when the peer reads nothing (its close frame can't even be written)."""
    try:
        await asyncio.wait_for(ws.close(code, reason), timeout)
    except (asyncio.TimeoutError, ConnectionClosed, OSError):
        ws.transport.abort()


def _reject_constant(name: str):
    raise ValueError(f"non-finite number {name}")


def _loads(text):
    """Parsed JSON, or None when it isn't valid (NaN and infinities included: browsers can't parse them)."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, TypeError, RecursionError):
        return None


def _dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"))


def _check_event(msg: dict) -> str | None:
    """Why a monitor's `event` message can't be used, or None."""
    call_id, seq, event = msg.get("call_id"), msg.get("seq"), msg.get("event")
    if not isinstance(call_id, str) or not 0 < len(call_id) <= 128:
        return "missing or bad call_id"
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        return "missing or bad seq"
    if not isinstance(event, dict) or not isinstance(event.get("type"), str) or _num(event.get("t")) is None:
        return "missing event (an object with type and t)"
    if "at" in msg and msg["at"] is not None and _num(msg["at"]) is None:
        return "bad at"
    return None


def _credentials(body: bytes, is_json: bool) -> tuple[str | None, str | None]:
    try:
        if is_json:
            data = json.loads(body)
            data = data if isinstance(data, dict) else {}
            user, password = data.get("username"), data.get("password")
        else:
            form = parse_qs(body.decode("utf-8"), max_num_fields=10)
            user, password = form.get("username", [None])[0], form.get("password", [None])[0]
    except (ValueError, UnicodeDecodeError):
        return None, None
    return (user if isinstance(user, str) else None), (password if isinstance(password, str) else None)


def _session_token(request: Request) -> str | None:
    header = request.headers.get("Cookie")
    if not header:
        return None
    try:
        cookies = SimpleCookie(header)
    except CookieError:
        return None
    morsel = cookies.get(COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


def _response(status: http.HTTPStatus, body: bytes, kind: str, extra: list | None = None) -> Response:
    headers = Headers([("Content-Type", kind), ("Content-Length", str(len(body))), ("Connection", "close"),
                       *SECURITY_HEADERS, *(extra or [])])
    return Response(status.value, status.phrase, headers, body)


def _text(status: http.HTTPStatus, text: str) -> Response:
    return _response(status, text.encode(), "text/plain; charset=utf-8")


def _json(status: http.HTTPStatus, value: dict) -> Response:
    return _response(status, _dumps(value).encode(), "application/json")


def _redirect(location: str, cookie: str | None = None, status=http.HTTPStatus.SEE_OTHER) -> Response:
    """303 after a POST (the browser follows with a GET), 302 for a page that needs a login first."""
    extra = [("Location", location)] + ([("Set-Cookie", cookie)] if cookie else [])
    return _response(status, b"", "text/plain; charset=utf-8", extra)


def _file(file: Path) -> Response:
    body = file.read_bytes()
    kind = TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    return _response(http.HTTPStatus.OK, body, kind)


def _login_page(failed: bool) -> Response:
    """ui/login.html, its error line shown after a failed attempt (the page runs no script of its own)."""
    response = _file(UI_DIR / "login.html")
    if failed:
        body = response.body.replace(b'<p id="error" role="alert" hidden>', b'<p id="error" role="alert">')
        response = _response(http.HTTPStatus.OK, body, TYPES[".html"])
    return response


def _static(relative: str) -> Response:
    """A file under ui/, never outside it (no `..`, no symlinks out)."""
    if ".." in relative.split("/") or "\0" in relative or relative.startswith("/"):
        return _text(http.HTTPStatus.FORBIDDEN, "Forbidden\n")
    file = (UI_DIR / relative).resolve()
    if not file.is_relative_to(UI_DIR):
        return _text(http.HTTPStatus.FORBIDDEN, "Forbidden\n")
    if not file.is_file():
        return _text(http.HTTPStatus.NOT_FOUND, "Not found\n")
    return _file(file)
