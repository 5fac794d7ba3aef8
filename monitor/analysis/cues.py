"""Cue rules: each reads a small view of the call once per tick (`view.CallView`) and emits at most
one kind of cue, with its own config section and cooldown. A cue stays up while its behaviour lasts
(`Rule.still`): `CueRules` sends a `cue_end` once that has been over for [cues] clear_s.

Adding a cue is adding one rule class here, its section in config.toml, and its test (feed it views).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

from ..config import AcknowledgeConfig, Config, CuesConfig
from ..events import Cue, CueEnd, Event, Interruption, Overlap, Pace, Silence, TalkEnd, Transcript
from .phrases import find as phrases_find
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

NOTES = {
    "wait_for_pause": "Good, you let them finish",
    "speak_softly": "Softer, good",
    "slow_down": "Better pace",
    "pause_first": "Good pause",
    "let_them_talk": "Good listening",
    "acknowledge": "Well acknowledged",
    "dead_air": "Good, keep them posted",
}
"""The brief positive note of a cue_end when the agent did what the cue asked ([cues] praise)."""

EASE = 0.9
"""A cue's measured condition must ease this far below its threshold (2 dB for levels) before it counts as
over, so that a cue does not flicker on and off at its threshold."""
EASE_DB = 2.0


class Rule:
    """A cue kind with its own cooldown (audio seconds between two cues of this kind)."""

    kind = ""
    events_only = False
    """True for a rule that can only fire on a tick with events: it is not asked on the quiet ones."""

    show_s = 6.0
    """How long a cue about a moment stays up ([cues] show_s, set by CueRules)."""
    max_show_s = 30.0
    """How long at most a cue whose end cannot be heard stays up ([cues] max_show_s)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self._last: float | None = None

    def step(self, view: CallView) -> Cue | None:
        now = view.t
        reason = self.check(view)
        if reason is None or (self._last is not None and now - self._last < self.cfg.cooldown_s):
            return None
        self._last = now
        self.began(view)
        return Cue(t=now, kind=self.kind, text=TEXTS[self.kind], reason=reason, rank=RANKS[self.kind], held=True)

    def check(self, view: CallView) -> str | None:
        """A short reason when the cue's condition is met at `view.t`, else None."""
        raise NotImplementedError

    def began(self, view: CallView) -> None:
        """The cue went up at `view.t`: forget what was heard of the last one."""

    def still(self, view: CallView) -> bool:
        """Whether the behaviour the cue is about goes on at `view.t` (asked each tick while the cue is up).
        By default a cue is about a moment (a phrase said) and it lasts `show_s`."""
        return view.t - self._last < self.show_s

    def done(self, view: CallView) -> bool:
        """Whether the agent did what the cue asked, at the tick its behaviour stopped (for a positive note)."""
        return False


class WaitForPause(Rule):
    """The agent started over the customer and kept going, or took the floor."""

    kind = "wait_for_pause"
    events_only = True

    def check(self, view):
        for event in view.events:
            if isinstance(event, Interruption) and event.by == "agent":
                return f"agent talked over the customer at {event.t:.1f} s"
        return None

    def still(self, view):
        """Both still talk: the overlap goes on."""
        return view.parties["agent"].talking and view.parties["customer"].talking

    def done(self, view):
        """The agent stopped and let the customer go on."""
        return not view.parties["agent"].talking and view.parties["customer"].talking


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

    def still(self, view):
        """The agent talks on, still about `rise_db` (less EASE_DB) over their own level."""
        agent = view.parties["agent"]
        rise = agent.rise_db
        return agent.talking and (rise is None or rise >= self.cfg.rise_db - EASE_DB)

    def done(self, view):
        """The agent talks on, softer."""
        agent = view.parties["agent"]
        return agent.talking and agent.rise_db is not None


class DeadAir(Rule):
    """Nobody has talked for `silence_s`; once per silence."""

    kind = "dead_air"

    def __init__(self, cfg):
        super().__init__(cfg)
        self._cued_silence: float | None = None

    def check(self, view):
        start, now = view.silence_start, view.t
        if view.last_speaker is None:  # the call's opening silence: nobody has spoken yet
            return None
        if start is None or now - start < self.cfg.silence_s or self._cued_silence == start:
            return None
        self._cued_silence = start
        return f"no one has spoken for {now - start:.0f} s"

    def still(self, view):
        return view.silence_start is not None

    def done(self, view):
        """The agent broke the silence."""
        return view.parties["agent"].talking


def normalize(text: str) -> str:
    """Lower case, curly apostrophes straightened, punctuation to spaces: what phrase lists match against."""
    text = text.lower().replace("\u2019", "'")
    return " " + re.sub(r"[^a-z0-9' ]+", " ", text).strip() + " "


