"""The overlay in Debian's headless chromium, fed by the real web app (uvicorn)."""

from __future__ import annotations


import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

import re

from monitor.analysis.cues import RANKS, TEXTS
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
    server.publish(line(9.0, "customer", "I have been waiting for", final=False))  # interims: not shown
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


# ---- issue 12: cues that stay while their behaviour lasts, server stats, Not live ----

def held(t: float, kind: str) -> dict:
    """A cue as the monitor sends it now: up until its cue_end."""
    return ev("cue", t, kind=kind, text=TEXTS[kind], reason="test", rank=RANKS[kind], held=True)


def levels(t: float) -> dict:
    return ev("levels", t, levels={"agent": -30.0, "customer": -30.0}, talking={"agent": True, "customer": True})


def go_on(server: OverlayServer, page: Page, t: float, seconds: float, step: float = 0.2) -> float:
    """Audio and the page's clock move on together for `seconds`, levels every `step`, as in a live call."""
    end = t + seconds
    while t < end:
        t = round(t + step, 3)
        server.publish(levels(t))
        page.wait_for_timeout(step * 1000)
    return t


def start(server: OverlayServer, call_id: str = "c1") -> None:
    server.publish(ev("call_start", 0.0, call_id=call_id, source="test", parties=["agent", "customer"]))


def test_a_cue_stays_while_its_behaviour_lasts_and_goes_at_its_cue_end(page, server):
    open_overlay(page, server, "?cue_s=1")  # a cue without `held` would be gone after 1 s
    cue_el = page.locator("#cue")
    start(server)
    server.publish(held(10.0, "speak_softly"))
    expect(cue_el).to_have_text("Speak softly")
    t = go_on(server, page, 10.0, 3.0)  # 3 s of audio and of the page's clock: the agent is still loud
    expect(cue_el).to_have_text("Speak softly")
    expect(cue_el).to_have_class("show")  # not fading either
    server.publish(ev("cue_end", t, kind="speak_softly", done=False, note=""))
    expect(cue_el).to_have_text("", timeout=1000)
    expect(cue_el).to_have_attribute("data-kind", "")


def test_a_pushed_aside_cue_comes_back_and_a_positive_note_follows(page, server):
    open_overlay(page, server, "?cue_s=1")
    cue_el = page.locator("#cue")
    start(server)
    server.publish(held(5.0, "acknowledge"))
    expect(cue_el).to_have_text("Acknowledge how they feel")
    server.publish(held(6.0, "wait_for_pause"))  # more urgent: it pushes acknowledge aside
    expect(cue_el).to_have_text("Wait for the pause")
    t = go_on(server, page, 6.0, 2.0)
    server.publish(ev("cue_end", t, kind="wait_for_pause", done=True, note=""))
    expect(cue_el).to_have_text("Acknowledge how they feel", timeout=1000)  # still applies: back
    expect(cue_el).to_have_attribute("data-kind", "acknowledge")
    t = go_on(server, page, t, 1.0)
    server.publish(ev("cue_end", t, kind="acknowledge", done=True, note="Well acknowledged"))
    expect(cue_el).to_have_text("Well acknowledged", timeout=1000)
    expect(cue_el).to_have_class("show praise")
    screenshot(page, "overlay-praise.png")
    expect(cue_el).to_have_text("", timeout=4000)  # brief


def test_urgency_is_one_colour_scheme(page, server):
    open_overlay(page, server)
    colours = page.evaluate("""(kinds) => kinds.map((kind) => {
      const el = document.createElement("div");
      el.dataset.kind = kind;
      document.body.append(el);
      const colour = getComputedStyle(el).getPropertyValue("--cue").trim();
      el.remove();
      return colour;
    })""", list(RANKS))
    by_kind = dict(zip(RANKS, colours))
    tiers = [{"wait_for_pause", "speak_softly"}, {"acknowledge", "own_the_problem", "slow_down"},
             {"let_them_talk", "pause_first", "dead_air"}]
    assert [len({by_kind[k] for k in tier}) for tier in tiers] == [1, 1, 1]
    assert len({by_kind[next(iter(tier))] for tier in tiers}) == 3
    for higher, lower in zip(tiers, tiers[1:]):  # the tiers follow the ranks: every cue of one above the next's
        assert min(RANKS[k] for k in higher) > max(RANKS[k] for k in lower)
    start(server)
    server.publish(held(1.0, "wait_for_pause"))
    now = page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--urgency-now').trim()")
    rgb = page.evaluate("(hex) => { const d = document.createElement('i'); d.style.color = hex; document.body.append(d);"
                        " const c = getComputedStyle(d).color; d.remove(); return c; }", now)
    expect(page.locator("#cue")).to_have_css("background-color", rgb)


