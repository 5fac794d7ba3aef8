"""The web app's one security layer, tried as a hostile page, client or network would, on the real server
(uvicorn on a free port, raw bytes over real sockets): Origin, Host (DNS rebinding), duplicate headers,
HEAD, security headers and JSON without NaN, on every route of every part."""

from __future__ import annotations

import base64
import json
import os
import socket

import pytest
from starlette.routing import Route, WebSocketRoute
from websockets.sync.client import connect

from conftest import calmline
from monitor.library.store import Store
from monitor.web.app import WebOptions, WebServer, build_app
from monitor.web.jsonwire import dumps
from monitor.web.library import LibraryPart
from monitor.web.overlay import OverlayPart
from synth import barge_in_call, write_call

TOKEN = "sam-token-0123456789abcdef"


@pytest.fixture(scope="module")
def call_store(tmp_path_factory):
    base = tmp_path_factory.mktemp("security")
    channels, _ = barge_in_call("My order never arrived and I have been waiting for two weeks.")
    run = calmline("analyze", write_call(base / "call.wav", channels), "--no-transcribe", "--data-dir", base / "data")
    assert run.returncode == 0, run.stderr
    store = Store(base / "data")
    yield store
    store.close()


def floor_part():
    """The floor, when this build has it: its routes must pass the same checks."""
    try:
        from monitor.web.floor_part import FloorPart, FloorPartOptions
    except ImportError:
        return None
    return FloorPart(FloorPartOptions(tokens={"sam": TOKEN}))


@pytest.fixture(scope="module")
def app_server(call_store):
    options = WebOptions(port=0, allowed_hosts=["calmline.test"], allowed_origins=["https://portal.example"])
    overlay = OverlayPart()
    parts = [overlay, LibraryPart(call_store)]
    floor = floor_part()
    if floor is not None:
        parts.append(floor)
    app = build_app(options, parts)
    server = WebServer(app, options)
    server.start()
    server.overlay, server.app = overlay, app
    server.call_id = call_store.calls()[0]["id"]
    yield server
    server.stop()


def request(port: int, head: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send exactly these bytes (one request, closed after) and parse the answer by hand."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            if data.startswith(b"HTTP/1.1 101"):
                break
    head_bytes, _, rest = data.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, rest


def handshake(port: int, path: str, *extra: str, host: str | None = None) -> tuple[int, dict[str, str], bytes]:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: {host or f'127.0.0.1:{port}'}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13", *extra]
    return request(port, "\n".join(lines) + "\n")


def get(port: int, path: str, *extra: str, method: str = "GET", host: str | None = None):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host or f'127.0.0.1:{port}'}", "Connection: close", *extra]
    return request(port, "\n".join(lines) + "\n")


def concrete(path: str, call_id: str) -> str:
    return path.replace("{call_id}", call_id)


def websocket_paths(server) -> list[str]:
    return [r.path for r in server.app.routes if isinstance(r, WebSocketRoute)]


def routes_with(server, method: str) -> list[str]:
    return [concrete(r.path, server.call_id) for r in server.app.routes
            if isinstance(r, Route) and method in (r.methods or ())]


def own(server) -> str:
    return f"Origin: http://127.0.0.1:{server.port}"


# ---- Origin ----

FOREIGN = ("Origin: http://127.0.0.2:{port}", "Origin: http://127.0.0.1:1", "Origin: https://127.0.0.1:{port}",
           "Origin: http://attacker.example", "Origin: null", "Origin: *")


def test_every_websocket_refuses_a_foreign_origin(app_server):
    paths = websocket_paths(app_server)
    assert "/ws" in paths
    for path in paths:
        for origin in FOREIGN:
            status, headers, body = handshake(app_server.port, path, origin.format(port=app_server.port))
            assert status == 403, (path, origin)
            assert b"customer" not in body
    assert handshake(app_server.port, "/ws", own(app_server))[0] == 101
    assert handshake(app_server.port, "/ws", "Origin: https://portal.example")[0] == 101  # configured


def test_a_websocket_without_origin_opens_only_where_the_route_authenticates_by_token(app_server):
    assert handshake(app_server.port, "/ws")[0] == 403
    if "/monitor" in websocket_paths(app_server):  # the monitors' stream: a token in its first message
        assert handshake(app_server.port, "/monitor")[0] == 101


