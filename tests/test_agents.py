"""Agents on the server (issue 11, items 2 and 3): agents sign in at the same /login as supervisors, see their
own live call on the overlay (/ and /ws, streamed from the floor), and list and open only their own recorded
calls. Desktop monitors are known by their token alone. A real web app on a free port, real WebSocket clients,
a real store; the browser test drives chromium through the login form."""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pytest
from playwright.sync_api import expect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from conftest import free_port
from floor_server import (PASSWORD, SUPERVISORS, TOKENS, Monitor, call_start, cue, ev, form_login, levels,  # noqa: F401
                          redis_port, request, start_hub, wait_until)
from monitor.config import Config
from monitor.errors import UsageError
from monitor.events import Event
from monitor.library.store import CallRecorder, Store
from monitor.web.agent_overlay import AgentOverlayPart
from monitor.web.app import WebOptions, WebServer, build_app
from monitor.web.auth import hash_password
from monitor.web.floor_part import FloorPart, FloorPartOptions
from monitor.web.hub_client import HubPublisher
from monitor.web.library import LibraryPart
from monitor.web.monitors import MonitorLimits

AGENT_PASSWORD = "agents-own-password-0123"
AGENTS = {name: hash_password(AGENT_PASSWORD) for name in ("ann", "bob")}


class AgentServer:
    """The server's parts that agents use (their overlay, the floor with its logins, the library) on one port."""

    def __init__(self, data_dir, port: int = 0, redis_url: str | None = None):
        options = WebOptions(port=port)
        self.store = Store(data_dir)
        self.part = FloorPart(FloorPartOptions(tokens=TOKENS, supervisors=SUPERVISORS, agents=AGENTS,
                                               data_dir=data_dir, monitors=MonitorLimits(rate_per_s=2000.0),
                                               redis_url=redis_url))
        library = LibraryPart(self.store, self.part.authorize)
        parts = [AgentOverlayPart(self.part, library=library), self.part, library]
        self.server = WebServer(build_app(options, parts), options)
        self.server.start()

    url = property(lambda self: self.server.url)
    port = property(lambda self: self.server.port)
    monitor_url = property(lambda self: self.url.replace("http", "ws", 1) + "monitor")

    def stop(self) -> None:
        self.server.stop()
        self.store.close()


@pytest.fixture
def server(tmp_path):
    srv = AgentServer(tmp_path / "data")
    yield srv
    srv.stop()


def sign_in(srv, user: str, password: str = AGENT_PASSWORD) -> str:
    response = form_login(srv, password, user=user)
    assert response.status == 303, response.status
    return response.getheader("Set-Cookie").split(";")[0]


def get(srv, path: str, cookie: str | None = None):
    return request(srv, "GET", path, headers={"Cookie": cookie} if cookie else {})


def overlay(srv, cookie: str, query: str = ""):
    """An overlay's stream, opened as the page would (its Origin, the session cookie)."""
    return connect(srv.url.replace("http", "ws", 1) + "ws" + query, origin=srv.url.rstrip("/"),
                   additional_headers={"Cookie": cookie}, open_timeout=5).__enter__()


def recv(ws) -> dict:
    return json.loads(ws.recv(timeout=5))


def recv_until(ws, kind: str) -> list[dict]:
    """Messages up to and including the first of `kind`."""
    got = []
    while not got or got[-1]["type"] != kind:
        got.append(recv(ws))
    return got


def line(t: float, party: str, text: str) -> dict:
    return ev("transcript", t, party=party, start=t - 1.0, end=t, text=text, final=True, words=[])


# ---- sign-in ----

