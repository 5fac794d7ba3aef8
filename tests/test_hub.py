"""The supervisor hub on real sockets: monitor and supervisor auth, hostile clients, lost connections, the
publisher's catch-up, TLS, and two hubs sharing calls through a real redis-server."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from conftest import free_port
from monitor.errors import UsageError
from monitor.web.hub import Hub, HubOptions, check_password, hash_password
from monitor.web.hub_client import HubPublisher

PASSWORD = "correct horse"
SUPERVISORS = {"sup": hash_password(PASSWORD)}
AGENTS = [f"agent{i:02d}" for i in range(24)] + ["ann", "bob", "flood"]
TOKENS = {agent: f"token-{agent}" for agent in AGENTS}


# ---- helpers (the browser test uses them too) ----

def start_hub(**options) -> Hub:
    opts = {"port": 0, "tokens": TOKENS, "supervisors": SUPERVISORS, **options}
    hub = Hub(HubOptions(**opts))
    hub.start()
    return hub


@pytest.fixture
def hub():
    hub = start_hub(rate_per_s=2000.0)  # tests send seconds of audio at once; rate limits have their own tests
    yield hub
    hub.stop()


def wait_until(condition, what: str, limit: float = 5.0):
    deadline = time.monotonic() + limit
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def request(hub: Hub, method: str, path: str, body: str | None = None, headers: dict | None = None,
            context: ssl.SSLContext | None = None) -> http.client.HTTPResponse:
    if context is not None:
        conn = http.client.HTTPSConnection("127.0.0.1", hub.port, context=context, timeout=5)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=5)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    response.data = response.read()
    conn.close()
    return response


def login(hub: Hub, password: str = PASSWORD, context=None) -> str:
    """The session cookie ("name=value") after a form login."""
    response = request(hub, "POST", "/login", f"username=sup&password={password}",
                       {"Content-Type": "application/x-www-form-urlencoded"}, context)
    assert response.status == 303 and response.getheader("Location") == "/floor", response.status
    return response.getheader("Set-Cookie").split(";")[0]


class Floor:
    """A supervisor's floor WebSocket: keeps the tiles, alerts and watched events it has received."""

    def __init__(self, hub: Hub, cookie: str, origin: str | None = None, context=None):
        url = hub.url.replace("http", "ws", 1) + "floor/ws"
        self.ws = open_ws(url, additional_headers={"Cookie": cookie}, origin=origin or hub.url.rstrip("/"),
                          ssl=context)
        self.tiles: dict[str, dict] = {}
        self.alerts: list[dict] = []
        self.events: list[dict] = []
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
                self.tiles[msg["call"]["call_id"]] = msg["call"]
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
    """A monitor speaking the hub protocol by hand (HubPublisher is tested on its own)."""

    def __init__(self, hub: Hub, agent: str, token: str | None = None, call_id: str | None = None, seq: int = 0):
        self.ws = open_ws(hub.monitor_url)
        self.ws.send(json.dumps({"type": "hello", "v": 1, "agent": agent, "token": token or TOKENS[agent]}))
        self.welcome = json.loads(self.ws.recv(timeout=5))
        self.call_id = call_id or f"call-{agent}"
        self.seq = seq

    def send(self, event: dict) -> None:
        self.seq += 1
        self.ws.send(json.dumps({"type": "event", "call_id": self.call_id, "seq": self.seq, "at": time.time(),
                                 "event": event}, separators=(",", ":")))

    def notices(self) -> list[dict]:
        out = []
        while True:
            try:
                out.append(json.loads(self.ws.recv(timeout=0.05)))
            except TimeoutError:
                return out


def open_ws(url: str, **kwargs):
    """A sync client kept open across a test (websockets 17 wants `connect` entered as a context manager)."""
    return connect(url, open_timeout=5, **kwargs).__enter__()


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
    """The hub's error message and its close code and reason."""
    message = json.loads(ws.recv(timeout=5))
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=5)
    return message, closed.value.rcvd.code, closed.value.rcvd.reason


# ---- passwords ----

