"""The supervisor floor in Debian's headless chromium, served by the real web app: log in, 20 live calls from
real HubPublishers, the escalating one first with its alerts, click-through to its live view."""

from __future__ import annotations

import random
import threading
import time

import pytest
from playwright.sync_api import expect

from monitor.web.hub_client import HubPublisher

from conftest import ARTIFACTS
from floor_server import PASSWORD, TOKENS, ev, start_hub

CALLS = 20
HOT = 7  # the escalating call
LINES = {"agent": ["Thanks for calling, how can I help?", "Let me check that order for you.",
                   "I can see the delivery was delayed.", "I'll put a note on the account."],
         "customer": ["Hi, my parcel never arrived.", "It was meant to come on Monday.",
                      "Okay, thank you.", "Can you send it again?"]}


class SimulatedCall:
    """One agent's call: a history of turns at once, then levels every 0.2 s while the test runs."""

    def __init__(self, hub, index: int, rng: random.Random):
        self.agent = f"agent{index:02d}"
        self.call_id = f"call-{index:02d}"
        self.hot = index == HOT
        self.rng = rng
        self.ended = False
        self.t = 40.0 + 25.0 * index % 300
        self.publisher = HubPublisher(hub.url, self.agent, TOKENS[self.agent])

    def start(self) -> None:
        self.publisher.start()
        self.publish(ev("call_start", 0.0, call_id=self.call_id, source="sim", parties=["agent", "customer"],
                        started_at=time.time() - self.t))
        turn_s = 3.0
        for start in range(0, int(self.t - turn_s), int(turn_s)):
            party = self.party(start)
            self.publish(ev("talk_end", start + turn_s - 0.4, party=party, start=float(start), loudness_dbfs=-24.0))
        for i in range(150):  # the last 30 s as levels
            self.levels(self.t - 30.0 + 0.2 * i)
        self.line(self.t - 6.0, self.party(self.t - 6.0))
        if self.hot:
            self.publish(ev("interruption", self.t - 40, by="agent", at=self.t - 39, overlap_s=1.1))
            for t, kind, text in [(self.t - 30, "speak_softly", "Speak softly"),
                                  (self.t - 4, "speak_softly", "Speak softly"),  # the agent's voice raised
                                  (self.t - 1, "acknowledge", "Acknowledge how they feel")]:
                self.cue(t, kind, text)
            self.publish(ev("transcript", self.t - 2, party="customer", start=self.t - 5, end=self.t - 2,
                            text="This is ridiculous, I want a refund now!", final=True, words=[]))
        elif self.rng.random() < 0.3 and self.t > 100:
            self.cue(self.t - 100, "slow_down", "Slow down")  # over a minute ago

    def party(self, t: float) -> str:
        return "agent" if int(t // 3) % 2 == 0 else "customer"

    def levels(self, t: float) -> None:
        talking = self.party(t)
        customer = -24.0 + self.rng.uniform(-2, 2)
        if self.hot and t > self.t - 8:
            customer, talking = -11.0 + self.rng.uniform(-1, 1), "customer"  # the customer shouting
        agent = -22.0 + self.rng.uniform(-2, 2)
        self.publish(ev("levels", t, levels={"agent": agent if talking == "agent" else -58.0,
                                             "customer": customer if talking == "customer" else -58.0},
                        talking={"agent": talking == "agent", "customer": talking == "customer"}))
        self.t = max(self.t, t)

    def line(self, t: float, party: str) -> None:
        self.publish(ev("transcript", t, party=party, start=t - 2, end=t, text=self.rng.choice(LINES[party]),
                        final=True, words=[]))

    def cue(self, t: float, kind: str, text: str) -> None:
        self.publish(ev("cue", t, kind=kind, text=text, reason="simulated"))

    def publish(self, event: dict) -> None:
        self.publisher.publish(event)


@pytest.fixture
def floor_setup(browser):
    hub = start_hub(rate_per_s=2000.0)
    rng = random.Random(7)
    calls = [SimulatedCall(hub, i, rng) for i in range(CALLS)]
    for call in calls:
        call.start()
    stop = threading.Event()

    def keep_talking():  # levels every 0.2 s, as live monitors do
        while not stop.wait(0.2):
            for call in calls:
                if not call.ended:
                    call.levels(call.t + 0.2)

    talker = threading.Thread(target=keep_talking, daemon=True)
    talker.start()
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    yield hub, calls, page
    stop.set()
    talker.join()
    context.close()
    for call in calls:
        call.publisher.stop(flush_s=0)
    hub.stop()
    assert not errors, errors


def test_floor_puts_the_escalating_call_first(floor_setup):
    hub, calls, page = floor_setup
    hot = calls[HOT]
    page.goto(hub.url + "floor")
    expect(page).to_have_url(hub.url + "login")  # not logged in: sent to the login page

    page.fill("input[name=username]", "sup")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    expect(page.locator("#error")).to_be_visible()
    page.fill("input[name=username]", "sup")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(hub.url + "floor")
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")

    tiles = page.locator(".tile")
    expect(tiles).to_have_count(CALLS)
    expect(tiles.first).to_have_attribute("data-call-id", hot.call_id)
    expect(tiles.first).to_have_attribute("data-attention", "true")
    expect(page.locator(".tile[data-attention=true]")).to_have_count(1)
    expect(tiles.first.locator(".agent")).to_have_text(hot.agent)
    expect(tiles.first.locator(".cues")).to_have_text("3")
    alerts = page.locator(f"#alerts li.alert[data-call-id={hot.call_id}]")
    expect(alerts.filter(has_text="agent raised voice")).to_have_count(1)
    expect(alerts.filter(has_text="3 cues in the last minute")).to_have_count(1)
    expect(page.locator("#summary")).to_have_text(f"{CALLS} live calls · 1 needs attention")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "floor.png"))

    tiles.first.click()
    live = page.locator("#live")
    expect(live).to_be_visible()
    expect(page.locator("#live-agent")).to_have_text(hot.agent)
    expect(page.locator("#live-transcript")).to_contain_text("I want a refund now!")
    hot.cue(hot.t + 0.2, "acknowledge", "Acknowledge how they feel")  # a new cue streams into the live view
    expect(page.locator("#live-cue")).to_have_text("Acknowledge how they feel")
    expect(page.locator("#live-cue")).to_have_attribute("data-kind", "acknowledge")
    expect(page.locator("#live-reasons")).to_contain_text("customer upset, not acknowledged")
    page.wait_for_timeout(300)  # let the cue fade in for the picture
    page.screenshot(path=str(ARTIFACTS / "floor-live.png"))

    page.keyboard.press("Escape")
    expect(live).to_be_hidden()

    calls[3].ended = True
    calls[3].publish(ev("call_end", calls[3].t + 0.2, parties={}))
    expect(page.locator(f".tile[data-call-id={calls[3].call_id}]")).to_have_attribute("data-status", "ended")
    expect(page.locator("#summary")).to_have_text(f"{CALLS - 1} live calls · 1 needs attention")

    hub.stop()  # the floor shows that it lost the hub
    expect(page.locator("#status")).to_have_attribute("data-state", "disconnected")
    page.screenshot(path=str(ARTIFACTS / "floor-disconnected.png"))


