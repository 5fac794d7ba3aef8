"""Where the 0-100 score shows: the call list (/calls JSON and the /library page), the replay's data and
page, and the report, whose times link into the replay at #t=S. A recorded call (events written as
the demo call's story, silent audio) served by the real web app (uvicorn) and opened in Debian's chromium."""

from __future__ import annotations

import http.client
import json
import re

import numpy as np
import pytest
from playwright.sync_api import expect

from monitor.events import Event
from monitor.library.scorecard import score_call
from monitor.library.store import CallRecorder, Store
from monitor.web.app import WebOptions
from monitor.web.library import serve_replay
from test_scorecard_score import demo_like, items

CALL_ID = "scored-call"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """(store, events): two rounds of the demo call's mistakes, recorded as a monitor records a call."""
    store = Store(tmp_path_factory.mktemp("scored") / "data")
    events = demo_like(2)
    duration = events[-1]["t"]
    events[0]["call_id"] = CALL_ID
    recorder = CallRecorder(store, CALL_ID, "test", 1_700_000_000.0, agent="ann", hold_s=0.0)
    silence = np.zeros(int(16000 * duration), np.float32)
    recorder.write_audio({"agent": silence, "customer": silence})
    recorder.write_events([Event.from_dict(e) for e in events])
    recorder.close()
    yield store, events
    store.close()


@pytest.fixture(scope="module")
def server(recorded):
    store, _ = recorded
    srv = serve_replay(store, CALL_ID, WebOptions(port=0))
    yield srv
    srv.stop()


def get(srv, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        conn.request("GET", path)
        res = conn.getresponse()
        return res.status, res.read()
    finally:
        conn.close()


def test_the_call_list_and_the_library_page_show_the_0_100_score(server, recorded):
    store, events = recorded
    card = score_call(events)
    assert card["score"] <= 60
    status, body = get(server, "/calls")
    (row,) = json.loads(body)
    assert status == 200 and row["score"] == {"score": card["score"], "met": card["met"], "total": 9}
    status, body = get(server, "/library")
    cells = re.findall(r"<td>([^<]*)</td>", body.decode())
    assert status == 200 and cells[-2:] == [str(sum(e["type"] == "cue" for e in events)), str(card["score"])]
    again = serve_replay(store, CALL_ID, WebOptions(port=0))  # a restarted server: the score again, not met/total
    try:
        (row,) = json.loads(get(again, "/calls")[1])
        assert row["score"]["score"] == card["score"]
    finally:
        again.stop()


def test_the_replay_data_and_the_report_carry_the_score_and_links(server, recorded):
    _, events = recorded
    card = score_call(events)
    status, body = get(server, f"/calls/{CALL_ID}/data.json")
    assert status == 200 and json.loads(body)["scorecard"] == card
    status, body = get(server, f"/calls/{CALL_ID}/report")
    html = body.decode()
    assert status == 200 and f"score {card['score']} of 100" in html
    assert '<a href="./#t=90">1:30</a>' in html  # served at /calls/ID/report: ./ is the replay


def test_the_replay_shows_the_score_and_opens_at_a_links_time(browser, server, recorded):
    _, events = recorded
    card = score_call(events)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    try:
        page.goto(server.url + "#t=90")
        page.wait_for_function("() => document.body.classList.contains('loaded')")
        page.wait_for_function("() => Math.abs(document.getElementById('audio').currentTime - 90) < 0.1",
                               timeout=10_000)
        expect(page.locator("#scorecard-total")).to_have_text(f"score {card['score']} of 100 · {card['met']} of 9 met")
        listen = page.locator("#scorecard .score-item[data-item='listen']")
        expect(listen).to_have_class(re.compile(r"\bpartial\b"))
        expect(listen.locator(".mark")).to_have_text(f"{round(100 * items(card)['listen']['credit'])}%")
        expect(listen).to_contain_text("talked over the customer 2 times: 0:30, 1:30")
        expect(listen).to_contain_text("raised their voice 2 times (+11 dB): 0:33, 1:33")  # the detail once
        expect(page.locator("#scorecard .score-item[data-item='thank']")).to_have_class(re.compile(r"\bmet\b"))
        listen.locator("a", has_text="0:30").click()
        page.wait_for_function("() => Math.abs(document.getElementById('audio').currentTime - 30) < 0.1",
                               timeout=5000)
        assert page.evaluate("location.hash") == "#t=30"
        page.goto(server.url + "report")
        page.locator("a", has_text="1:30").first.click()
        page.wait_for_function("() => document.body.classList.contains('loaded')")
        page.wait_for_function("() => Math.abs(document.getElementById('audio').currentTime - 90) < 0.1",
                               timeout=10_000)
    finally:
        context.close()
    assert not errors, errors


def test_the_floor_shows_an_ended_calls_score_once_it_is_recorded(browser, tmp_path):
    from floor_server import PASSWORD, Monitor, call_start, ev, levels
    from test_agents import AgentServer

    srv = AgentServer(tmp_path / "data")
    events = demo_like(1)
    events[0]["call_id"] = "floor-call"
    recorder = CallRecorder(srv.store, "floor-call", "test", 1_700_000_000.0, agent="ann", hold_s=0.0)
    recorder.write_events([Event.from_dict(e) for e in events])
    recorder.close()
    score = score_call(events)["score"]
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    try:
        page.goto(srv.url + "login")
        page.fill("input[name=username]", "sup")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        expect(page).to_have_url(srv.url + "floor")
        monitor = Monitor(srv, "ann", call_id="floor-call")
        monitor.send(call_start("floor-call"))
        monitor.send(levels(1.0))
        tile = page.locator(".tile[data-call-id='floor-call']")
        expect(tile.locator(".badge")).to_have_text("live")
        monitor.send(ev("call_end", 2.0, parties={}))
        expect(tile.locator(".badge")).to_have_text(f"ended · score {score}")
        monitor.ws.close()
    finally:
        context.close()
        srv.stop()
    assert not errors, errors


def test_the_agents_overlay_shows_the_score_of_their_call_once_it_is_recorded(browser, tmp_path):
    from floor_server import Monitor, call_start, ev, levels
    from test_agents import AGENT_PASSWORD, AgentServer

    srv = AgentServer(tmp_path / "data")
    events = demo_like(1)
    events[0]["call_id"] = "own-call"
    recorder = CallRecorder(srv.store, "own-call", "test", 1_700_000_000.0, agent="ann", hold_s=0.0)
    recorder.write_events([Event.from_dict(e) for e in events])
    recorder.close()
    score = score_call(events)["score"]
    context = browser.new_context(viewport={"width": 360, "height": 240})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    try:
        page.goto(srv.url + "login")
        page.fill("input[name=username]", "ann")
        page.fill("input[name=password]", AGENT_PASSWORD)
        page.click("button[type=submit]")
        expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        monitor = Monitor(srv, "ann", call_id="own-call")
        monitor.send(call_start("own-call"))
        monitor.send(levels(1.0))
        expect(page.locator("#call")).to_have_text("Live call")
        monitor.send(ev("call_end", 2.0, parties={}))
        expect(page.locator("#cue-box")).to_have_attribute("data-idle", re.compile(rf" · score {score}$"))
        monitor.ws.close()
    finally:
        context.close()
        srv.stop()
    assert not errors, errors
