"""Levels in dBFS: per frame, rolling short-term, slow baselines and noise floors. O(1) per frame."""

from __future__ import annotations

import math
from collections import deque

import numpy as np

FLOOR_DB = -120.0
"""What digital silence reads as, so that levels stay finite."""


def power(samples: np.ndarray) -> float:
    """Mean square of a frame (full-scale sine = 0.5, full-scale square = 1.0)."""
    return float(np.dot(samples, samples)) / len(samples)


def db(p: float) -> float:
    """Power to dBFS (relative to a full-scale square wave, like RMS dBFS)."""
    return 10.0 * math.log10(p) if p > 1e-12 else FLOOR_DB


class RollingPower:
    """Power mean over the last `n` values pushed: the short-term level of a sliding window."""

    def __init__(self, n: int):
        self._values: deque[float] = deque(maxlen=max(1, n))
        self._sum = 0.0

    def push(self, p: float) -> None:
        if len(self._values) == self._values.maxlen:
            self._sum -= self._values[0]
        self._values.append(p)
        self._sum += p

    def clear(self) -> None:
        self._values.clear()
        self._sum = 0.0

    @property
    def full(self) -> bool:
        return len(self._values) == self._values.maxlen

    def __len__(self) -> int:
        return len(self._values)

    @property
    def db(self) -> float:
        return db(max(self._sum, 0.0) / len(self._values)) if self._values else FLOOR_DB


class Baseline:
    """A slow running mean in dB: plain average at first, then exponential with time constant `tau_frames`."""

    def __init__(self, tau_frames: float):
        self.tau = tau_frames
        self.count = 0
        self.value = FLOOR_DB

    def push(self, value_db: float) -> None:
        self.count += 1
        weight = max(1.0 / self.count, 1.0 / self.tau)
        self.value = value_db if self.count == 1 else self.value + weight * (value_db - self.value)


class NoiseFloor:
    """Minimum tracking: follows the level down at once, creeps up by `rise_db` per frame."""

    def __init__(self, rise_db: float):
        self.rise = rise_db
        self.value: float | None = None

    def push(self, level_db: float) -> float:
        if self.value is None or level_db < self.value:
            self.value = level_db
        else:
            self.value += self.rise
        return self.value
