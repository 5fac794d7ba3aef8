"""Pipeline events: plain dataclasses with one JSON form, shared by report, WebSocket, store and hub.

Every `t` is audio time in seconds from the start of the call (derived from sample counts).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

VERSION = 1


def finite(value):
    """The same structure with NaN and infinities as None: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


@dataclass
class Event:
    t: float

    type = "event"

    def to_dict(self) -> dict:
        out = {"v": VERSION, "type": self.type}
        for key, value in asdict(self).items():
            out[key] = round(value, 3) if isinstance(value, float) else value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


@dataclass
class CallStart(Event):
    """A call begins; `started_at` is the wall clock (Unix seconds) at audio time 0, for latency and records."""

    call_id: str = ""
    source: str = ""
    parties: list[str] = field(default_factory=list)
    started_at: float = 0.0
    type = "call_start"


@dataclass
class Levels(Event):
    """Both parties' current level (dBFS over the last 0.2 s) and whether each is talking."""

    levels: dict[str, float] = field(default_factory=dict)
    talking: dict[str, bool] = field(default_factory=dict)
    type = "levels"


@dataclass
class TalkStart(Event):
    party: str = ""
    type = "talk_start"


@dataclass
class TalkEnd(Event):
    """A talk spurt closed: `t` is when the voice stopped, `start` when it began."""

    party: str = ""
    start: float = 0.0
    loudness_dbfs: float = 0.0
    type = "talk_end"


@dataclass
class Silence(Event):
    """Nobody talked from `t` to `end`; a response gap when `before` and `after` differ."""

    end: float = 0.0
    before: str | None = None
    after: str | None = None
    type = "silence"


@dataclass
class Overlap(Event):
    """Both talked from `t` to `end`; `by` started second."""

    end: float = 0.0
    by: str = ""
    type = "overlap"


@dataclass
class Backchannel(Event):
    """A short reply ("mm-hmm") under the other party's speech: not an interruption."""

    party: str = ""
    duration: float = 0.0
    type = "backchannel"


@dataclass
class Interruption(Event):
    """`by` started at `t` while the other was talking and kept going or took the floor; decided at `at`."""

    by: str = ""
    at: float = 0.0
    overlap_s: float = 0.0
    type = "interruption"


@dataclass
class Cue(Event):
    """Advice for the agent, shown on the overlay; `t` is when its condition was met. Of the cues up at once,
    pages show the one of highest `rank` (set from cues.PRIORITY; 0 = unranked, below every ranked cue)."""

    kind: str = ""
    text: str = ""
    reason: str = ""
    rank: int = 0
    type = "cue"


@dataclass
class CallEnd(Event):
    """The call is over; `parties` holds each party's totals (talk_s, loudness_dbfs, ...)."""

    parties: dict[str, dict] = field(default_factory=dict)
    type = "call_end"


@dataclass
class Transcript(Event):
    """What `party` said from `start` to `end`; interim text (final false) is replaced by the next one."""

    party: str = ""
    start: float = 0.0
    end: float = 0.0
    text: str = ""
    final: bool = True
    words: list = field(default_factory=list)  # [[word, start, end], ...] for finals
    type = "transcript"


@dataclass
class Pace(Event):
    """Each party's recent pace in words per minute (null until they have spoken)."""

    wpm: dict[str, float | None] = field(default_factory=dict)
    type = "pace"


@dataclass
class DeviceStatus(Event):
    """A party's capture device was lost, came back, or overflowed (`state`: lost, ok, overflow)."""

    party: str = ""
    state: str = ""
    message: str = ""
    type = "device"


@dataclass
class StoreStatus(Event):
    """Recording this call failed (full disk, unwritable directory); the call itself goes on."""

    state: str = "error"
    message: str = ""
    type = "store"
