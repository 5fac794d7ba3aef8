"""Cue rules: each reads a small view of the call once per tick (`view.CallView`) and emits at most
one kind of cue, with its own config section and cooldown.

Adding a cue is adding one rule class here, its section in config.toml, and its test (feed it views).
"""

from __future__ import annotations

import re
from collections import deque

from ..config import AcknowledgeConfig, Config, CuesConfig
from ..events import Cue, Interruption, Overlap, Pace, Silence, TalkEnd, Transcript
from .view import CallView

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

RANKS = {kind: len(PRIORITY) - i for i, kind in enumerate(PRIORITY)}
"""Each cue's `rank` on the wire: higher is more urgent (1 the least), so pages need no copy of PRIORITY."""


class Rule:
    """A cue kind with its own cooldown (audio seconds between two cues of this kind)."""

    kind = ""
    events_only = False
    """True for a rule that can only fire on a tick with events: it is not asked on the quiet ones."""

    def __init__(self, cfg):
        self.cfg = cfg
        self._last: float | None = None

    def step(self, view: CallView) -> Cue | None:
        now = view.t
        reason = self.check(view)
        if reason is None or (self._last is not None and now - self._last < self.cfg.cooldown_s):
            return None
        self._last = now
        return Cue(t=now, kind=self.kind, text=TEXTS[self.kind], reason=reason, rank=RANKS[self.kind])

    def check(self, view: CallView) -> str | None:
        """A short reason when the cue's condition is met at `view.t`, else None."""
        raise NotImplementedError


class WaitForPause(Rule):
    """The agent started over the customer and kept going, or took the floor."""

    kind = "wait_for_pause"
    events_only = True

    def check(self, view):
        for event in view.events:
            if isinstance(event, Interruption) and event.by == "agent":
                return f"agent talked over the customer at {event.t:.1f} s"
        return None


class SpeakSoftly(Rule):
    """The agent's short-term level stands `rise_db` above their own baseline for `hold_s` of voice."""

    kind = "speak_softly"

    def __init__(self, cfg):
        super().__init__(cfg)
        self._held = 0.0

    def check(self, view):
        agent = view.parties["agent"]
        if not agent.talking:
            self._held = 0.0
            return None
        if not agent.voiced:
            return None
        rise = agent.rise_db
        if rise is None or agent.baseline_s < self.cfg.min_baseline_s or rise < self.cfg.rise_db:
            self._held = 0.0
            return None
        self._held += view.frame_s
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

    def check(self, view):
        start, now = view.silence_start, view.t
        if start is None or now - start < self.cfg.silence_s or self._cued_silence == start:
            return None
        self._cued_silence = start
        return f"no one has spoken for {now - start:.0f} s"


def normalize(text: str) -> str:
    """Lower case, curly apostrophes straightened, punctuation to spaces: what phrase lists match against."""
    text = text.lower().replace("\u2019", "'")
    return " " + re.sub(r"[^a-z0-9' ]+", " ", text).strip() + " "


def find_phrase(text: str, phrases: list[str]) -> str | None:
    norm = normalize(text)
    return next((p for p in phrases if normalize(p) in norm), None)


def finals(events: list, party: str) -> list[Transcript]:
    return [e for e in events if isinstance(e, Transcript) and e.final and e.party == party]


class SlowDown(Rule):
    """The agent's recent pace is well above the customer's and fast in absolute terms."""

    kind = "slow_down"
    events_only = True

    def check(self, view):
        if not any(isinstance(e, Pace) for e in view.events):
            return None
        agent, customer = view.parties["agent"], view.parties["customer"]
        if agent.recent_talk_s < self.cfg.min_talk_s or agent.wpm is None or customer.wpm is None:
            return None
        if agent.wpm >= self.cfg.min_wpm and agent.wpm >= self.cfg.ratio * customer.wpm:
            return f"agent {agent.wpm:.0f} wpm, customer {customer.wpm:.0f} wpm"
        return None


class OwnTheProblem(Rule):
    """The agent says a deflecting phrase ("it's our policy", "calm down", ...)."""

    kind = "own_the_problem"
    events_only = True

    def check(self, view):
        for line in finals(view.events, "agent"):
            phrase = find_phrase(line.text, self.cfg.phrases)
            if phrase:
                return f'agent said "{phrase}"'
        return None


class Frustration:
    """Notices the customer sounding frustrated: their voice `rise_db` over their own level for
    `hold_s`, or a frustration word in their final transcript. Run once per tick for every rule
    that cares (its result is `CallView.frustration`)."""

    MIN_BASELINE_S = 4.0

    def __init__(self, cfg: AcknowledgeConfig):
        self.cfg = cfg
        self._held = 0.0

    def step(self, view: CallView) -> tuple[float, str] | None:
        """(when, why) if the customer sounded frustrated in this tick."""
        for line in finals(view.events, "customer"):
            word = find_phrase(line.text, self.cfg.frustration)
            if word:
                return line.end, f'customer said "{word}"'
        customer = view.parties["customer"]
        rise = customer.rise_db if customer.voiced and customer.baseline_s >= self.MIN_BASELINE_S else None
        self._held = self._held + view.frame_s if rise is not None and rise >= self.cfg.rise_db else 0.0
        if self._held >= self.cfg.hold_s:
            self._held = 0.0
            return view.t, f"customer's voice {rise:+.0f} dB over their level"
        return None


