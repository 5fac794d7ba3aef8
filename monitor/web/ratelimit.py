"""A token bucket: the hub's per-monitor rate limit and per-call tile pacing."""

from __future__ import annotations

import time


class TokenBucket:
    """`rate` tokens per second up to `burst`; `take(reserve)` keeps `reserve` tokens for more important messages."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self, reserve: float = 0.0) -> bool:
        self._refill()
        if self.tokens - 1.0 < reserve:
            return False
        self.tokens -= 1.0
        return True

    def wait_s(self) -> float:
        """Seconds until `take()` can succeed."""
        self._refill()
        return max(0.0, (1.0 - self.tokens) / self.rate)

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
