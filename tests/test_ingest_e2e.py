"""Calls streamed into a real server over real sockets: the reference AudioHook client (node), the
Twilio and PCM senders, and hostile clients. The calls' events must match `calmline analyze` on
the same file; every bad input gets its protocol's error and a recorded, interrupted call, never a
disturbed neighbour.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from audio.g711 import ulaw_encode
from monitor.config import AudioHookIngestConfig, Config, IngestConfig, PcmIngestConfig, TwilioIngestConfig
from monitor.events import events_from_dicts
from monitor.ingest.routes import IngestPart
from monitor.library.store import Store
from monitor.web.app import WebOptions, WebServer, build_app

sys.path.insert(0, str(Path(__file__).parent))
from conftest import calmline  # noqa: E402
from senders import Replay, send_pcm, send_twilio  # noqa: E402
from synth import barge_in_call  # noqa: E402

PEER = Path("/work/shared/peers/audiohook-client/dist/client/src/index.js")
API_KEY = "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh"          # the protocol documentation's sample key and secret
SECRET = "TXlTdXBlclNlY3JldEtleVRlbGxOby0xITJAMyM0JDU="
PLAIN_KEY = "plain-key-without-a-secret-0123"         # a key whose upgrades are not signed
TWILIO_TOKEN = "twilio-auth-token-0123456789abcdef"
PCM_TOKEN = "pcm-stream-token-0123456789"
COMPLAINT = "I have been waiting three weeks for my order and nobody has called me back about it at all."

needs_node = pytest.mark.skipif(not shutil.which("node") or not PEER.exists(), reason="needs node and the peer")


def ingest_config(**limits) -> Config:
    ingest = IngestConfig(audiohook=AudioHookIngestConfig(api_keys={API_KEY: SECRET, PLAIN_KEY: ""}),
                          twilio=TwilioIngestConfig(auth_token=TWILIO_TOKEN), pcm=PcmIngestConfig(token=PCM_TOKEN),
                          **limits)
    return Config(ingest=ingest)


class Server:
    """A real app with the ingest part on a free port, recording into a temporary store."""

    def __init__(self, tmp: Path, transcribe: bool = False, **limits):
        self.store = Store(tmp / "data")
        self.part = IngestPart(ingest_config(**limits), store=self.store, transcribe=transcribe)
        options = WebOptions(port=0)
        self.server = WebServer(build_app(options, [self.part]), options)
        self.server.start()
        self.port = self.server.port

    def url(self, route: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ingest/{route}"

    def wait_finished(self, n: int = 1, timeout: float = 120.0):
        deadline = time.monotonic() + timeout
        while len(self.part.finished) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.part.finished) >= n, f"{len(self.part.finished)} of {n} calls finished"
        return list(self.part.finished)

    def stop(self):
        self.server.stop()
        self.store.close()


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path, idle_timeout_s=3.0, reconnect_grace_s=2.0)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def call8k(tmp_path_factory) -> Path:
    """A synthesized call with an agent barging in, as 8 kHz stereo PCM: channel 0 customer, channel 1 agent."""
    channels, _ = barge_in_call(COMPLAINT)
    stereo = np.stack([channels["customer"], channels["agent"]], 1)
    path = tmp_path_factory.mktemp("ingest") / "call8k.wav"
    sf.write(str(path), soxr.resample(stereo, 16000, 8000, quality="HQ"), 8000, subtype="PCM_16")
    return path


def analyze(path: Path, transcribe: bool, tmp: Path) -> list:
    out = tmp / "analyze.jsonl"
    args = ["analyze", path, "--agent-channel", "1", "--customer-channel", "0", "--events", out]
    done = calmline(*args, *([] if transcribe else ["--no-transcribe"]))
    assert done.returncode == 0, done.stderr
    return events_from_dicts([json.loads(line) for line in out.read_text().splitlines()])


def assert_same_call(ingested: list, analyzed: list, words: bool = False):
    """Talk time within 5 %, the same interruptions within 0.3 s, each party's words on their own side."""
    def talk(events):
        return {p: sum(e.t - e.start for e in events if e.type == "talk_end" and e.party == p)
                for p in ("agent", "customer")}

    got, want = talk(ingested), talk(analyzed)
    for party in want:
        assert got[party] == pytest.approx(want[party], rel=0.05), (party, got, want)
    cuts = lambda ev: [(e.by, e.t) for e in ev if e.type == "interruption"]  # noqa: E731
    assert [b for b, _ in cuts(ingested)] == [b for b, _ in cuts(analyzed)]
    for (_, t1), (_, t2) in zip(cuts(ingested), cuts(analyzed)):
        assert abs(t1 - t2) <= 0.3
    assert [b for b, _ in cuts(ingested)] == ["agent"]  # the barge-in
    if words:
        def said(events, party):
            text = " ".join(e.text.lower() for e in events if e.type == "transcript" and e.final and e.party == party)
            return set(re.findall(r"[a-z']+", text))

        for party, own, other in (("agent", {"calling", "help", "screen", "stop"}, {"waiting", "weeks"}),
                                  ("customer", {"waiting", "three", "weeks"}, {"calling", "screen"})):
            heard = said(ingested, party)
            assert len(heard & own) >= 2 and not heard & other, (party, heard)
            # mostly the words analyze hears on that side
            assert len(heard & said(analyzed, party)) >= 0.6 * len(heard), (party, heard, said(analyzed, party))


