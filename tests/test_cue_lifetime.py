"""Issue 12 items 3-4: a cue stays up while its behaviour lasts and a cue_end says when it is over (with a
positive note when the agent did what it asked, if [cues] praise); stats every second; dead air only once
someone has spoken. Rules fed views first, then synthesized calls through the real pipeline."""

from __future__ import annotations

import pytest

from monitor.analysis.cues import NOTES, CueRules
from monitor.analysis.pipeline import run_channels
from monitor.analysis.view import CallView, PartyView
from monitor.config import Config
from monitor.events import Cue, CueEnd, Interruption, Stats, Transcript
from synth import Turn, barge_in_call, synth_call, turns_in_sequence

STEP = 0.032
CFG = Config().cues


def config(**cues) -> Config:
    cfg = Config()
    for key, value in cues.items():
        setattr(cfg.cues, key, value)
    return cfg


def party(talking=False, rise=None, spurt_start=None) -> PartyView:
    return PartyView(short_db=None if rise is None else -30.0 + rise, baseline_db=-30.0, baseline_s=10.0,
                     voiced=talking, talking=talking, spurt_start=spurt_start)


def view(t, agent=None, customer=None, events=(), silence_start=None, last_speaker="customer") -> CallView:
    return CallView(t=t, parties={"agent": agent or party(), "customer": customer or party()},
                    silence_start=silence_start, events=list(events), last_speaker=last_speaker)


def ticks(start: float, end: float):
    k = 0
    while start + k * STEP < end:
        yield round(start + k * STEP, 3)
        k += 1


def run(rules: CueRules, views) -> list:
    return [event for v in views for event in rules.step(v)]


def kinds(events, cls) -> list[tuple[str, float]]:
    return [(e.kind, e.t) for e in events if isinstance(e, cls)]


# ---- each rule's lifetime, from views ----

def test_speak_softly_stays_while_the_agent_is_loud_and_ends_when_they_soften():
    rules = CueRules(config(praise=True))
    loud = [view(t, agent=party(True, 9.0)) for t in ticks(0.0, 8.0)]
    soft = [view(t, agent=party(True, 1.0)) for t in ticks(8.0, 10.0)]
    events = run(rules, loud)
    assert kinds(events, Cue) == [("speak_softly", pytest.approx(CFG.speak_softly.hold_s, abs=2 * STEP))]
    assert kinds(events, CueEnd) == [] and rules.active == ["speak_softly"]  # 7 s on: still up
    ends = [e for e in run(rules, soft) if isinstance(e, CueEnd)]
    assert [(e.kind, e.done, e.note) for e in ends] == [("speak_softly", True, NOTES["speak_softly"])]
    assert ends[0].t == pytest.approx(8.0 + CFG.clear_s, abs=2 * STEP)
    assert rules.active == []


def test_speak_softly_that_stops_talking_is_not_praised_and_praise_is_off_by_default():
    rules = CueRules(Config())
    run(rules, [view(t, agent=party(True, 9.0)) for t in ticks(0.0, 3.0)])
    ends = [e for e in run(rules, [view(t) for t in ticks(3.0, 6.0)]) if isinstance(e, CueEnd)]
    assert [(e.kind, e.done, e.note) for e in ends] == [("speak_softly", False, "")]


def test_wait_for_pause_ends_with_the_overlap_not_seconds_later():
    rules = CueRules(config(praise=True))
    both = dict(agent=party(True), customer=party(True))
    events = run(rules, [view(2.0, events=[Interruption(t=1.0, by="agent", at=2.0)], **both)]
                 + [view(t, **both) for t in ticks(2.032, 5.0)])  # the overlap goes on 3 s: the cue stays
    assert kinds(events, Cue) == [("wait_for_pause", 2.0)] and kinds(events, CueEnd) == []
    # The agent stops, the customer goes on: gone clear_s later, and the agent did what it asked.
    events = run(rules, [view(t, customer=party(True)) for t in ticks(5.0, 7.0)])
    ends = [e for e in events if isinstance(e, CueEnd)]
    assert [(e.kind, e.done) for e in ends] == [("wait_for_pause", True)]
    assert ends[0].t == pytest.approx(5.0 + CFG.clear_s, abs=2 * STEP)


