"""The call library and replay page: a call recorded by `calmline analyze`, served by the real web app
(uvicorn), played in Debian's headless chromium. The call has the agent barging in on the customer:
a wait_for_pause cue."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import urllib.request

import pytest
from playwright.sync_api import expect

from conftest import ARTIFACTS, ROOT, calmline
from monitor.errors import UsageError
from monitor.web.app import WebOptions
from monitor.web.library import (LEVELS_FORMAT, SUMMARY_BUCKETS, SUMMARY_FORMAT, ReplayServer, call_data,
                                 serve_replay)
from monitor.library.store import Store
from synth import barge_in_call, write_call


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """(store, call) for a synthesized call recorded the way a user records one."""
    base = tmp_path_factory.mktemp("replay")
    channels, _ = barge_in_call("My order never arrived and I have been waiting for two weeks, it is not okay.")
    path = write_call(base / "call.wav", channels)
    run = calmline("analyze", path, "--data-dir", base / "data")
    assert run.returncode == 0, run.stderr
    store = Store(base / "data")
    (call,) = store.calls()
    yield store, call
    store.close()


@pytest.fixture(scope="module")
def server(recorded):
    store, call = recorded
    srv = serve_replay(store, call["id"][:6], WebOptions(port=0))  # an id prefix, as the CLI accepts
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def cue(recorded):
    store, call = recorded
    cues = [e for e in store.events(call["id"]) if e["type"] == "cue" and e["kind"] == "wait_for_pause"]
    assert cues, "the barge-in should have made a wait_for_pause cue"
    return cues[0]


def get(srv: ReplayServer, path: str, headers: dict | None = None, method: str = "GET") -> tuple[int, dict, bytes]:
    """A raw request: the path goes out exactly as written (no client-side normalising of '..')."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        res = conn.getresponse()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
    finally:
        conn.close()


# --- HTTP --------------------------------------------------------------------------------------

def at(call: dict, name: str = "") -> str:
    return f"/calls/{call['id']}/{name}"


def test_call_data_has_the_call_its_cue_and_compact_levels(server, recorded, cue):
    store, call = recorded
    status, headers, body = get(server, at(call, "data.json"))
    assert status == 200 and headers["content-type"] == "application/json"
    data = json.loads(body)
    assert data["call"]["id"] == call["id"] and data["call"]["agent"] == call["agent"]
    assert data["call"]["duration_s"] == pytest.approx(call["duration_s"])
    events = data["events"]
    assert events[0]["type"] == "call_start" and events[-1]["type"] == "call_end"
    assert {"kind": cue["kind"], "text": "Wait for the pause", "t": cue["t"]}.items() <= \
        next(e for e in events if e["type"] == "cue").items()
    assert not any(e["type"] == "levels" for e in events)
    stored = [e for e in store.events(call["id"]) if e["type"] == "levels"]
    assert data["levels_format"] == LEVELS_FORMAT and len(data["levels"]) == len(stored) > 40
    first = stored[0]
    assert data["levels"][0] == [first["t"], round(first["levels"]["agent"], 1), round(first["levels"]["customer"], 1),
                                 int(first["talking"]["agent"]), int(first["talking"]["customer"])]
    assert [c["kind"] for c in data["report"]["cues"]] == ["wait_for_pause"]
    assert data["report"]["parties"]["agent"]["interruptions"] == 1
    assert len(data["scorecard"]["items"]) == data["scorecard"]["total"] == 9
    # gzip for browsers that take it
    status, headers, packed = get(server, at(call, "data.json"), {"Accept-Encoding": "gzip, deflate"})
    assert headers["content-encoding"] == "gzip" and gzip.decompress(packed) == body