def test_password_hash_is_salted_and_checked():
    first, second = hash_password("s3cret"), hash_password("s3cret")
    assert first != second  # a fresh salt each time
    assert check_password("s3cret", first) and check_password("s3cret", second)
    assert not check_password("S3cret", first)
    assert not check_password("s3cret", "garbage") and not check_password("s3cret", "")


# ---- monitors: authentication and hostile input ----

def test_monitor_with_a_bad_token_is_refused(hub):
    with connect(hub.monitor_url) as ws:
        ws.send(json.dumps({"type": "hello", "v": 1, "agent": "ann", "token": "wrong"}))
        assert refusal(ws) == ({"type": "error", "reason": "bad token"}, 1008, "bad token")
    with connect(hub.monitor_url) as ws:  # an agent the hub doesn't know: the same answer
        ws.send(json.dumps({"type": "hello", "v": 1, "agent": "mallory", "token": "token-ann"}))
        assert refusal(ws)[2] == "bad token"


def test_monitor_without_hello_is_refused():
    hub = start_hub(hello_timeout_s=0.3)
    try:
        with connect(hub.monitor_url) as ws:
            ws.send(json.dumps({"type": "event", "call_id": "c", "seq": 1, "event": levels(0.0)}))
            assert refusal(ws) == ({"type": "error", "reason": "expected hello first"}, 1008, "expected hello first")
        with connect(hub.monitor_url) as ws:  # says nothing at all
            message, code, reason = refusal(ws)
            assert (message["type"], code) == ("error", 1008) and reason.startswith("no hello")
        assert hub.stats()["monitors"] == 0
    finally:
        hub.stop()


def test_publisher_with_a_bad_token_stops_retrying(hub, caplog):
    publisher = HubPublisher(hub.url, "ann", "wrong")
    publisher.start()
    wait_until(lambda: publisher.refused, "the refusal")
    publisher._thread.join(timeout=5)
    assert not publisher._thread.is_alive()  # no more attempts until restart
    assert publisher.refused == "bad token"
    assert sum("refused agent 'ann': bad token" in r.getMessage() for r in caplog.records) == 1
    publisher.publish(levels(0.0))  # still safe to call
    publisher.stop()


def test_malformed_and_oversized_messages_do_not_disturb_another_monitor(hub):
    floor = Floor(hub, login(hub))
    good = Monitor(hub, "ann")
    good.send(call_start(good.call_id))
    floor.wait(lambda: good.call_id in floor.tiles, "ann's tile")
    floor.watch(good.call_id)
    bad = Monitor(hub, "bob")
    bad.send(call_start(bad.call_id))

    bad.ws.send("this is not JSON")
    good.send(cue(1.0))
    bad.ws.send(json.dumps({"type": "event", "seq": 2, "event": levels(0.2)}))
    bad.ws.send(json.dumps({"type": "event", "call_id": "x", "seq": 3, "event": {"type": "levels"}}))
    bad.ws.send('{"type":"event","call_id":"x","seq":4,"event":{"type":"levels","t":NaN}}')
    bad.ws.send(json.dumps({"type": "event", "call_id": good.call_id, "seq": 9, "event": levels(0.4)}))
    good.send(cue(2.0, "slow_down", "Slow down"))
    reasons = wait_until(lambda: [n["reason"] for n in bad.notices()], "error replies")
    while len(reasons) < 5:
        reasons += [n["reason"] for n in bad.notices()]
    assert reasons == ["not a JSON object", "missing or bad call_id", "missing event (an object with type and t)",
                       "not a JSON object", "call_id belongs to another agent"]

    bad.ws.send("x" * (hub.options.max_message_bytes + 1))
    with pytest.raises(ConnectionClosed) as closed:
        bad.ws.recv(timeout=5)
    assert closed.value.rcvd.code == 1009  # message too big

    good.send(cue(3.0, "wait_for_pause", "Wait for the pause"))
    floor.wait(lambda: len([e for e in floor.events if e["type"] == "cue"]) == 3, "all of ann's cues")
    assert [e["t"] for e in floor.events if e["type"] == "cue"] == [1.0, 2.0, 3.0]
    assert floor.tiles[good.call_id]["gaps"] == 0 and floor.tiles[good.call_id]["agent"] == "ann"
    floor.close()