def test_a_cue_whose_behaviour_was_over_at_once_stays_min_show_s():
    rules = CueRules(Config())  # the agent took the floor: the overlap is already over when the cue comes
    events = run(rules, [view(2.0, agent=party(True), events=[Interruption(t=1.0, by="agent", at=2.0)])]
                 + [view(t, agent=party(True)) for t in ticks(2.032, 6.0)])
    assert [(e.kind, e.done) for e in events if isinstance(e, CueEnd)] == [("wait_for_pause", False)]
    assert kinds(events, CueEnd)[0][1] == pytest.approx(2.0 + CFG.min_show_s, abs=2 * STEP)


def test_acknowledge_stays_until_the_agent_acknowledges_and_a_lower_cue_stays_up_behind_a_higher_one():
    rules = CueRules(Config())
    said = Transcript(t=1.0, party="customer", start=0.0, end=1.0, text="This is ridiculous.")
    run(rules, [view(1.0, events=[said])])
    events = run(rules, [view(t) for t in ticks(1.032, 1.0 + CFG.acknowledge.within_s + 0.1)])
    assert kinds(events, Cue) == [("acknowledge", pytest.approx(11.0, abs=2 * STEP))]
    both = dict(agent=party(True), customer=party(True))
    run(rules, [view(12.0, events=[Interruption(t=11.0, by="agent", at=12.0)], **both)])
    assert rules.active == ["wait_for_pause", "acknowledge"]  # both up: pages show the first, then the other
    events = run(rules, [view(t) for t in ticks(12.032, 25.0)])
    assert kinds(events, CueEnd) == [("wait_for_pause", pytest.approx(12.0 + CFG.min_show_s, abs=2 * STEP))]
    assert rules.active == ["acknowledge"]  # 14 s after it came, not acknowledged: still up
    sorry = Transcript(t=25.5, party="agent", start=24.0, end=25.5, text="I'm so sorry about that.")
    events = run(rules, [view(25.5, events=[sorry])] + [view(t) for t in ticks(25.532, 27.0)])
    assert [(e.kind, e.done) for e in events if isinstance(e, CueEnd)] == [("acknowledge", True)]


def test_a_cue_whose_end_cannot_be_heard_goes_after_max_show_s():
    rules = CueRules(config(max_show_s=12.0))
    said = Transcript(t=1.0, party="customer", start=0.0, end=1.0, text="This is ridiculous.")
    events = run(rules, [view(1.0, events=[said])] + [view(t) for t in ticks(1.032, 40.0)])
    (cue,) = [e for e in events if isinstance(e, Cue)]
    ends = [e for e in events if isinstance(e, CueEnd)]
    assert [(e.kind, e.done) for e in ends] == [("acknowledge", False)]
    assert ends[0].t == pytest.approx(cue.t + 12.0 + CFG.clear_s, abs=2 * STEP)


def test_a_cue_about_a_moment_stays_show_s():
    rules = CueRules(config(show_s=4.0))
    said = Transcript(t=3.0, party="agent", start=1.0, end=3.0, text="I'm afraid it's our policy.")
    events = run(rules, [view(3.0, events=[said])] + [view(t) for t in ticks(3.032, 15.0)])
    assert kinds(events, Cue) == [("own_the_problem", 3.0)]
    assert kinds(events, CueEnd) == [("own_the_problem", pytest.approx(3.0 + 4.0 + CFG.clear_s, abs=2 * STEP))]


def test_dead_air_ends_when_someone_speaks_and_never_in_the_opening_silence():
    rules = CueRules(config(praise=True))
    opening = [view(t, silence_start=0.0, last_speaker=None) for t in ticks(0.0, 9.0)]
    assert run(rules, opening) == []
    events = run(rules, [view(t, silence_start=20.0) for t in ticks(20.0, 30.0)])
    assert kinds(events, Cue) == [("dead_air", pytest.approx(20.0 + CFG.dead_air.silence_s, abs=2 * STEP))]
    assert kinds(events, CueEnd) == []  # ten seconds of silence: up all along
    ends = [e for e in run(rules, [view(t, agent=party(True)) for t in ticks(30.0, 32.0)]) if isinstance(e, CueEnd)]
    assert [(e.kind, e.done, e.note) for e in ends] == [("dead_air", True, NOTES["dead_air"])]


# ---- synthesized calls through the pipeline ----

