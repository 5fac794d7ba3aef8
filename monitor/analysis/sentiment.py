"""The customer's sentiment, live and per quarter of the call, from their words and their voice.

Coaching tools lead with this signal (is the customer getting calmer or angrier?), and it needs no
model beyond what ships in packages:

- Words: VADER (vaderSentiment, its lexicon inside the wheel, nothing fetched) scores each final
  customer transcript in [-1, 1] (its `compound`); the redactor's placeholders ([card], ...) are left out.
- Voice: each closed customer talk spurt's loudness and median pitch (librosa.yin over the spurt, loud
  frames only) against the customer's own baseline: the medians of their earlier spurts, which a raised
  spurt does not join, so that shouting never becomes the new normal. A rise of `level_full_db` in level
  and of `pitch_full_st` semitones in pitch each count half of "fully raised" (`arousal`: small rises
  are everyday variation; a higher voice that is no louder counts half its pitch). The voice part is
  minus that arousal, in [-1, 0]: a calm voice says nothing good or bad, a raised one says upset.
  Nothing counts until `baseline_s` of the customer's talk has set the baseline.
- Together: each part is a trend over the customer's talk time (every second of new talk moves it
  toward the new score by 1 - exp(-1 / trend_s)), and the value is
  `words_weight * words + (1 - words_weight) * voice` when both are known, else the one known, held to
  [-1, 1]. Silence leaves the value where it was.

The pipeline gets a `sentiment` event at most every `every_s` of audio while new talk came in. Per
quarter of the call (`quarters`), the report averages each event's `recent` score (the talk since the
previous event, weighted by its `talk_s`); a quarter the customer did not speak in keeps the previous
quarter's value (0, neutral, before the customer first speaks).

librosa is loaded on first use (about 2 s, 250 MB); a live pipeline loads it on a thread, and until it
is there spurts count by their level alone.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass

import numpy as np

from audio import SAMPLE_RATE
from audio.sources import AudioRing

from ..events import Event, Sentiment, TalkEnd, Transcript

PARTY = "customer"
RING_S = 30.0
PITCH_MAX_S = 12.0
"""At most the last this many seconds of a spurt are pitch-tracked (a long rant costs no more than this)."""
PITCH_MIN_S = 0.3
FMIN, FMAX = 70.0, 400.0
FRAME, HOP = 1024, 256
"""yin's frame (64 ms, room for two periods of FMIN) and hop (16 ms) at 16 kHz."""
LOUD_FRAMES_DB = 20.0
"""Frames more than this below the spurt's loudest frame (consonants, tails) are not pitch-tracked."""
LEVEL_DEAD_DB, PITCH_DEAD_ST = 1.5, 1.5
"""Rises up to these are everyday variation, not arousal (real speakers' spurts differ by 1-3 semitones)."""
FREEZE_AROUSAL = 0.25
"""A spurt at least this raised (see `arousal`) does not join the baseline."""
PLACEHOLDER = re.compile(r"\[[a-z_]+\]")


@dataclass
class Spurt:
    """One closed customer talk spurt's voice: its level (dBFS), median pitch (Hz, None if not tracked)."""

    seconds: float
    level_db: float
    f0: float | None


# ---- words ----

_analyzer = None
_analyzer_lock = threading.Lock()


def words_score(text: str) -> float | None:
    """VADER's compound score of what the customer said, in [-1, 1]; None for no words."""
    global _analyzer
    text = PLACEHOLDER.sub(" ", text).strip()
    if not re.search(r"[A-Za-z]", text):
        return None
    with _analyzer_lock:
        if _analyzer is None:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

            _analyzer = SentimentIntensityAnalyzer()
        return float(_analyzer.polarity_scores(text)["compound"])


# ---- voice ----

_librosa = None
_librosa_lock = threading.Lock()


def _load_librosa():
    """librosa with yin compiled (numba), once per process."""
    global _librosa
    with _librosa_lock:
        if _librosa is None:
            import librosa

            librosa.yin(np.random.default_rng(0).normal(0, 0.1, 4 * FRAME).astype(np.float32),
                        fmin=FMIN, fmax=FMAX, sr=SAMPLE_RATE, frame_length=FRAME, hop_length=HOP)
            _librosa = librosa
    return _librosa


def load_in_background() -> None:
    """Start loading librosa on a thread (a live pipeline must not stall on it)."""
    if _librosa is None:
        threading.Thread(target=_load_librosa, name="calmline-librosa", daemon=True).start()


