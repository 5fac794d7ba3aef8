"""Words per minute over a sliding window of a party's most recent talk (not of the wall clock)."""

from __future__ import annotations

from collections import deque


class PaceMeter:
    """Pace over the last `window_s` of one party's talk, from final transcripts (words, talk seconds)."""

    def __init__(self, window_s: float):
        self.window_s = window_s
        self._recent: deque[tuple[int, float]] = deque()
        self.words = 0
        self.talk_s = 0.0

    def add(self, words: int, talk_s: float) -> None:
        self.words += words
        self.talk_s += talk_s
        self._recent.append((words, talk_s))
        while len(self._recent) > 1 and sum(t for _, t in self._recent) - self._recent[0][1] >= self.window_s:
            self._recent.popleft()

    @property
    def recent_talk_s(self) -> float:
        return sum(t for _, t in self._recent)

    @property
    def wpm(self) -> float | None:
        talk = self.recent_talk_s
        return 60.0 * sum(w for w, _ in self._recent) / talk if talk > 0 else None

    @property
    def overall_wpm(self) -> float | None:
        return 60.0 * self.words / self.talk_s if self.talk_s > 0 else None
