"""A monitor's link to the supervisor hub: `HubPublisher.publish(event)` from the pipeline, never blocking.

Events wait in a bounded local queue and a daemon thread sends them, paced to the rate the hub announces.
While the hub is unreachable the queue keeps the newest events (the oldest `levels` go first: each is
superseded 0.2 s later) and the thread reconnects with backoff; on reconnect it re-announces the current call,
sends what it kept and a `dropped` notice with how many it had to let go. A refused token is logged once with
the hub's reason and ends the retrying until the monitor restarts. Nothing here raises into the pipeline.
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import threading
import time
from collections import deque
from urllib.parse import urlsplit, urlunsplit

from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException
from websockets.sync.client import connect

from ..events import finite

log = logging.getLogger("calmline.hub_client")

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 10.0
STALE_LEVELS_S = 1.0


class _Refused(Exception):
    """The hub refused this agent (bad token): retrying cannot help."""


class HubPublisher:
    """Streams one monitor's events to the hub (see the module docstring and docs/protocol.md)."""

    def __init__(self, url: str, agent: str | None, token: str, queue_size: int = 10000, *,
                 cafile: str | None = None, timeout: float = 5.0):
        """`agent` may be None: the hub knows the agent by the token and says the name in its welcome."""
        self.url = _monitor_url(url)
        self.agent, self.token = agent, token
        self.welcomed = threading.Event()
        """Set once the hub has welcomed this monitor (`agent` is then the token's agent) or refused it."""
        self.queue_size = max(1, queue_size)
        self.timeout = timeout
        self._ssl = ssl.create_default_context(cafile=cafile) if self.url.startswith("wss:") else None
        self._lock = threading.Lock()
        self._queue: deque[dict] = deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._ws = None
        self._call_id: str | None = None
        self._seq = 0
        self._call_start: dict | None = None
        """The current call's call_start, re-sent first on each reconnect (the hub may have restarted)."""
        self._unreported = 0
        self.dropped = 0
        """Events let go while the hub was unreachable (levels first), over this publisher's life."""
        self.sent = 0
        self.connected = False
        self.notices: dict[str, int] = {}
        """How often the hub answered with each error reason (at most 100 reasons, then "other")."""
        self.refused: str | None = None
        """The hub's reason when it refused this agent; no more attempts until restart."""
        self.on_note = None
        """Called (in this publisher's thread) with each `{"type":"note","call_id","event"}` the hub sends: a
        supervisor's word to this agent (monitor/web/notes.py)."""

    # -- the pipeline's side --

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="calmline-hub-client", daemon=True)
        self._thread.start()

    def publish(self, event) -> None:
        """Queue an event (an Event or its dict) for the hub; never blocks, never raises, any thread."""
        try:
            ev = event.to_dict() if hasattr(event, "to_dict") else dict(event)
            with self._lock:
                self._wrap_and_queue(ev)
            self._wake.set()
        except Exception:  # the pipeline must go on whatever we got
            log.debug("could not queue an event for the hub", exc_info=True)

    def stop(self, flush_s: float = 1.0) -> None:
        """Send what is queued for up to `flush_s` (the call's last events), then close and end the thread."""
        if self._thread is None:
            return
        deadline = time.monotonic() + flush_s
        while self.connected and self.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        self._stopping.set()
        self._wake.set()
        ws = self._ws
        if ws is not None:
            try:
                ws.close()
            except Exception:
                pass
        self._thread.join(timeout=5)
        self._thread = None

    @property
    def pending(self) -> int:
        return len(self._queue)

    def _wrap_and_queue(self, ev: dict) -> None:
        kind = ev.get("type")
        if kind == "call_start":
            self._call_id = str(ev.get("call_id") or f"{self.agent or 'call'}-{time.time():.0f}")
            self._seq = 0
        if self._call_id is None:
            return  # no call yet: nothing the floor could place
        self._seq += 1
        wrapped = {"type": "event", "call_id": self._call_id, "seq": self._seq, "at": round(time.time(), 3),
                   "event": ev}
        if kind == "call_start":
            self._call_start = wrapped
        if len(self._queue) >= self.queue_size:
            self._drop_one()
        self._queue.append(wrapped)

    def _drop_one(self) -> None:
        """Make room: the oldest `levels` if any (superseded anyway), else the oldest event."""
        index = next((i for i, w in enumerate(self._queue) if w["event"].get("type") == "levels"), 0)
        del self._queue[index]
        self.dropped += 1
        self._unreported += 1

    # -- the sender thread --

    def _run(self) -> None:
        backoff, failing = FIRST_BACKOFF_S, False
        while not self._stopping.is_set():
            try:
                self._session()
                backoff = FIRST_BACKOFF_S
            except _Refused as refused:
                self.refused = str(refused) or "refused"
                self.welcomed.set()
                log.error("hub at %s refused agent %r: %s (not retrying until restart)", self.url, self.agent,
                          self.refused)
                return
            except (OSError, TimeoutError, WebSocketException, ValueError) as error:
                if not failing and not self._stopping.is_set():
                    log.warning("hub at %s unreachable (%s); queueing events and retrying", self.url, _why(error))
                failing = True
            except Exception:
                log.exception("hub connection failed")
            else:
                failing = False
            finally:
                self.connected = False
                self._ws = None
            self._stopping.wait(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    def _session(self) -> None:
        """One connection: hello, catch-up, then stream until the connection or the publisher ends."""
        try:
            ws = connect(self.url, ssl=self._ssl, open_timeout=self.timeout, close_timeout=1, compression=None,
                         max_size=2 ** 20)
        except InvalidStatus as error:
            if error.response.status_code in (401, 403):
                raise _Refused(f"HTTP {error.response.status_code}") from error
            raise
        except InvalidURI as error:
            raise _Refused(f"bad hub URL: {error}") from error
        with ws:
            self._ws = ws
            try:
                welcome = self._hello(ws)
                named = welcome.get("agent")
                if isinstance(named, str) and named:
                    self.agent = named  # the token's agent, whatever name this machine guessed
                self.connected = True
                self.welcomed.set()
                log.info("connected to the hub at %s as %s", self.url, self.agent)
                bucket = _Pacer(0.8 * float(welcome.get("rate_per_s") or 50.0), float(welcome.get("burst") or 50.0))
                for message in self._catch_up():
                    self._send(ws, bucket, message)
                self._stream(ws, bucket)
            except ConnectionClosed as closed:
                if not self._stopping.is_set():
                    rcvd = closed.rcvd
                    log.warning("hub connection lost (%s); retrying",
                                f"{rcvd.code} {rcvd.reason}".strip() if rcvd else "no close frame")

    def _hello(self, ws) -> dict:
        hello = {"type": "hello", "v": 1, "token": self.token}
        if self.agent:
            hello["agent"] = self.agent
        ws.send(_dumps(hello))
        try:
            reply = json.loads(ws.recv(timeout=self.timeout))
        except ConnectionClosed as closed:
            if closed.rcvd is not None and closed.rcvd.code == 1008:
                raise _Refused(closed.rcvd.reason) from closed
            raise
        if not isinstance(reply, dict) or reply.get("type") != "welcome":
            raise _Refused(reply.get("reason", "no welcome") if isinstance(reply, dict) else "no welcome")
        return reply

    def _catch_up(self) -> list[dict]:
        """The messages that go first on a (re)connection: the current call's start (unless still queued), and a
        `dropped` notice; `levels` over a second old are let go except the newest: they are long superseded."""
        with self._lock:
            old = time.time() - STALE_LEVELS_S
            levels = [i for i, w in enumerate(self._queue) if w["event"].get("type") == "levels"]
            stale = [i for i in levels[:-1] if self._queue[i]["at"] < old]
            for i in reversed(stale):
                del self._queue[i]
            self.dropped += len(stale)
            self._unreported += len(stale)
            first = []
            start = self._call_start
            if start is not None and not any(w is start for w in self._queue):
                first.append(start)
            if self._unreported:
                first.append({"type": "dropped", "call_id": self._call_id, "count": self._unreported})
                self._unreported = 0
        return first

    def _stream(self, ws, bucket: "_Pacer") -> None:
        while True:
            with self._lock:
                item = self._queue.popleft() if self._queue else None
            if item is None:
                if self._stopping.is_set():
                    return
                self._wake.clear()
                self._read_notices(ws)
                self._wake.wait(0.5)
                continue
            try:
                self._send(ws, bucket, item)
            except ConnectionClosed:
                with self._lock:  # not lost: sent again after reconnecting (the hub ignores a duplicate seq)
                    self._queue.appendleft(item)
                raise

    def _send(self, ws, bucket: "_Pacer", message: dict) -> None:
        bucket.wait(self._stopping)
        ws.send(_dumps(message))
        self.sent += 1
        if message.get("type") == "event" and message["event"].get("type") == "call_end":
            with self._lock:
                if self._call_start is not None and self._call_start["call_id"] == message["call_id"]:
                    self._call_start = None  # over: nothing to re-announce

    def _read_notices(self, ws) -> None:
        """Log what the hub tells us (errors, rate limiting); it never asks for an answer."""
        while True:
            try:
                text = ws.recv(timeout=0)
            except TimeoutError:
                return
            try:
                notice = json.loads(text)
            except ValueError:
                continue
            if isinstance(notice, dict) and notice.get("type") == "note" and self.on_note is not None:
                try:
                    self.on_note(notice)
                except Exception:  # noqa: BLE001 - a note that cannot be shown never stops the publishing
                    log.exception("cannot show the supervisor's note")
                continue
            if isinstance(notice, dict) and notice.get("type") in ("error", "rate_limited"):
                why = str(notice.get("reason") or notice.get("type"))[:200]
                if why not in self.notices and len(self.notices) >= 100:
                    why = "other"
                self.notices[why] = self.notices.get(why, 0) + 1
                if self.notices[why] == 1 or self.notices[why] % 1000 == 0:  # one line per reason, not per event
                    log.warning("hub says: %s (%d times)", notice, self.notices[why])


class _Pacer:
    """Keeps our sending under the hub's rate limit, so a catch-up burst is never dropped there."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = max(rate, 1.0), max(burst, 1.0)
        self.tokens = self.burst
        self.stamp = time.monotonic()

    def wait(self, stopping: threading.Event) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1.0:
            stopping.wait((1.0 - self.tokens) / self.rate)
            self.tokens = 1.0
            self.stamp = time.monotonic()
        self.tokens -= 1.0


def _monitor_url(url: str) -> str:
    """Accept the hub's base URL in any of its forms: http(s)://host:port[/], ws(s)://host:port[/monitor]."""
    parts = urlsplit(url.strip())
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path if parts.path not in ("", "/") else "/monitor"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def _dumps(value) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except ValueError:  # NaN/inf: the hub refuses them, send null
        return json.dumps(finite(value), separators=(",", ":"))


def _why(error: BaseException) -> str:
    return str(error) or type(error).__name__