def median_pitch(samples: np.ndarray, wait: bool = True) -> float | None:
    """The median F0 (Hz) over the loud frames of one spurt, by librosa.yin; None when too short, too few
    frames are voiced, or (with `wait` false) librosa is still loading."""
    if len(samples) < max(FRAME, PITCH_MIN_S * SAMPLE_RATE):
        return None
    librosa = _load_librosa() if wait else _librosa
    if librosa is None:
        return None
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    f0 = librosa.yin(samples, fmin=FMIN, fmax=FMAX, sr=SAMPLE_RATE, frame_length=FRAME, hop_length=HOP,
                     center=True)
    padded = np.pad(samples, FRAME // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, FRAME)[::HOP][: len(f0)]
    power = (frames.astype(np.float64) ** 2).mean(axis=1)
    loud = 10 * np.log10(power + 1e-12) >= 10 * np.log10(power.max() + 1e-12) - LOUD_FRAMES_DB
    ok = loud & (f0 > FMIN * 1.05) & (f0 < FMAX * 0.95)
    if ok.sum() < 5:
        return None
    return float(np.median(f0[ok]))


class VoiceBaseline:
    """The customer's usual level and pitch: medians of their earlier spurts (weighted by length), which a
    raised spurt does not join once `baseline_s` of talk has set them."""

    def __init__(self, baseline_s: float):
        self.baseline_s = baseline_s
        self.levels: list[tuple[float, float]] = []  # (value, seconds)
        self.pitches: list[tuple[float, float]] = []
        self.seconds = 0.0

    @property
    def ready(self) -> bool:
        return self.seconds >= self.baseline_s

    def rise(self, spurt: Spurt) -> tuple[float, float | None]:
        """How far the spurt stands above the baseline: dB and semitones (None without pitch)."""
        level = spurt.level_db - _median(self.levels)
        pitch = None
        if spurt.f0 and self.pitches:
            pitch = 12 * math.log2(spurt.f0 / _median(self.pitches))
        return level, pitch

    def add(self, spurt: Spurt, arousal: float = 0.0) -> None:
        if self.ready and arousal >= FREEZE_AROUSAL:
            return
        self.seconds += spurt.seconds
        self.levels.append((spurt.level_db, spurt.seconds))
        if spurt.f0:
            self.pitches.append((spurt.f0, spurt.seconds))
        del self.levels[:-200], self.pitches[:-200]


def _median(items: list[tuple[float, float]]) -> float:
    """The weighted median of (value, weight) pairs."""
    values = sorted(items)
    half = sum(w for _, w in values) / 2
    run = 0.0
    for value, weight in values:
        run += weight
        if run >= half:
            return value
    return values[-1][0]


def arousal(level_rise_db: float, pitch_rise_st: float | None, level_full_db: float, pitch_full_st: float) -> float:
    """How raised a voice is, 0..1: half from level, half from pitch (level alone counts double without
    pitch). A higher voice that is no louder (a question, surprise) counts half of its pitch part: the pitch
    part counts in full once the level part reaches half."""
    level = _ramp(level_rise_db, LEVEL_DEAD_DB, level_full_db)
    if pitch_rise_st is None:
        return level
    pitch = _ramp(pitch_rise_st, PITCH_DEAD_ST, pitch_full_st) * (0.5 + 0.5 * min(1.0, 2 * level))
    return 0.5 * level + 0.5 * pitch


def _ramp(x: float, dead: float, full: float) -> float:
    return min(max((x - dead) / max(full - dead, 1e-6), 0.0), 1.0)


# ---- the live tracker ----

class Trend:
    """A score followed over talk time: each second of new talk moves it toward that talk's score by
    1 - exp(-1 / tau)."""

    def __init__(self, tau_s: float):
        self.tau_s = tau_s
        self.value: float | None = None

    def add(self, score: float, seconds: float) -> None:
        if self.value is None:
            self.value = score
        else:
            self.value += (score - self.value) * (1 - math.exp(-max(seconds, 0.0) / self.tau_s))


def combine(words: float | None, voice: float | None, words_weight: float) -> float | None:
    """The two parts as one value in [-1, 1] (module docstring); None when neither is known."""
    if words is None and voice is None:
        return None
    if words is None:
        value = voice
    elif voice is None:
        value = words
    else:
        value = words_weight * words + (1 - words_weight) * voice
    return min(max(value, -1.0), 1.0)


class SentimentTracker:
    """Per call: the customer's frames, spurts and final transcripts in, `sentiment` events out."""

    def __init__(self, cfg, live: bool = False):
        self.cfg = cfg
        self.live = live
        self.ring = AudioRing(RING_S, SAMPLE_RATE)
        self.baseline = VoiceBaseline(cfg.baseline_s)
        self.words = Trend(cfg.trend_s)
        self.voice = Trend(cfg.trend_s)
        self._words_until = 0.0  # end of the transcript already counted (a longer final of a phrase replaces it)
        self._new = {"words": [0.0, 0.0], "voice": [0.0, 0.0]}  # [score * seconds, seconds] since the last event
        self._last_at: float | None = None
        if live:
            load_in_background()

    def append(self, samples: np.ndarray) -> None:
        """The customer's audio of one tick (pitch is read back from here when a spurt closes)."""
        self.ring.append(samples)

    def step(self, now: float, events: list[Event], final: bool = False) -> list[Sentiment]:
        """Take this tick's events; a `sentiment` event when new talk came in and `every_s` has passed
        (or at once with `final`, the end of the call)."""
        for event in events:
            if isinstance(event, TalkEnd) and event.party == PARTY:
                self._spurt(event)
            elif isinstance(event, Transcript) and event.party == PARTY and event.final:
                self._final(event)
        talk = max(self._new["words"][1], self._new["voice"][1])
        due = self._last_at is None or now - self._last_at >= self.cfg.every_s
        if talk <= 0 or not (due or final):
            return []
        return [self._event(now, talk)]

    def _spurt(self, event: TalkEnd) -> None:
        seconds = event.t - event.start
        if seconds <= 0:
            return
        end = int(event.t * SAMPLE_RATE)
        start = max(int(event.start * SAMPLE_RATE), end - int(PITCH_MAX_S * SAMPLE_RATE))
        f0 = median_pitch(self.ring.get(start, end), wait=not self.live) if self.cfg.pitch else None
        spurt = Spurt(seconds, event.loudness_dbfs, f0)
        raised = 0.0
        if self.baseline.ready:
            raised = arousal(*self.baseline.rise(spurt), self.cfg.level_full_db, self.cfg.pitch_full_st)
            self.voice.add(-raised, seconds)
            self._new["voice"][0] -= raised * seconds
            self._new["voice"][1] += seconds
        self.baseline.add(spurt, raised)

    def _final(self, event: Transcript) -> None:
        score = words_score(event.text)
        seconds = max(0.0, event.end - max(event.start, self._words_until))
        self._words_until = max(self._words_until, event.end)
        if score is None:
            return
        seconds = max(seconds, 0.2)  # a phrase heard again, longer, still counts its (new) score
        self.words.add(score, seconds)
        self._new["words"][0] += score * seconds
        self._new["words"][1] += seconds

    def _event(self, now: float, talk: float) -> Sentiment:
        parts = {k: (s / n if n > 0 else None) for k, (s, n) in self._new.items()}
        recent = combine(parts["words"], parts["voice"], self.cfg.words_weight)
        trend = combine(self.words.value, self.voice.value, self.cfg.words_weight)
        self._new = {"words": [0.0, 0.0], "voice": [0.0, 0.0]}
        self._last_at = now
        return Sentiment(t=now, party=PARTY, trend=_r(trend), recent=_r(recent), talk_s=round(talk, 2),
                         from_words=_r(self.words.value), from_voice=_r(self.voice.value))


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# ---- after the call ----

def quarters(events: list[Event], duration: float) -> list[float]:
    """The customer's sentiment in each quarter of the call, four numbers in [-1, 1] (module docstring).
    A call recorded without `sentiment` events (an older one) is scored from its final transcript alone."""
    sums = [[0.0, 0.0] for _ in range(4)]
    duration = max(duration, max((e.t for e in events), default=0.0), 1e-6)

    def add(t: float, score: float, seconds: float) -> None:
        q = min(max(int(4 * t / duration), 0), 3)
        sums[q][0] += score * seconds
        sums[q][1] += seconds

    scored = [e for e in events if isinstance(e, Sentiment) and e.party == PARTY]
    if scored:
        for e in scored:
            if e.talk_s > 0:
                add(e.t, e.recent, e.talk_s)
    else:
        from ..library.report import final_lines

        for line in final_lines(events):
            score = words_score(line.text) if line.party == PARTY else None
            if score is not None:
                add(line.end, score, max(line.end - line.start, 0.2))
    out, last = [], 0.0
    for total, seconds in sums:
        last = total / seconds if seconds > 0 else last
        out.append(round(min(max(last, -1.0), 1.0), 3))
    return out
