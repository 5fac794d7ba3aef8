"""Sources produce frames: (channel label, start sample, float32 mono 16 kHz samples).

A file source pushes frames exactly as a live source does, only as fast as the consumer takes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .decode import read_audio
from .errors import AudioError


@dataclass(frozen=True)
class Frame:
    """One block of one channel's audio; `start` counts samples from the start of the stream."""

    channel: str
    start: int
    samples: np.ndarray


def channel_map(audio: np.ndarray, picks: dict[str, int], name: str) -> dict[str, np.ndarray]:
    """Pick labelled channels out of a (samples, channels) array, with a clear error when one is missing."""
    n = audio.shape[1]
    if n < 2 and len(set(picks.values())) > 1:
        raise AudioError(f"{name}: is mono (1 channel); give one file per party with --agent FILE --customer FILE")
    for label, index in picks.items():
        if not 0 <= index < n:
            raise AudioError(f"{name}: {label} channel {index} is out of range (the file has {n} channels: 0-{n - 1})")
    return {label: np.ascontiguousarray(audio[:, index]) for label, index in picks.items()}


def load_stereo(path: str | Path, picks: dict[str, int]) -> dict[str, np.ndarray]:
    """One file holding every channel, e.g. {'agent': 0, 'customer': 1}."""
    return channel_map(read_audio(path), picks, str(path))


def load_monos(paths: dict[str, str | Path]) -> dict[str, np.ndarray]:
    """One mono file per channel label; a multichannel file contributes its first channel only if it is mono."""
    out = {}
    for label, path in paths.items():
        audio = read_audio(path)
        if audio.shape[1] != 1:
            raise AudioError(f"{path}: has {audio.shape[1]} channels; --{label} needs a mono file")
        out[label] = audio[:, 0]
    length = max(len(x) for x in out.values())
    return {label: np.pad(x, (0, length - len(x))) for label, x in out.items()}


def array_frames(channels: dict[str, np.ndarray], block: int = 1600) -> Iterator[Frame]:
    """Cut channels into blocks of `block` samples, interleaved in time like a live capture."""
    length = max(len(x) for x in channels.values())
    for start in range(0, length, block):
        for label, samples in channels.items():
            chunk = samples[start : start + block]
            if len(chunk):
                yield Frame(label, start, chunk)


def paced(frames: Iterator[Frame], rate: int, clock=None) -> Iterator[Frame]:
    """Yield frames no faster than real time, as a live capture would deliver them."""
    import time

    clock = clock or time.monotonic
    t0 = clock()
    for frame in frames:
        due = t0 + (frame.start + len(frame.samples)) / rate
        delay = due - clock()
        if delay > 0:
            time.sleep(delay)
        yield frame


def duration_s(channels: dict[str, np.ndarray], rate: int) -> float:
    return max(len(x) for x in channels.values()) / rate


class AudioRing:
    """The last `seconds` of one channel, addressed by absolute sample index (for cutting out spurts)."""

    def __init__(self, seconds: float, rate: int):
        self._buf = np.zeros(int(seconds * rate), np.float32)
        self.end = 0  # absolute index one past the newest sample

    def append(self, samples: np.ndarray) -> None:
        n, size = len(samples), len(self._buf)
        if n >= size:
            self._buf[:] = samples[-size:]
            self._buf = np.roll(self._buf, (self.end + n) % size)
        else:
            i = self.end % size
            first = min(n, size - i)
            self._buf[i : i + first] = samples[:first]
            self._buf[: n - first] = samples[first:]
        self.end += n

    def __len__(self) -> int:
        return len(self._buf)

    def get(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) clipped to what is still held."""
        size = len(self._buf)
        start, stop = max(start, self.end - size, 0), min(stop, self.end)
        if stop <= start:
            return np.zeros(0, np.float32)
        idx = np.arange(start, stop) % size
        return self._buf[idx]
