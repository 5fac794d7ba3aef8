"""What the supervisors' floor knows of one live call: bounded counters, the last minute of cues, the
last transcript lines, the customer's voice against their own level, and the attention score that puts
the calls needing a supervisor first. Pure state, no networking: the hub feeds it events."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass

from .ratelimit import TokenBucket

CUE_WINDOW_S = 60.0
CUES_ALERT = 3
DEAD_AIR_ALERT_S = 10.0
RAISED_DB = 6.0
ATTENTION = 2.0
"""A call whose attention score reaches this is flagged for supervisors (sorted first, highlighted)."""
SNAPSHOT_TRANSCRIPTS = 20


@dataclass
class Alert:
    id: int
    call_id: str
    agent: str
    kind: str
    text: str
    at: float
    """Wall clock (Unix seconds) when the hub raised it."""


def _num(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
        value) else None


class CallState:
    """One call's floor state, bounded whatever the call's length: counters, the last minute of cues, the last
    transcript lines and what a newly watching supervisor needs to show the agent's overlay at once."""

    def __init__(self, call_id: str, agent: str, origin: str, started_at: float, tile_interval_s: float = 0.2):
        self.call_id, self.agent, self.origin, self.started_at = call_id, agent, origin, started_at
        self.status = "live"
        self.t = 0.0
        self.at = 0.0
        self.seq = 0
        self.gaps = 0
        self.dropped = 0
        self.levels: dict = {}
        self.talking: dict = {}
        self.talk_s = {"agent": 0.0, "customer": 0.0}
        self.interruptions = {"agent": 0, "customer": 0}
        self.cues: deque[tuple[float, str, str]] = deque(maxlen=200)
        self.last_cue: dict | None = None
        self.line: dict | None = None
        self.wpm: dict = {}
        self.silent_since: float | None = None
        self.voice = _Voice()
        self.alerted: set[str] = set()
        self.conn = None
        """The local monitor connection currently sending this call (None for calls of other hubs)."""
        self.changed_at = time.monotonic()
        self.tiles = TokenBucket(1.25 / tile_interval_s, 3.0)
        self.tile_timer: asyncio.TimerHandle | None = None
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

    def apply(self, event: dict, at: float | None) -> None:
        kind = event.get("type")
        t = _num(event.get("t")) or 0.0
        self.t = max(self.t, t)
        if at is not None:
            self.at = max(self.at, at)
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(event, t)
        self._remember(kind, event)

    def _on_call_start(self, event: dict, t: float) -> None:
        self.started_at = _num(event.get("started_at")) or self.started_at

    def _on_levels(self, event: dict, t: float) -> None:
        levels, talking = event.get("levels"), event.get("talking")
        self.levels = {p: _num(v) for p, v in levels.items()} if isinstance(levels, dict) else {}
        self.talking = {p: bool(v) for p, v in talking.items()} if isinstance(talking, dict) else {}
        if any(self.talking.values()):
            self.silent_since = None
        elif self.silent_since is None:
            self.silent_since = t
        self.voice.add(t, self.levels.get("customer"), self.talking.get("customer", False))

    def _on_talk_end(self, event: dict, t: float) -> None:
        party, start = event.get("party"), _num(event.get("start"))
        if party in self.talk_s and start is not None:
            self.talk_s[party] += max(0.0, t - start)

    def _on_interruption(self, event: dict, t: float) -> None:
        if event.get("by") in self.interruptions:
            self.interruptions[event["by"]] += 1

    def _on_cue(self, event: dict, t: float) -> None:
        kind, text = str(event.get("kind", "")), str(event.get("text") or event.get("kind", ""))
        self.cues.append((t, kind, text))
        self.last_cue = {"kind": kind, "text": text, "t": t}

    def _on_transcript(self, event: dict, t: float) -> None:
        text = str(event.get("text") or "").strip()
        if text:
            self.line = {"party": event.get("party"), "text": text[:160], "final": event.get("final", True) is not False}

    def _on_pace(self, event: dict, t: float) -> None:
        if isinstance(event.get("wpm"), dict):
            self.wpm = {p: _num(v) for p, v in event["wpm"].items()}

    def _on_call_end(self, event: dict, t: float) -> None:
        self.status = "ended"

    def _remember(self, kind, event: dict) -> None:
        self._order += 1
        if kind == "transcript":
            self._transcripts.append((self._order, event))
        elif kind in ("call_start", "cue", "pace", "levels", "call_end", "device"):
            self._latest[kind] = (self._order, event)

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
        return self.t - self.silent_since if self.silent_since is not None and self.status == "live" else 0.0

    def conditions(self) -> dict[str, tuple[float, str]]:
        """Each escalation signal now present: kind -> (attention weight, why)."""
        out: dict[str, tuple[float, str]] = {}
        if self.status == "ended":
            return out
        if self.voice.raised(self.t):
            out["raised_voice"] = (3.0, "customer raised voice")
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
        dead = self.dead_air_s
        if dead >= DEAD_AIR_ALERT_S:
            out["dead_air"] = (2.0 + (dead - DEAD_AIR_ALERT_S) / 10.0, f"dead air {dead:.0f} s")
        if self.status == "lost":
            out["lost"] = (1.0, "connection lost")
        return out

    def tile(self, conditions: dict | None = None) -> dict:
        conditions = self.conditions() if conditions is None else conditions
        score = round(sum(w for w, _ in conditions.values()), 2)
        total = self.talk_s["agent"] + self.talk_s["customer"]
        return {
            "call_id": self.call_id, "agent": self.agent, "hub": self.origin, "status": self.status,
            "started_at": self.started_at, "t": round(self.t, 3), "at": self.at,
            "levels": self.levels, "talking": self.talking,
            "share": round(self.talk_s["agent"] / total, 3) if total > 0 else None,
            "interruptions": dict(self.interruptions), "cues_1m": len(self.recent_cues()),
            "cue": self.last_cue if self.last_cue and self.last_cue["t"] >= self.t - CUE_WINDOW_S else None,
            "wpm": self.wpm, "dead_air_s": round(self.dead_air_s, 1), "raised_voice": "raised_voice" in conditions,
            "line": self.line, "attention": score, "needs_attention": score >= ATTENTION,
            "reasons": [why for _, why in sorted(conditions.values(), key=lambda c: -c[0])],
            "gaps": self.gaps, "dropped": self.dropped,
        }


class _Voice:
    """The customer's voice level against their own: a slow baseline (~30 s of talk) and a fast one (~1 s)."""

    WARMUP = 25  # levels frames (5 s of the customer talking) before the baseline counts
    HOLD_S = 10.0

    def __init__(self):
        self.n = 0
        self.base = 0.0
        self.fast = 0.0
        self.until = -1.0

    def add(self, t: float, db: float | None, talking: bool) -> None:
        if not talking or db is None:
            return
        self.n += 1
        if self.n <= self.WARMUP:
            self.base += (db - self.base) / self.n
            self.fast = db if self.n == 1 else self.fast + (db - self.fast) * 0.2
            return
        self.base += (db - self.base) * (0.2 / 30.0)
        self.fast += (db - self.fast) * 0.2
        if self.fast - self.base >= RAISED_DB:
            self.until = t + self.HOLD_S

    def raised(self, t: float) -> bool:
        return t < self.until
