"""Events parsed back from JSON next to their classes: what the pipeline writes reads back equal, and every
field a hostile sender could bend is refused by name."""

from __future__ import annotations

import json

import pytest

from monitor.analysis.pipeline import run_channels
from monitor.events import Cue, Event, Levels, Transcript, events_from_dicts, parse_event
from synth import barge_in_call


def test_what_the_pipeline_writes_reads_back_equal():
    channels, _ = barge_in_call("My order never arrived and I have waited three weeks, it is not okay.")
    events = run_channels(channels, transcribe=False)
    events.append(Transcript(t=9.5, party="customer", start=8.0, end=9.4, text="it is not okay", final=True,
                             words=[["it", 8.0, 8.2], ["is", 8.2, 8.4], ["not", 8.5, 8.8], ["okay", 8.9, 9.4]]))
    kinds = {e.type for e in events}
    assert {"call_start", "levels", "talk_start", "talk_end", "cue", "call_end", "transcript"} <= kinds
    for event in events:
        parsed = Event.from_dict(json.loads(event.to_json()))
        assert parsed.to_dict() == event.to_dict(), event
    assert events_from_dicts([e.to_dict() for e in events]) == [parse_event(e.to_dict()) for e in events]


@pytest.mark.parametrize("event, field, why", [
    ({"type": "talk_end", "t": 1.0, "party": {"x": 1}}, "talk_end.party", "must be a string"),
    ({"type": "talk_end", "t": 1.0, "party": "mallory"}, "talk_end.party", "must be one of agent, customer"),
    ({"type": "interruption", "t": 1.0, "by": ["agent"]}, "interruption.by", "must be a string"),
    ({"type": "transcript", "t": 1.0, "party": "customer", "text": 42}, "transcript.text", "must be a string"),
    ({"type": "transcript", "t": 1.0, "party": "customer", "text": "x" * 5000}, "transcript.text", "is longer than 4000"),
    ({"type": "transcript", "t": 1.0, "party": "customer", "words": [["a", 1.0]]}, "transcript.words[0]", "must be [word, start, end]"),
    ({"type": "transcript", "t": 1.0, "party": "customer", "final": "yes"}, "transcript.final", "must be true or false"),
    ({"type": "levels", "t": 1e26}, "levels.t", "must be between 0 and 1e+06"),
    ({"type": "levels", "t": -1.0}, "levels.t", "must be between"),
    ({"type": "levels", "t": "1"}, "levels.t", "must be a number"),
    ({"type": "levels", "t": True}, "levels.t", "must be a number"),
    ({"type": "levels", "t": 1.0, "levels": {"agent": 1e9}}, "levels.levels.agent", "must be between -200 and 100"),
    ({"type": "levels", "t": 1.0, "levels": {"bob": -20.0}}, "levels.levels", "keys must be among"),
    ({"type": "levels", "t": 1.0, "talking": {"agent": 1}}, "levels.talking.agent", "must be true or false"),
    ({"type": "cue", "t": 1.0, "rank": 2.5}, "cue.rank", "must be an integer"),
    ({"type": "call_start", "t": 0.0, "parties": ["agent"] * 9}, "call_start.parties", "more than 8 items"),
    ({"type": "call_end", "t": 1.0, "parties": {"agent": {"talk_s": {"deep": 1}}}}, "call_end.parties.agent.talk_s",
     "must be a number"),
    ({"type": "pace", "t": 1.0, "wpm": {"agent": 1e12}}, "pace.wpm.agent", "must be between 0 and 2000"),
    ({"type": "nonsense", "t": 1.0}, "unknown event type 'nonsense'", ""),
    ({"type": "levels"}, "levels.t is missing", ""),
    ({"type": "talk_end", "t": 1.0, "start": 0.5}, "talk_end.party is missing", ""),
    ({"type": "interruption", "t": 1.0}, "interruption.by is missing", ""),
])
def test_a_bad_field_is_refused_by_name(event, field, why):
    with pytest.raises(ValueError) as refused:
        Event.from_dict(event)
    assert str(refused.value).startswith(field) and why in str(refused.value)


def test_nulls_where_json_has_no_number_and_defaults_for_missing_fields():
    levels = Event.from_dict({"type": "levels", "t": 1, "levels": {"agent": None, "customer": -30}})
    assert isinstance(levels, Levels) and levels.levels == {"agent": None, "customer": -30.0} and levels.t == 1.0
    cue = Cue.from_dict({"type": "cue", "t": 2.0, "kind": "slow_down", "extra": {"ignored": True}})
    assert cue == Cue(t=2.0, kind="slow_down")
    with pytest.raises(ValueError, match="type must be 'cue'"):
        Cue.from_dict({"type": "levels", "t": 1.0})
    with pytest.raises(ValueError):
        Event.from_dict({"type": "levels", "t": None})  # a top-level number is never null
    assert events_from_dicts([{"type": "levels", "t": 1.0}, {"type": "levels", "t": "x"}, {"type": "??", "t": 1},
                              "junk"]) == [Levels(t=1.0)]


def test_every_event_field_has_a_check_of_its_own():
    """A field added with an annotation parse_event does not know falls back to a loose check: teach it."""
    import typing

    from monitor.events import _TYPES, _checker, _plain_json

    fallback = _checker(typing.Any, "x", nested=False).__code__
    assert _plain_json  # what the fallback uses
    for cls in _TYPES.values():
        for name, hint in typing.get_type_hints(cls).items():
            if name in cls.__dataclass_fields__:
                assert _checker(hint, name, nested=False).__code__ is not fallback, (cls.__name__, name, hint)