def test_one_login_form_sends_each_role_to_its_page(server):
    response = form_login(server, AGENT_PASSWORD, user="ann")
    assert (response.status, response.getheader("Location")) == (303, "/")
    ann = response.getheader("Set-Cookie").split(";")[0]
    response = form_login(server, PASSWORD, user="sup")
    assert (response.status, response.getheader("Location")) == (303, "/floor")
    sup = response.getheader("Set-Cookie").split(";")[0]
    assert form_login(server, PASSWORD, user="ann").getheader("Location") == "/login?failed=1"

    assert get(server, "/").status == 302 and get(server, "/").getheader("Location") == "/login"
    page = get(server, "/", ann)
    assert page.status == 200 and b'id="cue-box"' in page.data  # the overlay page
    assert json.loads(get(server, "/session", ann).data)["role"] == "agent"
    assert json.loads(get(server, "/session", sup).data)["role"] == "supervisor"
    floor = get(server, "/floor", ann)  # the floor is for supervisors: an agent goes back to their overlay
    assert (floor.status, floor.getheader("Location")) == (302, "/")
    with pytest.raises(InvalidStatus) as refused:
        connect(server.url.replace("http", "ws", 1) + "floor/ws", origin=server.url.rstrip("/"),
                additional_headers={"Cookie": ann}, open_timeout=5)
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as refused:  # the overlay's stream needs a session too
        connect(server.url.replace("http", "ws", 1) + "ws", origin=server.url.rstrip("/"), open_timeout=5)
    assert refused.value.response.status_code == 401
    assert get(server, "/", sup).getheader("Location") == "/floor"  # a supervisor names an agent: /?agent=ann
    assert get(server, "/?agent=ann", sup).status == 200


def test_a_name_in_both_tables_stops_the_server_at_start():
    with pytest.raises(UsageError) as refused:
        FloorPart(FloorPartOptions(supervisors={"ann": SUPERVISORS["sup"]}, agents={"ann": AGENTS["ann"]}))
    assert str(refused.value).startswith("[hub.agents] ann: also in [hub.supervisors]")
    with pytest.raises(UsageError, match=r"^\[hub.agents\] bob: not a password hash"):
        FloorPart(FloorPartOptions(agents={"bob": "hunter2"}))


def test_the_login_throttle_counts_agents_too(server):
    answers = [form_login(server, "wrong-password-0123456", user="ann").status for _ in range(6)]
    assert answers == [303] * 5 + [429]


def test_an_agents_session_survives_a_restart(tmp_path):
    srv = AgentServer(tmp_path / "data")
    cookie = sign_in(srv, "ann")
    port = srv.port
    srv.stop()
    srv = AgentServer(tmp_path / "data", port=port)
    try:
        assert get(srv, "/", cookie).status == 200
        ws = overlay(srv, cookie)  # and the stream opens
        ws.close()
    finally:
        srv.stop()


# ---- the live overlay ----

def test_an_agent_sees_their_own_call_live_and_nobody_elses(server):
    ann_cookie, bob_cookie = sign_in(server, "ann"), sign_in(server, "bob")
    mon = Monitor(server, "ann", call_id="ann-1")
    mon.send(call_start("ann-1"))
    mon.send(levels(0.2))
    mon.send(line(1.0, "customer", "My parcel never came."))
    mon.send(cue(1.2))
    wait_until(lambda: "ann-1" in server.part.floor.calls and server.part.floor.calls["ann-1"].t >= 1.2, "the call")

    ann = overlay(server, ann_cookie)  # mid-call: the snapshot first, in the order it happened
    bob = overlay(server, bob_cookie)
    snapshot = recv_until(ann, "cue")
    assert [m["type"] for m in snapshot] == ["call_start", "levels", "transcript", "cue"]
    assert snapshot[0]["call_id"] == "ann-1" and snapshot[3]["text"] == "Speak softly"

    mon.send(cue(2.0, "slow_down", "Slow down"))  # then live
    assert recv(ann)["kind"] == "slow_down"
    bob_mon = Monitor(server, "bob", call_id="bob-1")
    bob_mon.send(call_start("bob-1"))
    first = recv(bob)  # had anything of ann's call reached bob, it would have come before this
    assert (first["type"], first["call_id"]) == ("call_start", "bob-1")

    mon.send(ev("interruption", 2.5, by="agent", at=3.0, overlap_s=0.5))
    mon.send(ev("call_end", 4.0, parties={}))
    ended = recv_until(ann, "call_summary")
    assert [m["type"] for m in ended] == ["interruption", "call_end", "call_summary"]
    assert ended[-1]["cues"] == 2 and ended[-1]["interruptions"] == {"agent": 1, "customer": 0}

    late = overlay(server, ann_cookie)  # connecting after the end: the ended call and its summary
    assert [m["type"] for m in recv_until(late, "call_summary")][-2:] == ["call_end", "call_summary"]

    mon.send(call_start("ann-2"), call_id="ann-2")  # the next call starts a fresh view
    for ws in (ann, late):  # the first message after the summary is the new call's start
        message = recv(ws)
        assert (message["type"], message["call_id"]) == ("call_start", "ann-2")
    bob_mon.send(cue(1.0), call_id="bob-1")
    assert recv(bob)["type"] == "cue"  # bob's own cue; nothing of ann's two calls came before it
    for ws in (ann, late, bob):
        ws.close()


