"""Pipeline events: plain dataclasses with one JSON form, shared by report, WebSocket, store and hub.

Every `t` is audio time in seconds from the start of the call (derived from sample counts).
"""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import asdict, dataclass, field, fields

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

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "type" in cls.__dict__:
            _TYPES[cls.type] = cls

    @classmethod
    def from_dict(cls, data) -> "Event":
        """The event of a JSON object, every field checked by its annotation and range (see `parse_event`)."""
        event = parse_event(data)
        if cls is not Event and not isinstance(event, cls):
            raise ValueError(f"type must be {cls.type!r}")
        return event


_TYPES: dict[str, type[Event]] = {}
"""Event classes by their `type`, filled as they are defined."""


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
    held: bool = False
    """True: the cue stays up until a `cue_end` of its kind (the monitor hears when its behaviour is over);
    False (recorded before cue_end existed): pages let it go after a few seconds."""
    type = "cue"


@dataclass
class CueEnd(Event):
    """The behaviour behind the `kind` cue is over at `t`: pages take it down, and a lower cue it pushed aside
    shows again. `done`: the agent did what it asked (paused, spoke softer, acknowledged); `note`: a short
    positive note to show for a moment ("" unless [cues] praise is on)."""

    kind: str = ""
    done: bool = False
    note: str = ""
    type = "cue_end"


@dataclass
class Stats(Event):
    """The call so far, sent every [loudness] stats_every_s: each party's talk time (open spurts included), the
    agent's share of it, each party's recent pace and the kinds of the cues up now, so that a page opened
    mid-call shows what the server measured, not what it saw since it opened."""

    talk_s: dict[str, float] = field(default_factory=dict)
    share: float | None = None
    wpm: dict[str, float | None] = field(default_factory=dict)
    cues: list[str] = field(default_factory=list)
    type = "stats"


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
class Sentiment(Event):
    """The customer's sentiment in [-1, 1] (below 0 upset, above 0 pleased), from words and voice: `trend`
    the live value, `recent` that of the `talk_s` seconds of talk since the previous one, `from_words` and
    `from_voice` the trend's two parts (null until known). monitor/analysis/sentiment.py says how."""

    party: str = ""
    trend: float | None = None
    recent: float = 0.0
    talk_s: float = 0.0
    from_words: float | None = None
    from_voice: float | None = None
    type = "sentiment"


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


@dataclass
class Note(Event):
    """A supervisor's word to the agent during the call (`sender`), from the floor to the agent's overlay and
    kept with the call: a short `text`, or a preset coaching `card` (its key; `text` then holds its words).
    Only the server makes these (monitor.web.notes): a monitor sending one is refused."""

    id: int = 0
    sender: str = ""
    text: str = ""
    card: str = ""
    type = "note"


# ---- the JSON form parsed back, checked field by field ----

PARTY_FIELDS = {"party", "by", "before", "after"}
"""Fields that name a party; dictionaries keyed by party (levels, talking, wpm, parties) too."""
RANGES = {
    "t": (0.0, 1e6), "start": (0.0, 1e6), "end": (0.0, 1e6), "at": (0.0, 1e6), "duration": (0.0, 1e6),
    "overlap_s": (0.0, 1e6), "started_at": (0.0, 1e11), "loudness_dbfs": (-200.0, 100.0),
    "levels": (-200.0, 100.0), "wpm": (0.0, 2000.0), "rank": (0, 1000),
    "talk_s": (0.0, 1e6), "share": (0.0, 1.0),
    "trend": (-1.0, 1.0), "recent": (-1.0, 1.0), "from_words": (-1.0, 1.0), "from_voice": (-1.0, 1.0),
}
"""Sane ranges of numbers by field (audio seconds up to 11 days, dBFS, words per minute); others +-1e9."""
TEXT_LIMITS = {"text": 4000, "reason": 1000, "message": 1000, "source": 1000}
"""Longest string per field; others 200 characters."""
LIST_LIMITS = {"words": 2000, "cues": 32}
"""Most items per list field; others 8."""
NUMBER_LIMIT = 1e9


def parse_event(data) -> Event:
    """An Event from its JSON form. Unknown keys are ignored and missing ones take their default (as
    docs/protocol.md asks of readers), but every field present must have its annotated type and lie in its
    range: a ValueError names the first that does not. Numbers nested in dictionaries and lists may be
    null (NaN and infinities are written as null)."""
    if not isinstance(data, dict):
        raise ValueError("an event must be an object")
    kind = data.get("type")
    cls = _TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown event type {str(kind)[:40]!r}")
    if "t" not in data:
        raise ValueError(f"{kind}.t is missing")
    values = {}
    for name, check, required in _checkers(cls):
        if name in data:
            values[name] = check(data[name], f"{kind}.{name}")
        elif required:
            raise ValueError(f"{kind}.{name} is missing")
    return cls(**values)


