"""The pipeline's promises, checked on one synthesized call with overlaps, bleed and noise:
how the audio is delivered (block size, which party arrives first) never changes the events, time
only moves forward, every spurt that opens closes, and both parties are treated alike."""

import numpy as np
import pytest

from audio.sources import Frame, array_frames
from monitor.analysis.pipeline import Pipeline
from synth import Turn, synth_call, turns_in_sequence

STARTED_AT = 1_700_000_000.0


@pytest.fixture(scope="module")
def channels():
    greeting, complaint = turns_in_sequence(
        ("agent", "Thank you for calling, how can I help you today?"),
        ("customer", "My parcel never came and nobody answers my emails, it is the third time I call."))
    barge_in = Turn("agent", complaint.start + 2.0, "Let me stop you there, I see the order.", level_dbfs=-18)
    reply = Turn("customer", barge_in.end + 0.1, "No, listen to me.", level_dbfs=-20)
    return synth_call([greeting, complaint, barge_in, reply], duration=reply.end + 6.5, bleed_db=-26,
                      noise_dbfs=-60)


def analyse(frames, pipeline: Pipeline | None = None) -> list:
    pipeline = pipeline or Pipeline(call_id="fixed", source="test", transcribe=False)
    events = pipeline.start(STARTED_AT)
    for frame in frames:
        events += pipeline.push(frame)
    return events + pipeline.finish()


def one_party_first(channels, first: str, block: int = 4000):
    """All of one party's audio, then all of the other's: the most uneven arrival there is."""
    order = [first] + [p for p in channels if p != first]
    for party in order:
        for start in range(0, len(channels[party]), block):
            yield Frame(party, start, channels[party][start:start + block])


def interleaved_unevenly(channels, seed: int = 3):
    """Each party in blocks of random sizes, the parties taking turns at random, one running ahead."""
    rng = np.random.default_rng(seed)
    pos = {p: 0 for p in channels}
    while any(pos[p] < len(channels[p]) for p in channels):
        party = [p for p in channels if pos[p] < len(channels[p])][rng.integers(0, 2) if all(
            pos[p] < len(channels[p]) for p in channels) else 0]
        n = int(rng.integers(1, 9000))
        yield Frame(party, pos[party], channels[party][pos[party]:pos[party] + n])
        pos[party] += n


def dicts(events) -> list[dict]:
    return [e.to_dict() for e in events]


@pytest.fixture(scope="module")
def reference(channels):
    return analyse(array_frames(channels, 1600))


def test_the_reference_call_has_what_the_invariants_are_about(reference):
    kinds = {e.type for e in reference}
    assert {"talk_start", "talk_end", "overlap", "interruption", "silence", "levels", "cue"} <= kinds


@pytest.mark.parametrize("block", [160, 511, 512, 1600, 16000])
def test_block_size_does_not_change_the_events(channels, reference, block):
    assert dicts(analyse(array_frames(channels, block))) == dicts(reference)


def test_one_sample_at_a_time_gives_the_same_events(channels):
    """The extreme block size, on the call's first seconds (its barge-in included) to keep the test quick."""
    head = {party: samples[:8 * 16000] for party, samples in channels.items()}
    assert dicts(analyse(array_frames(head, 1))) == dicts(analyse(array_frames(head, 1600)))


@pytest.mark.parametrize("arrival", ["agent first", "customer first", "interleaved unevenly"])
def test_arrival_order_does_not_change_the_events(channels, reference, arrival):
    frames = interleaved_unevenly(channels) if arrival == "interleaved unevenly" else \
        one_party_first(channels, arrival.split()[0])
    assert dicts(analyse(frames)) == dicts(reference)


def test_time_only_moves_forward(reference):
    times = [e.t for e in reference if e.type != "silence" and e.type != "overlap" and e.type != "interruption"
             and e.type != "talk_start" and e.type != "talk_end" and e.type != "backchannel"]
    assert times == sorted(times), "ticks, cues and levels are emitted in audio-time order"
    levels = [e.t for e in reference if e.type == "levels"]
    assert levels == sorted(levels) and len(set(levels)) == len(levels)
    duration = reference[-1].t
    assert reference[0].type == "call_start" and reference[-1].type == "call_end"
    assert all(0.0 <= e.t <= duration for e in reference)
    for e in reference:  # an event that spans time spans it forwards, and never past the call
        end = getattr(e, "end", None)
        if end is not None:
            assert e.t <= end <= duration, e


def test_every_talk_start_is_closed_by_a_talk_end(reference):
    for party in ("agent", "customer"):
        talk = [e for e in reference if e.type in ("talk_start", "talk_end") and e.party == party]
        assert [e.type for e in talk] == ["talk_start", "talk_end"] * (len(talk) // 2), party
        for start, end in zip(talk[::2], talk[1::2]):
            assert end.start == start.t and start.t < end.t
        spurts = [(s.t, e.t) for s, e in zip(talk[::2], talk[1::2])]
        assert all(a[1] <= b[0] for a, b in zip(spurts, spurts[1:])), "a party's spurts never overlap"


def test_overlaps_lie_within_both_parties_spurts(reference):
    spurts = {p: [(e.start, e.t) for e in reference if e.type == "talk_end" and e.party == p]
              for p in ("agent", "customer")}
    overlaps = [e for e in reference if e.type == "overlap"]
    assert overlaps
    for o in overlaps:
        for party, theirs in spurts.items():
            assert any(a <= o.t and o.end <= b for a, b in theirs), (o, party)


SWAP = {"agent": "customer", "customer": "agent"}


def mirrored(event: dict) -> dict:
    """The event as it reads with the parties' names exchanged."""
    out = {}
    for key, value in event.items():
        if key in ("party", "by", "before", "after") and value in SWAP:
            value = SWAP[value]
        elif isinstance(value, dict) and set(value) <= set(SWAP):
            value = {SWAP[k]: v for k, v in value.items()}
        out[key] = value
    return out


def test_swapping_the_channels_mirrors_the_events(channels, reference):
    """Each party's voice decision reads the other's from the same tick, whichever is stepped first."""
    straight, crossed = (Pipeline(call_id="fixed", source="test", transcribe=False) for _ in range(2))
    analyse(array_frames(channels), straight)
    swapped = analyse(array_frames({"agent": channels["customer"], "customer": channels["agent"]}), crossed)
    for party, other in SWAP.items():  # the bleed path each learned while only the other talked
        learned = straight.parties[party].coupling, crossed.parties[other].coupling
        assert learned[0].count == learned[1].count > 0 and learned[0].value == learned[1].value, party

    def acoustic(events):  # cues (their ends, the stats' agent share and cues up) are the agent's alone: not symmetric
        parts = ({k: v for k, v in d.items() if d["type"] != "stats" or k not in ("share", "cues")}
                 for d in dicts(events) if d["type"] not in ("cue", "cue_end"))
        return sorted((mirrored(d) if events is swapped else d for d in parts),
                      key=lambda d: (d["t"], repr(sorted(d.items()))))
    assert acoustic(swapped) == acoustic(reference)