def run_peer(url: str, wav: Path, *extra: str, secret: str | None = SECRET, key: str = API_KEY):
    args = ["node", str(PEER), "--uri", url, "--api-key", key, "--wavfile", str(wav), *extra]
    if secret:
        args += ["--client-secret", secret]
    return subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)


# ---- a minimal AudioHook client for hostile and reconnect cases (no signature: PLAIN_KEY) ----

class HookClient:
    def __init__(self, url: str, session_id: str | None = None, key: str = PLAIN_KEY):
        self.id = session_id or str(uuid.uuid4())
        self.ws = connect(url, additional_headers={"X-API-KEY": key, "Audiohook-Session-Id": self.id,
                                                   "Audiohook-Organization-Id": str(uuid.uuid4()),
                                                   "Audiohook-Correlation-Id": str(uuid.uuid4())},
                          compression=None).__enter__()  # held open across the test; the server's stop ends it
        self.seq = 0
        self.serverseq = 0
        self.samples = 0

    def send(self, kind: str, params: dict | None = None):
        self.seq += 1
        self.ws.send(json.dumps({"version": "2", "type": kind, "id": self.id, "seq": self.seq,
                                 "serverseq": self.serverseq, "position": f"PT{self.samples / 8000:g}S",
                                 "parameters": params or {}}))

    def recv(self) -> dict:
        msg = json.loads(self.ws.recv(timeout=10))
        self.serverseq = msg["seq"]
        return msg

    def open(self, agent="dana", **params):
        body = {"organizationId": str(uuid.uuid4()), "conversationId": str(uuid.uuid4()),
                "participant": {"id": str(uuid.uuid4()), "ani": "", "aniName": "", "dnis": ""},
                "media": [{"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000}],
                "customConfig": {"agent": agent}, **params}
        self.send("open", body)
        return self.recv()

    def audio(self, seconds: float, level: float = 0.3):
        n = int(seconds * 8000)
        t = np.arange(n) / 8000
        tone = level * np.sin(2 * np.pi * 300 * t)
        self.ws.send(ulaw_encode(np.stack([tone, tone * 0.5], 1).reshape(-1)))
        self.samples += n


def drop(ws) -> None:
    """End the TCP connection under a WebSocket without a close handshake, as a network failure would."""
    ws.socket.shutdown(socket.SHUT_RDWR)
    ws.socket.close()


# ---- authentication at the upgrade ----

def refused(url: str, headers: dict) -> tuple[int, str]:
    with pytest.raises(InvalidStatus) as info:
        with connect(url, additional_headers=headers, open_timeout=10):
            pass
    response = info.value.response
    return response.status_code, response.body.decode()


def test_upgrades_with_wrong_credentials_get_401(server):
    status, body = refused(server.url("audiohook"), {"X-API-KEY": "wrong-key-0123456789abcdef"})
    assert status == 401 and "X-API-KEY" in body
    status, body = refused(server.url("audiohook"), {"X-API-KEY": API_KEY, "Audiohook-Session-Id": str(uuid.uuid4())})
    assert status == 401 and "not signed" in body
    status, body = refused(server.url("twilio"), {"X-Twilio-Signature": "bm90IGl0"})
    assert status == 401 and "X-Twilio-Signature" in body
    status, body = refused(server.url("pcm"), {"Authorization": "Bearer not-the-token-at-all"})
    assert status == 401 and "token" in body
    assert not server.part.finished and not server.store.calls()


def test_a_browser_page_cannot_open_an_ingest_stream(server):
    """No Origin (a platform) is fine with credentials; a foreign Origin (a web page) is refused even with them."""
    status, _ = refused(server.url("pcm"), {"Authorization": f"Bearer {PCM_TOKEN}", "Origin": "https://evil.example"})
    assert status == 403
    with connect(server.url("pcm"), additional_headers={"Authorization": f"Bearer {PCM_TOKEN}"}) as ws:
        ws.send(json.dumps({"call_id": "ok-1", "agent": "dana", "sample_rate": 8000, "agent_channel": 0}))


@needs_node
def test_reference_client_with_a_wrong_secret_is_refused(server, call8k):
    wrong = base64.b64encode(b"a different client secret!").decode()
    done = run_peer(server.url("audiohook"), call8k, "--max-stream-duration", "1", secret=wrong)
    assert "401" in done.stdout + done.stderr
    assert not server.part.finished and not server.store.calls()


# ---- bad input on an open connection ----

def test_audiohook_unknown_message_gets_disconnect_then_closed(server):
    c = HookClient(server.url("audiohook"))
    assert c.open()["type"] == "opened"
    c.audio(0.4)
    c.send("dance")
    msg = c.recv()
    assert msg["type"] == "disconnect" and msg["parameters"]["reason"] == "error"
    assert "'dance' is not a supported client message" in msg["parameters"]["info"]
    c.send("close", {"reason": "disconnect"})
    assert c.recv()["type"] == "closed"
    (call,) = server.wait_finished()
    assert call.interrupted and "dance" in call.reason and call.agent == "dana"
    (recorded,) = server.store.calls()
    assert recorded["agent"] == "dana"
    lost = [e for e in server.store.events(recorded["id"]) if e["type"] == "device"]
    assert lost and lost[-1]["state"] == "lost" and "dance" in lost[-1]["message"]


def test_audiohook_audio_before_open_and_broken_frames(server):
    c = HookClient(server.url("audiohook"))
    c.ws.send(b"\xff" * 320)
    msg = c.recv()
    assert msg["type"] == "disconnect" and msg["parameters"]["info"] == "audio before 'open'"
    c = HookClient(server.url("audiohook"))
    c.open()
    c.ws.send(b"\xff" * 321)
    assert "not whole PCMU samples" in c.recv()["parameters"]["info"]


def test_audiohook_format_not_offered(server):
    c = HookClient(server.url("audiohook"))
    c.send("open", {"organizationId": str(uuid.uuid4()), "conversationId": str(uuid.uuid4()),
                    "participant": {"id": str(uuid.uuid4()), "ani": "", "aniName": "", "dnis": ""},
                    "media": [{"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000}]})
    msg = c.recv()
    assert msg["type"] == "disconnect" and "no stereo" in msg["parameters"]["info"]


def test_pcm_flood_is_cut_off_and_recorded_as_interrupted(server, call8k):
    result = send_pcm(server.url("pcm"), call8k, PCM_TOKEN, agent="flo", replay=Replay(speed=0))
    assert result["code"] == 1008 and "faster than real time" in result["reason"]
    (call,) = server.wait_finished()
    assert call.interrupted and call.agent == "flo"
    assert server.store.calls()[0]["agent"] == "flo"


def test_pcm_stream_that_stops_without_closing(server):
    with connect(server.url("pcm"), additional_headers={"Authorization": f"Bearer {PCM_TOKEN}"},
                 subprotocols=["audio.drachtio.org"]) as ws:   # what mod_audio_fork asks for
        assert ws.subprotocol == "audio.drachtio.org"
        ws.send(json.dumps({"call_id": "stalls-1", "agent": "sam", "sample_rate": 8000, "agent_channel": 1}))
        ws.send(np.zeros(8000 * 2, "<i2").tobytes())  # half a second, then nothing
        with pytest.raises(Exception):
            while True:
                ws.recv(timeout=30)
        assert ws.close_code == 1001 and "nothing received" in ws.close_reason
    (call,) = server.wait_finished()
    assert call.interrupted and "stopped without closing" in call.reason


def test_twilio_media_before_start_and_unknown_event(server):
    from senders import twilio_signature

    url = server.url("twilio")
    with connect(url, additional_headers={"X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, url)}) as ws:
        ws.send(json.dumps({"event": "media", "sequenceNumber": "1",
                            "media": {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": ""}}))
        with pytest.raises(Exception):
            ws.recv(timeout=10)
        assert ws.close_code == 1008 and "'media' before 'start'" in ws.close_reason


# ---- reconnects ----

def test_audiohook_reconnect_with_continued_sessions_is_the_same_call(server):
    first = HookClient(server.url("audiohook"))
    first.open(agent="rene")
    first.audio(1.0)
    drop(first.ws)  # the network fails: no close
    time.sleep(0.3)
    second = HookClient(server.url("audiohook"))
    assert second.open(agent="rene", continuedSessions=[
        {"id": first.id, "clientseq": first.seq, "serverseq": first.serverseq}])["type"] == "opened"
    second.audio(1.0)
    second.send("close", {"reason": "end"})
    assert second.recv()["type"] == "closed"
    (call,) = server.wait_finished()
    assert not call.interrupted and call.agent == "rene"
    (recorded,) = server.store.calls()  # one call, not two
    events = server.store.events(recorded["id"])
    reconnected = [e for e in events if e["type"] == "device" and e["state"] == "ok"]
    assert reconnected and "reconnected" in reconnected[0]["message"]
    (end,) = [e for e in events if e["type"] == "call_end"]
    assert end["t"] >= 2.0  # both sessions' audio, the time between them as silence


def test_audiohook_drop_without_reconnect_ends_interrupted(server):
    c = HookClient(server.url("audiohook"))
    c.open(agent="kim")
    c.audio(0.5)
    drop(c.ws)
    (call,) = server.wait_finished(timeout=30)
    assert call.interrupted and "no reconnect" in call.reason


# ---- whole calls in real time, compared with analyze ----

@pytest.mark.slow
@needs_node
def test_reference_client_call_matches_analyze(tmp_path, call8k):
    """The real Genesys peer streams the call (channel 0 external = customer, 1 internal = agent), with
    transcription on; the events match `calmline analyze` of the same file."""
    server = Server(tmp_path, transcribe=True)
    try:
        done = run_peer(server.url("audiohook"), call8k, "--custom-config", json.dumps({"agent": "dana"}))
        assert done.returncode == 0, done.stderr
        assert "Session open!" in done.stdout and "Session closed" in done.stdout
        (call,) = server.wait_finished()
    finally:
        server.stop()
    assert not call.interrupted and call.dropped_s == 0 and call.agent == "dana"
    assert_same_call(call.result.events, analyze(call8k, True, tmp_path), words=True)


@pytest.mark.slow
def test_twilio_and_pcm_calls_match_analyze_beside_a_flood(tmp_path, call8k):
    """Twilio and PCM senders in real time, at once, while a third stream floods and is cut off."""
    server = Server(tmp_path)
    results = {}
    try:
        senders = {
            "twilio": lambda: send_twilio(server.url("twilio"), call8k, TWILIO_TOKEN, agent="tess"),
            "pcm": lambda: send_pcm(server.url("pcm"), call8k, PCM_TOKEN, agent="pat"),
            "flood": lambda: send_pcm(server.url("pcm"), call8k, PCM_TOKEN, agent="flo", replay=Replay(speed=0)),
        }
        threads = [threading.Thread(target=lambda k=k, f=f: results.__setitem__(k, f())) for k, f in senders.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        calls = {c.agent: c for c in server.wait_finished(3)}
    finally:
        server.stop()
    assert results["flood"]["code"] == 1008 and calls["flo"].interrupted
    assert results["pcm"]["code"] == 1000
    expected = analyze(call8k, False, tmp_path)
    for agent in ("tess", "pat"):
        assert not calls[agent].interrupted and calls[agent].dropped_s == 0
        assert_same_call(calls[agent].result.events, expected)


@pytest.mark.slow
@needs_node
def test_reference_client_over_wss(tmp_path, call8k):
    """Over TLS, as the platforms connect: the signature's @authority and target hold behind wss."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    store = Store(tmp_path / "data")
    part = IngestPart(ingest_config(), store=store, transcribe=False)
    options = WebOptions(port=0, tls_cert=str(cert), tls_key=str(key))
    server = WebServer(build_app(options, [part]), options)
    server.start()
    try:
        done = subprocess.run(["node", str(PEER), "--uri", f"wss://localhost:{server.port}/ingest/audiohook?site=a",
                               "--api-key", API_KEY, "--client-secret", SECRET, "--wavfile", str(call8k),
                               "--max-stream-duration", "1.5", "--custom-config", '{"agent": "tls"}'],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "NODE_EXTRA_CA_CERTS": str(cert)})
        assert "Session open!" in done.stdout, done.stdout[-2000:]
        deadline = time.monotonic() + 30
        while not part.finished and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.stop()
    (call,) = part.finished
    assert call.agent == "tls" and not call.interrupted
    store.close()


@needs_node
def test_behind_a_proxy_signatures_cover_the_public_url(tmp_path):
    """The platform signs the URL it dialled (public_url + path); the server, reached through a proxy on
    another address, checks that, and refuses the same headers without public_url."""
    from senders import twilio_signature
    from test_ingest_signature import signed

    public = "wss://calls.example.com/cl"
    proxied = Server(tmp_path, public_url=public)
    direct = Server(tmp_path / "direct")
    try:
        headers = signed(uri=f"{public}/ingest/audiohook")
        with connect(proxied.url("audiohook"), additional_headers=headers) as ws:
            ws.send("{}")  # accepted: the first message is the protocol's business
        status, body = refused(direct.url("audiohook"), signed(uri=f"{public}/ingest/audiohook"))
        assert status == 401 and "does not match" in body
        signature = twilio_signature(TWILIO_TOKEN, f"{public}/ingest/twilio")
        with connect(proxied.url("twilio"), additional_headers={"X-Twilio-Signature": signature}):
            pass
        assert refused(direct.url("twilio"), {"X-Twilio-Signature": signature})[0] == 401
    finally:
        proxied.stop()
        direct.stop()