def test_the_next_call_start_is_the_first_message_after_a_summary(server):
    cookie = sign_in(server, "ann")
    ws = overlay(server, cookie)
    mon = Monitor(server, "ann", call_id="c1")
    mon.send(call_start("c1"))
    mon.send(ev("call_end", 1.0, parties={}))
    assert [m["type"] for m in recv_until(ws, "call_summary")] == ["call_start", "call_end", "call_summary"]
    mon.send(call_start("c2"), call_id="c2")
    message = recv(ws)
    assert (message["type"], message["call_id"]) == ("call_start", "c2")
    ws.close()


def test_a_call_recorded_here_gets_its_score_on_the_overlay_after_its_summary(server):
    record(server.store, "sc-1", "ann", time.time(), cues=1)  # as an ingested call is recorded on the server
    ws = overlay(server, sign_in(server, "ann"))
    mon = Monitor(server, "ann", call_id="sc-1")
    mon.send(call_start("sc-1"))
    mon.send(cue(1.0))
    mon.send(ev("call_end", 9.0, parties={}))
    first = recv_until(ws, "call_summary")[-1]
    assert "score" not in first and first["cues"] == 1
    scored = recv(ws)
    assert scored["type"] == "call_summary" and scored["call_id"] == "sc-1"
    assert scored["score"]["total"] == 9 and scored["score"]["met"] >= 1  # "Thank you ... I'm sorry": thanked
    ws.close()


def test_a_supervisor_may_watch_what_an_agent_sees_and_an_agent_may_not_watch_another(server):
    sup = sign_in(server, "sup", PASSWORD)
    bob = sign_in(server, "bob")
    mon = Monitor(server, "ann", call_id="c1")
    mon.send(call_start("c1"))
    ws = overlay(server, sup, "?agent=ann")
    assert recv(ws)["call_id"] == "c1"
    peek = overlay(server, bob, "?agent=ann")  # an agent's stream is their own, whatever they ask for
    mon_bob = Monitor(server, "bob", call_id="b1")
    mon_bob.send(call_start("b1"))
    assert recv(peek)["call_id"] == "b1"
    ws.close()
    peek.close()


def test_logout_closes_the_agents_stream(server):
    cookie = sign_in(server, "ann")
    ws = overlay(server, cookie)
    request(server, "POST", "/logout", "", {"Cookie": cookie, "Content-Length": "0"})
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=5)
    assert closed.value.rcvd.code == 1008
    assert get(server, "/", cookie).status == 302  # and the cookie no longer opens the page


