"""Words per minute over a sliding window of a party's most recent talk (not of the wall clock)."""

from __future__ import annotations

from collections import deque


class PaceMeter:
    """Pace over the last `window_s` of one party's talk, from final transcripts (words, talk seconds)."""

    def __init__(self, window_s: float):
        self.window_s = window_s
        self._recent: deque[tuple[float, int, float]] = deque()  # (start, words, talk seconds)
        self.words = 0
        self.talk_s = 0.0

    def add(self, start: float, words: int, talk_s: float) -> None:
        """A final transcript from `start`; it replaces what earlier finals from `start` on counted."""
        while self._recent and self._recent[-1][0] >= start:
            _, old_words, old_talk = self._recent.pop()
            self.words -= old_words
            self.talk_s -= old_talk
        self.words += words
        self.talk_s += talk_s
        self._recent.append((start, words, talk_s))
        while len(self._recent) > 1 and self.recent_talk_s - self._recent[0][2] >= self.window_s:
            self._recent.popleft()

    @property
    def recent_talk_s(self) -> float:
        return sum(t for _, _, t in self._recent)

    @property
    def wpm(self) -> float | None:
        talk = self.recent_talk_s
        return 60.0 * sum(w for _, w, _ in self._recent) / talk if talk > 0 else None

    @property
    def overall_wpm(self) -> float | None:
        return 60.0 * self.words / self.talk_s if self.talk_s > 0 else None