def test_not_live_when_the_stream_stops_or_goes(page, server):
    open_overlay(page, server)
    not_live, root = page.locator("#not-live"), page.locator("#root")
    start(server)
    server.publish(held(1.0, "speak_softly"))
    go_on(server, page, 1.0, 0.6)
    expect(page.locator("#cue")).to_have_text("Speak softly")
    expect(not_live).to_be_hidden()
    # Mid-call nothing comes for more than 2 s (a monitor that hangs): the page says so.
    expect(not_live).to_be_visible(timeout=5000)
    expect(not_live).to_have_text("Not live")
    expect(root).to_have_class(re.compile(r"\bstale\b"))
    expect(page.locator("#parties")).to_have_css("filter", "grayscale(1)")
    go_on(server, page, 1.6, 0.4)  # events again: live again
    expect(not_live).to_be_hidden()
    expect(root).not_to_have_class(re.compile(r"\bstale\b"))
    server.stop()  # the server goes
    expect(page.locator("#status")).to_have_attribute("data-state", "disconnected")
    expect(not_live).to_be_visible(timeout=5000)
    expect(page.locator("#transcript")).to_have_css("filter", "grayscale(1)")
    screenshot(page, "overlay-not-live.png")


def test_a_refresh_mid_call_shows_the_servers_talk_share_pace_clock_and_cues(page, server):
    open_overlay(page, server)
    start(server)
    # The page saw only the last spurt (all agent): counted here it would say 100%; the server says 60%.
    server.publish(ev("talk_end", 69.0, party="agent", start=66.0, loudness_dbfs=-20.0))
    server.publish(held(60.0, "acknowledge"))
    server.publish(held(65.0, "slow_down"))
    server.publish(held(66.0, "wait_for_pause"))
    server.publish(ev("cue_end", 68.0, kind="wait_for_pause", done=False, note=""))
    server.publish(ev("stats", 70.0, talk_s={"agent": 36.0, "customer": 24.0}, share=0.6,
                      wpm={"agent": 182.0, "customer": 130.0}, cues=["acknowledge", "slow_down"]))
    expect(page.locator("#share")).to_have_text("60%")
    page.reload()
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    expect(page.locator("#share")).to_have_text("60%")
    expect(page.locator("#clock")).to_have_text("1:10")
    expect(page.locator("#pace-agent")).to_have_text("182")
    expect(page.locator("#pace-customer")).to_have_text("130")
    expect(page.locator("#pace-them")).to_be_visible()  # the customer's pace: the mark on the agent's scale
    left = page.evaluate("parseFloat(document.getElementById('pace-them').style.left)")
    width = page.evaluate("parseFloat(document.getElementById('pace-you').style.width)")
    assert left == pytest.approx(100 * 130 / 250) and width == pytest.approx(100 * 182 / 250)
    cue_el = page.locator("#cue")
    expect(cue_el).to_have_text("Acknowledge how they feel")  # up still; wait_for_pause ended before the refresh
    screenshot(page, "overlay-refreshed.png")
    # A stats that no longer lists a cue takes it down (its cue_end was missed): the next one up shows.
    server.publish(ev("stats", 71.0, talk_s={"agent": 36.5, "customer": 24.5}, share=0.598,
                      wpm={"agent": 175.0, "customer": 130.0}, cues=["slow_down"]))
    expect(cue_el).to_have_text("Slow down")
    expect(page.locator("#clock")).to_have_text("1:11")


def test_the_transcript_shows_whole_final_lines_once(page, server):
    open_overlay(page, server)
    start(server)
    long = ("I have been waiting for the replacement router for three weeks now and every time I call "
            "somebody tells me it will be there tomorrow")
    server.publish(line(4.0, "customer", long))
    server.publish(line(8.0, "agent", "I am sorry about that, let me look up the order right now for you."))
    server.publish(ev("transcript", 10.0, party="customer", start=9.0, end=10.0, text="And the", final=False))
    server.publish(line(11.0, "customer", "And the last one never came."))
    server.publish(ev("transcript", 12.5, party="customer", start=9.5, end=12.5,
                      text="And the last one never came at all", final=False))
    shown = page.locator("#transcript p")
    expect(shown.last).to_have_text("And the last one never came.")
    expect(page.locator("#transcript p.interim")).to_have_count(0)  # finals only
    texts = shown.all_text_contents()
    assert len(texts) == len(set(texts))
    box = page.evaluate("""() => {
      const el = document.getElementById("transcript");
      const top = el.getBoundingClientRect().top, bottom = el.getBoundingClientRect().bottom;
      return [...el.children].map((p) => [p.getBoundingClientRect().top - top, bottom - p.getBoundingClientRect().bottom]);
    }""")
    assert box and all(above >= -0.5 and below >= -0.5 for above, below in box), box  # no line cut off
    screenshot(page, "overlay-transcript.png")


def test_with_interims_a_phrase_shows_once(page, server):
    open_overlay(page, server, "?interim=1")
    start(server)
    server.publish(ev("transcript", 5.0, party="customer", start=3.0, end=5.0, text="I have been waiting.", final=True))
    server.publish(ev("transcript", 7.0, party="customer", start=3.0, end=7.0, text="I have been waiting for an hour",
                      final=False))
    expect(page.locator("#transcript p")).to_have_text(["I have been waiting for an hour"])
    expect(page.locator("#transcript p.interim")).to_have_count(1)
