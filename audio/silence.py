"""Silencing stretches of a recording: in memory while it is held back from the encoder, and in a
file already written. Stretches are sample ranges; what they hide is the caller's business."""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf


class HoldBack:
    """Passes blocks of frames on to `sink` only once `hold` later frames have arrived, so that a
    stretch found a little after its audio can still be silenced before anything is written.
    Ranges that reach audio already passed on are kept in `late` (for `silence_file` afterwards)."""

    def __init__(self, sink: Callable[[np.ndarray], None], hold: int):
        self.sink, self.hold = sink, max(0, int(hold))
        self._blocks: deque[tuple[int, np.ndarray]] = deque()  # (first frame, block), oldest first
        self.received = 0  # frames taken so far
        self.released = 0  # frames passed on so far
        self.late: list[tuple[int, int]] = []

    def write(self, block: np.ndarray) -> None:
        self._blocks.append((self.received, block))
        self.received += len(block)
        while self._blocks and self.received - (self._blocks[0][0] + len(self._blocks[0][1])) >= self.hold:
            self._release()

    def silence(self, a: int, b: int) -> None:
        """Zero frames [a, b) in every channel: now if they are held, later (`late`) if already passed on."""
        a, b = max(0, int(a)), int(b)
        if b <= a:
            return
        if a < self.released:
            self.late.append((a, min(b, self.released)))
        for first, block in self._blocks:
            lo, hi = max(a, first), min(b, first + len(block))
            if lo < hi:
                block[lo - first : hi - first] = 0.0

    def flush(self) -> None:
        while self._blocks:
            self._release()

    def _release(self) -> None:
        first, block = self._blocks.popleft()
        self.released = first + len(block)
        self.sink(block)


def silence_file(path: Path, ranges: list[tuple[int, int]], block: int = 65536) -> None:
    """Rewrite an audio file with frames [a, b) of every range zeroed in every channel (same format,
    same mode: the copy is made beside it and replaces it only when complete)."""
    path = Path(path)
    ranges = sorted((max(0, int(a)), int(b)) for a, b in ranges if b > a)
    if not ranges:
        return
    tmp = path.with_name(path.name + ".silencing")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, os.stat(path).st_mode & 0o777)
    os.close(fd)
    try:
        with sf.SoundFile(str(path)) as src, sf.SoundFile(
                str(tmp), "w", samplerate=src.samplerate, channels=src.channels, format=src.format,
                subtype=src.subtype) as dst:
            pos = 0
            while len(data := src.read(block, dtype="float32", always_2d=True)):
                for a, b in ranges:
                    lo, hi = max(a, pos), min(b, pos + len(data))
                    if lo < hi:
                        data[lo - pos : hi - pos] = 0.0
                dst.write(data)
                pos += len(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