def test_an_hour_of_levels_stays_compact():
    levels = [{"v": 1, "type": "levels", "t": round(0.2 * i, 3), "levels": {"agent": -23.456, "customer": -61.2},
               "talking": {"agent": True, "customer": False}} for i in range(1, 18001)]
    events = [{"v": 1, "type": "call_start", "t": 0.0, "call_id": "x", "source": "s", "parties": ["agent", "customer"],
               "started_at": 0.0}, *levels,
              {"v": 1, "type": "call_end", "t": 3600.0, "parties": {
                  p: {"talk_level_dbfs": -24.0, "voiced_s": 100.0, "wpm": None} for p in ("agent", "customer")}}]
    data = call_data({"id": "x", "duration_s": 3600.0}, events)
    body = json.dumps(data, separators=(",", ":"))
    assert len(data["levels"]) == 18000 and len(data["events"]) == 2
    assert len(body) < 600_000 and len(gzip.compress(body.encode())) < 150_000
    assert len(json.dumps(events)) > 4 * len(body)


def test_audio_answers_range_requests(server, recorded):
    store, call = recorded
    audio = store.audio_path(call).read_bytes()
    size = len(audio)
    audio_at = at(call, "audio.flac")
    status, headers, body = get(server, audio_at, {"Range": "bytes=1000-1999"})
    assert status == 206 and body == audio[1000:2000]
    assert headers["content-range"] == f"bytes 1000-1999/{size}" and headers["content-length"] == "1000"
    assert headers["accept-ranges"] == "bytes" and headers["content-type"] == "audio/flac"
    status, headers, body = get(server, audio_at, {"Range": f"bytes={size - 100}-"})
    assert status == 206 and body == audio[-100:] and headers["content-range"] == f"bytes {size - 100}-{size - 1}/{size}"
    status, _, body = get(server, audio_at, {"Range": "bytes=-64"})
    assert status == 206 and body == audio[-64:]
    status, headers, _ = get(server, audio_at, {"Range": f"bytes={size}-"})
    assert status == 416 and headers["content-range"] == f"bytes */{size}"
    status, headers, body = get(server, audio_at)
    assert status == 200 and body == audio and headers["accept-ranges"] == "bytes"
    status, headers, body = get(server, audio_at, method="HEAD")
    assert status == 200 and body == b"" and headers["content-length"] == str(size)
    status, _, body = get(server, audio_at, {"Range": "bytes=2-99999999"})
    assert status == 206 and body == audio[2:]


def test_the_library_lists_calls_and_serves_the_report(server, recorded):
    _, call = recorded
    status, headers, body = get(server, "/calls")
    assert status == 200 and headers["content-type"] == "application/json"
    (listed,) = json.loads(body)
    assert listed["id"] == call["id"] and "pid" not in listed
    status, headers, body = get(server, at(call, "report"))
    assert status == 200 and headers["content-type"].startswith("text/html") and call["id"].encode() in body
    assert "style-src 'unsafe-inline'" in headers["content-security-policy"]  # the report's own, inline style
    assert "script-src" not in headers["content-security-policy"] and b"<script" not in body
    status, headers, _ = get(server, f"/calls/{call['id']}")
    assert status == 308 and headers["location"] == at(call)
    for path in (f"/calls/{call['id'][:6]}/", f"/calls/{call['id'][:6]}/data.json", "/calls/%25/data.json",
                 "/calls/_/audio.flac"):  # on the web a call is named in full: no prefixes, no patterns
        assert get(server, path)[0] == 404, path


def test_unknown_paths_404_and_traversal_is_refused(server, recorded):
    _, call = recorded
    status, _, _ = get(server, "/nope")
    assert status == 404
    for path in ("/", "/replay.py", "/overlay.js", "/calls.db", "/audio/", "/call.json", "/audio.flac"):
        assert get(server, path)[0] == 404, path
    for path in ("/../calls.db", "/%2e%2e/calls.db", "/..%2fmonitor%2fcli.py", "/ui/replay.js/../../pyproject.toml",
                 "/ui/..%2fpyproject.toml", "/ui/%2e%2e/pyproject.toml", "/..\\calls.db", at(call, "audio.flac%00"),
                 at(call, "../../calls.db"), f"/calls/..%2fcalls.db/audio.flac"):
        status, _, body = get(server, path)
        assert status in (400, 403, 404) and b"SQLite" not in body and b"[project]" not in body, path
    status, _, body = get(server, at(call, "data.json"), {"Host": "attacker.example:80"})  # DNS rebinding
    assert status == 400 and call["id"].encode() not in body
    status, _, body = get(server, at(call), {"Host": f"localhost:{server.port}"})
    assert status == 200 and b'id="overlay-view"' in body


