"""Customer sentiment with the words transcribed by the real model (slow): synthesized calm and escalating calls
in-process and through `calmline analyze` / `report --json` / the replay page in chromium, and the real
recordings of ../shared/data/real (people talking calmly: no escalation may be read into them)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from playwright.sync_api import expect

from audio.decode import read_audio
from conftest import ARTIFACTS, calmline
from monitor.analysis.pipeline import run_channels
from monitor.events import Sentiment
from monitor.library.report import build_report
from monitor.library.store import Store
from monitor.web.app import WebOptions
from monitor.web.library import serve_replay
from synth import write_call
from test_real_speech import read_rttm, route
from test_sentiment import CALM, ESCALATING, synth


@pytest.fixture(scope="module")
def scored():
    """{name: (events, report)} of the two synthesized calls, words and voice."""
    out = {}
    for name, script in (("calm", CALM), ("escalating", ESCALATING)):
        events = run_channels(synth(script))
        out[name] = events, build_report(events)
    return out


def test_words_and_voice_both_count(scored):
    events, _ = scored["escalating"]
    last = [e for e in events if isinstance(e, Sentiment)][-1]
    assert last.from_words is not None and last.from_words < -0.2, last
    assert last.from_voice is not None and last.from_voice < -0.3, last
    calm = [e for e in scored["calm"][0] if isinstance(e, Sentiment)][-1]
    assert calm.from_words > 0.1 and calm.from_words > last.from_words + 0.3 and calm.from_voice > -0.1, calm


def test_escalating_trends_lower_than_calm(scored):
    calm, angry = scored["calm"][1]["sentiment"]["customer"], scored["escalating"][1]["sentiment"]["customer"]
    for q in (calm, angry):
        assert len(q) == 4 and all(-1.0 <= v <= 1.0 for v in q)
    assert angry[3] < calm[3] - 0.5, (calm, angry)
    assert angry[3] < angry[0] - 0.3, angry
    assert min(calm) > -0.05 and max(calm) > 0.2, calm  # "great news", "very helpful"
    trend = [e.trend for e in scored["escalating"][0] if isinstance(e, Sentiment) and e.trend is not None]
    assert trend[-1] < trend[0] and trend[-1] < -0.4, trend


def test_recorded_call_has_quarters_in_report_json_html_and_replay(tmp_path, browser):
    path = write_call(tmp_path / "escalating.wav", synth(ESCALATING))
    run = calmline("analyze", path, "--data-dir", tmp_path / "data")
    assert run.returncode == 0, run.stderr
    store = Store(tmp_path / "data")
    (call,) = store.calls()
    report = calmline("report", call["id"], "--json", "--data-dir", tmp_path / "data")
    assert report.returncode == 0, report.stderr
    quarters = json.loads(report.stdout)["sentiment"]["customer"]
    assert len(quarters) == 4 and all(-1.0 <= v <= 1.0 for v in quarters) and quarters[3] < -0.4, quarters
    html = calmline("report", call["id"], "--out", tmp_path / "r.html", "--data-dir", tmp_path / "data")
    assert html.returncode == 0, html.stderr
    page_html = (tmp_path / "r.html").read_text()
    assert 'class="sentiment"' in page_html and f'data-value="{quarters[3]:.3f}"' in page_html

    server = serve_replay(store, call["id"], WebOptions(port=0))
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(error))
        page.goto(server.url)  # the call's replay page
        buttons = page.locator("#sentiment button")
        expect(buttons).to_have_count(4)
        shown = [float(buttons.nth(i).get_attribute("data-value")) for i in range(4)]
        assert shown == quarters
        expect(buttons.nth(3)).to_contain_text("upset" if quarters[3] <= -0.5 else "unhappy")
        buttons.nth(2).click()
        duration = page.evaluate("() => document.getElementById('audio').duration")
        current = page.evaluate("() => document.getElementById('audio').currentTime")
        assert current == pytest.approx(duration / 2, abs=1.0)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "replay_sentiment.png"))
        assert not errors, errors
    finally:
        context.close()
        server.stop()
        store.close()


# ---- real people (no sentiment ground truth: calm conversations and read speech) ----

def real_calls(real: "Path") -> dict[str, dict[str, np.ndarray]]:
    audio = read_audio(real / "pyannote" / "sample.wav")[:, 0]
    turns = read_rttm(real / "pyannote" / "sample.rttm")
    jfk = read_audio(real / "whisper" / "jfk.flac")[:, 0]
    reader = np.concatenate([np.pad(read_audio(p)[:, 0], (0, 8000)) for p in sorted((real / "librivox").glob("*.wav"))])
    return {
        "phone, Sheila as customer": {"agent": route(audio, turns, "speaker90"), "customer": route(audio, turns, "speaker91")},
        "phone, Diane as customer": {"agent": route(audio, turns, "speaker91"), "customer": route(audio, turns, "speaker90")},
        "jfk": {"agent": np.zeros_like(jfk), "customer": jfk},
        "librivox reader": {"agent": np.zeros_like(reader), "customer": reader},
    }


def test_real_calm_speech_is_not_read_as_escalation(real_data):
    """Small talk on the phone, a speech, a reader: the voice part stays near 0 (no raised voice against the
    speaker's own baseline) and no quarter reads as upset."""
    for name, channels in real_calls(real_data).items():
        events = run_channels(channels)
        scored = [e for e in events if isinstance(e, Sentiment)]
        assert scored, name
        voice = [e.from_voice for e in scored if e.from_voice is not None]
        assert all(v > -0.35 for v in voice), (name, voice)
        quarters = build_report(events)["sentiment"]["customer"]
        assert all(q > -0.5 for q in quarters), (name, quarters)
