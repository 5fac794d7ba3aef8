"""Two-party calls synthesized with espeak-ng and numpy: each turn at a known time, level and rate."""

from __future__ import annotations

import functools
import io
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from audio import SAMPLE_RATE
from audio.decode import resample

VOICES = {"agent": "en-us", "customer": "en-gb"}


@dataclass
class Turn:
    party: str
    start: float
    text: str
    level_dbfs: float = -24.0
    wpm: int = 160

    def __post_init__(self):
        self.audio = speak(self.text, self.wpm, VOICES[self.party], self.level_dbfs)

    @property
    def end(self) -> float:
        return self.start + len(self.audio) / SAMPLE_RATE


def turns_in_sequence(*specs, first: float = 0.5, gap: float = 0.8) -> list[Turn]:
    """Turns one after another with `gap` seconds between them; a spec is (party, text[, level_dbfs])."""
    out, start = [], first
    for spec in specs:
        turn = Turn(spec[0], start, *spec[1:])
        out.append(turn)
        start = turn.end + gap
    return out


@functools.lru_cache(maxsize=256)
def _espeak(text: str, wpm: int, voice: str) -> np.ndarray:
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "--stdout", text],
                         check=True, capture_output=True).stdout
    data, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    audio = resample(data, rate)[:, 0]
    voiced = np.flatnonzero(np.abs(audio) > 0.01)
    return audio[voiced[0] : voiced[-1] + 1]


def speak(text: str, wpm: int = 160, voice: str = "en-us", level_dbfs: float = -24.0) -> np.ndarray:
    """espeak-ng speech trimmed to its first and last sound, scaled to an RMS of `level_dbfs` over voiced parts."""
    audio = _espeak(text, wpm, voice)
    frames = audio[: len(audio) // 512 * 512].reshape(-1, 512)
    power = (frames**2).mean(axis=1)
    active = power[power > power.max() * 1e-3]
    gain = 10 ** (level_dbfs / 20) / np.sqrt(active.mean())
    return (audio * gain).astype(np.float32)


def synth_call(turns: list[Turn], duration: float | None = None, bleed_db: float | None = None,
               noise_dbfs: float | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Channels {'agent', 'customer'}; `bleed_db` mixes each party into the other's channel that far down."""
    end = max([t.end for t in turns] + [duration or 0.0]) + 0.5
    n = int(end * SAMPLE_RATE) if duration is None else int(duration * SAMPLE_RATE)
    clean = {"agent": np.zeros(n, np.float32), "customer": np.zeros(n, np.float32)}
    for turn in turns:
        i = int(turn.start * SAMPLE_RATE)
        seg = turn.audio[: max(0, n - i)]
        clean[turn.party][i : i + len(seg)] += seg
    out = {k: v.copy() for k, v in clean.items()}
    if bleed_db is not None:
        g = 10 ** (bleed_db / 20)
        out["agent"] += g * clean["customer"]
        out["customer"] += g * clean["agent"]
    if noise_dbfs is not None:
        rng = np.random.default_rng(seed)
        for ch in out.values():
            ch += rng.normal(0, 10 ** (noise_dbfs / 20), n).astype(np.float32)
    return out


def write_call(path: Path, channels: dict[str, np.ndarray]) -> Path:
    sf.write(str(path), np.stack([channels["agent"], channels["customer"]], axis=1), SAMPLE_RATE, subtype="PCM_16")
    return path


BARGE_IN = "Let me stop you there, I can see the order on my screen."


def barge_in_call(complaint: str, after_s: float = 2.5) -> tuple[dict[str, np.ndarray], Turn]:
    """The agent greets, the customer complains, and `after_s` into the complaint the agent talks over
    them: one `wait_for_pause` cue. Channels (with -26 dB bleed) and the agent's barge-in turn."""
    greeting, said = turns_in_sequence(("agent", "Thank you for calling, how can I help you today?"),
                                       ("customer", complaint))
    barge_in = Turn("agent", said.start + after_s, BARGE_IN)
    return synth_call([greeting, said, barge_in], bleed_db=-26), barge_in