def test_unknown_call_or_taken_port_is_a_usage_error(recorded):
    store, call = recorded
    with pytest.raises(UsageError, match="no call with id 'deadbeef'"):
        ReplayServer(store, "deadbeef", WebOptions(port=0))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UsageError) as err:
            serve_replay(store, call["id"], WebOptions(port=port))
        assert str(err.value) == f"cannot listen on 127.0.0.1:{port}: address already in use"


def test_serve_and_stop_leave_the_port_free(recorded):
    store, call = recorded
    srv = serve_replay(store, call["id"], WebOptions(port=0))
    port = srv.port
    assert srv.url == f"http://127.0.0.1:{port}/calls/{call['id']}/"
    assert urllib.request.urlopen(f"http://127.0.0.1:{port}/ui/replay.css", timeout=5).status == 200
    srv.stop()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


# --- the page, in chromium -----------------------------------------------------------------------

@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    page.goto(server.url)
    page.wait_for_function("() => document.body.classList.contains('loaded')")  # a function: the CSP forbids eval
    page.wait_for_function("() => document.getElementById('audio').readyState >= 1", timeout=10_000)
    yield page
    context.close()
    assert not errors, errors


def seek_done(page, t: float) -> float:
    page.wait_for_function(f"() => !audio.seeking && Math.abs(audio.currentTime - {t}) < 0.1", timeout=5000)
    return page.evaluate("audio.currentTime")


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


def test_the_page_plays_the_call_and_seeks_to_its_cue(page, server, recorded, cue):
    _, call = recorded
    assert page.evaluate("audio.error") is None
    assert page.evaluate("audio.duration") == pytest.approx(call["duration_s"], abs=0.3)
    expect(page.locator("#call-id")).to_have_text(call["id"])
    expect(page.locator("#call-agent")).to_have_text(call["agent"])
    expect(page.locator("#problem")).to_be_hidden()

    overlay = page.locator("#overlay-view")
    page.evaluate(f"audio.currentTime = {cue['t'] - 0.5}")
    seek_done(page, cue["t"] - 0.5)
    expect(overlay).not_to_contain_text("Wait for the pause")
    expect(page.locator("#ov-talk-agent")).to_have_class("dot on")  # the agent is talking over the customer

    marker = page.locator(".cue-marker[data-kind='wait_for_pause']")
    expect(marker).to_have_count(1)
    assert "Wait for the pause" in marker.get_attribute("title")
    assert float(marker.get_attribute("data-t")) == pytest.approx(cue["t"])
    marker.click()
    assert seek_done(page, cue["t"]) == pytest.approx(cue["t"], abs=0.1)
    expect(page.locator("#ov-cue")).to_have_text("Wait for the pause")
    expect(page.locator("#ov-cue")).to_have_attribute("data-kind", "wait_for_pause")
    stats = [e for e in recorded[0].events(call["id"]) if e["type"] == "stats" and e["t"] <= cue["t"]]
    expect(page.locator("#ov-share")).to_have_text(f"{round(100 * stats[-1]['share'])}%")  # the server's, as live
    playhead = page.locator("#playhead").bounding_box()
    box = marker.bounding_box()
    assert abs(playhead["x"] + playhead["width"] / 2 - (box["x"] + box["width"] / 2)) < 3
    expect(page.locator(".line.current")).to_have_count(2)  # both talking at once
    expect(page.locator("#scorecard .score-item")).to_have_count(9)
    (cut,) = json.loads(get(server, at(call, "overview.json"))[2])["report"]["interruptions"]
    title = page.locator(".interruption-marker").get_attribute("title")
    assert f"({cut['overlap_s']:.1f} s over them)" in title  # the one overlap the CLI and report show
    screenshot(page, "replay-cue.png")


