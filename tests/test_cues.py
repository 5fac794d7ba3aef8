"""Each cue rule on its own: views of the call go in, cues come out (no audio, no pipeline)."""

from dataclasses import replace

from monitor.config import Config, CuesConfig
from monitor.analysis.cues import (RANKS, Acknowledge, CueRules, DeadAir, LetThemTalk, OwnTheProblem, PauseFirst,
                                   SlowDown, SpeakSoftly, WaitForPause)
from monitor.analysis.view import CallView, PartyView
from monitor.events import Interruption, Pace, Silence, TalkEnd, Transcript

CFG = CuesConfig()
STEP = 0.032


def view(t, agent=None, customer=None, events=(), silence_start=None, frustration=None,
         last_speaker="customer") -> CallView:
    return CallView(t=t, parties={"agent": agent or PartyView(), "customer": customer or PartyView()},
                    silence_start=silence_start, events=list(events), frustration=frustration,
                    last_speaker=last_speaker)


def voice(rise, baseline_s=10.0, **kw) -> PartyView:
    """A party talking and voiced, `rise` dB over their baseline (None: not measured yet)."""
    return PartyView(short_db=None if rise is None else -30.0 + rise, baseline_db=-30.0, baseline_s=baseline_s,
                     voiced=True, talking=True, **kw)


def run_rule(rule, views) -> list:
    """Feed views to a rule, tick by tick; the cues it gave (pipecat's run_test, for one rule)."""
    return [cue for cue in map(rule.step, views) if cue is not None]


def test_wait_for_pause_on_the_agents_interruption_only_with_cooldown():
    by_customer = Interruption(t=1.0, by="customer", at=2.0)
    by_agent = Interruption(t=3.0, by="agent", at=4.0)
    cues = run_rule(WaitForPause(CFG.wait_for_pause), [
        view(2.0, events=[by_customer]), view(4.0, events=[by_agent]), view(10.0, events=[by_agent]),
        view(4.0 + CFG.wait_for_pause.cooldown_s, events=[by_agent])])
    assert [(c.kind, c.t, c.text) for c in cues] == [("wait_for_pause", 4.0, "Wait for the pause"),
                                                     ("wait_for_pause", 19.0, "Wait for the pause")]
    assert cues[0].rank == RANKS["wait_for_pause"] == max(RANKS.values())


def softly(rises, **kw) -> list:
    return run_rule(SpeakSoftly(CFG.speak_softly), [view(k * STEP, agent=voice(r, **kw)) for k, r in enumerate(rises)])


def test_speak_softly_needs_the_rise_held_for_hold_s():
    held = int(CFG.speak_softly.hold_s / STEP) + 1
    assert len(softly([7.0] * held)) == 1
    assert softly([7.0] * (held - 3)) == []
    assert softly([7.0, 7.0, 2.0] * held) == []  # a rise that keeps falling back is not a raised voice
    assert softly([5.0] * held * 3) == []  # below rise_db


def test_speak_softly_waits_for_an_established_baseline():
    held = int(CFG.speak_softly.hold_s / STEP) + 1
    assert softly([9.0] * held, baseline_s=1.0) == []
    assert softly([None] * held) == []


def test_the_opening_silence_is_not_dead_air():
    cues = run_rule(DeadAir(CFG.dead_air), [view(t, silence_start=0.0, last_speaker=None) for t in (4.0, 6.0, 20.0)])
    assert cues == []


def test_dead_air_once_per_silence():
    cues = run_rule(DeadAir(CFG.dead_air), [view(14.0, silence_start=10.0), view(15.1, silence_start=10.0),
                                            view(40.0, silence_start=10.0), view(55.5, silence_start=50.0)])
    assert [(c.t, c.text) for c in cues] == [(15.1, "Keep them informed"), (55.5, "Keep them informed")]


def test_slow_down_on_a_fast_agent_only_when_pace_changes():
    pace = Pace(t=20.0, wpm={"agent": 210.0, "customer": 140.0})
    fast = dict(agent=PartyView(wpm=210.0, recent_talk_s=12.0), customer=PartyView(wpm=140.0, recent_talk_s=9.0))
    assert run_rule(SlowDown(CFG.slow_down), [view(20.0, **fast)]) == []  # no new pace this tick
    (cue,) = run_rule(SlowDown(CFG.slow_down), [view(20.0, events=[pace], **fast)])
    assert cue.reason == "agent 210 wpm, customer 140 wpm"
    short = dict(fast, agent=PartyView(wpm=210.0, recent_talk_s=5.0))
    assert run_rule(SlowDown(CFG.slow_down), [view(20.0, events=[pace], **short)]) == []
    matched = dict(fast, customer=PartyView(wpm=190.0, recent_talk_s=9.0))
    assert run_rule(SlowDown(CFG.slow_down), [view(20.0, events=[pace], **matched)]) == []


def line(party, text, end, final=True):
    return Transcript(t=end + 0.5, party=party, start=end - 2.0, end=end, text=text, final=final)


