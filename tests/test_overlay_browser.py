"""The overlay in Debian's headless chromium, fed by the real web app (uvicorn)."""

from __future__ import annotations


import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

from monitor.analysis.cues import RANKS
from monitor.web.app import WebOptions
from monitor.web.overlay import OverlayServer

from conftest import ARTIFACTS


@pytest.fixture
def server():
    srv = OverlayServer(WebOptions(port=0)).start()
    yield srv
    srv.stop()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 360, "height": 240})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    yield page
    context.close()
    assert not errors, errors


def open_overlay(page: Page, server: OverlayServer, query: str = "") -> None:
    page.goto(server.url + query)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


def ev(type_: str, t: float, **fields) -> dict:
    return {"v": 1, "type": type_, "t": t, **fields}


def cue(t: float, kind: str, text: str) -> dict:
    return ev("cue", t, kind=kind, text=text, reason="test", rank=RANKS[kind])


def line(t: float, party: str, text: str, final: bool = True) -> dict:
    return ev("transcript", t, party=party, start=t - 1.5, end=t, text=text, final=final)


def test_overlay_shows_a_call(page, server):
    open_overlay(page, server)
    server.publish(ev("call_start", 0.0, call_id="c1", source="test", parties=["agent", "customer"]))
    server.publish(ev("levels", 0.2, levels={"agent": -21.4, "customer": -60.0},
                      talking={"agent": True, "customer": False}))
    expect(page.locator("#meter-agent")).to_have_attribute("aria-valuenow", "-21")
    expect(page.locator("#meter-customer")).to_have_attribute("aria-valuenow", "-60")
    expect(page.locator("#talk-agent")).to_have_class("dot on")
    expect(page.locator("#talk-customer")).to_have_class("dot")

    server.publish(cue(25.0, "slow_down", "Slow down"))
    expect(page.locator("#cue")).to_have_text("Slow down", timeout=2000)
    server.publish(cue(26.1, "wait_for_pause", "Wait for the pause"))
    server.publish(cue(26.2, "dead_air", "Keep them informed"))  # lower priority: stays behind
    cue_el = page.locator("#cue")
    expect(cue_el).to_have_text("Wait for the pause", timeout=2000)
    expect(cue_el).to_have_attribute("data-kind", "wait_for_pause")

    expect(page.locator("#pace-agent")).to_have_text("–")
    server.publish(ev("pace", 27.0, wpm={"agent": 151.4, "customer": None}))
    expect(page.locator("#pace-agent")).to_have_text("151")
    expect(page.locator("#pace-customer")).to_have_text("–")

    server.publish(ev("talk_end", 6.0, party="agent", start=0.0, loudness_dbfs=-20.0))
    server.publish(ev("talk_end", 10.0, party="customer", start=6.0, loudness_dbfs=-25.0))
    expect(page.locator("#share")).to_have_text("60%")

    server.publish(line(5.0, "agent", "Thanks for calling, how can I help?"))
    server.publish(line(8.0, "customer", "I have been", final=False))
    server.publish(line(9.0, "customer", "I have been waiting for", final=False))
    expect(page.locator("#transcript p")).to_have_text(["Thanks for calling, how can I help?",
                                                        "I have been waiting for"])
    server.publish(line(10.0, "customer", "I have been waiting for an hour."))
    expect(page.locator("#transcript p")).to_have_text(["Thanks for calling, how can I help?",
                                                        "I have been waiting for an hour."])
    expect(page.locator("#transcript p.interim")).to_have_count(0)
    expect(cue_el).to_have_css("opacity", "1")  # faded in
    screenshot(page, "overlay-call.png")

    for i, text in enumerate(["One.", "Two.", "Three."]):
        server.publish(line(12.0 + i, "agent", text))
    expect(page.locator("#transcript p")).to_have_text(["One.", "Two.", "Three."])

    server.publish(ev("call_end", 30.0, parties={}))
    expect(page.locator("#cue-box")).to_have_attribute("data-idle", "Call ended")
    expect(cue_el).to_have_text("")
    expect(page.locator("#talk-agent")).to_have_class("dot")
    expect(cue_el).to_have_css("opacity", "0")  # faded out
    screenshot(page, "overlay-ended.png")

    server.publish(ev("call_start", 0.0, call_id="c2", source="test", parties=["agent", "customer"]))
    expect(page.locator("#call")).to_have_text("Live call")
    expect(page.locator("#cue-box")).to_have_attribute("data-idle", "")
    expect(page.locator("#transcript p")).to_have_count(0)
    expect(page.locator("#share")).to_have_text("–")
    expect(page.locator("#pace-agent")).to_have_text("–")