def test_a_barge_in_cue_ends_with_its_overlap():
    channels, barge_in = barge_in_call("My order never arrived and I have been waiting for two weeks, it is not okay.")
    events = run_channels(channels, transcribe=False)
    (cue,) = [e for e in events if isinstance(e, Cue)]
    (end,) = [e for e in events if isinstance(e, CueEnd)]
    overlap = next(e for e in events if e.type == "overlap" and e.by == "agent" and e.t >= barge_in.start - 0.5)
    assert cue.kind == end.kind == "wait_for_pause" and cue.held
    # It goes clear_s after the overlap ends (or after min_show_s), while the agent still talks: not 8 s later.
    assert overlap.end <= end.t <= max(overlap.end, cue.t + CFG.min_show_s) + CFG.clear_s + 0.1
    assert end.t < barge_in.end


def test_a_loud_agent_is_cued_while_loud_and_praised_for_softening():
    calm = "Thank you for calling, I can certainly look into the delivery for you today."
    turns = turns_in_sequence(("customer", "Hello, I am calling about my order."), ("agent", calm),
                              ("customer", "It still has not arrived."), ("agent", calm))
    loud = Turn("agent", turns[-1].end + 1.0, "I told you already, the parcel left our warehouse on Monday morning "
                "and you need to wait for it", level_dbfs=-10.0)
    softer = Turn("agent", loud.end + 0.1, "but let me check with the courier for you right now, one moment",
                  level_dbfs=-25.0)
    events = run_channels(synth_call(turns + [loud, softer]), config(praise=True), transcribe=False)
    cues = [e for e in events if isinstance(e, Cue) and e.kind == "speak_softly"]
    ends = [e for e in events if isinstance(e, CueEnd) and e.kind == "speak_softly"]
    assert len(cues) == len(ends) == 1
    assert loud.start < cues[0].t < loud.end and loud.end <= ends[0].t < softer.end
    assert ends[0].done and ends[0].note == NOTES["speak_softly"]
    up = [s for s in events if isinstance(s, Stats) and cues[0].t <= s.t < ends[0].t]
    assert up and all("speak_softly" in s.cues for s in up)


def test_the_opening_silence_is_not_dead_air_but_silence_after_speech_is():
    turns = turns_in_sequence(("customer", "Hello, is anyone there? I would like to ask about my bill."),
                              ("agent", "Yes, let me look that up."), first=7.0, gap=0.6)
    turns.append(Turn("agent", turns[1].end + CFG.dead_air.silence_s + 2.0, "Sorry, thank you for waiting."))
    events = run_channels(synth_call(turns), transcribe=False)
    first_talk = min(e.t for e in events if e.type == "talk_start")
    cues = [e for e in events if isinstance(e, Cue) and e.kind == "dead_air"]
    assert first_talk > CFG.dead_air.silence_s + 1  # nobody spoke for longer than silence_s at the start...
    assert [c.t > turns[1].end for c in cues] == [True]  # ...and only the silence after speech is dead air
    (end,) = [e for e in events if isinstance(e, CueEnd) and e.kind == "dead_air"]
    assert turns[2].start <= end.t <= turns[2].start + 0.5 + CFG.clear_s and end.done


def test_stats_every_second_hold_the_calls_talk_share_pace_and_cues():
    channels, _ = barge_in_call("My order never arrived and I have been waiting for two weeks, it is not okay.")
    events = run_channels(channels, transcribe=False)
    stats = [e for e in events if isinstance(e, Stats)]
    assert len(stats) >= 8  # one a second ([loudness] stats_every_s, in whole 32 ms ticks)
    assert all(b.t - a.t == pytest.approx(31 * STEP, abs=1e-3) for a, b in zip(stats, stats[1:]))
    talk = {p: sum(e.t - e.start for e in events if e.type == "talk_end" and e.party == p) for p in ("agent", "customer")}
    last = stats[-1]
    for p in talk:  # the talk so far, open spurts included: at the end, what the closed spurts add up to
        assert last.talk_s[p] == pytest.approx(talk[p], abs=1.1)
    assert last.share == pytest.approx(talk["agent"] / sum(talk.values()), abs=0.05)
    assert all(s.share is None for s in stats if not any(s.talk_s.values()))
    (cue,), (end,) = [e for e in events if isinstance(e, Cue)], [e for e in events if isinstance(e, CueEnd)]
    assert [s.cues for s in stats if s.t < cue.t] == [[]] * len([s for s in stats if s.t < cue.t])
    up = [s.cues for s in stats if cue.t <= s.t < end.t]
    assert up and up == [["wait_for_pause"]] * len(up)
    assert all(s.cues == [] for s in stats if s.t >= end.t)
    assert Stats.from_dict(last.to_dict()) == last  # its JSON form checks out (as the server checks it)