def test_a_flooding_monitor_is_rate_limited_without_starving_another():
    hub = start_hub(rate_per_s=50.0)
    try:
        floor = Floor(hub, login(hub))
        steady = Monitor(hub, "ann")
        steady.send(call_start(steady.call_id))
        floor.wait(lambda: steady.call_id in floor.tiles, "the steady call")
        floor.watch(steady.call_id)
        flooder = Monitor(hub, "flood")
        flooder.send(call_start(flooder.call_id))

        flooding = threading.Event()
        stop = threading.Event()
        sent = [0]

        def flood():
            flooding.set()
            t = 0.0
            while not stop.is_set():
                t += 0.2
                kind = levels(t) if sent[0] % 4 else cue(t)
                try:
                    flooder.send(kind)
                except ConnectionClosed:
                    return
                sent[0] += 1

        def steady_stream(n_before: int, n_during: int, out: list) -> None:
            for i in range(n_before + n_during):
                if i == n_before:
                    threading.Thread(target=flood, daemon=True).start()
                    flooding.wait()
                out.append((i >= n_before, time.time()))
                steady.send(cue(float(i), "pause_first", f"line {i}"))
                time.sleep(0.03)

        sends: list = []
        streamer = threading.Thread(target=steady_stream, args=(10, 40, sends))
        streamer.start()
        streamer.join()
        flood_sent_by_end = sent[0]
        floor.wait(lambda: len([e for e in floor.events if e["type"] == "cue"]) >= 50, "every steady cue", 10)
        flood_end = time.time()
        stop.set()

        cues = [e for e in floor.events if e["type"] == "cue"]
        assert [e["text"] for e in cues] == [f"line {i}" for i in range(50)]  # none lost, in order
        # While the flood went on, the steady monitor's cues kept arriving: all were received before the
        # flooder stopped sending, and the flooder kept sending after the last of them.
        assert all(e["_recv"] <= flood_end for e in cues[10:])
        assert flood_sent_by_end > 500
        notices = flooder.notices()
        assert any(n["type"] == "rate_limited" and n["dropped"] > 0 for n in notices), notices
        assert floor.tiles[steady.call_id]["gaps"] == 0
        floor.close()
    finally:
        hub.stop()


def test_a_persistent_flood_is_disconnected():
    hub = start_hub(rate_per_s=20.0, flood_close_s=0.5)
    try:
        flooder = Monitor(hub, "flood")
        with pytest.raises(ConnectionClosed) as closed:
            t = 0.0
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                t += 0.2
                flooder.send(levels(t))
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "rate limit exceeded")
    finally:
        hub.stop()


# ---- supervisors: login, session, origin, files ----

