"""The scorecard and the HTML report judge a call by the user's config, as the live cues did."""

import json

import pytest

from conftest import calmline
from monitor.config import Config, load_config
from monitor.events import events_from_dicts
from monitor.library.report_html import render_report
from monitor.library.scorecard import score_call
from monitor.library.store import CallRecorder, Store


def spurt(party, start, end):
    return [{"v": 1, "type": "talk_start", "t": start, "party": party},
            {"v": 1, "type": "talk_end", "t": end, "party": party, "start": start, "loudness_dbfs": -24.0}]


def said(party, start, end, text):
    return {"v": 1, "type": "transcript", "t": end + 0.5, "party": party, "start": start, "end": end, "text": text,
            "final": True, "words": []}


def call(*parts, duration):
    events = [{"v": 1, "type": "call_start", "t": 0.0, "call_id": "x", "source": "", "parties": ["agent", "customer"],
               "started_at": 0.0}]
    for p in parts:
        events += p if isinstance(p, list) else [p]
    return events + [{"v": 1, "type": "call_end", "t": duration, "parties": {}}]


def items(card) -> dict:
    return {i["item"]: i for i in card["items"]}


# The agent holds 55% of the talk; the customer's first line is plain, their second carries a word
# only this user counts as frustration, and the agent's apology falls between the two.
CALL = call(spurt("customer", 0.5, 4.5), said("customer", 0.5, 4.5, "My bill is wrong."),
            spurt("agent", 5.0, 8.0), said("agent", 5.0, 8.0, "Sorry about that, let me look."),
            spurt("customer", 9.0, 12.5), said("customer", 9.0, 12.5, "Honestly I am livid about it."),
            spurt("agent", 13.0, 19.0), said("agent", 13.0, 19.0, "I will fix the bill today."),
            duration=20.0)


def user_config() -> Config:
    config = Config()
    config.cues.acknowledge.frustration = ["livid"]
    config.cues.let_them_talk.share = 0.5
    config.cues.slow_down.min_wpm = 140.0
    config.transcription.pace_window_s = 20.0
    return config


def test_the_scorecard_uses_the_users_frustration_words_and_talk_share():
    default = items(score_call(CALL))
    assert default["listen"]["met"] and default["empathize"]["met"]
    mine = items(score_call(CALL, user_config()))
    assert not mine["listen"]["met"] and mine["listen"]["evidence"].startswith("agent talk share 55%")
    assert not mine["empathize"]["met"] and "livid" in mine["empathize"]["evidence"]  # the complaint is that line


PACE = {"v": 1, "type": "pace", "t": 19.5, "wpm": {"agent": 150.0, "customer": 120.0}}


def test_the_html_report_draws_the_users_fast_pace_and_window():
    paced = CALL[:-1] + [PACE, CALL[-1]]
    default = render_report({"id": "c1"}, paced)
    assert "fast: 170 words per minute" in default and "last 25 s of talk" in default
    mine = render_report({"id": "c1"}, paced, user_config())
    assert "fast: 140 words per minute" in mine and "last 20 s of talk" in mine
    assert "Honestly I am livid" in mine


@pytest.mark.slow  # three runs of calmline
def test_calmline_report_reads_the_config_file(tmp_path):
    store = Store(tmp_path / "data")
    recorder = CallRecorder(store, "cfgcall00001", "test", 1_700_000_000.0, "sam")
    recorder.write_events(events_from_dicts(CALL[:-1] + [PACE, CALL[-1]]))
    recorder.close()
    config = tmp_path / "config.toml"
    config.write_text('[cues.acknowledge]\nfrustration = ["livid"]\n[cues.let_them_talk]\nshare = 0.5\n'
                      '[cues.slow_down]\nmin_wpm = 140.0\n[scorecard.weights]\nlisten = 10.0\n')
    plain = calmline("report", "cfgcall", "--json", "--data-dir", tmp_path / "data")
    mine = calmline("--config", config, "report", "cfgcall", "--json", "--data-dir", tmp_path / "data")
    assert plain.returncode == 0 and mine.returncode == 0, plain.stderr + mine.stderr
    assert items(json.loads(plain.stdout)["scorecard"])["listen"]["met"]
    assert not items(json.loads(mine.stdout)["scorecard"])["listen"]["met"]
    events = CALL[:-1] + [PACE, CALL[-1]]
    assert json.loads(plain.stdout)["scorecard"]["score"] == score_call(events)["score"]
    assert json.loads(mine.stdout)["scorecard"]["score"] == score_call(events, load_config(config))["score"] \
        != score_call(events, user_config())["score"]  # the same cues' config, but Listen weighs 10 here
    html = tmp_path / "r.html"
    assert calmline("--config", config, "report", "cfgcall", "--out", html, "--data-dir", tmp_path / "data").returncode == 0
    assert "fast: 140 words per minute" in html.read_text()
