"""The customer's sentiment trend in real chromium: on the agent's overlay (ui/overlay_sentiment.js), fed by the
real web app with the events the real pipeline made of a synthesized escalating call."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from monitor.analysis.pipeline import run_channels
from monitor.web.app import WebOptions
from monitor.web.overlay import OverlayServer
from test_sentiment import ESCALATING, no_words, synth

from conftest import ARTIFACTS


@pytest.fixture(scope="module")
def escalating_events() -> list[dict]:
    return [e.to_dict() for e in run_channels(synth(ESCALATING), no_words(), transcribe=False)]


@pytest.fixture
def overlay(browser):
    server = OverlayServer(WebOptions(port=0)).start()
    context = browser.new_context(viewport={"width": 360, "height": 240})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    page.goto(server.url)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    yield server, page
    context.close()
    server.stop()
    assert not errors, errors


def test_overlay_draws_the_trend_and_names_the_mood(overlay, escalating_events):
    server, page = overlay
    box = page.locator("#sentiment")
    expect(box).to_be_hidden()
    shown = [e for e in escalating_events if e["type"] in ("call_start", "sentiment", "cue", "call_end")]
    scored = [e for e in shown if e["type"] == "sentiment"]
    assert len(scored) >= 3
    for event in shown:
        if event["type"] == "call_end":
            break
        server.publish(event)
    last = scored[-1]["trend"]
    expect(box).to_be_visible()
    expect(box).to_have_attribute("data-trend", f"{last:.2f}")
    expect(box).to_have_attribute("data-mood", "upset" if last <= -0.5 else "unhappy")
    expect(box.locator(".mood")).to_contain_text("↓")  # it got worse over the last readings
    points = box.locator("polyline").get_attribute("points").split()
    assert len(points) == len(scored)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "overlay_sentiment.png"))
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")  # overlay.js still has its stream
    late = page.context.new_page()  # opened mid-call: the snapshot brings the latest reading
    late.goto(server.url)
    expect(late.locator("#sentiment")).to_have_attribute("data-trend", f"{last:.2f}")
    late.close()

    server.publish({"v": 1, "type": "call_start", "t": 0.0, "call_id": "next", "source": "test",
                    "parties": ["agent", "customer"]})
    expect(box).to_be_hidden()
    server.publish({"v": 1, "type": "sentiment", "t": 4.0, "party": "customer", "trend": 0.45, "recent": 0.45,
                    "talk_s": 2.0, "from_words": 0.45, "from_voice": None})
    expect(box).to_have_attribute("data-mood", "pleased")
    assert len(box.locator("polyline").get_attribute("points").split()) == 1


def test_floor_tile_shows_which_way_the_customer_is_going(browser, tmp_path, escalating_events):
    """The floor's tile (its mood bar is the floor's) gets the trend's direction from the readings it saw."""
    from floor_server import PASSWORD, Monitor, call_start
    from test_floor_browser import sign_in_page
    from test_messages import Server

    srv = Server(tmp_path / "data")
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    try:
        monitor = Monitor(srv, "agent01", call_id="angry-1")
        monitor.send(call_start("angry-1"))
        sign_in_page(page, srv.url, "sup", PASSWORD, "floor")
        tile = page.locator(".tile[data-call-id=angry-1]")
        scored = [e for e in escalating_events if e["type"] == "sentiment"]
        for event in scored:
            monitor.send({k: v for k, v in event.items() if k != "v"})
            expect(tile.locator(".mood-value")).to_have_text(f"{event['trend']:+.1f}")
        last = scored[-1]["trend"]
        assert last - scored[-4]["trend"] <= -0.1  # the pipeline's own readings fall
        expect(tile.locator(".mood")).to_have_attribute("data-direction", "worse")
        expect(tile.locator(".mood .who")).to_have_text("Mood ↓")
        page.screenshot(path=str(ARTIFACTS / "floor_sentiment.png"))
        assert not errors, errors
    finally:
        context.close()
        srv.stop()
