"""Customer sentiment (monitor/analysis/sentiment.py), fast tier: words by VADER, voice by level and pitch
(espeak-ng at a raised pitch and level) through the real pipeline without the speech model, the quarters
of the report. tests/test_sentiment_speech.py runs the same calls with their words transcribed."""

from __future__ import annotations

import io
import subprocess
from dataclasses import dataclass

import numpy as np
import pytest
import soundfile as sf

from audio import SAMPLE_RATE
from audio.decode import resample
from monitor.analysis import sentiment
from monitor.analysis.pipeline import run_channels
from monitor.config import Config
from monitor.events import CallEnd, Sentiment, TalkEnd, Transcript, parse_event
from monitor.library.report import build_report
from synth import VOICES, Turn, synth_call


# ---- synthesized calls: a calm one, and one whose customer grows louder, higher and angrier ----

@dataclass
class Said(Turn):
    """A turn spoken at an espeak-ng pitch (0-99, 50 its default): a raised voice is louder and higher."""

    pitch: int = 50

    def __post_init__(self):
        wav = subprocess.run(["espeak-ng", "-v", VOICES[self.party], "-s", str(self.wpm), "-p", str(self.pitch),
                              "--stdout", self.text], check=True, capture_output=True).stdout
        data, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
        audio = resample(data, rate)[:, 0]
        voiced = np.flatnonzero(np.abs(audio) > 0.01)
        audio = audio[voiced[0]: voiced[-1] + 1]
        frames = audio[: len(audio) // 512 * 512].reshape(-1, 512)
        power = (frames ** 2).mean(axis=1)
        gain = 10 ** (self.level_dbfs / 20) / np.sqrt(power[power > power.max() * 1e-3].mean())
        self.audio = (audio * gain).astype(np.float32)


OPENING = [
    ("agent", "Thank you for calling, how can I help you today?", -24.0, 50),
    ("customer", "Hi, I am calling about my order, it was supposed to arrive yesterday.", -26.0, 50),
    ("agent", "I can look into that for you. Could you tell me the order number?", -24.0, 50),
    ("customer", "Yes, it is the one from the twelfth of March, for a blue kettle.", -26.0, 50),
]
CALM = OPENING + [
    ("agent", "Thanks. I see it here, it is out for delivery and will arrive this afternoon.", -24.0, 50),
    ("customer", "Oh good, that is great news. Thank you for checking.", -26.0, 50),
    ("agent", "You are welcome. Is there anything else I can help with?", -24.0, 50),
    ("customer", "No, that is all. Thanks a lot, you have been very helpful.", -26.0, 50),
]
ESCALATING = OPENING + [
    ("agent", "I am afraid there is nothing I can do, it is our policy to wait five days.", -24.0, 50),
    ("customer", "Five days? That is not good enough, nobody told me anything about a delay.", -21.0, 65),
    ("agent", "You will have to call the courier about it.", -24.0, 50),
    ("customer", "This is ridiculous! This is the third time I have called and it is still not fixed!", -16.0, 80),
    ("agent", "As I said, that is the policy.", -24.0, 50),
    ("customer", "I am furious, this is completely unacceptable! I want my money back now!", -13.0, 92),
]


def synth(script) -> dict[str, np.ndarray]:
    turns, start = [], 0.5
    for party, text, level, pitch in script:
        turn = Said(party, start, text, level, pitch=pitch)
        turns.append(turn)
        start = turn.end + 0.8
    return synth_call(turns, bleed_db=-30)


@pytest.fixture(scope="module")
def calls() -> dict[str, dict[str, np.ndarray]]:
    return {"calm": synth(CALM), "escalating": synth(ESCALATING)}


def no_words() -> Config:
    config = Config()
    config.transcription.enabled = False
    return config


# ---- words ----

def test_words_are_scored_by_vader_from_its_packaged_lexicon():
    from importlib.resources import files

    assert (files("vaderSentiment") / "vader_lexicon.txt").is_file()  # shipped in the wheel: nothing fetched
    assert sentiment.words_score("Okay, that works. Thank you so much.") > 0.4
    assert sentiment.words_score("This is ridiculous, it is completely unacceptable!") < -0.4
    assert sentiment.words_score("The order number is on the invoice.") == pytest.approx(0.0, abs=0.1)


def test_redaction_placeholders_are_not_words():
    assert sentiment.words_score("[number]") is None
    assert sentiment.words_score("  [card] [email] ") is None
    assert sentiment.words_score("my card is [card]") == sentiment.words_score("my card is")


# ---- voice ----

def test_pitch_tracking_hears_espeaks_pitch_rise():
    low = Said("customer", 0.0, "I have been waiting for my refund for three weeks now", pitch=50).audio
    high = Said("customer", 0.0, "I have been waiting for my refund for three weeks now", pitch=90).audio
    f_low, f_high = sentiment.median_pitch(low), sentiment.median_pitch(high)
    assert 70 < f_low < 200
    assert 12 * np.log2(f_high / f_low) > 4  # semitones
    assert sentiment.median_pitch(np.zeros(400, np.float32)) is None  # too short to track


def test_arousal_is_zero_for_everyday_variation_and_full_at_the_configured_rise():
    assert sentiment.arousal(1.0, 1.0, 9.0, 4.0) == 0.0
    assert sentiment.arousal(9.0, 4.0, 9.0, 4.0) == 1.0
    assert sentiment.arousal(0.0, 4.0, 9.0, 4.0) == 0.25  # higher, no louder: half its pitch part
    assert sentiment.arousal(-6.0, -3.0, 9.0, 4.0) == 0.0  # quieter and lower is not upset
    assert sentiment.arousal(9.0, None, 9.0, 4.0) == 1.0  # level alone when there is no pitch


def test_combining_weights_words_and_voice_and_stays_in_range():
    assert sentiment.combine(None, None, 0.6) is None
    assert sentiment.combine(0.5, None, 0.6) == 0.5
    assert sentiment.combine(None, -0.5, 0.6) == -0.5
    assert sentiment.combine(-1.0, -1.0, 0.6) == -1.0
    assert sentiment.combine(0.5, -0.5, 0.6) == pytest.approx(0.1)


def run(channels, config=None):
    return run_channels(channels, config or no_words(), transcribe=False)


def test_escalating_voice_trends_lower_than_calm(calls):
    """Without words: the escalating customer's louder, higher voice pulls the trend down; the calm
    customer's stays near 0."""
    out = {}
    for name, channels in calls.items():
        events = run(channels)
        scored = [e for e in events if isinstance(e, Sentiment)]
        assert scored and all(e.party == "customer" and e.from_words is None for e in scored)
        assert all(-1.0 <= e.trend <= 0.0 and -1.0 <= e.recent <= 0.0 for e in scored if e.trend is not None)
        out[name] = scored
    calm_end, angry_end = out["calm"][-1].trend, out["escalating"][-1].trend
    assert calm_end > -0.15, calm_end
    assert angry_end < -0.4, angry_end
    angry = [e.trend for e in out["escalating"] if e.trend is not None]
    assert angry[-1] < angry[0]


def test_events_are_rate_limited_and_parse_back(calls):
    config = no_words()
    config.sentiment.every_s = 10.0
    events = run(calls["escalating"], config)
    times = [e.t for e in events if isinstance(e, Sentiment)]
    ends = [e for e in events if isinstance(e, TalkEnd) and e.party == "customer"]
    assert len(times) < len(ends)
    assert all(b - a >= 10.0 for a, b in zip(times, times[1:-1]))  # the last one closes the call
    for e in events:
        if isinstance(e, Sentiment):
            assert parse_event(e.to_dict()).to_dict() == e.to_dict()
    with pytest.raises(ValueError, match="sentiment.trend must be between -1 and 1"):
        parse_event({**events[-2].to_dict(), "type": "sentiment", "party": "customer", "trend": 1.5})


def test_disabled_gives_no_events(calls):
    config = no_words()
    config.sentiment.enabled = False
    assert not [e for e in run(calls["calm"], config) if isinstance(e, Sentiment)]


def test_without_pitch_the_level_alone_still_hears_the_escalation(calls):
    config = no_words()
    config.sentiment.pitch = False
    scored = [e for e in run(calls["escalating"], config) if isinstance(e, Sentiment)]
    assert scored[-1].trend < -0.4


# ---- after the call: four quarters ----

def test_quarters_in_the_report(calls):
    for name, channels in calls.items():
        report = build_report(run(channels))
        q = report["sentiment"]["customer"]
        assert len(q) == 4 and all(-1.0 <= v <= 1.0 for v in q)
        if name == "escalating":
            assert q[3] < q[0] - 0.3, q
        else:
            assert min(q) > -0.2, q


def test_quarters_weigh_talk_and_carry_over_silent_quarters():
    events = [Sentiment(t=5, party="customer", trend=0.5, recent=0.5, talk_s=1.0),
              Sentiment(t=20, party="customer", trend=-0.2, recent=-0.5, talk_s=3.0),
              Sentiment(t=22, party="customer", trend=-0.1, recent=0.5, talk_s=1.0),
              CallEnd(t=100.0)]
    assert sentiment.quarters(events, 100.0) == [-0.1, -0.1, -0.1, -0.1]  # (0.5 - 1.5 + 0.5) / 5 s
    events[1].t = 30.0
    assert sentiment.quarters(events, 100.0) == [0.5, -0.5, -0.5, -0.5]
    assert sentiment.quarters([CallEnd(t=10.0)], 10.0) == [0.0, 0.0, 0.0, 0.0]


def test_a_call_recorded_without_sentiment_events_is_scored_from_its_words():
    events = [Transcript(t=2, party="customer", start=0.5, end=2, text="Thank you, that is wonderful."),
              Transcript(t=8, party="agent", start=6, end=8, text="This is terrible."),
              Transcript(t=9.5, party="customer", start=8.5, end=9.5, text="This is awful and unacceptable."),
              CallEnd(t=10.0)]
    q = sentiment.quarters(events, 10.0)
    assert q[0] > 0.4 and q[1] == q[0] and q[2] == q[0] and q[3] < -0.4


def test_html_report_shows_the_quarters_and_the_trend(calls):
    import re

    from monitor.library.report_html import render_report

    events = run(calls["escalating"])
    page = render_report({}, [e.to_dict() for e in events])
    section = page[page.index('<section class="sentiment">'):]
    section = section[: section.index("</section>")]
    values = [float(v) for v in re.findall(r'data-value="([-0-9.]+)"', section)]
    assert values == build_report(events)["sentiment"]["customer"]
    assert "upset" in section and 'class="sentiment-line"' in section


def test_terminal_summary_has_the_quarters():
    from monitor.library.report import format_summary

    events = [Sentiment(t=1, party="customer", trend=0.3, recent=0.3, talk_s=1.0),
              Sentiment(t=9, party="customer", trend=-0.4, recent=-0.7, talk_s=2.0), CallEnd(t=10.0)]
    assert "Customer sentiment by quarter (-1 upset .. +1 pleased): +0.30  +0.30  +0.30  -0.70" \
        in format_summary(build_report(events)).splitlines()