def test_log_in_and_out_in_the_browser(browser):
    hub = start_hub()
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(hub.url + "login")
        page.fill("input[name=username]", "sup")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        expect(page).to_have_url(hub.url + "floor")
        expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        page.click("text=Log out")
        expect(page).to_have_url(hub.url + "login")
        page.goto(hub.url + "floor")
        expect(page).to_have_url(hub.url + "login")  # the session is over, not only its cookie
    finally:
        context.close()
        hub.stop()


# ---- issue 13: attention that clears, alerts acknowledged, a word to the agent, sessions over a restart ----

def sign_in_page(page, url: str, user: str, password: str, lands: str) -> None:
    page.goto(url + "login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page).to_have_url(url + lands)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")


def said(t: float, party: str, text: str) -> dict:
    return ev("transcript", t, party=party, start=t - 1.0, end=t, text=text, final=True, words=[])


def mood(t: float, trend: float) -> dict:
    """The customer's sentiment trend, as the pipeline sends it (monitor.analysis.sentiment)."""
    return ev("sentiment", t, party="customer", trend=trend, recent=trend, talk_s=3.0)


@pytest.fixture
def full(browser, tmp_path):
    """Floor, agents' overlay and library (test_messages.Server), a supervisor's page and an agent's page."""
    from test_messages import Server

    srv = Server(tmp_path / "data")
    contexts = [browser.new_context(viewport={"width": 1440, "height": 900}),
                browser.new_context(viewport={"width": 420, "height": 520})]
    pages = [context.new_page() for context in contexts]
    errors = []
    for page in pages:
        page.on("pageerror", lambda error: errors.append(error))
    yield srv, pages[0], pages[1], tmp_path
    for context in contexts:
        context.close()
    srv.stop()
    assert not errors, errors