def test_a_page_from_another_origin_cannot_read_the_overlay_stream(app_server):
    """Issue 9: a page served from 127.0.0.2 opened /ws and read the live transcript."""
    app_server.overlay.publish({"v": 1, "type": "transcript", "t": 1.0, "party": "customer", "start": 0.0,
                                "end": 1.0, "text": "my card number is", "final": True})
    with pytest.raises(Exception) as refused:
        connect(f"ws://127.0.0.1:{app_server.port}/ws", origin=f"http://127.0.0.2:{app_server.port}", open_timeout=5)
    assert "403" in str(refused.value)
    with connect(f"ws://127.0.0.1:{app_server.port}/ws", origin=f"http://127.0.0.1:{app_server.port}") as ws:
        assert json.loads(ws.recv(timeout=5))["text"] == "my card number is"


def test_every_post_refuses_a_foreign_origin(app_server):
    posts = routes_with(app_server, "POST")
    for path in [*posts, "/", "/calls", "/nowhere"]:  # and any other method on any path: checked before routing
        for origin in FOREIGN:
            status, _, _ = get(app_server.port, path, origin.format(port=app_server.port), "Content-Length: 0",
                               method="POST")
            assert status == 403, (path, origin)
        for method in ("PUT", "DELETE", "PATCH"):
            assert get(app_server.port, path, "Origin: http://attacker.example", method=method)[0] == 403


# ---- Host ----

def test_a_foreign_host_is_refused_on_pages_files_and_streams(app_server):
    """DNS rebinding: attacker.example resolves to 127.0.0.1, so the browser sends `Host: attacker.example`."""
    call = app_server.call_id
    for path in [*routes_with(app_server, "GET"), "/ui/overlay.js", f"/calls/{call}/audio.flac"]:
        for host in ("attacker.example", f"attacker.example:{app_server.port}", "127.0.0.1.attacker.example",
                     "localhost.attacker.example"):
            status, _, body = get(app_server.port, path, host=host)
            assert status == 400 and call.encode() not in body, (path, host)
    for path in websocket_paths(app_server):
        status, _, _ = handshake(app_server.port, path, "Origin: http://attacker.example", host="attacker.example")
        assert status == 400, path
        status, _, _ = handshake(app_server.port, path, f"Origin: http://attacker.example:{app_server.port}",
                                 host=f"attacker.example:{app_server.port}")
        assert status == 400, path


def test_the_servers_own_names_are_served(app_server):
    for host in (f"127.0.0.1:{app_server.port}", f"localhost:{app_server.port}", f"[::1]:{app_server.port}",
                 "calmline.test", f"CALMLINE.test:{app_server.port}"):
        assert get(app_server.port, "/", host=host)[0] == 200, host
    status, _, _ = handshake(app_server.port, "/ws", f"Origin: http://localhost:{app_server.port}",
                             host=f"localhost:{app_server.port}")
    assert status == 101


# ---- duplicate headers ----

@pytest.mark.parametrize("header", ["Host: 127.0.0.1", "Cookie: a=1", "Content-Length: 1", "Origin: http://x.example",
                                   "Authorization: Bearer x"])  # (two equal Content-Lengths are one, by RFC 9110)
def test_a_duplicated_header_is_a_400_before_any_route(app_server, header):
    first = {"Host": f"Host: 127.0.0.1:{app_server.port}", "Cookie": "Cookie: a=2",
             "Content-Length": "Content-Length: 0", "Origin": own(app_server),
             "Authorization": "Authorization: Bearer y"}[header.split(":")[0]]
    lines = ["GET /calls HTTP/1.1", "Connection: close", first, header]
    if not header.startswith("Host"):
        lines.append(f"Host: 127.0.0.1:{app_server.port}")
    status, _, body = request(app_server.port, "\n".join(lines) + "\n")
    assert status == 400 and b"Traceback" not in body
    status, _, _ = handshake(app_server.port, "/ws", own(app_server),
                             *([header] if header.startswith(("Cookie", "Authorization")) else []),
                             "Cookie: b=1" if header.startswith("Cookie") else "X-Other: 1",
                             "Authorization: x" if header.startswith("Authorization") else "X-Other2: 1")
    if header.startswith(("Cookie", "Authorization")):
        assert status == 400
    assert get(app_server.port, "/")[0] == 200  # and the server carries on