def test_an_agent_signed_in_on_another_server_sees_their_call_through_redis(tmp_path, redis_port):
    url = f"redis://127.0.0.1:{redis_port}/0"
    hub_a, srv_b = start_hub(redis_url=url), AgentServer(tmp_path / "data", redis_url=url)
    try:
        wait_until(lambda: hub_a.stats()["redis"] and srv_b.part.stats()["redis"], "both servers on redis")
        ws = overlay(srv_b, sign_in(srv_b, "ann"))
        monitor = Monitor(hub_a, "ann", call_id="far-1")  # the monitor talks to server A
        monitor.send(call_start("far-1"))
        monitor.send(cue(1.0))
        got = recv_until(ws, "cue")
        assert (got[0]["type"], got[0]["call_id"], got[-1]["text"]) == ("call_start", "far-1", "Speak softly")
        ws.close()
    finally:
        hub_a.stop()
        srv_b.stop()


# ---- desktop monitors: the token says who the agent is ----

@pytest.mark.parametrize("named", ["mallory", None])
def test_a_monitors_token_names_its_agent_whatever_the_hello_says(server, named):
    with connect(server.monitor_url, open_timeout=5) as ws:
        hello = {"type": "hello", "v": 1, "token": TOKENS["ann"], **({"agent": named} if named else {})}
        ws.send(json.dumps(hello))
        welcome = json.loads(ws.recv(timeout=5))
        assert (welcome["type"], welcome["agent"]) == ("welcome", "ann")
        ws.send(json.dumps({"type": "event", "call_id": "m1", "seq": 1, "at": time.time(),
                            "event": call_start("m1")}))
        wait_until(lambda: "m1" in server.part.floor.calls, "the call")
    assert server.part.floor.calls["m1"].agent == "ann"


def test_two_agents_with_one_token_stop_the_server_at_start():
    with pytest.raises(UsageError, match=r"^\[hub.tokens\] bob: the same token as ann's"):
        FloorPart(FloorPartOptions(tokens={"ann": TOKENS["ann"], "bob": TOKENS["ann"]}))


def test_live_records_and_publishes_under_the_tokens_agent(server):
    """`calmline live --hub URL --token T` (cli._publisher): the welcome names the agent, the call is recorded
    under that name, whatever the OS login."""
    from monitor import cli

    config = Config()
    args = argparse.Namespace(hub=server.url, token=TOKENS["bob"])
    publisher = cli._publisher(args, config)
    try:
        assert publisher.agent == "bob" and config.store.agent_name == "bob"
        publisher.publish(call_start("pub-1"))
        wait_until(lambda: "pub-1" in server.part.floor.calls, "the published call")
        assert server.part.floor.calls["pub-1"].agent == "bob"
    finally:
        publisher.stop()


def test_a_publisher_without_a_name_learns_it_from_the_welcome(server):
    publisher = HubPublisher(server.url, None, TOKENS["ann"])
    publisher.start()
    try:
        assert publisher.welcomed.wait(5) and publisher.agent == "ann"
    finally:
        publisher.stop()


# ---- the call library per role ----

def record(store: Store, call_id: str, agent: str, started_at: float, cues: int) -> None:
    recorder = CallRecorder(store, call_id, "test", started_at, agent=agent, hold_s=0.0)
    recorder.write_audio({"agent": np.zeros(1600, np.float32), "customer": np.zeros(1600, np.float32)})
    events = [call_start(call_id), line(1.0, "agent", "Thank you for calling, I'm sorry about that.")]
    events += [cue(1.0 + i) for i in range(cues)] + [ev("call_end", 9.0, parties={})]
    recorder.write_events([Event.from_dict(e) for e in events])
    recorder.close()


def test_an_agent_lists_and_opens_only_their_own_calls(server):
    day = 86400.0
    now = time.time()
    record(server.store, "ann-old", "ann", now - 3 * day, cues=1)
    record(server.store, "ann-new", "ann", now, cues=2)
    record(server.store, "bob-new", "bob", now, cues=0)
    ann, bob, sup = sign_in(server, "ann"), sign_in(server, "bob"), sign_in(server, "sup", PASSWORD)

    rows = json.loads(get(server, "/calls", ann).data)
    assert [r["id"] for r in rows] == ["ann-new", "ann-old"]
    assert [r["cues"] for r in rows] == [2, 1]
    assert rows[0]["score"]["total"] == 9 and 0 <= rows[0]["score"]["met"] <= 9
    assert json.loads(get(server, "/calls?agent=bob", ann).data) == []
    assert {r["id"] for r in json.loads(get(server, "/calls", sup).data)} == {"ann-old", "ann-new", "bob-new"}
    assert [r["id"] for r in json.loads(get(server, "/calls?agent=bob", sup).data)] == ["bob-new"]
    today = time.strftime("%Y-%m-%d", time.localtime(now))
    assert {r["id"] for r in json.loads(get(server, f"/calls?from={today}", sup).data)} == {"ann-new", "bob-new"}
    two_days_ago = time.strftime("%Y-%m-%d", time.localtime(now - 2 * day))
    assert [r["id"] for r in json.loads(get(server, f"/calls?to={two_days_ago}", ann).data)] == ["ann-old"]
    assert get(server, "/calls?from=yesterday", sup).status == 400

    for path in ("/", "/data.json", "/audio.flac", "/report"):
        assert get(server, f"/calls/bob-new{path}", ann).status == 403, path
        assert get(server, f"/calls/ann-new{path}", ann).status == 200, path
        assert get(server, f"/calls/bob-new{path}", sup).status == 200, path
    assert get(server, "/calls", None).status == 403
    assert json.loads(get(server, "/calls", bob).data)[0]["id"] == "bob-new"

    page = get(server, "/library", ann)  # the same list as a page, links to replay and report
    assert page.status == 200 and b'href="/calls/ann-new/report"' in page.data and b"bob-new" not in page.data
    page = get(server, "/library?agent=%3Cb%3E%7Brows%7D", sup).data.decode()  # filters are escaped, once
    assert 'value="&lt;b&gt;{rows}"' in page and '<p id="none" >' in page
    assert get(server, "/library", None).status == 403

    # the summaries are kept with the calls: a restarted server lists them without scoring every call again
    kept = dict((r[0], r[1:]) for r in server.store.db.execute("SELECT call_id, cues, met, total FROM call_summaries"))
    assert {call_id: kept[call_id][0] for call_id in kept} == {"ann-old": 1, "ann-new": 2, "bob-new": 0}
    with server.store.db:  # marked, to see that a new library reads it rather than scoring the call again
        server.store.db.execute("UPDATE call_summaries SET cues = 7 WHERE call_id = 'ann-new'")
    again = LibraryPart(server.store, server.part.authorize)
    assert [r["cues"] for r in again._rows("ann", None, None)] == [7, 1]


# ---- in the browser ----

def test_an_agent_signs_in_and_follows_their_calls_in_chromium(browser, server):
    context = browser.new_context(viewport={"width": 360, "height": 240})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    try:
        page.goto(server.url)
        expect(page).to_have_url(server.url + "login")
        page.fill("input[name=username]", "ann")
        page.fill("input[name=password]", AGENT_PASSWORD)
        page.click("button[type=submit]")
        expect(page).to_have_url(server.url)
        expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        wait_until(lambda: server.part.floor.viewers.get("ann"), "the overlay's stream")

        mon = Monitor(server, "ann", call_id="b1")
        other = Monitor(server, "bob", call_id="o1")
        mon.send(call_start("b1"))
        other.send(call_start("o1"))
        other.send(cue(0.5, "wait_for_pause", "Wait for the pause"))  # bob's: never on ann's overlay
        mon.send(cue(1.0))
        expect(page.locator("#cue")).to_have_text("Speak softly")
        expect(page.locator("#call")).to_have_text("Live call")
        mon.send(ev("call_end", 3.0, parties={}))
        expect(page.locator("#cue-box")).to_have_attribute("data-idle", "Call ended · 1 cue · 0 interruptions by you")
        mon.send(call_start("b2"), call_id="b2")
        expect(page.locator("#call")).to_have_text("Live call")
        expect(page.locator("#cue-box")).to_have_attribute("data-idle", "")
        mon.send(cue(0.5, "slow_down", "Slow down"), call_id="b2")
        expect(page.locator("#cue")).to_have_text("Slow down")
        context.request.post(server.url + "logout")  # signed out elsewhere: the overlay goes back to the login
        expect(page).to_have_url(server.url + "login")
    finally:
        context.close()
    assert not errors, errors


# ---- end to end: `calmline server`, a telephony stream, the agent's overlay and library ----

PCM_TOKEN = "pcm-stream-token-0123456789"


def start_server(tmp_path, port: int):
    import subprocess
    import sys

    from conftest import ROOT

    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "--config", str(tmp_path / "config.toml"), "server",
                             "--port", str(port), "--data-dir", str(tmp_path / "data")], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True)
    lines = []
    for text in proc.stderr:
        lines.append(text)
        if "server at http" in text:
            return proc
    pytest.fail(f"the server did not start: {lines}")


@pytest.mark.slow  # `calmline server` in a subprocess, twice, and a call streamed in real time
def test_an_ingested_call_reaches_its_agents_overlay_and_library(tmp_path):
    import soundfile as sf
    import soxr
    from types import SimpleNamespace

    from senders import Replay, send_pcm
    from synth import barge_in_call

    channels, _ = barge_in_call("I have been waiting three weeks for my order and nobody has called me back.")
    wav = tmp_path / "call8k.wav"
    sf.write(str(wav), soxr.resample(np.stack([channels["customer"], channels["agent"]], 1), 16000, 8000),
             8000, subtype="PCM_16")
    (tmp_path / "config.toml").write_text(
        f'[transcription]\nenabled = false\n[ingest.pcm]\ntoken = "{PCM_TOKEN}"\n'
        f'[hub.supervisors]\nsup = "{SUPERVISORS["sup"]}"\n'
        f'[hub.agents]\ndana = "{AGENTS["ann"]}"\nbob = "{AGENTS["bob"]}"\n')
    port = free_port()
    proc = start_server(tmp_path, port)
    where = SimpleNamespace(url=f"http://127.0.0.1:{port}/", port=port)
    try:
        dana, bob = sign_in(where, "dana"), sign_in(where, "bob")
        ws, other = overlay(where, dana), overlay(where, bob)
        result = send_pcm(f"ws://127.0.0.1:{port}/ingest/pcm", wav, PCM_TOKEN, agent="dana", call_id="pcm-1",
                          replay=Replay())
        assert result["code"] == 1000, result
        got = recv_until(ws, "call_summary")
        kinds = [m["type"] for m in got]
        assert kinds[0] == "call_start"
        call_id = got[0]["call_id"]  # the server's id for the stream's call
        assert any(m["type"] == "cue" and m["kind"] == "wait_for_pause" for m in got)
        assert got[-1]["cues"] >= 1
        scored = recv(ws)  # the recording closed: the summary again, with the scorecard's score
        assert scored["type"] == "call_summary" and scored["score"]["total"] == 9
        with pytest.raises(TimeoutError):  # bob's overlay got nothing of dana's call
            other.recv(timeout=0.5)
        ws.close()
        other.close()
        rows = wait_until(lambda: [r for r in json.loads(get(where, "/calls", dana).data) if r["status"] == "ended"],
                          "the recorded call", limit=30)
        assert [(r["id"], r["agent"]) for r in rows] == [(call_id, "dana")] and rows[0]["cues"] >= 1
        assert json.loads(get(where, "/calls", bob).data) == []
        assert get(where, f"/calls/{call_id}/audio.flac", bob).status == 403
        assert get(where, f"/calls/{call_id}/audio.flac", dana).status == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    proc = start_server(tmp_path, port)  # the agent is still signed in after a restart
    try:
        assert get(where, "/", dana).status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
