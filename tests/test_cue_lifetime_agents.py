"""Issue 12 on the server: a signed-in agent's overlay (`/` of the server, streamed from the floor) gets
cue_end and stats as the loopback overlay does, and after a refresh mid-call shows the server's talk share
and clock and every cue still up. Real web app, real monitor WebSocket, chromium through the login form."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from floor_server import Monitor, call_start, ev, levels, wait_until
from monitor.analysis.cues import RANKS, TEXTS
from test_agents import AGENT_PASSWORD, AgentServer


@pytest.fixture
def server(tmp_path):
    srv = AgentServer(tmp_path / "data")
    yield srv
    srv.stop()


def held(t: float, kind: str) -> dict:
    return ev("cue", t, kind=kind, text=TEXTS[kind], reason="test", rank=RANKS[kind], held=True)


def test_an_agents_overlay_on_the_server_follows_cue_ends_and_stats_over_a_refresh(browser, server):
    context = browser.new_context(viewport={"width": 360, "height": 240})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    try:
        page.goto(server.url)
        page.fill("input[name=username]", "ann")
        page.fill("input[name=password]", AGENT_PASSWORD)
        page.click("button[type=submit]")
        expect(page).to_have_url(server.url)
        expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        wait_until(lambda: server.part.floor.viewers.get("ann"), "the overlay's stream")

        mon = Monitor(server, "ann", call_id="a1")
        mon.send(call_start("a1"))
        cue_el, share = page.locator("#cue"), page.locator("#share")
        mon.send(held(10.0, "acknowledge"))
        mon.send(held(11.0, "wait_for_pause"))
        expect(cue_el).to_have_text("Wait for the pause")
        mon.send(levels(12.0))
        mon.send(ev("cue_end", 13.0, kind="wait_for_pause", done=True, note=""))
        expect(cue_el).to_have_text("Acknowledge how they feel")  # pushed aside, still up: back
        # This page saw one spurt (all the agent's); the server measured the whole call: 40%.
        mon.send(ev("talk_end", 13.5, party="agent", start=12.0, loudness_dbfs=-20.0))
        mon.send(ev("stats", 14.0, talk_s={"agent": 6.0, "customer": 9.0}, share=0.4,
                    wpm={"agent": 150.0, "customer": 120.0}, cues=["acknowledge"]))
        expect(share).to_have_text("40%")

        page.reload()
        expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        expect(share).to_have_text("40%")
        expect(page.locator("#clock")).to_have_text("0:14")
        expect(page.locator("#pace-agent")).to_have_text("150")
        expect(page.locator("#pace-them")).to_be_visible()
        expect(cue_el).to_have_text("Acknowledge how they feel")  # from the floor's snapshot of the cues up

        mon.send(ev("cue_end", 15.0, kind="acknowledge", done=True, note="Well acknowledged"))
        expect(cue_el).to_have_text("Well acknowledged")
        expect(cue_el).to_have_class("show praise")
        expect(cue_el).to_have_text("", timeout=5000)
    finally:
        context.close()
    assert not errors, errors
