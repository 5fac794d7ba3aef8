"""Whole calls synthesized with espeak-ng, each party's turns at known times and levels, through the pipeline."""

import pytest

from conftest import of_type
from monitor.analysis.pipeline import run_channels
from synth import Turn, synth_call, turns_in_sequence

ONSET = 0.15  # how far a detected onset may sit from the synthesized one (Silero's frame and lag)

COMPLAINT = ("I ordered a laptop three weeks ago and it still has not arrived, "
             "and every time I call I am told to wait another few days.")
GREETING = "Thank you for calling Northwind support, my name is Sam, how can I help you today?"
EXPLAIN = "Let me look up your order, I can see it left our warehouse on Monday and it is with the courier."


def analyse(turns, **kw):
    return run_channels(synth_call(turns, **kw), transcribe=False)


def cues(events):
    return [(c.kind, c.t) for c in of_type(events, "cue")]


def test_agent_interrupting_gets_wait_for_pause_within_1_5_s():
    greeting, complaint = turns_in_sequence(("agent", GREETING), ("customer", COMPLAINT))
    barge_in = Turn("agent", complaint.start + 3.0, EXPLAIN)
    events = analyse([greeting, complaint, barge_in], bleed_db=-26)
    (i,) = of_type(events, "interruption")
    assert i.by == "agent" and i.t == pytest.approx(barge_in.start, abs=ONSET)
    assert cues(events) == [("wait_for_pause", pytest.approx(i.at))]
    assert barge_in.start < i.at <= barge_in.start + 1.5


def test_customer_interrupting_is_counted_but_gets_the_agent_no_cue():
    explain = Turn("agent", 0.5, EXPLAIN)
    events = analyse([explain, Turn("customer", 3.5, COMPLAINT)], bleed_db=-26)
    (i,) = of_type(events, "interruption")
    assert i.by == "customer" and i.t == pytest.approx(3.5, abs=ONSET)
    assert cues(events) == []


def test_backchannels_are_not_interruptions():
    complaint = Turn("customer", 0.5, COMPLAINT)
    mhm, okay = Turn("agent", 2.5, "Mm-hmm."), Turn("agent", 5.5, "Okay.")
    assert mhm.end - mhm.start < 0.8 and okay.end - okay.start < 0.8
    reply = Turn("agent", complaint.end + 0.8, "I understand.")
    events = analyse([complaint, mhm, okay, reply], bleed_db=-26)
    assert of_type(events, "interruption") == []
    assert [b.t for b in of_type(events, "backchannel")] == [pytest.approx(2.5, abs=ONSET), pytest.approx(5.5, abs=ONSET)]
    assert cues(events) == []


def test_raised_agent_voice_gets_speak_softly_within_3_s():
    turns = turns_in_sequence(("agent", GREETING, -26), ("customer", COMPLAINT, -24), ("agent", EXPLAIN, -26),
                              ("customer", "That is not good enough.", -22),
                              ("agent", "Look, I already told you, the parcel is with the courier!", -17))
    events = analyse(turns, bleed_db=-26)
    raised = turns[-1].start
    assert cues(events) == [("speak_softly", pytest.approx(raised + 1.5, abs=1.5))]


def test_loud_customer_with_a_steady_agent_gets_no_cue():
    turns = turns_in_sequence(("agent", GREETING, -26), ("customer", COMPLAINT, -24), ("agent", EXPLAIN, -26),
                              ("customer", "This is ridiculous, I want it today!", -12),
                              ("agent", "I am sorry, I understand, let me see what I can do for you today.", -26),
                              ("customer", "Unacceptable, this is the third time I am calling!", -11))
    events = analyse(turns, bleed_db=-22)
    assert cues(events) == []
    assert of_type(events, "interruption") == []


@pytest.mark.parametrize("bleed_db", [-20, -30])
def test_headset_bleed_does_not_count_as_the_other_party_speaking(bleed_db):
    turns = turns_in_sequence(("agent", GREETING, -24), ("customer", COMPLAINT, -20), ("agent", EXPLAIN, -26))
    events = analyse(turns, bleed_db=bleed_db, noise_dbfs=-62)
    for spurt in of_type(events, "talk_end"):
        assert any(t.party == spurt.party and t.start - ONSET <= spurt.start and spurt.t <= t.end + ONSET
                   for t in turns), f"{spurt.party} spurt {spurt.start:.2f}-{spurt.t:.2f} is outside their turns"
    starts = [(e.party, e.t) for e in of_type(events, "talk_start")]
    for turn in turns:
        assert any(p == turn.party and abs(t - turn.start) <= ONSET for p, t in starts)
    assert of_type(events, "overlap") == []


def test_long_silence_gets_dead_air_once():
    first = Turn("agent", 0.5, "Let me check that for you.")
    events = analyse([first, Turn("agent", first.end + 9.0, "Thanks for waiting.")], noise_dbfs=-60)
    assert cues(events) == [("dead_air", pytest.approx(first.end + 5.0, abs=0.2))]


def test_calm_polite_call_gets_no_cue():
    turns = turns_in_sequence(
        ("agent", GREETING, -25),
        ("customer", "Hi, I would like to check on an order I placed last week.", -24),
        ("agent", "Of course, could you give me the order number please?", -25),
        ("customer", "Yes, it is four five six seven eight.", -23),
        ("agent", "Thank you. I can see it is out for delivery and should arrive tomorrow.", -25),
        ("customer", "Great, thank you very much.", -23),
        ("agent", "You are welcome, have a lovely day.", -25),
        gap=0.6,
    )
    events = analyse(turns, bleed_db=-28, noise_dbfs=-60)
    assert cues(events) == []
    assert of_type(events, "interruption") == [] and of_type(events, "overlap") == []


def test_answering_on_the_customers_last_syllable_three_times_gets_pause_first():
    lines = [("customer", "I need to change the address on my order."), ("agent", "Sure, what is the new address?"),
             ("customer", "It is twelve Main Street."), ("agent", "Got it, anything else?"),
             ("customer", "And the phone number too."), ("agent", "No problem, what is it?"),
             ("customer", "Five five five, one two three four."), ("agent", "Done, thanks.")]
    quick = turns_in_sequence(*lines, gap=0.05)
    assert [k for k, _ in cues(analyse(quick, bleed_db=-28))] == ["pause_first"]
    patient = turns_in_sequence(*lines, gap=0.7)
    assert cues(analyse(patient, bleed_db=-28)) == []