def find_phrase(text: str, phrases: list[str]) -> str | None:
    """The words of `text` that say one of `phrases` (patterns: monitor/analysis/phrases.py), or None."""
    match = phrases_find(text, phrases)
    return str(match) if match else None


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

    def _fast(self, view) -> bool:
        agent, customer = view.parties["agent"], view.parties["customer"]
        return (agent.wpm is not None and customer.wpm is not None and agent.wpm >= EASE * self.cfg.min_wpm
                and agent.wpm >= EASE * self.cfg.ratio * customer.wpm)

    def still(self, view):
        """The agent talks on, still fast (their pace moves with each final transcript)."""
        return view.parties["agent"].talking and self._fast(view)

    def done(self, view):
        return view.parties["agent"].talking and not self._fast(view)


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

    def began(self, view):
        self._acknowledged = False

    def still(self, view):
        """Not acknowledged yet (for at most max_show_s: an upset may pass unheard)."""
        if any(find_phrase(e.text, self.cfg.acknowledgements) for e in finals(view.events, "agent")):
            self._acknowledged = True
        return not self._acknowledged and view.t - self._last < self.max_show_s

    def done(self, view):
        return self._acknowledged


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

    FLOOR_S = 2.0
    """The customer talking this long on their own has the floor again."""

    def _gave_floor(self, view) -> bool:
        agent, customer = view.parties["agent"], view.parties["customer"]
        return (customer.talking and not agent.talking and customer.spurt_start is not None
                and view.t - customer.spurt_start >= self.FLOOR_S)

    def still(self, view):
        """Until the customer has the floor (for at most max_show_s)."""
        return not self._gave_floor(view) and view.t - self._last < self.max_show_s

    def done(self, view):
        return self._gave_floor(view)

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

    PAUSE_S = 0.5
    """An answer after at least this pause (or 2 x gap_s) is the pause the cue asks for."""

    def began(self, view):
        self._paused = False

    def still(self, view):
        """Until the agent next answers after a pause (for at most show_s)."""
        pause = max(self.PAUSE_S, 2 * self.cfg.gap_s)
        if any(isinstance(e, Silence) and (e.before, e.after) == ("customer", "agent") and e.end - e.t >= pause
               for e in view.events):
            self._paused = True
        return not self._paused and view.t - self._last < self.show_s

    def done(self, view):
        return self._paused


def build_rules(cfg: CuesConfig, turn_switch_s: float) -> list[Rule]:
    """The rules enabled in the config."""
    rules = [WaitForPause(cfg.wait_for_pause), SpeakSoftly(cfg.speak_softly), DeadAir(cfg.dead_air),
             SlowDown(cfg.slow_down), OwnTheProblem(cfg.own_the_problem), Acknowledge(cfg.acknowledge),
             LetThemTalk(cfg.let_them_talk), PauseFirst(cfg.pause_first, turn_switch_s)]
    return [rule for rule in rules if rule.cfg.enabled]


@dataclass
class Up:
    """A cue that is up: since when, and since when its behaviour has been over (None: it goes on), and
    whether the agent did what it asked then."""

    since: float
    over_since: float | None = None
    done: bool = False


class CueRules:
    """Every enabled rule of a call, the frustration watch they share (run once per tick), and the cues up."""

    def __init__(self, config: Config):
        self.cfg = config.cues
        self.rules = build_rules(config.cues, config.conversation.min_overlap_s)
        for rule in self.rules:
            rule.show_s, rule.max_show_s = self.cfg.show_s, self.cfg.max_show_s
        self._kinds = {rule.kind: rule for rule in self.rules}
        self._every_tick = [rule for rule in self.rules if not rule.events_only]
        needs = {"acknowledge", "let_them_talk"} & {r.kind for r in self.rules}
        self.frustration = Frustration(config.cues.acknowledge) if needs else None
        self.up: dict[str, Up] = {}

    @property
    def active(self) -> list[str]:
        """The kinds of the cues up now, most urgent first."""
        return sorted(self.up, key=lambda kind: -RANKS[kind])

    def step(self, view: CallView) -> list[Event]:
        """This tick's new cues, and a cue_end for each cue whose behaviour has been over for clear_s."""
        if self.frustration is not None:
            view.frustration = self.frustration.step(view)
        cues = []
        for rule in self.rules if view.events else self._every_tick:
            cue = rule.step(view)
            if cue is not None:
                cues.append(cue)
        out: list[Event] = self._ends(view, {cue.kind for cue in cues}) if self.up else []
        for cue in cues:
            self.up[cue.kind] = Up(cue.t)
        return cues + out

    def _ends(self, view: CallView, fired: set[str]) -> list[CueEnd]:
        out = []
        for kind, up in list(self.up.items()):
            if kind in fired:
                continue
            rule = self._kinds[kind]
            if rule.still(view):
                up.over_since = None
            elif up.over_since is None:
                up.over_since, up.done = view.t, rule.done(view)
            if (up.over_since is not None and view.t - up.over_since >= self.cfg.clear_s
                    and view.t - up.since >= self.cfg.min_show_s):
                del self.up[kind]
                note = NOTES.get(kind, "") if up.done and self.cfg.praise else ""
                out.append(CueEnd(t=view.t, kind=kind, done=up.done, note=note))
        return out