def test_own_the_problem_on_the_agents_final_words():
    rule = OwnTheProblem(CFG.own_the_problem)
    assert run_rule(rule, [view(5.0, events=[line("agent", "It's our policy, I'm afraid", 4.0, final=False)]),
                           view(6.0, events=[line("customer", "Is that your policy?", 5.0)])]) == []
    (cue,) = run_rule(rule, [view(7.0, events=[line("agent", "Well, it\u2019s our POLICY.", 6.0)])])
    assert cue.reason == 'agent said "it\'s our policy"'


def test_acknowledge_when_frustration_goes_unanswered_for_within_s():
    within = CFG.acknowledge.within_s
    upset = (4.0, 'customer said "ridiculous"')
    cues = run_rule(Acknowledge(CFG.acknowledge), [view(4.5, frustration=upset), view(4.0 + within - 0.1),
                                                   view(4.0 + within)])
    assert [(c.t, c.reason) for c in cues] == [(4.0 + within, upset[1] + ", no acknowledgement for 10 s")]
    answered = run_rule(Acknowledge(CFG.acknowledge), [
        view(4.5, frustration=upset), view(7.0, events=[line("agent", "I'm so sorry about that", 6.5)]),
        view(4.0 + within)])
    assert answered == []


def test_let_them_talk_when_the_agent_holds_the_floor_over_an_upset_customer():
    spurts = [TalkEnd(t=4.0, party="customer", start=1.0)] + [
        TalkEnd(t=10.0 + 10 * i + 8, party="agent", start=10.0 + 10 * i) for i in range(4)]
    upset = view(5.0, events=[spurts[0]], frustration=(4.0, 'customer said "ridiculous"'))
    monologue = [view(e.t, events=[e]) for e in spurts[1:]]
    cues = run_rule(LetThemTalk(CFG.let_them_talk), [upset] + monologue)
    assert [c.kind for c in cues] == ["let_them_talk"]  # at 38 s: 24 of the last minute's 27 s are the agent's
    assert cues[0].reason == "agent 89% of the talk in the last 60 s"
    calm = [view(5.0, events=[spurts[0]])] + monologue  # the same monologue without frustration
    assert run_rule(LetThemTalk(CFG.let_them_talk), calm) == []


def test_let_them_talk_counts_the_spurt_still_open():
    upset = view(5.0, events=[TalkEnd(t=4.0, party="customer", start=1.0)], frustration=(4.0, "upset"))
    talking = view(40.0, agent=PartyView(talking=True, spurt_start=10.0, voiced=True))
    assert [c.t for c in run_rule(LetThemTalk(CFG.let_them_talk), [upset, talking])] == [40.0]


def test_pause_first_after_three_quick_answers_in_a_minute():
    quick = [Silence(t=t, end=t + 0.05, before="customer", after="agent") for t in (10.0, 20.0, 30.0)]
    slow = Silence(t=15.0, end=15.6, before="customer", after="agent")
    rule = PauseFirst(CFG.pause_first, turn_switch_s=0.3)
    cues = run_rule(rule, [view(10.1, events=[quick[0]]), view(15.6, events=[slow]), view(20.1, events=[quick[1]]),
                           view(30.1, events=[quick[2]])])
    assert [(c.kind, c.t, c.text) for c in cues] == [("pause_first", 30.1, "Pause before answering")]
    spread = [Silence(t=e.t + 50 * i, end=e.end + 50 * i, before="customer", after="agent") for i, e in enumerate(quick)]
    assert run_rule(PauseFirst(CFG.pause_first, 0.3), [view(e.end, events=[e]) for e in spread]) == []


def test_frustration_is_worked_out_once_per_tick_for_every_rule_that_needs_it():
    """A customer's voice raised for hold_s is one upset: acknowledge and let_them_talk both see it."""
    rules = CueRules(Config())
    hold = int(CFG.acknowledge.hold_s / STEP) + 1
    seen = []
    for k in range(hold):
        v = view(k * STEP, customer=voice(8.0))
        rules.step(v)
        seen.append(v.frustration)
    assert seen[:-1] == [None] * (hold - 1) and seen[-1] == ((hold - 1) * STEP, "customer's voice +8 dB over their level")
    ack = next(r for r in rules.rules if r.kind == "acknowledge")
    talk = next(r for r in rules.rules if r.kind == "let_them_talk")
    assert ack._since == talk._upset_at == seen[-1][0]


def test_let_them_talk_watches_frustration_with_acknowledge_turned_off():
    config = Config()
    config.cues.acknowledge = replace(config.cues.acknowledge, enabled=False)
    rules = CueRules(config)
    assert [r.kind for r in rules.rules if r.kind in ("acknowledge", "let_them_talk")] == ["let_them_talk"]
    v = view(5.0, events=[line("customer", "This is ridiculous", 4.0)])
    rules.step(v)
    assert v.frustration == (4.0, 'customer said "ridiculous"')
