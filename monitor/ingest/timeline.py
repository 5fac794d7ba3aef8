"""One call's audio in audio time: telephony samples at their positions in, 16 kHz frames out.

Every protocol says where its audio belongs (AudioHook's position, Twilio's timestamp, a PCM
stream's byte count). A gap before a block is silence of the gap's length, so what follows keeps its
place in the call; a block that overlaps what was already placed loses its late part. Each party is
resampled to 16 kHz on its own, so the parties may arrive separately (Twilio's two tracks), and a
party that falls more than `max_skew_s` behind the other is filled with silence, which bounds what
the pipeline has to buffer while it waits for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from audio import SAMPLE_RATE
from audio.g711 import Upsampler
from audio.sources import Frame

GAP_CHUNK_S = 1.0
"""Silence is made and resampled a second at a time, so a long gap costs no more memory than a short one."""


@dataclass
class TimelineStats:
    """What the timeline had to fix, per call: silence it inserted and late samples it dropped (at the input rate)."""

    gap_samples: int = 0
    dropped_samples: int = 0


class CallTimeline:
    """Places each party's samples at their position; yields contiguous 16 kHz frames per party."""

    def __init__(self, rate: int, parties: tuple[str, ...] = ("agent", "customer"), max_skew_s: float = 2.0,
                 slack: int = 0):
        self.rate = rate
        self.parties = parties
        self.max_skew = int(max_skew_s * rate)
        self.slack = slack
        """A block starting within `slack` samples of where the last one ended is contiguous (timestamp jitter)."""
        self.end = {p: 0 for p in parties}            # next input sample per party
        self.out = {p: 0 for p in parties}            # 16 kHz samples emitted per party
        self._up = {p: Upsampler(rate, 1) for p in parties}
        self.stats = TimelineStats()

    @property
    def seconds(self) -> float:
        """Audio time every party has reached."""
        return min(self.end.values()) / self.rate

    def add(self, party: str, start: int, samples: np.ndarray) -> Iterator[Frame]:
        """`samples` (mono float32 at `rate`) of `party`, starting `start` samples into the call."""
        samples = np.asarray(samples, np.float32).reshape(-1)
        end = self.end[party]
        if abs(start - end) <= self.slack:
            start = end
        if start > end:
            yield from self._silence(party, start - end)
        elif start < end:
            late = min(end - start, len(samples))
            self.stats.dropped_samples += late
            samples = samples[late:]
        if len(samples):
            yield from self._emit(party, samples)
            yield from self._keep_up(party)

    def add_block(self, start: int, block: np.ndarray, channels: list[str]) -> Iterator[Frame]:
        """A (frames, channels) block whose channels carry `channels` (party names), at `start`."""
        for i, party in enumerate(channels):
            yield from self.add(party, start, block[:, i])

    def skip_to(self, position: int) -> Iterator[Frame]:
        """Every party's audio is silent up to `position` (a pause, or time lost before a reconnect),
        a chunk of each party in turn."""
        chunk = int(GAP_CHUNK_S * self.rate)
        while any(self.end[p] < position for p in self.parties):
            for party in self.parties:
                n = min(chunk, position - self.end[party])
                if n > 0:
                    self.stats.gap_samples += n
                    yield from self._emit(party, np.zeros(n, np.float32))

    def finish(self) -> Iterator[Frame]:
        """Bring every party to the same end and flush the resamplers."""
        yield from self.skip_to(max(self.end.values()))
        for party in self.parties:
            tail = self._up[party].finish()[:, 0]
            if len(tail):
                yield Frame(party, self.out[party], tail)
                self.out[party] += len(tail)

    def _keep_up(self, party: str) -> Iterator[Frame]:
        for other in self.parties:
            behind = self.end[party] - self.max_skew - self.end[other]
            if other != party and behind > 0:
                self.stats.gap_samples += behind
                yield from self._emit(other, np.zeros(behind, np.float32))

    def _silence(self, party: str, n: int) -> Iterator[Frame]:
        """A gap in one party's audio, a chunk at a time, the others kept within `max_skew` after each."""
        self.stats.gap_samples += n
        chunk = int(GAP_CHUNK_S * self.rate)
        while n > 0:
            take = min(n, chunk)
            yield from self._emit(party, np.zeros(take, np.float32))
            yield from self._keep_up(party)
            n -= take

    def _emit(self, party: str, samples: np.ndarray) -> Iterator[Frame]:
        self.end[party] += len(samples)
        out = self._up[party].push(samples.reshape(-1, 1))[:, 0] if self.rate != SAMPLE_RATE else samples
        if len(out):
            yield Frame(party, self.out[party], np.ascontiguousarray(out))
            self.out[party] += len(out)