def test_lines_timeline_and_speed_control_the_audio(page, recorded):
    lines = page.locator("#transcript .line")
    expect(lines).to_have_count(3)
    customer = lines.nth(1)
    expect(customer).to_contain_text("never arrived")
    start = float(customer.get_attribute("data-start"))
    customer.click()
    assert seek_done(page, start) == pytest.approx(start, abs=0.1)
    expect(customer).to_have_class("line customer current")

    plot = page.locator("#plot")
    box = plot.bounding_box()
    duration = page.evaluate("duration")
    plot.click(position={"x": box["width"] * 0.25, "y": 60})
    assert seek_done(page, 0.25 * duration) == pytest.approx(0.25 * duration, abs=0.1)
    expect(page.locator("#ov-cue")).to_have_text("")

    for rate in ("1.5", "0.75", "2"):
        page.select_option("#speed", rate)
        assert page.evaluate("audio.playbackRate") == float(rate)
    page.evaluate("audio.currentTime = audio.duration")
    page.wait_for_function("() => !audio.seeking")
    expect(page.locator("#ov-cue-box")).to_have_attribute("data-idle", "Call ended")


# --- a 2-hour call: pieces, first drawing, zoom --------------------------------------------------

@pytest.fixture(scope="module")
def long_calls(tmp_path_factory):
    """A server with a 2-hour call and a 5-minute one, written into the store as a monitor records them
    (bench/replay_open.py: levels every 0.2 s, stats, spurts, transcripts, a cue every ~11 s; no audio)."""
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    from replay_open import record_call

    store = Store(tmp_path_factory.mktemp("long"))
    record_call(store, "long", 120.0, audio=False)
    record_call(store, "short", 5.0, audio=False, seed=2)
    srv = ReplayServer(store, "long", WebOptions(port=0)).start()
    yield srv, store
    srv.stop()
    store.close()


