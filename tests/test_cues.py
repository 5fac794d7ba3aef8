"""Each cue rule on its own, against a hand-set conversation state."""

from types import SimpleNamespace

from monitor.config import CuesConfig
from monitor.cues import DeadAir, SpeakSoftly, WaitForPause
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
