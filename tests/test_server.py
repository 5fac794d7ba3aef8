"""The overlay on the real server (uvicorn, real sockets): delivery, snapshots, slow clients, HTTP files, errors."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import threading
import time

import pytest
from websockets.sync.client import connect as ws_connect

from monitor.errors import UsageError
from monitor.events import Cue
from monitor.web.app import WebOptions
from monitor.web.overlay import OverlayServer


def levels(t: float) -> dict:
    return {"v": 1, "type": "levels", "t": t, "levels": {"agent": -30.0, "customer": -42.5},
            "talking": {"agent": True, "customer": False}}


def cue(t: float, kind: str = "wait_for_pause", reason: str = "test") -> dict:
    return {"v": 1, "type": "cue", "t": t, "kind": kind, "text": "Wait for the pause", "reason": reason}


def transcript(t: float, text: str) -> dict:
    return {"v": 1, "type": "transcript", "t": t, "party": "agent", "start": t - 1, "end": t, "text": text,
            "final": True}


def call_start(call_id: str = "c1") -> dict:
    return {"v": 1, "type": "call_start", "t": 0.0, "call_id": call_id, "source": "test",
            "parties": ["agent", "customer"]}


def wait_until(condition, what: str, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def wait_clients(server: OverlayServer, n: int) -> None:
    """A client's handshake completes before the server registers it; publish only after that."""
    wait_until(lambda: server.client_count == n, f"{n} connected clients")


def receive(ws, n: int) -> list[dict]:
    return [json.loads(ws.recv(timeout=5)) for _ in range(n)]


class RawClient:
    """A WebSocket client on a bare socket with a tiny receive buffer: it reads only when the test says so."""

    def __init__(self, port: int):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}\r\n"
                          f"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(4096)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def frames(self):
        """Yield (opcode, payload) of each frame until the server closes the connection."""
        self.sock.settimeout(10)
        while True:
            pos = 0
            while len(self.buf) - pos >= 2:
                opcode, n, start = self.buf[pos] & 0x0F, self.buf[pos + 1] & 0x7F, pos + 2
                if n >= 126:
                    width = 2 if n == 126 else 8
                    n, start = int.from_bytes(self.buf[start:start + width], "big"), start + width
                if len(self.buf) < start + n:
                    break
                yield opcode, self.buf[start:start + n]
                pos = start + n
            self.buf = self.buf[pos:]
            data = self.sock.recv(65536)
            if not data:
                return
            self.buf += data

    def events(self, until_type: str) -> list[dict]:
        """Read text frames until an event of `until_type` arrives."""
        out = []
        for opcode, payload in self.frames():
            if opcode == 1:
                out.append(json.loads(payload))
                if out[-1]["type"] == until_type:
                    return out
        pytest.fail(f"connection ended before a {until_type} event")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server():
    srv = OverlayServer(WebOptions(port=0)).start()
    yield srv
    srv.stop()


def connect(url: str):
    """A browser-like client: the overlay's stream refuses WebSockets without the page's own Origin."""
    port = url.split(":")[2].split("/")[0]
    return ws_connect(url, origin=f"http://127.0.0.1:{port}")


def test_events_arrive_in_order(server):
    with connect(f"ws://127.0.0.1:{server.port}/ws") as a, connect(f"ws://127.0.0.1:{server.port}/ws") as b:
        wait_clients(server, 2)
        sent = [call_start()] + [levels(0.2 * i) if i % 7 else cue(0.2 * i) for i in range(1, 60)]
        for event in sent:
            server.publish(event)
        assert receive(a, len(sent)) == sent
        assert receive(b, len(sent)) == sent
        server.publish(Cue(t=13.0, kind="slow_down", text="Slow down", reason="fast"))  # Event objects too
        assert receive(a, 1) == [Cue(t=13.0, kind="slow_down", text="Slow down", reason="fast").to_dict()]


def test_non_finite_levels_arrive_as_null(server):
    with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        wait_clients(server, 1)
        server.publish({"v": 1, "type": "levels", "t": 1.0, "levels": {"agent": float("-inf")}, "talking": {}})
        assert receive(ws, 1)[0]["levels"] == {"agent": None}


def test_new_client_gets_a_snapshot_of_the_call(server):
    server.publish(call_start("old"))
    server.publish(cue(1.0))
    server.publish(call_start("c2"))
    for i in range(30):
        server.publish(transcript(10.0 + i, f"line {i}"))
        server.publish(levels(10.0 + i))
    server.publish(cue(40.0, "slow_down"))
    server.publish(cue(41.0))
    with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        got = receive(ws, 1 + 20 + 2 + 1)  # call_start, transcripts, every cue still up and levels, in order
    assert got[0]["call_id"] == "c2"
    assert [e["text"] for e in got if e["type"] == "transcript"] == [f"line {i}" for i in range(10, 30)]
    assert [(e["kind"], e["t"]) for e in got if e["type"] == "cue"] == [("slow_down", 40.0), ("wait_for_pause", 41.0)]
    assert [e["t"] for e in got if e["type"] == "levels"] == [39.0]


