"""Sources produce frames: (channel label, start sample, float32 mono 16 kHz samples).

A file source pushes frames exactly as a live source does, only as fast as the consumer takes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import SAMPLE_RATE
from .decode import AudioInfo, check_samples, probe, stream_audio
from .errors import AudioError


@dataclass(frozen=True)
class Frame:
    """One block of one channel's audio; `start` counts samples from the start of the stream."""

    channel: str
    start: int
    samples: np.ndarray


def channel_map(audio: np.ndarray, picks: dict[str, int], name: str) -> dict[str, np.ndarray]:
    """Pick labelled channels out of a (samples, channels) array, with a clear error when one is missing."""
    _check_picks(audio.shape[1], picks, name)
    return {label: np.ascontiguousarray(audio[:, index]) for label, index in picks.items()}


def _check_picks(n: int, picks: dict[str, int], name: str) -> None:
    if n < 2 and len(set(picks.values())) > 1:
        raise AudioError(f"{name}: is mono (1 channel); give one file per party with --agent FILE --customer FILE")
    for label, index in picks.items():
        if not 0 <= index < n:
            raise AudioError(f"{name}: {label} channel {index} is out of range (the file has {n} channels: 0-{n - 1})")


@dataclass
class CallFile:
    """A call on disk opened for streaming: which file and channel carries each label, checked up front.

    `frames()` decodes from the start each time it is called (a looping demo re-opens the file) and
    holds only a few blocks at once. Problems with the samples themselves (NaN, absurd levels, a file
    cut short) are told to `warn` once each, as one line.
    """

    name: str
    inputs: dict[str, tuple[AudioInfo, int]]  # label -> (file, channel index in it)
    warn: Callable[[str], None] | None = None

    def __post_init__(self):
        self._said: set[str] = set()
        self._gain: dict[Path, float] = {}
        for info in {info.path: info for info, _ in self.inputs.values()}.values():
            check = check_samples(info)
            self._gain[info.path] = check.gain
            if check.nonfinite:
                self._warn(f"{info.path}: {check.nonfinite} NaN or infinite samples read as silence")
            if check.peak > 1.0:
                self._warn(f"{info.path}: samples reach {check.peak:.3g} x full scale; scaled down to full scale")

    @property
    def duration_s(self) -> float:
        """The call's length as the headers give it (for progress), before anything is decoded."""
        return max(info.duration_s for info, _ in self.inputs.values())

    def frames(self, block: int = 1600) -> Iterator[Frame]:
        """Frames of every label, interleaved in time as array_frames() cuts them; a shorter file is
        padded with silence to the longest."""
        streams: dict[Path, tuple[Iterator[np.ndarray], dict[str, int]]] = {}
        for label, (info, channel) in self.inputs.items():
            if info.path not in streams:
                streams[info.path] = (info, {})
            streams[info.path][1][label] = channel
        sources = []
        for info, labels in streams.values():
            picks = sorted(set(labels.values()))
            columns = {label: picks.index(ch) for label, ch in labels.items()}
            sources.append((stream_audio(info, picks, self._gain[info.path], self._warn), columns))
        held = {label: [] for label in self.inputs}
        count = {label: 0 for label in self.inputs}
        got = {label: 0 for label in self.inputs}
        live = list(sources)
        start = 0
        while live:
            for source in list(live):
                blocks, columns = source
                data = next(blocks, None)
                if data is None:
                    live.remove(source)
                    continue
                for label, col in columns.items():
                    held[label].append(data[:, col])
                    count[label] += len(data)
                    got[label] += len(data)
            done = not live
            length = max(got.values())
            while True:
                want = min(block, length - start) if done else block
                if want <= 0 or (not done and any(count[label] < want and _running(label, live) for label in held)):
                    break
                chunks = {label: _take(held, count, label, want) for label in held}
                for label, chunk in chunks.items():
                    yield Frame(label, start, chunk)
                start += want

    def _warn(self, message: str) -> None:
        if message not in self._said:
            self._said.add(message)
            if self.warn:
                self.warn(message)


def _running(label: str, live: list) -> bool:
    return any(label in columns for _, columns in live)


def _take(held: dict, count: dict, label: str, n: int) -> np.ndarray:
    """The next n samples of a label, padded with silence when its file has ended."""
    chunks = held[label]
    data = chunks[0] if len(chunks) == 1 else np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    out, rest = data[:n], data[n:]
    held[label] = [rest] if len(rest) else []
    count[label] = len(rest)
    return out if len(out) == n else np.pad(out, (0, n - len(out)))


def open_stereo(path: str | Path, picks: dict[str, int], warn: Callable[[str], None] | None = None) -> CallFile:
    """One file holding every channel, e.g. {'agent': 0, 'customer': 1}."""
    info = probe(path)
    _check_picks(info.channels, picks, str(path))
    return CallFile(str(path), {label: (info, index) for label, index in picks.items()}, warn)


def open_monos(paths: dict[str, str | Path], warn: Callable[[str], None] | None = None) -> CallFile:
    """One mono file per label."""
    inputs = {}
    for label, path in paths.items():
        info = probe(path)
        if info.channels != 1:
            raise AudioError(f"{path}: has {info.channels} channels; --{label} needs a mono file")
        inputs[label] = (info, 0)
    return CallFile(" + ".join(str(p) for p in paths.values()), inputs, warn)


def load_stereo(path: str | Path, picks: dict[str, int]) -> dict[str, np.ndarray]:
    """A whole (short) stereo file as arrays; calls are streamed with open_stereo."""
    return _whole(open_stereo(path, picks))


def load_monos(paths: dict[str, str | Path]) -> dict[str, np.ndarray]:
    """Whole (short) mono files as arrays, padded to the longest; calls are streamed with open_monos."""
    return _whole(open_monos(paths))


def _whole(call: CallFile) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {label: [] for label in call.inputs}
    for frame in call.frames(SAMPLE_RATE):
        parts[frame.channel].append(frame.samples)
    return {label: np.concatenate(chunks) for label, chunks in parts.items()}


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