# ---- HEAD, headers, JSON ----

def test_head_works_on_every_get_route(app_server):
    for path in [*routes_with(app_server, "GET"), "/ui/overlay.css", f"/calls/{app_server.call_id}/audio.flac"]:
        got = get(app_server.port, path)
        head = get(app_server.port, path, method="HEAD")
        assert head[0] == got[0] != 405, path
        assert head[2] == b"", path
        assert head[1].get("content-length") == got[1].get("content-length"), path


def test_every_response_carries_the_security_headers(app_server):
    port, call = app_server.port, app_server.call_id
    answers = [get(port, p) for p in [*routes_with(app_server, "GET"), "/ui/overlay.js", "/nowhere",
                                      f"/calls/{call}/audio.flac"]]
    answers += [get(port, "/", host="attacker.example"), get(port, "/", "Origin: null", method="POST"),
                request(port, f"GET / HTTP/1.1\nHost: 127.0.0.1:{port}\nConnection: close\nCookie: a\nCookie: b\n"),
                handshake(port, "/ws", "Origin: http://attacker.example")]
    for status, headers, _ in answers:
        csp = headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp and "default-src" in csp, (status, headers)
        assert "'unsafe-eval'" not in csp and "script-src 'unsafe-inline'" not in csp
        assert headers.get("x-content-type-options") == "nosniff", (status, headers)
        assert headers.get("referrer-policy") in ("same-origin", "no-referrer"), (status, headers)
    assert answers[-2][0] == 400 and answers[-2][1].get("connection") == "close"  # the duplicate Cookie
    page = get(port, "/")[1]["content-security-policy"]
    assert "script-src 'self'" in page and "connect-src 'self'" in page


def test_json_never_carries_nan(app_server):
    event = {"v": 1, "type": "levels", "t": 2.0, "levels": {"agent": float("nan"), "customer": float("-inf")},
             "talking": {"agent": True, "customer": False}, "nested": [[float("inf")]]}
    assert dumps(event) == ('{"v":1,"type":"levels","t":2.0,"levels":{"agent":null,"customer":null},'
                            '"talking":{"agent":true,"customer":false},"nested":[[null]]}')
    with connect(f"ws://127.0.0.1:{app_server.port}/ws", origin=f"http://127.0.0.1:{app_server.port}") as ws:
        while app_server.overlay.client_count < 1:
            pass
        app_server.overlay.publish(event)
        while (got := json.loads(ws.recv(timeout=5)))["type"] != "levels":
            pass
    assert got["levels"] == {"agent": None, "customer": None} and got["nested"] == [[None]]
    for path in ("/calls", f"/calls/{app_server.call_id}/data.json"):
        status, _, body = get(app_server.port, path)
        assert status == 200 and b"NaN" not in body and b"Infinity" not in body
        json.loads(body, parse_constant=lambda name: pytest.fail(f"{path} carries {name}"))


# ---- TLS ----

def test_over_tls_the_own_origin_is_the_https_one(tmp_path):
    import ssl
    import subprocess

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                           "/CN=localhost", "-keyout", str(key), "-out", str(cert)], capture_output=True)
    assert made.returncode == 0, made.stderr
    options = WebOptions(port=0, tls_cert=str(cert), tls_key=str(key))
    server = WebServer(build_app(options, [OverlayPart()]), options)
    server.start()
    try:
        assert server.url == f"https://127.0.0.1:{server.port}/"
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        url = f"wss://127.0.0.1:{server.port}/ws"
        with connect(url, origin=f"https://127.0.0.1:{server.port}", ssl=context) as ws:
            ws.ping()
        with pytest.raises(Exception) as refused:  # the same host and port, but another scheme: another origin
            connect(url, origin=f"http://127.0.0.1:{server.port}", ssl=context, open_timeout=5)
        assert "403" in str(refused.value)
    finally:
        server.stop()