def test_malformed_client_messages_change_nothing(server):
    with connect(f"ws://127.0.0.1:{server.port}/ws") as bad, connect(f"ws://127.0.0.1:{server.port}/ws") as good:
        wait_clients(server, 2)
        for message in ["not json", "{", b"\x00\xff\xfe", '{"type": "hello"}', "[1, 2]", ""]:
            bad.send(message)
        server.publish(cue(1.0))
        assert receive(bad, 1) == [cue(1.0)]
        assert receive(good, 1) == [cue(1.0)]
        assert server.client_count == 2


def cues_while_publishing(server: OverlayServer, others: int, n_levels: int = 3000, n_cues: int = 5) -> list[dict]:
    """The cues a reading client gets while levels and cues are published from another thread (how long it
    takes is bench/cue_latency.py's business, not a test's)."""
    every = n_levels // n_cues
    run = os.urandom(4).hex()  # tells this run's cues from the one in the snapshot
    with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        wait_clients(server, others + 1)

        def publish():
            for i in range(n_levels):
                server.publish(levels(0.2 * i))
                if i % every == every - 1:
                    server.publish(cue(0.2 * i, reason=run))
                if i % 50 == 0:
                    time.sleep(0)  # let the server's thread run, as a real pipeline would

        publisher = threading.Thread(target=publish)
        publisher.start()
        cues = []
        while len(cues) < n_cues:
            event = json.loads(ws.recv(timeout=10))
            if event.get("reason") == run:
                cues.append(event)
        publisher.join()
        return cues


def test_a_stuck_client_does_not_hold_up_anyone_elses_cues(server):
    stuck = RawClient(server.port)
    try:
        wait_clients(server, 1)
        for _ in range(3):
            cues = cues_while_publishing(server, others=1)
            assert [c["t"] for c in cues] == [0.2 * i for i in range(599, 3000, 600)]
        assert server.client_count == 1  # the stuck one misses levels; it is not closed for that
    finally:
        stuck.close()


def test_a_slow_client_misses_levels_but_never_cues(server):
    slow = RawClient(server.port)
    try:
        wait_clients(server, 1)
        server.publish(call_start())
        sent_cues = []
        for i in range(3000):
            server.publish(levels(0.2 * i))
            if i % 500 == 250:
                sent_cues.append(cue(0.2 * i))
                server.publish(sent_cues[-1])
                server.publish(transcript(0.2 * i, f"said at {i}"))
        server.publish({"v": 1, "type": "call_end", "t": 600.0, "parties": {}})
        got = slow.events(until_type="call_end")
    finally:
        slow.close()
    assert got[0]["type"] == "call_start"
    assert [e for e in got if e["type"] == "cue"] == sent_cues
    assert len([e for e in got if e["type"] == "transcript"]) == len(sent_cues)
    kept = [e["t"] for e in got if e["type"] == "levels"]
    assert len(kept) < 3000 and kept == sorted(kept)


def test_a_hopelessly_behind_client_is_closed(server):
    slow = RawClient(server.port)
    try:
        wait_clients(server, 1)
        for i in range(5000):  # cues are never dropped: far more than the client's buffers and 4 x queue_size
            server.publish(cue(0.01 * i))
        wait_clients(server, 0)
        close = next(payload for opcode, payload in slow.frames() if opcode == 8)
    finally:
        slow.close()
    assert int.from_bytes(close[:2], "big") == 1013
    with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:  # the server carries on
        wait_clients(server, 1)
        server.publish(cue(99.0))
        assert receive(ws, 2) == [cue(49.99), cue(99.0)]  # the snapshot's cue, then the new one


def get(server: OverlayServer, path: str) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


def test_http_serves_the_overlay_and_nothing_else(server):
    status, kind, body = get(server, "/")
    assert status == 200 and kind.startswith("text/html") and b'id="cue"' in body
    assert get(server, "/ui/overlay.css")[:2] == (200, "text/css; charset=utf-8")
    assert get(server, "/ui/overlay.js")[:2] == (200, "text/javascript; charset=utf-8")
    assert get(server, "/ui/nope.html")[0] == 404
    assert get(server, "/overlay.html")[0] == 404
    for path in ["/../pyproject.toml", "/%2e%2e/pyproject.toml", "/..%2fpyproject.toml", "/ui/../../pyproject.toml",
                 "/ui/%2e%2e/pyproject.toml", "/ui/..%2f..%2fpyproject.toml", "/ui/../monitor/cli.py"]:
        status, _, body = get(server, path)
        assert status in (400, 403, 404) and b"calmline" not in body, path


def test_a_taken_port_is_a_one_line_usage_error(server):
    with pytest.raises(UsageError) as error:
        OverlayServer(WebOptions(port=server.port)).start()
    assert str(error.value) == f"cannot listen on 127.0.0.1:{server.port}: address already in use"