def test_login_failures_and_success(hub):
    response = request(hub, "POST", "/login", "username=sup&password=nope",
                       {"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 303 and response.getheader("Location") == "/login?failed=1"
    assert response.getheader("Set-Cookie") is None
    response = request(hub, "POST", "/login", json.dumps({"username": "nobody", "password": PASSWORD}),
                       {"Content-Type": "application/json"})
    assert response.status == 401 and response.getheader("Set-Cookie") is None
    page = request(hub, "GET", "/login?failed=1").data.decode()
    assert '<p id="error" role="alert">Wrong username or password.' in page
    assert 'id="error" role="alert" hidden' in request(hub, "GET", "/login").data.decode()

    response = request(hub, "POST", "/login", json.dumps({"username": "sup", "password": PASSWORD}),
                       {"Content-Type": "application/json"})
    cookie = response.getheader("Set-Cookie")
    assert response.status == 303 and response.getheader("Location") == "/floor"
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    session = cookie.split(";")[0]
    assert request(hub, "GET", "/floor", headers={"Cookie": session}).status == 200
    assert json.loads(request(hub, "GET", "/session", headers={"Cookie": session}).data)["user"] == "sup"

    request(hub, "POST", "/logout", headers={"Cookie": session})
    assert request(hub, "GET", "/floor", headers={"Cookie": session}).status == 302


def test_floor_and_its_websocket_need_a_session(hub):
    response = request(hub, "GET", "/floor")
    assert response.status == 302 and response.getheader("Location") == "/login"
    assert request(hub, "GET", "/floor", headers={"Cookie": "calmline_session=forged"}).status == 302
    assert request(hub, "GET", "/session").status == 401
    for cookie in ("", "calmline_session=forged"):
        with pytest.raises(InvalidStatus) as refused:
            Floor(hub, cookie)
        assert refused.value.response.status_code == 401


def test_a_foreign_origin_is_refused(hub):
    cookie = login(hub)
    with pytest.raises(InvalidStatus) as refused:
        Floor(hub, cookie, origin="http://evil.example")
    assert refused.value.response.status_code == 403
    response = request(hub, "POST", "/login", f"username=sup&password={PASSWORD}",
                       {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"})
    assert response.status == 403 and response.getheader("Set-Cookie") is None
    Floor(hub, cookie).close()  # its own origin is fine


def test_allowed_origins_option():
    hub = start_hub(allowed_origins=["https://floor.example"])
    try:
        cookie = login(hub)
        with pytest.raises(InvalidStatus):
            Floor(hub, cookie)  # the hub's own address is no longer listed
        Floor(hub, cookie, origin="https://floor.example").close()
    finally:
        hub.stop()


def test_static_files_without_path_traversal(hub):
    assert request(hub, "GET", "/ui/floor.js").status == 200
    assert request(hub, "GET", "/ui/floor.css").getheader("Content-Type").startswith("text/css")
    for path in ("/ui/../monitor/hub.py", "/ui/%2e%2e/monitor/hub.py", "/ui/..%2fpyproject.toml", "/ui//etc/passwd"):
        assert request(hub, "GET", path).status in (403, 404), path
    assert request(hub, "GET", "/").getheader("Location") == "/floor"
    assert request(hub, "DELETE", "/floor").status == 405
    big = request(hub, "POST", "/login", "x" * 20000, {"Content-Type": "application/x-www-form-urlencoded"})
    assert big.status == 413


def test_port_taken(hub):
    with pytest.raises(UsageError, match=f"cannot listen on 127.0.0.1:{hub.port}: address already in use"):
        Hub(HubOptions(port=hub.port)).start()


# ---- calls on the floor ----

def test_lost_connection_shows_and_resumes(hub):
    floor = Floor(hub, login(hub))
    monitor = Monitor(hub, "ann")
    monitor.send(call_start(monitor.call_id))
    monitor.send(levels(0.2))
    floor.wait(lambda: floor.tiles.get(monitor.call_id, {}).get("t") == 0.2, "the live tile")
    assert floor.tiles[monitor.call_id]["status"] == "live"

    monitor.ws.close()
    floor.wait(lambda: floor.tiles[monitor.call_id]["status"] == "lost", "connection lost")
    assert floor.tiles[monitor.call_id]["needs_attention"] is False  # lost alone is not an emergency
    assert any(a["kind"] == "lost" and a["call_id"] == monitor.call_id for a in floor.alerts)

    again = Monitor(hub, "ann", call_id=monitor.call_id, seq=monitor.seq)
    again.send(levels(0.4))
    floor.wait(lambda: floor.tiles[monitor.call_id]["status"] == "live", "the call resumed")
    assert floor.tiles[monitor.call_id]["t"] == 0.4 and floor.tiles[monitor.call_id]["gaps"] == 0

    again.send(ev("call_end", 0.6, parties={}))
    floor.wait(lambda: monitor.call_id in floor.ended, "call_end")
    assert floor.tiles[monitor.call_id]["status"] == "ended"
    floor.close()


def test_an_escalating_call_raises_alerts_and_comes_first(hub):
    floor = Floor(hub, login(hub))
    calm, hot = Monitor(hub, "agent00"), Monitor(hub, "agent01")
    for m in (calm, hot):
        m.send(call_start(m.call_id))
    for i in range(60):  # 12 s: the customer talks at -32 dBFS, then at -18
        t = 0.2 * (i + 1)
        calm.send(levels(t, customer=-32, talking=("customer",)))
        hot.send(levels(t, customer=-32 if i < 40 else -18, talking=("customer",)))
    for t, (kind, text) in zip((12.2, 12.4, 12.6), [("acknowledge", "Acknowledge how they feel"),
                                                    ("speak_softly", "Speak softly"), ("speak_softly", "Speak softly")]):
        hot.send(cue(t, kind, text))
    floor.wait(lambda: floor.tiles.get(hot.call_id, {}).get("cues_1m") == 3, "the hot call's cues")
    tile = floor.tiles[hot.call_id]
    assert tile["needs_attention"] and tile["raised_voice"]
    assert tile["reasons"][0] in ("customer raised voice", "customer upset, not acknowledged")
    kinds = {a["kind"] for a in floor.alerts if a["call_id"] == hot.call_id}
    assert kinds == {"raised_voice", "acknowledge", "cues"}
    assert not floor.tiles[calm.call_id]["needs_attention"]
    assert not [a for a in floor.alerts if a["call_id"] == calm.call_id]

    silent = Monitor(hub, "agent02")  # dead air: nobody talks for over 10 s
    silent.send(call_start(silent.call_id))
    for i in range(60):
        silent.send(levels(0.2 * (i + 1), talking=()))
    floor.wait(lambda: any(a["kind"] == "dead_air" and a["call_id"] == silent.call_id for a in floor.alerts),
               "the dead air alert")

    late = Floor(hub, login(hub))  # a supervisor arriving now gets it all in the snapshot, attention first
    late.pump(2)
    first = json.loads(json.dumps([m for _, m in late.received if m["type"] == "floor"][0]))
    assert first["calls"][0]["call_id"] == hot.call_id
    assert len(first["alerts"]) == len(floor.alerts)
    floor.close()
    late.close()


def test_a_slow_supervisor_is_cut_off_without_delaying_another():
    hub = start_hub(rate_per_s=5000.0, queue_size=64)
    try:
        cookie = login(hub)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and it never reads
        sock.connect(("127.0.0.1", hub.port))
        slow = connect(hub.url.replace("http", "ws", 1) + "floor/ws", sock=sock, additional_headers={"Cookie": cookie},
                       origin=hub.url.rstrip("/"), max_queue=1).__enter__()
        fast = Floor(hub, cookie)
        monitor = Monitor(hub, "ann")
        monitor.send(call_start(monitor.call_id))
        fast.wait(lambda: monitor.call_id in fast.tiles, "the call")
        for floor_ws in (fast.ws, slow):
            floor_ws.send(json.dumps({"type": "watch", "call_id": monitor.call_id}))
        wait_until(lambda: len(hub._watchers.get(monitor.call_id, ())) == 2, "both watching")
        cues = lambda: len([e for e in fast.events if e["type"] == "cue"])  # noqa: E731
        reader = threading.Thread(target=fast.wait, args=(lambda: cues() == 600, "the cues", 20), daemon=True)
        reader.start()  # the fast supervisor reads while the burst goes on
        for i in range(600):
            monitor.send(cue(float(i), "pause_first", f"{i} " + "x" * 2000))
        reader.join(timeout=25)
        assert cues() == 600  # every one, though the other supervisor is stuck
        wait_until(lambda: hub.stats()["supervisors"] == 1, "the slow supervisor to be cut off")
        fast.wait(lambda: fast.tiles[monitor.call_id]["cues_1m"] == 61, "the last minute of cues (539 s to 599 s)")
        fast.close()
    finally:
        hub.stop()


def test_an_ended_call_leaves_the_floor_after_a_while():
    hub = start_hub(ended_linger_s=0.2)
    try:
        floor = Floor(hub, login(hub))
        monitor = Monitor(hub, "ann")
        monitor.send(call_start(monitor.call_id))
        monitor.send(ev("call_end", 5.0, parties={}))
        floor.wait(lambda: monitor.call_id in floor.ended, "call_end")
        floor.wait(lambda: monitor.call_id not in floor.tiles, "the tile removed", 5)
        assert monitor.call_id not in hub.calls
        floor.close()
    finally:
        hub.stop()


# ---- the publisher ----

def test_publisher_catches_up_after_the_hub_restarts():
    port = free_port()
    hub = start_hub(port=port)
    publisher = HubPublisher(f"http://127.0.0.1:{port}", "ann", TOKENS["ann"])
    publisher.start()
    try:
        publisher.publish(call_start("restart-call"))
        publisher.publish(levels(0.2))
        wait_until(lambda: "restart-call" in hub.calls and hub.calls["restart-call"].t == 0.2, "the call")
        hub.stop()
        wait_until(lambda: not publisher.connected, "the publisher to notice")

        publisher.publish(cue(1.0, "acknowledge", "Acknowledge how they feel"))  # while the hub is down
        for i in range(10):
            publisher.publish(levels(1.2 + 0.2 * i))
        publisher.publish(ev("transcript", 3.5, party="customer", start=2.0, end=3.4, text="this is absurd",
                             final=True, words=[]))
        time.sleep(1.2)  # the levels are now stale: they go, but the newest
        hub = start_hub(port=port)
        floor = Floor(hub, login(hub))
        floor.wait(lambda: floor.tiles.get("restart-call", {}).get("t") == 3.5, "the catch-up", 15)
        tile = floor.tiles["restart-call"]
        assert tile["status"] == "live" and tile["cue"]["kind"] == "acknowledge"
        assert tile["line"]["text"] == "this is absurd"
        floor.wait(lambda: floor.tiles["restart-call"]["dropped"] == 9, "the dropped count")
        assert publisher.dropped == 9
        floor.watch("restart-call")
        floor.wait(lambda: floor.events, "the watch snapshot")
        assert [e["type"] for e in floor.events][:1] == ["call_start"]
        assert {"cue", "transcript", "levels"} <= {e["type"] for e in floor.events}
        floor.close()
    finally:
        publisher.stop()
        hub.stop()


def test_publisher_keeps_the_newest_events_when_its_queue_is_full():
    publisher = HubPublisher(f"ws://127.0.0.1:{free_port()}/monitor", "ann", "t", queue_size=5)
    publisher.publish(call_start("c"))
    for i in range(10):
        publisher.publish(levels(0.2 * i))
    publisher.publish(cue(3.0))
    kinds = [w["event"]["type"] for w in publisher._queue]
    assert kinds == ["call_start", "levels", "levels", "levels", "cue"]
    assert publisher.dropped == 7 and [w["seq"] for w in publisher._queue][-1] == 12
    publisher.publish(object())  # garbage never raises into the pipeline
    publisher.publish({"type": "levels", "t": float("nan"), "levels": {"agent": float("-inf")}})


# ---- TLS ----

@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    hub = start_hub(tls_cert=str(cert), tls_key=str(key))
    context = ssl.create_default_context(cafile=str(cert))
    publisher = HubPublisher(hub.url, "ann", TOKENS["ann"], cafile=str(cert))
    try:
        assert hub.url.startswith("https://") and hub.monitor_url.startswith("wss://")
        cookie = login(hub, context=context)
        floor = Floor(hub, cookie, context=context)
        publisher.start()
        publisher.publish(call_start("tls-call"))
        floor.wait(lambda: "tls-call" in floor.tiles, "the call over TLS")
        floor.close()
    finally:
        publisher.stop()
        hub.stop()


# ---- two hubs through Redis ----

@pytest.fixture
def redis_port():
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server not found (apt-get install redis-server)")
    port = free_port()
    server = start_redis(port)
    yield port
    server.terminate()
    server.wait(timeout=5)


def start_redis(port: int) -> subprocess.Popen:
    server = subprocess.Popen(["redis-server", "--save", "", "--appendonly", "no", "--port", str(port),
                               "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port)
    wait_until(lambda: _pings(client), "redis-server to start")
    return server


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


def test_two_hubs_share_calls_through_redis(redis_port):
    url = f"redis://127.0.0.1:{redis_port}/0"
    hub_a, hub_b = start_hub(redis_url=url), start_hub(redis_url=url)
    try:
        wait_until(lambda: hub_a.stats()["redis"] and hub_b.stats()["redis"], "both hubs on redis")
        floor_b = Floor(hub_b, login(hub_b))
        monitor = Monitor(hub_a, "ann")
        monitor.send(call_start(monitor.call_id))
        monitor.send(cue(1.0, "acknowledge", "Acknowledge how they feel"))
        floor_b.wait(lambda: floor_b.tiles.get(monitor.call_id, {}).get("cues_1m") == 1, "the call on hub B")
        tile = floor_b.tiles[monitor.call_id]
        assert tile["agent"] == "ann" and tile["hub"] == hub_a.id and tile["status"] == "live"
        assert any(a["kind"] == "acknowledge" for a in floor_b.alerts)

        floor_b.watch(monitor.call_id)  # the live view works across hubs too
        floor_b.wait(lambda: floor_b.events, "the snapshot")
        monitor.send(cue(2.0, "slow_down", "Slow down"))
        floor_b.wait(lambda: any(e.get("kind") == "slow_down" for e in floor_b.events), "a watched event")

        # JSON allows raw newlines between tokens; they must not let ann pass for bob on other hubs.
        spoof = json.dumps({"agent": "bob", "msg": {"type": "event", "call_id": "spoofed", "seq": 1,
                                                    "event": call_start("spoofed")}})
        monitor.seq += 1
        monitor.ws.send(f'{{"type":"event","call_id":"{monitor.call_id}","seq":{monitor.seq},'
                        f'"event":{json.dumps(cue(3.0))},"pad":\n{spoof}\n}}')
        floor_b.wait(lambda: floor_b.tiles[monitor.call_id]["cues_1m"] == 3, "the padded cue")
        assert "spoofed" not in floor_b.tiles and "spoofed" not in hub_b.calls

        monitor.ws.close()  # lost on A: lost on B
        floor_b.wait(lambda: floor_b.tiles[monitor.call_id]["status"] == "lost", "lost on hub B")
        floor_b.close()
    finally:
        hub_a.stop()
        hub_b.stop()


def test_a_hub_outlives_redis_and_reconnects():
    port = free_port()
    server = start_redis(port)
    url = f"redis://127.0.0.1:{port}/0"
    hub_a, hub_b = start_hub(redis_url=url, peer_timeout_s=1.0), start_hub(redis_url=url, peer_timeout_s=1.0)
    try:
        wait_until(lambda: hub_a.stats()["redis"] and hub_b.stats()["redis"], "both hubs on redis", 15)
        floor_a, floor_b = Floor(hub_a, login(hub_a)), Floor(hub_b, login(hub_b))
        monitor = Monitor(hub_a, "ann")
        monitor.send(call_start(monitor.call_id))
        floor_b.wait(lambda: monitor.call_id in floor_b.tiles, "the call on hub B", 15)

        server.terminate()
        server.wait(timeout=5)
        monitor.send(cue(1.0))  # hub A still serves its own monitors and supervisors
        floor_a.wait(lambda: floor_a.tiles.get(monitor.call_id, {}).get("cues_1m") == 1, "the cue on hub A", 15)
        floor_b.wait(lambda: floor_b.tiles[monitor.call_id]["status"] == "lost", "hub B to notice", 15)

        server = start_redis(port)
        # Pub/sub keeps nothing for a subscriber that is still reconnecting: send until hub B hears again.
        deadline = time.monotonic() + 30
        t = 2.0
        while not (floor_b.tiles[monitor.call_id]["cue"] or {}).get("kind") == "slow_down":
            assert time.monotonic() < deadline, "hub B never heard hub A again"
            monitor.send(cue(t, "slow_down", "Slow down"))
            t += 1.0
            floor_b.pump(timeout=1.0)
        assert floor_b.tiles[monitor.call_id]["status"] == "live"
        floor_a.close()
        floor_b.close()
    finally:
        hub_a.stop()
        hub_b.stop()
        server.terminate()
        server.wait(timeout=5)