def test_an_escalating_calls_flag_clears_after_the_agent_acknowledges(full):
    from floor_server import Monitor, call_start, cue
    from test_messages import record_start

    srv, page, _, _ = full
    recorder = record_start(srv.store, "hot-1", "agent01")  # recorded here, so its alert can open its replay
    hot = Monitor(srv, "agent01", call_id="hot-1")
    calm = [Monitor(srv, f"agent0{i}", call_id=f"calm-{i}") for i in (2, 3)]
    for mon in (hot, *calm):
        mon.send(call_start(mon.call_id))
    sign_in_page(page, srv.url, "sup", PASSWORD, "floor")
    for toggle in ("#sound", "#notify"):  # both off until switched on here
        expect(page.locator(toggle)).to_have_attribute("aria-pressed", "false")
    page.context.grant_permissions(["notifications"], origin=srv.url.rstrip("/"))
    page.click("#notify")  # the permission is asked on this click (granted here by the test's browser)
    page.click("#sound")
    expect(page.locator("#notify")).to_have_text("Desktop alerts on")
    expect(page.locator("#sound")).to_have_text("Sound on")
    hot.send(said(30.0, "customer", "This is ridiculous, I want a refund now!"))
    hot.send(mood(33.0, -0.5))
    hot.send(cue(40.0, "acknowledge", "Acknowledge how they feel"))
    tile = page.locator(".tile[data-call-id=hot-1]")
    expect(tile).to_have_attribute("data-attention", "true")
    expect(tile).to_have_attribute("data-top", "true")  # the one that needs a supervisor most stands out
    expect(page.locator(".tile[data-top=true]")).to_have_count(1)
    expect(tile.locator(".reasons")).to_have_text("customer upset, not acknowledged · customer sentiment -0.5")
    expect(tile.locator(".mood")).to_have_attribute("data-sign", "upset")
    expect(tile.locator(".mood-value")).to_have_text("-0.5")
    alert = page.locator("#alerts li.alert[data-call-id=hot-1][data-kind=acknowledge]")
    expect(alert).to_have_attribute("data-resolved", "false")
    page.screenshot(path=str(ARTIFACTS / "floor-flagged.png"))

    alert.locator("button.ack").click()  # acknowledged by this supervisor, kept by the server
    expect(alert).to_have_attribute("data-acked", "true")
    page.reload()
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    expect(alert).to_have_attribute("data-acked", "true")
    expect(page.locator("#notify")).to_have_attribute("aria-pressed", "true")  # remembered in this browser
    expect(page.locator("#sound")).to_have_attribute("aria-pressed", "false")  # sound needs a click each time

    hot.send(said(46.0, "agent", "I'm so sorry, I can see why you are upset."))
    hot.send(mood(48.0, 0.1))
    expect(tile).to_have_attribute("data-attention", "false")
    expect(tile).to_have_attribute("data-top", "false")
    expect(tile.locator(".reasons")).to_have_text("customer upset, acknowledged")
    expect(tile.locator(".cue")).to_have_text("")  # the answered cue is off the tile too
    expect(tile.locator(".mood")).to_have_attribute("data-sign", "pleased")
    expect(alert).to_have_attribute("data-resolved", "true")
    expect(alert.locator("span")).to_have_text("customer upset, not acknowledged")
    page.screenshot(path=str(ARTIFACTS / "floor-cleared.png"))

    recorder.write_events([])
    recorder.close()
    hot.send(ev("call_end", 50.0, parties={}))
    expect(alert).to_have_attribute("data-ended", "true")
    with page.context.expect_page() as opened:  # the alert of an ended call opens its replay
        alert.click()
    replay = opened.value
    replay.wait_for_load_state()
    assert replay.url == srv.url + "calls/hot-1/"
    expect(replay.locator("#transcript")).to_contain_text("my parcel never came")  # the recording's transcript
    replay.close()
    for mon in (hot, *calm):
        mon.ws.close()