def test_cues_fade_and_the_next_most_important_follows(page, server):
    open_overlay(page, server, "?cue_s=3")
    cue_el = page.locator("#cue")
    server.publish(ev("call_start", 0.0, call_id="c1", source="test", parties=["agent", "customer"]))
    server.publish(cue(10.0, "speak_softly", "Speak softly"))
    server.publish(cue(12.5, "let_them_talk", "Let them talk"))
    expect(cue_el).to_have_text("Speak softly", timeout=1000)
    # Audio time moves past speak_softly's 3 s: the next live cue takes its place.
    server.publish(ev("levels", 13.1, levels={"agent": -30.0, "customer": -30.0},
                      talking={"agent": False, "customer": False}))
    expect(cue_el).to_have_text("Let them talk", timeout=1000)
    expect(cue_el).to_have_attribute("data-kind", "let_them_talk")
    # Then it fades out on the wall clock, leaving the cue area empty.
    expect(cue_el).to_have_class("show fading", timeout=4000)
    expect(cue_el).to_have_text("", timeout=4000)
    expect(cue_el).to_have_attribute("data-kind", "")


def test_overlay_reconnects_and_catches_up(page, server):
    open_overlay(page, server)
    server.publish(ev("call_start", 0.0, call_id="c1", source="test", parties=["agent", "customer"]))
    server.publish(line(3.0, "agent", "Hello there."))
    expect(page.locator("#transcript p")).to_have_text(["Hello there."])
    port = server.port
    server.stop()
    expect(page.locator("#status")).to_have_attribute("data-state", "disconnected")
    expect(page.locator("#status")).to_contain_text("reconnecting")
    screenshot(page, "overlay-disconnected.png")

    again = OverlayServer(WebOptions(port=port)).start()
    try:
        # Published before the overlay is back: it arrives in the snapshot on reconnect.
        again.publish(ev("call_start", 0.0, call_id="c2", source="test", parties=["agent", "customer"]))
        again.publish(line(4.0, "customer", "Are you still there?"))
        again.publish(cue(4.5, "dead_air", "Keep them informed"))
        expect(page.locator("#status")).to_have_attribute("data-state", "connected", timeout=5000)
        expect(page.locator("#transcript p")).to_have_text(["Are you still there?"])
        expect(page.locator("#cue")).to_have_text("Keep them informed")
        again.publish(cue(5.0, "wait_for_pause", "Wait for the pause"))
        expect(page.locator("#cue")).to_have_text("Wait for the pause", timeout=2000)
    finally:
        again.stop()


def test_pop_out_moves_the_overlay_into_picture_in_picture(page, server):
    open_overlay(page, server)
    supported = page.evaluate("'documentPictureInPicture' in window")
    expect(page.locator("#popout")).to_be_visible(visible=supported)
    if not supported:
        pytest.skip("this chromium has no Document Picture-in-Picture")
    with page.context.expect_page() as popped:
        page.click("#popout")
    pip = popped.value
    expect(pip.locator("#root")).to_have_count(1)
    expect(page.locator("#root")).to_have_count(0)
    expect(page.locator("#popped-note")).to_be_visible()
    server.publish(cue(1.0, "acknowledge", "Acknowledge how they feel"))
    expect(pip.locator("#cue")).to_have_text("Acknowledge how they feel", timeout=2000)
    try:  # "Pop in" closes the window and brings the overlay back; the click may see its window go
        pip.click("#popout", no_wait_after=True)
    except PlaywrightError:
        pass
    expect(page.locator("#root")).to_have_count(1)
    expect(page.locator("#popped-note")).to_be_hidden()
    expect(page.locator("#cue")).to_have_text("Acknowledge how they feel")


def test_a_lost_device_and_a_failed_recording_are_shown(page, server):
    open_overlay(page, server)
    server.publish(ev("call_start", 0.0, call_id="c1", source="live", parties=["agent", "customer"]))
    server.publish(ev("device", 3.0, party="customer", state="lost", message="device unplugged"))
    expect(page.locator("#notice")).to_have_text("Customer line lost – reconnecting…")
    screenshot(page, "overlay-device-lost.png")
    server.publish(ev("device", 5.0, party="customer", state="ok", message=""))
    expect(page.locator("#notice")).to_have_text("Customer line back")
    server.publish(ev("store", 6.0, state="error", message="recording stopped: No space left on device"))
    expect(page.locator("#notice")).to_have_text("Recording stopped – cues go on")
