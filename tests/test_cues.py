"""Each cue rule on its own, against a hand-set conversation state."""

from types import SimpleNamespace

from monitor.config import CuesConfig
from monitor.analysis.cues import DeadAir, SpeakSoftly, WaitForPause
from monitor.events import Interruption

CFG = CuesConfig()


def state(**agent):
    base = dict(talking=True, voiced=True, rise_db=0.0, baseline_s=10.0)
    base.update(agent)
    return SimpleNamespace(parties={"agent": SimpleNamespace(**base)}, frame_s=0.032,
                           conversation=SimpleNamespace(silence_start=None))


def test_wait_for_pause_on_the_agents_interruption_only_with_cooldown():
    rule = WaitForPause(CFG.wait_for_pause)
    by_customer = Interruption(t=1.0, by="customer", at=2.0)
    by_agent = Interruption(t=3.0, by="agent", at=4.0)
    assert rule.step(2.0, state(), [by_customer]) is None
    cue = rule.step(4.0, state(), [by_agent])
    assert (cue.kind, cue.t, cue.text) == ("wait_for_pause", 4.0, "Wait for the pause")
    assert rule.step(10.0, state(), [by_agent]) is None  # within the cooldown
    assert rule.step(4.0 + CFG.wait_for_pause.cooldown_s, state(), [by_agent]) is not None


def run_softly(rises, **agent):
    rule = SpeakSoftly(CFG.speak_softly)
    cues = []
    for k, rise in enumerate(rises):
        cue = rule.step(k * 0.032, state(rise_db=rise, **agent), [])
        cues += [cue] if cue else []
    return cues


def test_speak_softly_needs_the_rise_held_for_hold_s():
    held = int(CFG.speak_softly.hold_s / 0.032) + 1
    assert len(run_softly([7.0] * held)) == 1
    assert run_softly([7.0] * (held - 3)) == []
    assert run_softly([7.0, 7.0, 2.0] * held) == []  # a rise that keeps falling back is not a raised voice
    assert run_softly([5.0] * held * 3) == []  # below rise_db


def test_speak_softly_waits_for_an_established_baseline():
    held = int(CFG.speak_softly.hold_s / 0.032) + 1
    assert run_softly([9.0] * held, baseline_s=1.0) == []
    assert run_softly([None] * held) == []


def test_dead_air_once_per_silence():
    rule = DeadAir(CFG.dead_air)
    s = state()
    s.conversation.silence_start = 10.0
    assert rule.step(14.0, s, []) is None
    cue = rule.step(15.1, s, [])
    assert cue.kind == "dead_air" and cue.text == "Keep them informed"
    assert rule.step(40.0, s, []) is None  # the same silence does not nag
    s.conversation.silence_start = 50.0
    assert rule.step(55.5, s, []) is not None


def party(talking=False, spurt_start=None, voiced=False, rise_db=None, baseline_s=10.0):
    return SimpleNamespace(talking=talking, spurt_start=spurt_start, voiced=voiced, rise_db=rise_db,
                           baseline_s=baseline_s)


def call_state(agent, customer, now):
    from monitor.config import Config

    return SimpleNamespace(parties={"agent": agent, "customer": customer}, frame_s=0.032, now=now, config=Config())


def test_let_them_talk_when_the_agent_holds_the_floor_over_an_upset_customer():
    from monitor.analysis.cues import LetThemTalk
    from monitor.events import TalkEnd, Transcript

    upset = Transcript(t=5.0, party="customer", start=1.0, end=4.0, text="This is ridiculous!", final=True)
    spurts = [TalkEnd(t=4.0, party="customer", start=1.0)] + [TalkEnd(t=10.0 + 10 * i + 8, party="agent",
                                                                       start=10.0 + 10 * i) for i in range(4)]
    rule = LetThemTalk(CFG.let_them_talk, CFG.acknowledge)
    quiet = call_state(party(), party(), 0)
    assert rule.step(5.0, quiet, [upset, spurts[0]]) is None
    cues = [rule.step(e.t, call_state(party(), party(), e.t), [e]) for e in spurts[1:]]
    assert [c.kind for c in cues if c] == ["let_them_talk"]  # 32 of 35 s in the last minute are the agent's

    calm = LetThemTalk(CFG.let_them_talk, CFG.acknowledge)  # the same monologue without frustration
    assert all(calm.step(e.t, call_state(party(), party(), e.t), [e]) is None for e in spurts)


def test_pause_first_after_three_quick_answers_in_a_minute():
    from monitor.analysis.cues import PauseFirst
    from monitor.events import Silence

    rule = PauseFirst(CFG.pause_first)
    quick = [Silence(t=t, end=t + 0.05, before="customer", after="agent") for t in (10.0, 20.0, 30.0)]
    slow = Silence(t=15.0, end=15.6, before="customer", after="agent")
    state_ = call_state(party(), party(), 0)
    assert rule.step(10.1, state_, [quick[0]]) is None
    assert rule.step(15.6, state_, [slow]) is None
    assert rule.step(20.1, state_, [quick[1]]) is None
    cue = rule.step(30.1, state_, [quick[2]])
    assert cue.kind == "pause_first" and cue.text == "Pause before answering"
    spread = PauseFirst(CFG.pause_first)
    assert all(spread.step(e.end + 50 * i, state_, [Silence(t=e.t + 50 * i, end=e.end + 50 * i, before="customer",
                                                             after="agent")]) is None for i, e in enumerate(quick))