def test_a_long_call_comes_in_pieces_that_add_up_to_data_json(long_calls):
    srv, store = long_calls
    whole = json.loads(get(srv, "/calls/long/data.json")[2])
    status, _, body = get(srv, "/calls/long/overview.json")
    overview = json.loads(body)
    assert status == 200 and len(body) * 4 < len(json.dumps(whole))
    summary = overview["summary"]
    assert overview["summary_format"] == SUMMARY_FORMAT and 1000 < len(summary) <= SUMMARY_BUCKETS
    assert summary[0][0] == 0.0 and summary[-1][1] >= whole["levels"][-1][0]
    assert max(r[2] for r in summary) == max(r[1] for r in whole["levels"])
    assert "transcript" not in overview["report"] and overview["report"]["cues"] == whole["report"]["cues"]
    assert [m for m in overview["marks"] if m["type"] == "cue"] == [e for e in whole["events"] if e["type"] == "cue"]
    rest = json.loads(get(srv, "/calls/long/events.json")[2])
    assert rest["events"] == whole["events"] and rest["scorecard"] == whole["scorecard"]
    assert rest["transcript"] == whole["report"]["transcript"]
    levels = []
    for n in range(int(overview["duration_s"] // overview["levels_chunk_s"]) + 1):
        piece = json.loads(get(srv, f"/calls/long/levels.json?chunk={n}")[2])
        assert piece["chunk"] == n and all(piece["from"] <= r[0] < piece["to"] for r in piece["levels"])
        levels += piece["levels"]
    assert levels == whole["levels"] and len(levels) == overview["levels_count"] > 35000
    for bad in ("-1", "x", ""):
        assert get(srv, f"/calls/long/levels.json?chunk={bad}")[0] == 400


def open_replay(browser, srv, call_id: str):
    """A fresh page on a call's replay, once drawn and loaded: (page, context, ms to the first drawing)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"{srv.server.url}calls/{call_id}/")
    page.wait_for_function("() => document.body.classList.contains('loaded')", timeout=60_000)
    return page, context, page.evaluate("performance.getEntriesByName('calmline-first-draw')[0].startTime")


def test_a_two_hour_call_draws_before_the_rest_loads(browser, long_calls):
    srv, _ = long_calls
    page, context, long_ms = open_replay(browser, srv, "long")
    try:
        names = page.evaluate("performance.getEntriesByType('resource').map((r) => [r.name.split('/').pop(), r.startTime])")
        started = dict(names)
        assert "data.json" not in started and "overview.json" in started
        assert started["events.json"] >= long_ms  # the transcript is asked for once the timeline is drawn
        assert [n for n, _ in names if n.startswith("levels.json")] == ["levels.json?chunk=0"]  # the playhead's
        expect(page.locator("#transcript .line")).not_to_have_count(0)
        expect(page.locator(".cue-marker")).to_have_count(len([m for m in json.loads(
            get(srv, "/calls/long/overview.json")[2])["marks"] if m["type"] == "cue"]))
        screenshot(page, "replay-2h.png")
    finally:
        context.close()
    _, context, short_ms = open_replay(browser, srv, "short")
    context.close()
    # 24 times the call, not 24 times the wait (bench/replay_open.py measures the times themselves)
    assert long_ms < 4 * short_ms + 500, (long_ms, short_ms)


def test_the_timeline_zooms_to_a_second_per_10_px_and_pans(browser, long_calls):
    srv, _ = long_calls
    page, context, _ = open_replay(browser, srv, "long")
    try:
        width = page.evaluate("ui.plot.clientWidth")
        assert page.evaluate("[view.from, view.to]") == [0, page.evaluate("duration")]
        shown = "[...document.querySelectorAll('.cue-marker')].filter((n) => n.style.display !== 'none')"
        lefts = page.evaluate(f"{shown}.map((n) => n.getBoundingClientRect().left)")
        total = page.locator(".cue-marker").count()
        assert 20 < len(lefts) < total / 2 and all(b - a >= 11 for a, b in zip(lefts, lefts[1:]))
        assert "more cues: zoom in" in page.evaluate(f"{shown}.map((n) => n.title).join()")
        clicks = 0
        while not page.locator("#zoom-in").is_disabled():
            page.click("#zoom-in")
            clicks += 1
        assert clicks <= 8
        span = page.evaluate("view.to - view.from")
        assert span == pytest.approx(width / 10, rel=0.01)
        expect(page.locator("#zoom-label")).to_contain_text("10 px per second")
        # zoomed in, the loudness is drawn from the levels themselves (5 a second), not the summaries
        page.wait_for_function("() => chunks.get(0) instanceof Array")
        rows = page.evaluate("loudnessRows(ui.plot.clientWidth).length")
        assert rows == pytest.approx(span * 5, abs=3)
        visible = page.evaluate(f"{shown}.map((n) => Number(n.dataset.t))")
        in_view = page.evaluate(f"[...document.querySelectorAll('.cue-marker')].map((n) => Number(n.dataset.t))"
                                f".filter((t) => t <= {span})")
        assert visible and all(0 <= t <= span for t in visible) and len(visible) >= len(in_view) - 2
        screenshot(page, "replay-2h-zoomed.png")

        box = page.locator("#plot").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 60)
        page.keyboard.down("Shift")
        page.mouse.wheel(0, box["width"] / 2)  # shift + wheel: half a view later
        page.keyboard.up("Shift")
        page.wait_for_function(f"() => view.from > {span / 4}")
        assert page.evaluate("view.to - view.from") == pytest.approx(span, rel=0.01)
        before = page.evaluate("[view.from, view.to]")
        page.mouse.wheel(0, 100)  # the wheel: zoom out around the pointer
        page.wait_for_function(f"() => view.to - view.from > {1.1 * span}")
        middle = page.evaluate("(view.from + view.to) / 2")
        assert middle == pytest.approx((before[0] + before[1]) / 2, abs=span / 20)
        page.click("#zoom-fit")
        assert page.evaluate("[view.from, view.to]") == [0, page.evaluate("duration")]
        expect(page.locator("#zoom-label")).to_have_text("whole call")

        # zoomed in, going to a moment outside the view brings it into view
        page.click("#zoom-in")
        page.click("#zoom-in")
        late = page.locator("#transcript .line").last
        late.scroll_into_view_if_needed()
        late.click()
        t = float(late.get_attribute("data-start"))
        view = page.evaluate("[view.from, view.to]")
        assert view[0] <= t <= view[1] and view[1] - view[0] < page.evaluate("duration") / 3
    finally:
        context.close()
