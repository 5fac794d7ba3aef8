"""One party's channel, frame by frame: level, voice activity (gated Silero), talk spurts and loudness."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from audio import HOP, SAMPLE_RATE
from audio.loudness import FLOOR_DB, Baseline, NoiseFloor, RollingPower, db, power
from audio.vad import SileroVad

from ..config import Config
from ..events import TalkEnd, TalkStart
from .view import PartyView

FRAME_S = HOP / SAMPLE_RATE
COUPLING_MIN = 8
"""Frames of the other party alone before this channel's bleed path counts as measured."""
RESET_AFTER_GATED = 16
"""Frames kept from the model in a row (0.5 s) after which its recurrent state starts afresh."""
BACKTRACK_S = 0.5
"""How far a spurt's start may reach back before Silero's onset, over audio that passed the gates."""
PRIME = 4
"""Frames before an onset the model is run on after a reset: Silero needs ~0.1 s to warm up."""


def frames_for(seconds: float) -> int:
    return max(1, round(seconds / FRAME_S))


@dataclass
class Spurt:
    start: int
    last_voiced: int
    power_sum: float = 0.0
    voiced: int = 0


class PartyTrack:
    """Turns one channel's frames into voiced flags, talk spurts and levels.

    A frame is voiced when it clears the energy gate (absolute and above the noise floor), is not
    bleed of the other party (far below the other channel and below this party's own voice), and
    Silero says speech (with hysteresis). Silero only runs on frames the cheap gates let through.
    """

    def __init__(self, name: str, config: Config, vad: SileroVad | None = None):
        self.name = name
        self.cfg = config.vad
        self.vad = vad or SileroVad()
        self.noise = NoiseFloor(rise_db=0.5 * FRAME_S)
        self.momentary = RollingPower(frames_for(config.loudness.levels_every_s))
        self.short = RollingPower(frames_for(config.loudness.short_term_s))
        self.baseline = Baseline(frames_for(config.loudness.baseline_tau_s))
        self.freeze_db = config.loudness.baseline_freeze_db
        self.coupling = Baseline(frames_for(3.0))
        self._min_speech = frames_for(self.cfg.min_speech_s)
        self._min_silence = frames_for(self.cfg.min_silence_s)
        self.in_speech = False
        self.voiced = False
        self.level_db = FLOOR_DB
        self.short_db: float | None = None  # the short-term level, once its window is full (it moves only on voice)
        self.was_voiced = False  # `voiced` of the previous tick: what the other party's bleed test reads
        self.spurt: Spurt | None = None
        self.last_start: float | None = None
        self.last_end: float | None = None
        self._onset: int | None = None
        self._run_start: int | None = None
        self._last_end_k = 0
        self._backtrack = frames_for(BACKTRACK_S)
        self._gated = 0
        self._recent: deque[np.ndarray] = deque(maxlen=PRIME)
        self.voiced_frames = 0
        self.voiced_power = 0.0

    # --- per frame -------------------------------------------------------------------------
    def level(self, frame: np.ndarray) -> float:
        """First pass of a tick: this frame's power, before any party decides on voice."""
        self.was_voiced = self.voiced
        self.power = power(frame)
        self.momentary.push(self.power)
        self.level_db = self.momentary.db  # read by both parties' bleed tests, the meters and the cue view
        self.frame_db = db(self.power)
        return self.frame_db

    def expect(self, frames: np.ndarray) -> None:
        """Before the ticks of a block (n x 512): the frames the energy gate will let through, up to a model
        restart, go to the model as one batch (audio/vad.py: same numbers, about half the CPU per frame).
        A frame then kept as bleed only costs the rest of the batch."""
        floor, gated, run = self.noise.value, self._gated, []
        for p in np.einsum("ij,ij->i", frames, frames) / frames.shape[1]:  # each frame's power, at once
            level = db(float(p))
            floor = level if floor is None or level < floor else floor + self.noise.rise
            passes = level >= max(self.cfg.min_level_dbfs, floor + self.cfg.noise_margin_db)
            if passes and gated >= RESET_AFTER_GATED:
                break
            run.append(passes)
            gated = 0 if passes else gated + 1
        self.vad.prefetch(frames[: len(run)], np.array(run, dtype=bool))

    def step(self, k: int, frame: np.ndarray, other: PartyTrack) -> list:
        """Second pass of a tick: decide voice for frame `k` and advance the talk-spurt state."""
        self.voiced = self._voice(k, frame, other)
        if self.voiced:
            self.voiced_frames += 1
            self.voiced_power += self.power
            self.short.push(self.power)
            if self.short.full:
                self.short_db = self.short.db
                if self.baseline.count == 0 or self.short_db < self.baseline.value + self.freeze_db:
                    self.baseline.push(self.short_db)
        return self._spurts(k)

    def _voice(self, k: int, frame: np.ndarray, other: PartyTrack) -> bool:
        floor = self.noise.push(self.frame_db)
        gate = self.frame_db >= max(self.cfg.min_level_dbfs, floor + self.cfg.noise_margin_db)
        if self._bleed(other) or not gate:
            self._run_start = None
            self.vad.context(frame)
            self._recent.append(frame)
            self._gated += 1
            self.in_speech = False
            return False
        if self._gated >= RESET_AFTER_GATED:  # start the model afresh, warmed up on the audio just before
            self.vad.reset()
            self.vad.prime(list(self._recent))
        self._gated = 0
        if self._run_start is None:
            self._run_start = k
        prob = self.vad(frame)
        self.in_speech = prob >= (self.cfg.neg_threshold if self.in_speech else self.cfg.threshold)
        return self.in_speech

    def _bleed(self, other: PartyTrack) -> bool:
        """Far below the other channel and no louder than the measured bleed path: the other party's voice.

        The bleed path (headset or line crosstalk) is learned while only the other party talks: this
        channel's level minus theirs. Own speech over theirs stands well above that. Both parties read
        the other's voice decision of the previous tick, so neither depends on which is stepped first.
        """
        diff = self.level_db - other.level_db
        if other.was_voiced and self.spurt is None:
            self.coupling.push(diff)
        if diff >= -self.cfg.bleed_margin_db:
            return False
        return self.coupling.count < COUPLING_MIN or diff < self.coupling.value + self.cfg.own_voice_margin_db

    def _spurts(self, k: int) -> list:
        spurt = self.spurt
        if spurt is None:
            if not self.voiced:
                self._onset = None
                return []
            if self._onset is None:
                self._onset = k
            if k - self._onset + 1 < self._min_speech:
                return []
            # Silero is slow to rise on soft onsets: begin at the run of voice-level audio that led here.
            start = max(min(self._onset, self._run_start), self._onset - self._backtrack, self._last_end_k)
            self.spurt = Spurt(start=start, last_voiced=k, power_sum=self.power, voiced=1)
            self._onset = None
            return [TalkStart(t=self.t(self.spurt.start), party=self.name)]
        if self.voiced:
            spurt.last_voiced = k
            spurt.power_sum += self.power
            spurt.voiced += 1
            return []
        if k - spurt.last_voiced < self._min_silence:
            return []
        return [self.close()]

    def close(self) -> TalkEnd:
        """End the open spurt at its last voiced frame."""
        spurt, self.spurt = self.spurt, None
        loud = db(spurt.power_sum / spurt.voiced) if spurt.voiced else FLOOR_DB
        self._last_end_k = spurt.last_voiced + 1
        self.last_start, self.last_end = self.t(spurt.start), self.t(self._last_end_k)
        return TalkEnd(t=self.last_end, party=self.name, start=self.t(spurt.start), loudness_dbfs=loud)

    # --- state read by the conversation and the cue rules ----------------------------------
    @staticmethod
    def t(k: int) -> float:
        return k * FRAME_S

    @property
    def talking(self) -> bool:
        return self.spurt is not None

    @property
    def spurt_start(self) -> float | None:
        return self.t(self.spurt.start) if self.spurt else None

    @property
    def last_voiced_end(self) -> float | None:
        return self.t(self.spurt.last_voiced + 1) if self.spurt else None

    @property
    def rise_db(self) -> float | None:
        """How far the short-term level stands above this party's own baseline, once both are known."""
        if self.short_db is None or self.baseline.count < 1:
            return None
        return self.short_db - self.baseline.value

    @property
    def baseline_s(self) -> float:
        return self.baseline.count * FRAME_S

    def view(self, wpm: float | None = None, recent_talk_s: float = 0.0) -> PartyView:
        """This party as the cue rules see it at this tick (pace comes from the speech stage)."""
        spurt, learned = self.spurt, self.baseline.count  # read once: this runs every tick
        return PartyView(self.level_db, self.short_db, self.baseline.value if learned else None, learned * FRAME_S,
                         self.voiced, spurt is not None, None if spurt is None else spurt.start * FRAME_S, wpm,
                         recent_talk_s)

    @property
    def talk_level_dbfs(self) -> float | None:
        return db(self.voiced_power / self.voiced_frames) if self.voiced_frames else None
