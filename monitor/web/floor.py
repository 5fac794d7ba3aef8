"""What the supervisors' floor knows of one live call: bounded counters, the last minute of cues, the last
transcript line, and the attention score that puts the calls needing a supervisor first. Pure state, no
networking: the floor feeds it checked events (monitor.events).

Raised voice and dead air come from the pipeline's own cues (`speak_softly`, `dead_air`), decided with the
thresholds in the user's config.toml; the floor does not measure them again with thresholds of its own.

Reasons clear when what raised them is resolved, not when a minute has passed: the customer's escalation
(an `acknowledge` cue, a frustration word, a customer spurt well above their own first spurts, their
sentiment trend at or below UPSET_SENTIMENT when the monitor sends it) is answered
once the agent says an acknowledgement after it, and over once the customer has been calm for CALM_S; dead
air ends when someone talks. The attention score adds each present reason's weight, growing with how long
it has lasted, so that of several similar calls the one escalated longest comes first."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ..analysis.cues import find_phrase
from ..config import AcknowledgeConfig
from ..events import (CallEnd, CallStart, Cue, Event, Interruption, Levels, Pace, Sentiment, TalkEnd, TalkStart,
                      Transcript)
from .notes import NOTES_KEPT

CUE_WINDOW_S = 60.0
CUES_ALERT = 3
RAISED_SHOW_S = 10.0
"""A `speak_softly` cue shows the call as raised voice for this long (audio seconds)."""
ATTENTION = 2.0
"""A call whose attention score reaches this is flagged for supervisors (sorted first, highlighted)."""
SNAPSHOT_TRANSCRIPTS = 20
LINE_CHARS = 160
CALM_S = 20.0
"""The customer's escalation is over after this long (audio seconds) without a new sign of it."""
ASR_SLACK_S = 5.0
"""An acknowledgement whose words end this long before an `acknowledge` cue still answers it: transcripts
come after the audio the pipeline's cue rule already saw."""
BASELINE_SPURTS = 4
"""The customer's first spurts of at least a second: their own level, against which they are raised."""
RAISED_DB = 6.0
LASTING_PER_S = 1 / 30.0
LASTING_MAX = 2.0
"""A flagged call's score grows by one per 30 s flagged, up to two: the longest-escalated call comes first."""
UPSET_SENTIMENT = -0.3
"""The customer's sentiment trend (monitor.analysis.sentiment) at or below this is a sign of escalation."""
_DEFAULTS = AcknowledgeConfig()
ACKNOWLEDGEMENTS = list(_DEFAULTS.acknowledgements)
FRUSTRATION = list(_DEFAULTS.frustration)


@dataclass
class Alert:
    id: int
    call_id: str
    agent: str
    kind: str
    text: str
    at: float
    """Wall clock (Unix seconds) when the server raised it."""
    resolved: bool = False
    """Its reason has cleared (the customer acknowledged, calmer, the silence broken, the call ended)."""


