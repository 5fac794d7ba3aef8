"""Test helpers for the floor on the real web app (uvicorn on a free port): a server, a supervisor's floor
stream, a monitor speaking the protocol by hand, logins, redis-server. Shared by test_hub*.py, the browser
test and the Redis tests."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import ssl
import subprocess
import time

import pytest
from websockets.sync.client import connect

from conftest import free_port
from monitor.web.app import WebOptions, WebServer, build_app
from monitor.web.auth import hash_password
from monitor.web.floor_part import FloorPart, FloorPartOptions
from monitor.web.floor_room import FloorOptions
from monitor.web.monitors import MonitorLimits

PASSWORD = "correct horse battery staple"
SUPERVISORS = {"sup": hash_password(PASSWORD)}
AGENTS = [f"agent{i:02d}" for i in range(24)] + ["ann", "bob", "flood"]
TOKENS = {agent: f"token-{agent}-0123456789" for agent in AGENTS}

_MONITOR_KEYS = {"rate_per_s", "max_connections", "hello_timeout_s", "flood_close_s"}
_FLOOR_KEYS = {"tile_interval_s", "queue_size", "ended_linger_s", "lost_forget_s", "peer_timeout_s",
               "max_calls_per_agent"}
_WEB_KEYS = {"port", "allowed_origins", "tls_cert", "tls_key", "host"}


class FloorServer:
    """The web app with just the floor part, listening on loopback."""

    def __init__(self, **options):
        web = WebOptions(**{"port": 0, **{k: v for k, v in options.items() if k in _WEB_KEYS}})
        limits = MonitorLimits(**{k: v for k, v in options.items() if k in _MONITOR_KEYS})
        floor = FloorOptions(**{k: v for k, v in options.items() if k in _FLOOR_KEYS})
        rest = {k: v for k, v in options.items() if k not in _WEB_KEYS | _MONITOR_KEYS | _FLOOR_KEYS}
        self.part = FloorPart(FloorPartOptions(**{"tokens": TOKENS, "supervisors": SUPERVISORS, "monitors": limits,
                                                  "floor": floor, "tls": bool(web.tls_cert), **rest}))
        self.server = WebServer(build_app(web, [self.part]), web)
        self.server.start()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def monitor_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "monitor"

    @property
    def id(self) -> str:
        return self.part.floor.id

    @property
    def calls(self) -> dict:
        return self.part.floor.calls

    def stats(self) -> dict:
        return self.part.stats()

    def stop(self) -> None:
        self.server.stop()


def start_hub(**options) -> FloorServer:
    return FloorServer(**options)


def wait_until(condition, what: str, limit: float = 5.0):
    deadline = time.monotonic() + limit
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def request(hub, method: str, path: str, body: str | None = None, headers: dict | None = None,
            context: ssl.SSLContext | None = None, source: str | None = None) -> http.client.HTTPResponse:
    """One HTTP request; `source` binds the client to another loopback address (127.0.0.2, ...)."""
    where = {"source_address": (source, 0)} if source else {}
    if context is not None:
        conn = http.client.HTTPSConnection("127.0.0.1", hub.port, context=context, timeout=30, **where)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=30, **where)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    response.data = response.read()
    conn.close()
    return response


def form_login(hub, password: str = PASSWORD, user: str = "sup", context=None, source=None):
    return request(hub, "POST", "/login", f"username={user}&password={password}",
                   {"Content-Type": "application/x-www-form-urlencoded"}, context, source)


def login(hub, password: str = PASSWORD, context=None) -> str:
    """The session cookie ("name=value") after a form login."""
    response = form_login(hub, password, context=context)
    assert response.status == 303 and response.getheader("Location") == "/floor", response.status
    return response.getheader("Set-Cookie").split(";")[0]


def open_ws(url: str, **kwargs):
    """A sync client kept open across a test (websockets wants `connect` entered as a context manager)."""
    return connect(url, open_timeout=5, **kwargs).__enter__()


class Floor:
    """A supervisor's floor WebSocket: keeps the tiles (merging each tile's changed fields), alerts and
    watched events it has received."""

    def __init__(self, hub, cookie: str, origin: str | None = None, context=None):
        url = hub.url.replace("http", "ws", 1) + "floor/ws"
        self.ws = open_ws(url, additional_headers={"Cookie": cookie}, origin=origin or hub.url.rstrip("/"),
                          ssl=context)
        self.tiles: dict[str, dict] = {}
        self.tile_messages: list[dict] = []
        self.alerts: list[dict] = []
        self.events: list[dict] = []
        self.errors: list[dict] = []
        self.ended: set[str] = set()
        self.received: list[tuple[float, dict]] = []

    def pump(self, timeout: float = 0.05) -> None:
        try:
            frame = self.ws.recv(timeout=timeout)
        except TimeoutError:
            return
        now = time.time()
        for line in frame.split("\n"):
            msg = json.loads(line)
            self.received.append((now, msg))
            kind = msg["type"]
            if kind == "floor":
                self.tiles = {tile["call_id"]: tile for tile in msg["calls"]}
                self.alerts = list(msg["alerts"])
            elif kind == "tile":
                self.tile_messages.append(msg["call"])
                self.tiles.setdefault(msg["call"]["call_id"], {}).update(msg["call"])
            elif kind == "alert":
                self.alerts.append(msg)
            elif kind == "call_end":
                self.ended.add(msg["call_id"])
            elif kind == "remove":
                self.tiles.pop(msg["call_id"], None)
            elif kind == "watching":
                self.events.extend(msg["events"])
            elif kind == "event":
                self.events.append(msg["event"] | {"_at": msg.get("at"), "_recv": now})
            elif kind == "error":
                self.errors.append(msg)

    def wait(self, condition, what: str, limit: float = 5.0):
        deadline = time.monotonic() + limit
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}")
            self.pump()

    def watch(self, call_id: str | None) -> None:
        self.ws.send(json.dumps({"type": "watch", "call_id": call_id}))

    def close(self) -> None:
        self.ws.close()


class Monitor:
    """A monitor speaking the floor protocol by hand (HubPublisher is tested on its own)."""

    def __init__(self, hub, agent: str, token: str | None = None, call_id: str | None = None, seq: int = 0):
        self.ws = open_ws(hub.monitor_url)
        self.ws.send(json.dumps({"type": "hello", "v": 1, "agent": agent, "token": token or TOKENS[agent]}))
        self.welcome = json.loads(self.ws.recv(timeout=5))
        self.call_id = call_id or f"call-{agent}"
        self.seq = seq

    def send(self, event: dict, call_id: str | None = None) -> None:
        self.seq += 1
        self.ws.send(json.dumps({"type": "event", "call_id": call_id or self.call_id, "seq": self.seq,
                                 "at": time.time(), "event": event}, separators=(",", ":")))

    def notices(self, timeout: float = 0.05) -> list[dict]:
        out = []
        while True:
            try:
                out.append(json.loads(self.ws.recv(timeout=timeout)))
            except TimeoutError:
                return out

    def next_notice(self, timeout: float = 5.0) -> dict:
        return json.loads(self.ws.recv(timeout=timeout))


def ev(type_: str, t: float, **fields) -> dict:
    return {"v": 1, "type": type_, "t": t, **fields}


def call_start(call_id: str, t: float = 0.0) -> dict:
    return ev("call_start", t, call_id=call_id, source="test", parties=["agent", "customer"],
              started_at=time.time() - t)


def levels(t: float, agent: float = -30.0, customer: float = -40.0, talking=("agent",)) -> dict:
    return ev("levels", t, levels={"agent": agent, "customer": customer},
              talking={"agent": "agent" in talking, "customer": "customer" in talking})


def cue(t: float, kind: str = "speak_softly", text: str = "Speak softly") -> dict:
    return ev("cue", t, kind=kind, text=text, reason="test")


def refusal(ws) -> tuple[dict, int, str]:
    """The server's error message and its close code and reason."""
    from websockets.exceptions import ConnectionClosed

    message = json.loads(ws.recv(timeout=5))
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=5)
    return message, closed.value.rcvd.code, closed.value.rcvd.reason


# ---- redis-server ----

def start_redis(port: int) -> subprocess.Popen:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server not found (apt-get install redis-server)")
    server = subprocess.Popen(["redis-server", "--save", "", "--appendonly", "no", "--port", str(port),
                               "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port)
    wait_until(lambda: _pings(client), "redis-server to start")
    client.close()
    return server


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


@pytest.fixture
def redis_port():
    port = free_port()
    server = start_redis(port)
    yield port
    server.terminate()
    server.wait(timeout=5)


def port_in_use_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock
