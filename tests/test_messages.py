"""A word to the agent (issue 13, item 2) and the agent's self-view after a call (item 5), on the real web app:
a supervisor's floor stream sends a text or a coaching card; the agent's overlay stream gets it; the call's
recording keeps it and its replay data shows it. Only supervisors send, capped and rate-limited; a monitor
cannot forge one. Real sockets, a real store."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from floor_server import (PASSWORD, SUPERVISORS, TOKENS, Floor, Monitor, call_start, cue, ev, form_login,  # noqa: F401
                          redis_port, request, wait_until)
from monitor.events import Event
from monitor.library.store import CallRecorder, Store
from monitor.web.agent_overlay import AgentOverlayPart
from monitor.web.app import WebOptions, WebServer, build_app
from monitor.web.auth import hash_password
from monitor.web.floor_part import FloorPart, FloorPartOptions
from monitor.web.library import LibraryPart
from monitor.web.monitors import MonitorLimits
from monitor.web.notes import CARDS, NOTE_CHARS, NOTE_BURST

AGENT_PASSWORD = "an-agents-password-42x"
AGENTS = {name: hash_password(AGENT_PASSWORD) for name in ("ann", "bob")}
SUPERVISORS_2 = {**SUPERVISORS, "sue": SUPERVISORS["sup"]}


class Server:
    """Floor, agents' overlay and library on one port, over a store in `data_dir` (what `calmline server` runs)."""

    def __init__(self, data_dir, port: int = 0, redis_url: str | None = None):
        options = WebOptions(port=port)
        self.store = Store(data_dir)
        self.part = FloorPart(FloorPartOptions(tokens=TOKENS, supervisors=SUPERVISORS_2, agents=AGENTS,
                                               data_dir=data_dir, monitors=MonitorLimits(rate_per_s=2000.0),
                                               redis_url=redis_url))
        library = LibraryPart(self.store, self.part.authorize)
        self.server = WebServer(build_app(options, [AgentOverlayPart(self.part, library=library), self.part,
                                                    library]), options)
        self.server.start()

    url = property(lambda self: self.server.url)
    port = property(lambda self: self.server.port)
    monitor_url = property(lambda self: self.url.replace("http", "ws", 1) + "monitor")
    floor = property(lambda self: self.part.floor)

    def stop(self) -> None:
        self.server.stop()
        self.store.close()


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path / "data")
    yield srv
    srv.stop()


def sign_in(srv, user: str) -> str:
    response = form_login(srv, PASSWORD if user in SUPERVISORS_2 else AGENT_PASSWORD, user=user)
    assert response.status == 303, response.status
    return response.getheader("Set-Cookie").split(";")[0]


def overlay(srv, cookie: str):
    return connect(srv.url.replace("http", "ws", 1) + "ws", origin=srv.url.rstrip("/"),
                   additional_headers={"Cookie": cookie}, open_timeout=5).__enter__()


def recv_type(ws, kind: str, limit: float = 5.0) -> dict:
    """The next message of `kind` on an overlay stream."""
    deadline = time.monotonic() + limit
    while True:
        message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if message["type"] == kind:
            return message


def nothing_of(ws, kind: str, wait: float = 0.5) -> bool:
    try:
        while True:
            if json.loads(ws.recv(timeout=wait))["type"] == kind:
                return False
    except TimeoutError:
        return True


def say(floor: Floor, **fields) -> None:
    floor.ws.send(json.dumps({"type": "say", **fields}))


def replies(floor: Floor, kind: str, n: int = 1) -> list[dict]:
    """The supervisor's first n `said` messages (kind "said") or say errors (kind "error")."""
    def got():
        found = [m for _, m in floor.received if m["type"] == kind]
        return found[:n] if len(found) >= n else None
    return floor.wait(got, f"{n} {kind}")


def live_call(srv, agent: str = "ann", call_id: str = "c1") -> Monitor:
    mon = Monitor(srv, agent, call_id=call_id)
    mon.send(call_start(call_id))
    mon.send(ev("levels", 2.0, levels={"agent": -30.0, "customer": -40.0}, talking={"agent": True, "customer": False}))
    wait_until(lambda: call_id in srv.floor.calls and srv.floor.calls[call_id].t >= 2.0, "the call on the floor")
    return mon


def test_a_supervisors_word_reaches_the_agents_overlay_and_the_watchers(server):
    mon = live_call(server)
    ann = overlay(server, sign_in(server, "ann"))
    bob = overlay(server, sign_in(server, "bob"))
    sup = Floor(server, sign_in(server, "sup"))
    watcher = Floor(server, sign_in(server, "sue"))
    watcher.watch("c1")
    watcher.wait(lambda: any(m["type"] == "watching" for _, m in watcher.received), "watching")

    say(sup, call_id="c1", text="  Take a breath,\nthen <b>offer</b> the refund.\x07 ")
    said = replies(sup, "said")[0]
    note = recv_type(ann, "note")
    assert note == said["note"] and said["viewers"] == 1
    assert note["text"] == "Take a breath, then <b>offer</b> the refund."  # control characters out, words as sent
    assert (note["sender"], note["card"], note["t"]) == ("sup", "", 2.0)
    assert watcher.wait(lambda: [e for e in watcher.events if e["type"] == "note"], "the note")[0]["id"] == note["id"]
    say(sup, call_id="c1", card="acknowledge")
    card = recv_type(ann, "note")
    assert (card["card"], card["text"]) == ("acknowledge", CARDS["acknowledge"])
    assert nothing_of(bob, "note")  # another agent's overlay gets nothing of it

    again = overlay(server, sign_in(server, "ann"))  # an overlay opened later gets the call's notes with it
    assert [recv_type(again, "note")["id"] for _ in range(2)] == [note["id"], card["id"]]
    for ws in (ann, bob, again):
        ws.close()
    sup.close()
    watcher.close()
    mon.ws.close()


@pytest.mark.parametrize("fields, why", [
    ({"text": "x" * (NOTE_CHARS + 1)}, f"longer than {NOTE_CHARS} characters"),
    ({"text": " \n\t "}, "the message is empty"),
    ({"card": "shout"}, "unknown card"),
    ({}, "say needs a text or a card"),
    ({"call_id": "no-such-call", "text": "hi"}, "no such live call"),
])
def test_a_bad_word_is_refused_with_its_reason(server, fields, why):
    mon = live_call(server)
    ann = overlay(server, sign_in(server, "ann"))
    sup = Floor(server, sign_in(server, "sup"))
    say(sup, **{"call_id": "c1", **fields})
    assert why in replies(sup, "error")[0]["reason"]
    assert nothing_of(ann, "note")
    ann.close()
    sup.close()
    mon.ws.close()


def test_words_are_rate_limited_per_supervisor(server):
    mon = live_call(server)
    sup, sue = Floor(server, sign_in(server, "sup")), Floor(server, sign_in(server, "sue"))
    for i in range(NOTE_BURST + 1):
        say(sup, call_id="c1", text=f"note {i}")
    assert len(replies(sup, "said", NOTE_BURST)) == NOTE_BURST
    assert replies(sup, "error")[0]["reason"].startswith("too many messages; wait")
    say(sue, call_id="c1", text="from another supervisor")  # her own budget
    assert replies(sue, "said")[0]["note"]["sender"] == "sue"
    sup.close()
    sue.close()
    mon.ws.close()


def test_only_supervisors_send(server):
    mon = live_call(server)
    bob_cookie = sign_in(server, "bob")
    with pytest.raises(InvalidStatus) as refused:  # an agent has no floor stream to send from
        connect(server.url.replace("http", "ws", 1) + "floor/ws", origin=server.url.rstrip("/"),
                additional_headers={"Cookie": bob_cookie}, open_timeout=5)
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as foreign:  # nor a page of another origin, whoever's cookie it carries
        connect(server.url.replace("http", "ws", 1) + "floor/ws", origin="http://evil.example",
                additional_headers={"Cookie": sign_in(server, "sup")}, open_timeout=5)
    assert foreign.value.response.status_code == 403
    ann = overlay(server, sign_in(server, "ann"))
    bob = overlay(server, bob_cookie)  # what an agent's overlay sends is ignored
    bob.send(json.dumps({"type": "say", "call_id": "c1", "text": "from bob"}))
    bob_mon = Monitor(server, "bob", call_id="b1")  # and a monitor cannot make one up
    bob_mon.send(call_start("b1"))
    mon.send(ev("note", 3.0, id=99, sender="sup", text="forged", card=""))
    assert nothing_of(ann, "note", wait=1.0)
    assert any("notes come from supervisors only" in n.get("reason", "") for n in mon.notices(0.5))
    for ws in (ann, bob, bob_mon.ws, mon.ws):
        ws.close()


def record_start(store: Store, call_id: str, agent: str) -> CallRecorder:
    """A call recorded on this server, as an ingested call is: its recording open while it goes on."""
    recorder = CallRecorder(store, call_id, "test", time.time(), agent=agent, hold_s=0.0, commit_every_s=0.0)
    recorder.write_audio({"agent": np.zeros(16000, np.float32), "customer": np.zeros(16000, np.float32)})
    lines = [(1.0, "agent", "Thank you for calling, how can I help?"),
             (4.0, "customer", "This is the third time my parcel never came, it is ridiculous."),
             (7.0, "agent", "I'm so sorry about that, I understand how frustrating that is."),
             (10.0, "agent", "Let me send a replacement today."),
             (12.0, "customer", "Okay, thank you.")]
    events = [call_start(call_id)] + [ev("transcript", t, party=p, start=t - 1.0, end=t, text=text, final=True,
                                         words=[]) for t, p, text in lines]
    recorder.write_events([Event.from_dict(e) for e in events])
    return recorder


def test_a_word_is_recorded_with_the_call_and_the_agent_gets_a_self_view(server):
    recorder = record_start(server.store, "rec-1", "ann")
    mon = live_call(server, call_id="rec-1")
    ann = overlay(server, sign_in(server, "ann"))
    sup_cookie = sign_in(server, "sup")
    sup = Floor(server, sup_cookie)
    say(sup, call_id="rec-1", text="Offer the replacement today")
    note = recv_type(ann, "note")
    stored = wait_until(lambda: [e for e in server.store.events("rec-1") if e["type"] == "note"], "the stored note")
    assert stored == [note]
    recorder.write_events([Event.from_dict(ev("call_end", 14.0, parties={}))])  # the recorder goes on after it
    recorder.close()
    mon.send(ev("call_end", 14.0, parties={}))
    first = recv_type(ann, "call_summary")
    assert "self_view" not in first
    scored = recv_type(ann, "call_summary", limit=10)
    view = scored["self_view"]
    assert 0 <= view["score"] <= 100 and view["replay"] == "/calls/rec-1/"
    assert view["well"]["item"] == "empathize" and "sorry" in view["well"]["text"]
    assert view["next"]["item"] != "empathize" and view["next"]["text"]
    events = [e["type"] for e in server.store.events("rec-1")]
    assert events[-1] == "note" and "call_end" in events  # kept after the recorder's own events
    data = json.loads(request(server, "GET", "/calls/rec-1/data.json", headers={"Cookie": sup_cookie}).data)
    assert [e["text"] for e in data["events"] if e["type"] == "note"] == ["Offer the replacement today"]
    assert data["scorecard"]["total"] == 9  # the report and scorecard read past it
    ann.close()
    sup.close()
    mon.ws.close()


def test_a_desktop_monitor_shows_the_word_on_its_own_overlay_and_records_it(server, tmp_path):
    """`calmline live --hub`: the hub sends the note down the monitor's connection; the monitor (its real
    HubPublisher, wired as the command wires it) puts it on its loopback overlay and into its own store."""
    from monitor.cli import _notes_from_hub
    from monitor.web.hub_client import HubPublisher
    from monitor.web.overlay import serve_overlay

    desk = Store(tmp_path / "desk")  # the agent's machine records the call itself
    recorder = record_start(desk, "desk-1", "ann")
    local = serve_overlay(WebOptions(port=0))
    hub = HubPublisher(server.url, None, TOKENS["ann"])
    try:
        hub.start()
        _notes_from_hub(hub, local, desk)
        hub.publish(call_start("desk-1"))
        wait_until(lambda: "desk-1" in server.floor.calls, "the desktop call on the floor")
        screen = connect(local.url.replace("http", "ws", 1) + "ws", origin=local.url.rstrip("/"), open_timeout=5)
        with screen:
            sup = Floor(server, sign_in(server, "sup"))
            say(sup, call_id="desk-1", card="slow_down")
            assert replies(sup, "said")[0]["monitor"] is True
            note = recv_type(screen, "note")
            assert (note["card"], note["sender"], note["text"]) == ("slow_down", "sup", CARDS["slow_down"])
            stored = wait_until(lambda: [e for e in desk.events("desk-1") if e["type"] == "note"], "recorded here")
            assert stored == [note]
            assert not [e for e in server.store.events("desk-1")]  # the server records none of a desktop call
            sup.close()
    finally:
        hub.stop(flush_s=0)
        local.stop()
        recorder.close()
        desk.close()


def test_a_word_crosses_redis_to_the_server_of_the_call_and_of_the_agent(tmp_path, redis_port):
    """Servers A and B share the floor through Redis: the agent's monitor and recording are on A, the agent's
    overlay and the supervisor on B. The note reaches the overlay (B), the monitor (A) and A's recording once."""
    url = f"redis://127.0.0.1:{redis_port}/0"
    a, b = Server(tmp_path / "a", redis_url=url), Server(tmp_path / "b", redis_url=url)
    try:
        wait_until(lambda: a.part.stats()["redis"] and b.part.stats()["redis"], "both servers on redis")
        recorder = record_start(a.store, "far-1", "ann")
        mon = Monitor(a, "ann", call_id="far-1")
        mon.send(call_start("far-1"))
        wait_until(lambda: "far-1" in b.floor.calls, "the call on B's floor")
        ann = overlay(b, sign_in(b, "ann"))
        sup = Floor(b, sign_in(b, "sup"))
        say(sup, call_id="far-1", text="Offer the callback")
        note = recv_type(ann, "note")
        assert note["text"] == "Offer the callback"
        got = wait_until(lambda: [n for n in mon.notices(0.2) if n.get("type") == "note"], "the note at the monitor")
        assert got[0]["event"] == note and got[0]["call_id"] == "far-1"
        wait_until(lambda: [e for e in a.store.events("far-1") if e["type"] == "note"] == [note], "recorded on A")
        say(sup, call_id="far-1", card="well_done")
        recv_type(ann, "note")
        wait_until(lambda: len([e for e in a.store.events("far-1") if e["type"] == "note"]) == 2, "the second")
        assert [e["id"] for e in a.floor.calls["far-1"].notes()] == [e["id"] for e in b.floor.calls["far-1"].notes()]
        assert not b.store._query("SELECT 1 FROM events WHERE call_id = 'far-1'")  # B records none of it
        recorder.close()
        for ws in (ann, sup.ws, mon.ws):
            ws.close()
    finally:
        a.stop()
        b.stop()


def test_live_and_demo_show_the_self_view_on_their_own_overlay(tmp_path):
    """`calmline live`/`demo` (no server library): after the call the loopback overlay gets a `self_view` event
    with the score and the command that replays the call, from a real call session over a synthesized call."""
    from audio.sources import array_frames
    from monitor.cli import _self_view_to
    from monitor.config import Config
    from monitor.session.session import CallSession
    from monitor.web.overlay import serve_overlay
    from synth import barge_in_call

    channels, _ = barge_in_call("My order never arrived and I have been waiting for two weeks, it is not okay.")
    store = Store(tmp_path / "desk")
    local = serve_overlay(WebOptions(port=0))
    try:
        with connect(local.url.replace("http", "ws", 1) + "ws", origin=local.url.rstrip("/"), open_timeout=5) as ws:
            result = CallSession(Config(), "test", transcribe=False, store=store).run(array_frames(channels))
            _self_view_to(local, result, Config(), recorded=True)
            view = recv_type(ws, "self_view")
    finally:
        local.stop()
        store.close()
    assert view["call_id"] == result.call_id and 0 <= view["score"] <= 100
    assert view["command"] == f"calmline replay {result.call_id}" and view["replay"] is None
    assert view["next"]["item"] == "empathize" and view["next"]["text"]  # no transcription: no apology heard
