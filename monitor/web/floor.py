"""What the supervisors' floor knows of one live call: bounded counters, the last minute of cues, the last
transcript line, and the attention score that puts the calls needing a supervisor first. Pure state, no
networking: the floor feeds it checked events (monitor.events).

Raised voice and dead air come from the pipeline's own cues (`speak_softly`, `dead_air`), decided with the
thresholds in the user's config.toml; the floor does not measure them again with thresholds of its own."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ..events import CallEnd, CallStart, Cue, Event, Interruption, Levels, Pace, TalkEnd, TalkStart, Transcript

CUE_WINDOW_S = 60.0
CUES_ALERT = 3
RAISED_SHOW_S = 10.0
"""A `speak_softly` cue shows the call as raised voice for this long (audio seconds)."""
ATTENTION = 2.0
"""A call whose attention score reaches this is flagged for supervisors (sorted first, highlighted)."""
SNAPSHOT_TRANSCRIPTS = 20
LINE_CHARS = 160


@dataclass
class Alert:
    id: int
    call_id: str
    agent: str
    kind: str
    text: str
    at: float
    """Wall clock (Unix seconds) when the server raised it."""


class CallState:
    """One call's floor state, bounded whatever the call's length: counters, the last minute of cues, the last
    transcript line and what a newly watching supervisor needs to show the agent's overlay at once."""

    def __init__(self, call_id: str, agent: str, origin: str, started_at: float):
        self.call_id, self.agent, self.origin, self.started_at = call_id, agent, origin, started_at
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
        self.conn = None
        """The local monitor connection currently sending this call (None for calls of other servers)."""
        self.changed_at = 0.0
        """Monotonic time of the last status change (lost, ended), for the floor's sweep."""
        self.checked_at = 0.0
        """Monotonic time the floor last looked at this call's conditions."""
        self._order = 0
        self._latest: dict[str, tuple[int, dict]] = {}
        self._transcripts: deque[tuple[int, dict]] = deque(maxlen=SNAPSHOT_TRANSCRIPTS)

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
        elif isinstance(event, Interruption):
            self.interruptions[event.by] += 1
        elif isinstance(event, Cue):
            text = event.text or event.kind
            self.cues.append((event.t, event.kind, text))
            self.last_cue = {"kind": event.kind, "text": text, "t": event.t}
            if event.kind == "speak_softly":
                self.raised_at = event.t
            elif event.kind == "dead_air":
                self.dead_air_at = event.t
                if self.silent_since is None:
                    self.silent_since = event.t
        elif isinstance(event, Transcript):
            text = event.text.strip()
            if text:
                self.line = {"party": event.party, "text": text[:LINE_CHARS], "final": event.final}
        elif isinstance(event, Pace):
            self.wpm = dict(event.wpm)
        elif isinstance(event, CallStart):
            self.started_at = event.started_at or self.started_at
        elif isinstance(event, CallEnd):
            self.status = "ended"
        self._remember(event.type, raw)

    def _voice(self) -> None:
        self.silent_since = None
        self.dead_air_at = None

    def _remember(self, kind: str, raw: dict) -> None:
        self._order += 1
        if kind == "transcript":
            self._transcripts.append((self._order, raw))
        elif kind in ("call_start", "cue", "pace", "levels", "call_end", "device"):
            self._latest[kind] = (self._order, raw)

    def snapshot(self) -> list[dict]:
        """What the agent's overlay would be showing: the call start, recent transcripts, latest cue, pace, levels."""
        return [event for _, event in sorted([*self._latest.values(), *self._transcripts], key=lambda x: x[0])]

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
        """Each escalation signal now present: kind -> (attention weight, why)."""
        out: dict[str, tuple[float, str]] = {}
        if self.status == "ended":
            return out
        if self.raised_at is not None and self.t - self.raised_at < RAISED_SHOW_S:
            out["raised_voice"] = (3.0, "agent raised voice")
        cues = self.recent_cues()
        if any(kind == "acknowledge" for _, kind, _ in cues):
            out["acknowledge"] = (3.0, "customer upset, not acknowledged")
        if len(cues) >= CUES_ALERT:
            out["cues"] = (2.0 + 0.5 * (len(cues) - CUES_ALERT), f"{len(cues)} cues in the last minute")
        counts: dict[str, int] = {}
        for _, kind, text in cues:
            counts[text] = counts.get(text, 0) + 1
        repeated = [text for text, n in counts.items() if n >= 2]
        if repeated:
            out["repeated"] = (1.0, f"repeated: {repeated[0]}")
        if self.dead_air_at is not None and self.status == "live":
            dead = self.dead_air_s
            out["dead_air"] = (2.0 + (self.t - self.dead_air_at) / 10.0, f"dead air {dead:.0f} s")
        if self.status == "lost":
            out["lost"] = (1.0, "connection lost")
        return out

    def tile(self, conditions: dict | None = None) -> dict:
        """The call's tile on the floor (levels are not in it: they stream to watching supervisors only)."""
        conditions = self.conditions() if conditions is None else conditions
        score = round(sum(w for w, _ in conditions.values()), 1)
        total = self.talk_s["agent"] + self.talk_s["customer"]
        return {
            "call_id": self.call_id, "agent": self.agent, "hub": self.origin, "status": self.status,
            "started_at": self.started_at, "t": round(self.t, 1), "at": self.at, "talking": self.talking,
            "share": round(self.talk_s["agent"] / total, 2) if total > 0 else None,
            "interruptions": dict(self.interruptions), "cues_1m": len(self.recent_cues()),
            "cue": self.last_cue if self.last_cue and self.last_cue["t"] >= self.t - CUE_WINDOW_S else None,
            "wpm": self.wpm, "dead_air_s": int(self.dead_air_s), "raised_voice": "raised_voice" in conditions,
            "line": self.line, "attention": score, "needs_attention": score >= ATTENTION,
            "reasons": [why for _, why in sorted(conditions.values(), key=lambda c: -c[0])],
            "gaps": self.gaps, "dropped": self.dropped,
        }