def events_from_dicts(items: list) -> list[Event]:
    """Events from their JSON form (what the store gives back); unknown types and invalid items are skipped."""
    out = []
    for item in items:
        if isinstance(item, Event):
            out.append(item)
            continue
        if hasattr(item, "to_dict"):
            item = item.to_dict()
        try:
            out.append(parse_event(item))
        except ValueError:
            continue
    return out


_CHECKERS: dict[type, list] = {}


def _checkers(cls) -> list:
    """(field, check(value, where), required) for each field of an event class, made once from its annotations.
    A party field is required: its default ("") names no party."""
    checkers = _CHECKERS.get(cls)
    if checkers is None:
        hints = typing.get_type_hints(cls)
        checkers = _CHECKERS[cls] = [
            (f.name, _checker(hints[f.name], f.name, nested=False), f.name in PARTY_FIELDS and f.default == "")
            for f in fields(cls)]
    return checkers


def _checker(hint, name: str, nested: bool):
    """A function returning its value if it fits `hint` and the field's range, else raising a ValueError
    naming `where`."""
    from . import PARTIES

    origin = typing.get_origin(hint)
    if origin is types.UnionType or origin is typing.Union:
        inner = _checker(next(h for h in typing.get_args(hint) if h is not type(None)), name, nested)
        return lambda value, where: None if value is None else inner(value, where)
    if hint is float or hint is int:
        low, high = RANGES.get(name, (-NUMBER_LIMIT, NUMBER_LIMIT))
        want = "an integer" if hint is int else "a number"
        accepted = int if hint is int else (int, float)

        def number(value, where):
            if value is None and nested:
                return None
            if not isinstance(value, accepted) or value is True or value is False:
                raise ValueError(f"{where} must be {want}")
            if not low <= value <= high:  # NaN fails this too
                raise ValueError(f"{where} must be between {low:g} and {high:g}")
            return float(value) if hint is float else value
        return number
    if hint is bool:
        def boolean(value, where):
            if value is not True and value is not False:
                raise ValueError(f"{where} must be true or false")
            return value
        return boolean
    if hint is str:
        limit = TEXT_LIMITS.get(name, 200)
        party = name in PARTY_FIELDS and not nested

        def string(value, where):
            if not isinstance(value, str):
                raise ValueError(f"{where} must be a string")
            if party and value not in PARTIES:
                raise ValueError(f"{where} must be one of {', '.join(PARTIES)}")
            if len(value) > limit:
                raise ValueError(f"{where} is longer than {limit} characters")
            return value
        return string
    if hint is list or origin is list:
        limit = LIST_LIMITS.get(name, 8)
        item = _word if name == "words" else _checker(typing.get_args(hint)[0], name, True) if origin else _plain

        def sequence(value, where):
            if not isinstance(value, list):
                raise ValueError(f"{where} must be a list")
            if len(value) > limit:
                raise ValueError(f"{where} has more than {limit} items")
            return [item(x, f"{where}[{i}]") for i, x in enumerate(value)]
        return sequence
    if hint is dict or origin is dict:
        args = typing.get_args(hint)
        item = _totals if args and args[1] is dict else _checker(args[1], name, True) if args else _plain

        def mapping(value, where):
            if not isinstance(value, dict):
                raise ValueError(f"{where} must be an object")
            for key in value:
                if key not in PARTIES:
                    raise ValueError(f"{where} keys must be among {', '.join(PARTIES)}")
            return {key: item(x, f"{where}.{key}") for key, x in value.items()}
        return mapping
    # A field whose annotation this function does not know (tests/test_events.py says which): at least a
    # small plain JSON value, never an error that would end a connection.
    return lambda value, where: _plain_json(value, where, depth=3)


def _word(item, where: str) -> list:
    """[word, start, end] of a final transcript."""
    if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str) and len(item[0]) <= 100):
        raise ValueError(f"{where} must be [word, start, end]")
    return [item[0], _WORD_TIME(item[1], where), _WORD_TIME(item[2], where)]


_WORD_TIME = _checker(float, "start", nested=False)


def _plain(value, where: str):
    """A small scalar: a finite number, true/false, null or a short string."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or abs(value) > NUMBER_LIMIT:
            raise ValueError(f"{where} must be a finite number")
        return value
    if isinstance(value, str) and len(value) <= 200:
        return value
    raise ValueError(f"{where} must be a number, true/false, null or a short string")


def _plain_json(value, where: str, depth: int):
    """A bounded JSON value: scalars as `_plain`, lists of at most 100 and objects of at most 32 items."""
    if isinstance(value, list) and depth and len(value) <= 100:
        return [_plain_json(x, f"{where}[{i}]", depth - 1) for i, x in enumerate(value)]
    if isinstance(value, dict) and depth and len(value) <= 32:
        return {str(k)[:64]: _plain_json(x, f"{where}.{k}", depth - 1) for k, x in value.items()}
    return _plain(value, where)


def _totals(value, where: str) -> dict:
    """A party's totals at call end: a few named scalars."""
    if not isinstance(value, dict) or len(value) > 32:
        raise ValueError(f"{where} must be an object of at most 32 totals")
    return {str(k)[:64]: _plain(v, f"{where}.{k}") for k, v in value.items()}