class CallState:
    """One call's floor state, bounded whatever the call's length: counters, the last minute of cues, the last
    transcript line and what a newly watching supervisor needs to show the agent's overlay at once."""

    def __init__(self, call_id: str, agent: str, origin: str, started_at: float, acknowledge=None):
        """`acknowledge`: the user's [cues.acknowledge] (its acknowledgement and frustration phrases), else
        the defaults."""
        self.call_id, self.agent, self.origin, self.started_at = call_id, agent, origin, started_at
        self.acknowledgements = list(getattr(acknowledge, "acknowledgements", None) or ACKNOWLEDGEMENTS)
        self.frustration = list(getattr(acknowledge, "frustration", None) or FRUSTRATION)
        self.status = "live"
        self.t = 0.0
        self.at = 0.0
        self.seq = 0
        self.gaps = 0
        self.dropped = 0
        self.talking: dict[str, bool] = {}
        self.talk_s = {"agent": 0.0, "customer": 0.0}
        self.interruptions = {"agent": 0, "customer": 0}
        self.cues: deque[tuple[float, str, str]] = deque(maxlen=200)
        self.last_cue: dict | None = None
        self.line: dict | None = None
        self.wpm: dict = {}
        self.silent_since: float | None = None
        self.raised_at: float | None = None
        self.dead_air_at: float | None = None
        """Audio time of the pipeline's dead air cue, while nobody has talked since."""
        self.alerted: set[str] = set()
        self.upset_since: float | None = None
        """Audio time the customer's current escalation began (None: calm)."""
        self.upset_at: float | None = None
        """Audio time of the latest sign of it."""
        self.ack_cue_at: float | None = None
        """The latest `acknowledge` cue of the current escalation."""
        self.acked_at: float | None = None
        """When the agent last said an acknowledgement (the end of their words)."""
        self.customer_db: list[float] = []
        """The customer's first spurts' loudness (their baseline)."""
        self.sentiment: float | None = None
        """The customer's latest sentiment trend in [-1, 1], when the monitor sends it."""
        self.flagged_since: float | None = None
        """Audio time the call first reached ATTENTION, while it stays there."""
        self.scored: tuple[dict | None, dict | None] = (None, None)
        """The ended call's score and the agent's self-view, once its recording here is scored."""
        self.conn = None
        """The local monitor connection currently sending this call (None for calls of other servers)."""
        self.changed_at = 0.0
        """Monotonic time of the last status change (lost, ended), for the floor's sweep."""
        self.checked_at = 0.0
        """Monotonic time the floor last looked at this call's conditions."""
        self._order = 0
        self._latest: dict[str, tuple[int, dict]] = {}
        self._transcripts: deque[tuple[int, dict]] = deque(maxlen=SNAPSHOT_TRANSCRIPTS)
        self._notes: deque[tuple[int, dict]] = deque(maxlen=NOTES_KEPT)

    def accept_seq(self, seq: int) -> bool:
        """False for a message already applied (a catch-up resend); counts the gap when some never came."""
        if seq <= self.seq:
            return False
        if self.seq and seq > self.seq + 1:
            self.gaps += seq - self.seq - 1
        self.seq = seq
        return True

    def apply(self, event: Event, raw: dict, at: float | None) -> None:
        """Fold in one checked event; `raw` is its JSON form, kept for a watching supervisor's snapshot."""
        self.t = max(self.t, event.t)
        if at is not None:
            self.at = max(self.at, at)
        if isinstance(event, Levels):
            self.talking = dict(event.talking)
            if any(self.talking.values()):
                self._voice()
            elif self.silent_since is None:
                self.silent_since = event.t
        elif isinstance(event, TalkStart):
            self.talking = {**self.talking, event.party: True}  # a new dict: published tiles hold the old one
            self._voice()
        elif isinstance(event, TalkEnd):
            self.talk_s[event.party] += max(0.0, event.t - event.start)
            if event.party == "customer" and event.t - event.start >= 1.0:
                self._customer_spurt(event.t, event.loudness_dbfs)
        elif isinstance(event, Interruption):
            self.interruptions[event.by] += 1
        elif isinstance(event, Cue):
            text = event.text or event.kind
            self.cues.append((event.t, event.kind, text))
            self.last_cue = {"kind": event.kind, "text": text, "t": event.t}
            if event.kind == "speak_softly":
                self.raised_at = event.t
            elif event.kind == "acknowledge":
                self._upset(event.t)
                self.ack_cue_at = event.t
            elif event.kind == "dead_air":
                self.dead_air_at = event.t
                if self.silent_since is None:
                    self.silent_since = event.t
        elif isinstance(event, Transcript):
            text = event.text.strip()
            if text:
                self.line = {"party": event.party, "text": text[:LINE_CHARS], "final": event.final}
            if text and event.final:
                self._words(event.party, text, max(event.t, event.end))
        elif isinstance(event, Pace):
            self.wpm = dict(event.wpm)
        elif isinstance(event, Sentiment) and event.party == "customer" and event.trend is not None:
            self.sentiment = event.trend
            if event.trend <= UPSET_SENTIMENT:
                self._upset(event.t)
        elif isinstance(event, CallStart):
            self.started_at = event.started_at or self.started_at
        elif isinstance(event, CallEnd):
            self.status = "ended"
        self._remember(event.type, raw)

    def _voice(self) -> None:
        self.silent_since = None
        self.dead_air_at = None

    def _upset(self, t: float) -> None:
        if self.upset_since is None:
            self.upset_since = t
        self.upset_at = max(t, self.upset_at or t)

    def _customer_spurt(self, t: float, db: float) -> None:
        if len(self.customer_db) < BASELINE_SPURTS:
            self.customer_db.append(db)
            return
        baseline = sorted(self.customer_db)[len(self.customer_db) // 2]
        if db >= baseline + RAISED_DB:
            self._upset(t)

    def _words(self, party: str, text: str, t: float) -> None:
        """A final transcript line: the customer's frustration words, the agent's acknowledgement."""
        if party == "customer" and find_phrase(text, self.frustration):
            self._upset(t)
        elif party == "agent" and find_phrase(text, self.acknowledgements):
            self.acked_at = max(t, self.acked_at or t)

    def _settle(self) -> None:
        """The customer's escalation is over once they have been calm for CALM_S."""
        if self.upset_at is not None and self.t - self.upset_at >= CALM_S:
            self.upset_since = self.upset_at = self.ack_cue_at = None

    @property
    def unanswered(self) -> bool:
        """An `acknowledge` cue of the current escalation that the agent has not answered since."""
        return self.ack_cue_at is not None and (self.acked_at is None or
                                                self.acked_at < self.ack_cue_at - ASR_SLACK_S)

    def _remember(self, kind: str, raw: dict) -> None:
        self._order += 1
        if kind == "transcript":
            self._transcripts.append((self._order, raw))
        elif kind == "cue":  # every cue still up (the overlay shows a pushed-aside one again when the top one ends)
            self._latest[f"cue:{raw.get('kind')}"] = (self._order, raw)
        elif kind == "cue_end":
            self._latest.pop(f"cue:{raw.get('kind')}", None)
        elif kind in ("call_start", "stats", "pace", "sentiment", "levels", "call_end", "device"):
            self._latest[kind] = (self._order, raw)

    def add_note(self, note: dict) -> None:
        """A supervisor's note (monitor.web.notes), kept for an overlay that connects later in the call."""
        self._order += 1
        self._notes.append((self._order, note))

    def notes(self) -> list[dict]:
        return [note for _, note in self._notes]

    def snapshot(self) -> list[dict]:
        """What the agent's overlay would be showing: the call start, recent transcripts, latest cue, pace,
        levels, and the supervisors' notes."""
        items = [*self._latest.values(), *self._transcripts, *self._notes]
        return [event for _, event in sorted(items, key=lambda x: x[0])]

    # -- derived --

    def recent_cues(self) -> list[tuple[float, str, str]]:
        while self.cues and self.cues[0][0] < self.t - CUE_WINDOW_S:
            self.cues.popleft()
        return list(self.cues)

    @property
    def dead_air_s(self) -> float:
        """Seconds of silence so far, once the pipeline called it dead air."""
        if self.dead_air_at is None or self.status != "live":
            return 0.0
        return self.t - (self.silent_since if self.silent_since is not None else self.dead_air_at)

    def conditions(self) -> dict[str, tuple[float, str]]:
        """Each escalation signal now present: kind -> (attention weight, why). Weights grow with how long
        the signal has lasted (audio seconds)."""
        out: dict[str, tuple[float, str]] = {}
        if self.status == "ended":
            return out
        self._settle()
        if self.raised_at is not None and self.t - self.raised_at < RAISED_SHOW_S:
            out["raised_voice"] = (3.0, "agent raised voice")
        upset_s = self.t - self.upset_since if self.upset_since is not None else 0.0
        if self.unanswered:
            out["acknowledge"] = (3.0 + min(2.0, upset_s / 20.0), "customer upset, not acknowledged")
        elif self.upset_since is not None:
            answered = self.acked_at is not None and self.acked_at >= self.upset_since - ASR_SLACK_S
            out["upset"] = (1.0 + min(0.5, upset_s / 60.0),
                            "customer upset, acknowledged" if answered else "customer upset")
        if self.sentiment is not None and self.sentiment <= UPSET_SENTIMENT:
            out["sentiment"] = (min(1.5, 0.5 + 2.0 * (UPSET_SENTIMENT - self.sentiment)),
                                f"customer sentiment {self.sentiment:+.1f}")
        cues = self.counted_cues()
        if len(cues) >= CUES_ALERT:
            out["cues"] = (2.0 + 0.5 * (len(cues) - CUES_ALERT), f"{len(cues)} cues in the last minute")
        counts: dict[str, int] = {}
        for _, kind, text in cues:
            counts[text] = counts.get(text, 0) + 1
        repeated = [(n, text) for text, n in counts.items() if n >= 2]
        if repeated:
            n, text = max(repeated)
            out["repeated"] = (0.5 * n, f"repeated: {text} ×{n}")
        if self.dead_air_at is not None and self.status == "live":
            dead = self.dead_air_s
            out["dead_air"] = (2.0 + (self.t - self.dead_air_at) / 10.0, f"dead air {dead:.0f} s")
        if self.status == "lost":
            out["lost"] = (1.0, "connection lost")
        return out

    def counted_cues(self) -> list[tuple[float, str, str]]:
        """The last minute's cues that still count: an answered `acknowledge` cue no longer does."""
        cues = self.recent_cues()
        if self.unanswered:
            return cues
        return [c for c in cues if c[1] != "acknowledge" or self.acked_at is None or
                c[0] > self.acked_at + ASR_SLACK_S]

    def score(self, conditions: dict) -> float:
        """The attention score: the reasons' weights, plus LASTING_PER_S a second while flagged."""
        score = sum(w for w, _ in conditions.values())
        if score >= ATTENTION:
            if self.flagged_since is None:
                self.flagged_since = self.t
            score += min(LASTING_MAX, (self.t - self.flagged_since) * LASTING_PER_S)
        else:
            self.flagged_since = None
        return round(score, 1)

    def tile(self, conditions: dict | None = None) -> dict:
        """The call's tile on the floor (levels are not in it: they stream to watching supervisors only)."""
        conditions = self.conditions() if conditions is None else conditions
        score = self.score(conditions)
        total = self.talk_s["agent"] + self.talk_s["customer"]
        cue = self.last_cue if self.last_cue and self.last_cue["t"] >= self.t - CUE_WINDOW_S else None
        if cue and cue["kind"] == "acknowledge" and self.acked_at is not None \
                and self.acked_at >= cue["t"] - ASR_SLACK_S:
            cue = None  # answered: the tile no longer says it
        return {
            "call_id": self.call_id, "agent": self.agent, "hub": self.origin, "status": self.status,
            "started_at": self.started_at, "t": round(self.t, 1), "at": self.at, "talking": self.talking,
            "share": round(self.talk_s["agent"] / total, 2) if total > 0 else None,
            "interruptions": dict(self.interruptions), "cues_1m": len(self.counted_cues()),
            "cue": cue,
            "wpm": self.wpm, "dead_air_s": int(self.dead_air_s), "raised_voice": "raised_voice" in conditions,
            "line": self.line, "attention": score, "needs_attention": score >= ATTENTION,
            "upset": self.upset_since is not None,
            "sentiment": None if self.sentiment is None else round(self.sentiment, 2),
            "reasons": [why for _, why in sorted(conditions.values(), key=lambda c: -c[0])],
            "gaps": self.gaps, "dropped": self.dropped,
        }
