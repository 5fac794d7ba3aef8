"""Cue rules: each reads the conversation state once per tick and emits at most one kind of cue.

Adding a cue is adding one rule class here, its section in config.toml, and its test.
"""

from __future__ import annotations

from .config import CuesConfig
from .events import Cue, Interruption

TEXTS = {
    "wait_for_pause": "Wait for the pause",
    "speak_softly": "Speak softly",
    "slow_down": "Slow down",
    "pause_first": "Pause before answering",
    "let_them_talk": "Let them talk",
    "acknowledge": "Acknowledge how they feel",
    "own_the_problem": "Own it, no policy talk",
    "dead_air": "Keep them informed",
}

PRIORITY = ["wait_for_pause", "speak_softly", "acknowledge", "own_the_problem", "slow_down", "let_them_talk",
            "pause_first", "dead_air"]
"""Most important first: the overlay shows one cue at a time."""


class Rule:
    """A cue kind with its own cooldown (audio seconds between two cues of this kind)."""

    kind = ""

    def __init__(self, cfg):
        self.cfg = cfg
        self._last: float | None = None

    def step(self, now: float, pipeline, events: list) -> Cue | None:
        reason = self.check(now, pipeline, events)
        if reason is None or (self._last is not None and now - self._last < self.cfg.cooldown_s):
            return None
        self._last = now
        return Cue(t=now, kind=self.kind, text=TEXTS[self.kind], reason=reason)

    def check(self, now: float, pipeline, events: list) -> str | None:
        """A short reason when the cue's condition is met at `now`, else None."""
        raise NotImplementedError


class WaitForPause(Rule):
    """The agent started over the customer and kept going, or took the floor."""

    kind = "wait_for_pause"

    def check(self, now, pipeline, events):
        for event in events:
            if isinstance(event, Interruption) and event.by == "agent":
                return f"agent talked over the customer at {event.t:.1f} s"
        return None


class SpeakSoftly(Rule):
    """The agent's short-term level stands `rise_db` above their own baseline for `hold_s` of voice."""

    kind = "speak_softly"

    def __init__(self, cfg):
        super().__init__(cfg)
        self._held = 0.0

    def check(self, now, pipeline, events):
        agent = pipeline.parties["agent"]
        if not agent.talking:
            self._held = 0.0
            return None
        if not agent.voiced:
            return None
        rise = agent.rise_db
        if rise is None or agent.baseline_s < self.cfg.min_baseline_s or rise < self.cfg.rise_db:
            self._held = 0.0
            return None
        self._held += pipeline.frame_s
        if self._held < self.cfg.hold_s:
            return None
        self._held = 0.0
        return f"agent {rise:+.1f} dB over their own level"


class DeadAir(Rule):
    """Nobody has talked for `silence_s`; once per silence."""

    kind = "dead_air"

    def __init__(self, cfg):
        super().__init__(cfg)
        self._cued_silence: float | None = None

    def check(self, now, pipeline, events):
        start = pipeline.conversation.silence_start
        if start is None or now - start < self.cfg.silence_s or self._cued_silence == start:
            return None
        self._cued_silence = start
        return f"no one has spoken for {now - start:.0f} s"


def build_rules(cfg: CuesConfig) -> list[Rule]:
    rules = [WaitForPause(cfg.wait_for_pause), SpeakSoftly(cfg.speak_softly), DeadAir(cfg.dead_air)]
    return [rule for rule in rules if rule.cfg.enabled]