class Acknowledge(Rule):
    """The customer sounds frustrated and the agent has not acknowledged it within `within_s`."""

    kind = "acknowledge"

    def __init__(self, cfg):
        super().__init__(cfg)
        self._since: float | None = None
        self._why = ""

    def check(self, view):
        seen = view.frustration
        if seen and self._since is None:
            self._since, self._why = seen
        if self._since is not None and any(find_phrase(e.text, self.cfg.acknowledgements)
                                           for e in finals(view.events, "agent") if e.end > self._since - 1.0):
            self._since = None
        if self._since is None or view.t - self._since < self.cfg.within_s:
            return None
        self._since = None
        return self._why + f", no acknowledgement for {self.cfg.within_s:.0f} s"


class LetThemTalk(Rule):
    """The agent holds most of the talk over the last `window_s` while the customer is upset."""

    kind = "let_them_talk"

    def __init__(self, cfg):
        super().__init__(cfg)
        self._upset_at: float | None = None
        self._spurts = {"agent": deque(), "customer": deque()}

    def check(self, view):
        now = view.t
        if view.frustration:
            self._upset_at = view.frustration[0]
        for e in view.events:
            if isinstance(e, TalkEnd):
                self._spurts[e.party].append((e.start, e.t))
        if self._upset_at is None or now - self._upset_at > self.cfg.upset_within_s:
            return None
        talk = {p: self._talk(p, view.parties[p].spurt_start, now) for p in self._spurts}
        total = sum(talk.values())
        if talk["agent"] < self.cfg.min_talk_s or talk["agent"] < self.cfg.share * total:
            return None
        return f"agent {100 * talk['agent'] / total:.0f}% of the talk in the last {self.cfg.window_s:.0f} s"

    def _talk(self, name: str, open_since: float | None, now: float) -> float:
        start = now - self.cfg.window_s
        spurts = self._spurts[name]
        while spurts and spurts[0][1] < start:
            spurts.popleft()
        open_spurt = [(open_since, now)] if open_since is not None else []
        return sum(min(b, now) - max(a, start) for a, b in list(spurts) + open_spurt if b > start)


class PauseFirst(Rule):
    """The agent keeps answering within `gap_s` of the customer finishing (or just before: a short
    overlap at a turn switch, one shorter than `turn_switch_s`), `count` times in `within_s`."""

    kind = "pause_first"
    events_only = True  # quick answers arrive as events; with none, the count can only fall

    def __init__(self, cfg, turn_switch_s: float):
        super().__init__(cfg)
        self.turn_switch_s = turn_switch_s  # [conversation] min_overlap_s: shorter overlaps are turn switches
        self._quick: deque[float] = deque()

    def check(self, view):
        for e in view.events:
            gap = e.end - e.t if isinstance(e, Silence) and (e.before, e.after) == ("customer", "agent") else None
            if isinstance(e, Overlap) and e.by == "agent" and e.end - e.t < self.turn_switch_s:
                gap = e.t - e.end  # the agent began just before the customer's last sound
            if gap is not None and gap < self.cfg.gap_s:
                self._quick.append(e.end)
        while self._quick and view.t - self._quick[0] > self.cfg.within_s:
            self._quick.popleft()
        if len(self._quick) < self.cfg.count:
            return None
        self._quick.clear()
        return f"agent answered within {1000 * self.cfg.gap_s:.0f} ms {self.cfg.count} times in {self.cfg.within_s:.0f} s"


def build_rules(cfg: CuesConfig, turn_switch_s: float) -> list[Rule]:
    """The rules enabled in the config."""
    rules = [WaitForPause(cfg.wait_for_pause), SpeakSoftly(cfg.speak_softly), DeadAir(cfg.dead_air),
             SlowDown(cfg.slow_down), OwnTheProblem(cfg.own_the_problem), Acknowledge(cfg.acknowledge),
             LetThemTalk(cfg.let_them_talk), PauseFirst(cfg.pause_first, turn_switch_s)]
    return [rule for rule in rules if rule.cfg.enabled]


class CueRules:
    """Every enabled rule of a call, and the frustration watch they share (run once per tick)."""

    def __init__(self, config: Config):
        self.rules = build_rules(config.cues, config.conversation.min_overlap_s)
        self._every_tick = [rule for rule in self.rules if not rule.events_only]
        needs = {"acknowledge", "let_them_talk"} & {r.kind for r in self.rules}
        self.frustration = Frustration(config.cues.acknowledge) if needs else None

    def step(self, view: CallView) -> list[Cue]:
        if self.frustration is not None:
            view.frustration = self.frustration.step(view)
        cues = []
        for rule in self.rules if view.events else self._every_tick:
            cue = rule.step(view)
            if cue is not None:
                cues.append(cue)
        return cues