def test_a_supervisors_word_reaches_the_agents_overlay(full):
    from floor_server import Monitor, call_start
    from test_messages import AGENT_PASSWORD, record_start

    srv, page, agent, _ = full
    recorder = record_start(srv.store, "rec-1", "ann")
    mon = Monitor(srv, "ann", call_id="rec-1")
    mon.send(call_start("rec-1"))
    sign_in_page(agent, srv.url, "ann", AGENT_PASSWORD, "")
    sign_in_page(page, srv.url, "sup", PASSWORD, "floor")
    page.locator(".tile[data-call-id=rec-1]").click()
    expect(page.locator("#live")).to_be_visible()
    words = '<img src=x onerror="document.title=1"> Offer the refund & a callback'
    page.fill("#say-text", words)
    page.click("#say-send")
    expect(page.locator("#say-status")).to_have_text("Sent to the agent's overlay.")
    expect(page.locator("#say-sent .note-sent span")).to_have_text(words)
    page.screenshot(path=str(ARTIFACTS / "floor-say.png"))
    note = agent.locator("#notes .note")
    expect(note).to_have_count(1)
    expect(note.locator(".words")).to_have_text(words)  # shown as text, never as markup
    expect(agent.locator("#notes img")).to_have_count(0)
    expect(note.locator(".from")).to_have_text("From sup")
    expect(agent.locator("#cue")).to_have_text("")  # apart from the cues
    page.locator("#say-cards button[data-card=acknowledge]").click()
    expect(note).to_have_count(2)
    expect(note.first.locator(".words")).to_have_text("Acknowledge how they feel before you solve")
    agent.screenshot(path=str(ARTIFACTS / "overlay-note.png"))
    note.last.locator("button.dismiss").click()  # dismissed: gone, and it stays gone over a reload
    expect(note).to_have_count(1)
    agent.reload()
    expect(agent.locator("#status")).to_have_attribute("data-state", "connected")
    expect(note).to_have_count(1)
    expect(note.locator(".words")).to_have_text("Acknowledge how they feel before you solve")
    for i in range(3):  # a supervisor who keeps typing is slowed down
        page.fill("#say-text", f"and again {i}")
        page.click("#say-send")
    expect(page.locator("#say-status")).to_contain_text("too many messages")

    recorder.write_events([])
    recorder.close()
    mon.send(ev("call_end", 14.0, parties={}))  # after the call: the agent's self-view
    view = agent.locator("#self-view")
    expect(view).to_be_visible(timeout=15000)
    expect(view.locator(".well b")).to_have_text("Empathize and apologize")
    expect(view.locator(".next .label")).to_have_text("Try next time")
    expect(view.locator("a.replay")).to_have_attribute("href", "/calls/rec-1/")
    score = int(view.locator(".score b").inner_text())
    assert 0 <= score <= 100
    expect(agent.locator("#parties")).to_be_hidden()
    agent.screenshot(path=str(ARTIFACTS / "overlay-self-view.png"))
    with agent.context.expect_page() as opened:  # their own replay, with the supervisor's words in it
        agent.locator("a.replay").click()
    replay = opened.value
    expect(replay).to_have_url(srv.url + "calls/rec-1/")
    expect(replay.locator("#transcript .note")).to_have_count(3)  # the text, the card, the one allowed of three
    expect(replay.locator("#transcript .note").first).to_contain_text(words)
    mon.ws.close()


def test_both_roles_reload_after_a_server_restart(full):
    from test_messages import AGENT_PASSWORD, Server

    srv, page, agent, tmp_path = full
    sign_in_page(page, srv.url, "sup", PASSWORD, "floor")
    sign_in_page(agent, srv.url, "ann", AGENT_PASSWORD, "")
    port = srv.port
    srv.stop()
    expect(page.locator("#status")).to_have_attribute("data-state", "disconnected")
    restarted = Server(tmp_path / "data", port=port)
    try:
        for who, lands in ((page, "floor"), (agent, "")):
            who.reload()
            expect(who).to_have_url(restarted.url + lands)  # still signed in: not sent to the login page
            expect(who.locator("#status")).to_have_attribute("data-state", "connected")
        expect(page.locator("#user")).to_have_text("sup")
    finally:
        restarted.stop()
        srv.stop = lambda: None  # stopped already


def test_the_loopback_overlay_shows_the_self_view_of_live_and_demo(browser):
    from monitor.web.app import WebOptions
    from monitor.web.overlay import serve_overlay

    local = serve_overlay(WebOptions(port=0))
    context = browser.new_context(viewport={"width": 360, "height": 400})
    try:
        page = context.new_page()
        page.goto(local.url)
        expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        local.publish(ev("call_start", 0.0, call_id="desk-2", source="test", parties=["agent", "customer"],
                         started_at=time.time()))
        local.publish(ev("self_view", 30.0, call_id="desk-2", score=61, replay=None,
                         command="calmline replay desk-2",
                         well={"item": "listen", "title": "Listen", "text": "agent talk share 40%"},
                         next={"item": "verify", "title": "Verify the solution", "text": "Check the fix works."}))
        view = page.locator("#self-view")
        expect(view).to_be_visible()
        expect(view.locator(".score b")).to_have_text("61")
        expect(view.locator(".replay-command code")).to_have_text("calmline replay desk-2")
        expect(view.locator("a.replay")).to_have_count(0)
        local.publish(ev("call_start", 0.0, call_id="desk-3", source="test", parties=["agent", "customer"],
                         started_at=time.time()))
        expect(view).to_be_hidden()  # the next call: the overlay is the overlay again
    finally:
        context.close()
        local.stop()
