"""Conversation state from scripted talk spurts (no audio): overlaps, interruptions, backchannels, silences."""

import pytest

from monitor.config import ConversationConfig
from monitor.analysis.conversation import Conversation
from monitor.events import TalkEnd, TalkStart

STEP = 0.032
HANGOVER = 0.3


class ScriptedParty:
    """Stands in for a PartyTrack's talk state, following a list of (start, end) spurts."""

    def __init__(self, name, spurts):
        self.name, self.spurts = name, spurts
        self.spurt = None
        self.last_start = self.last_end = None

    talking = property(lambda self: self.spurt is not None)
    spurt_start = property(lambda self: self.spurt[0] if self.spurt else None)

    @property
    def last_voiced_end(self):
        return min(self.spurt[1], self.now) if self.spurt else None

    def step(self, now):
        self.now = now
        for start, end in self.spurts:
            if self.spurt is None and start <= now < end and (self.last_start is None or start > self.last_start):
                self.spurt = (start, end)
                return [TalkStart(t=start, party=self.name)]
        if self.spurt and now >= self.spurt[1] + HANGOVER:
            (self.last_start, self.last_end), self.spurt = self.spurt, None
            return [TalkEnd(t=self.last_end, party=self.name, start=self.last_start)]
        return []


def run(agent, customer, until=None, **cfg):
    parties = {"agent": ScriptedParty("agent", agent), "customer": ScriptedParty("customer", customer)}
    conv = Conversation(ConversationConfig(**cfg), parties)
    out = []
    end = until or max(e for spurts in (agent, customer) for _, e in spurts) + 1.0
    k = 0
    while k * STEP < end:
        now = round(k * STEP, 6)
        talk = [e for p in parties.values() for e in p.step(now)]
        out += talk + conv.step(now, talk)
        k += 1
    return out


def kinds(events, kind):
    return [e for e in events if e.type == kind]


def test_talking_over_and_going_on_is_an_interruption_by_who_started_second_at_their_onset():
    events = run(agent=[(4.0, 8.0)], customer=[(0.0, 7.0)])
    (i,) = kinds(events, "interruption")
    assert (i.by, i.t) == ("agent", 4.0)
    assert i.at == pytest.approx(5.0, abs=STEP)
    (o,) = kinds(events, "overlap")
    assert (o.t, o.end, o.by) == (4.0, 7.0, "agent")


def test_taking_the_floor_is_an_interruption_even_with_a_short_overlap():
    events = run(agent=[(0.0, 3.5)], customer=[(3.0, 6.0)])
    (i,) = kinds(events, "interruption")
    assert (i.by, i.t, i.overlap_s) == ("customer", 3.0, 0.5)
    assert i.at < 3.0 + 1.5


def test_backchannel_under_speech_is_not_an_interruption():
    events = run(agent=[(0.0, 6.0)], customer=[(2.0, 2.5)])
    assert kinds(events, "interruption") == []
    (b,) = kinds(events, "backchannel")
    assert (b.party, b.t, b.duration) == ("customer", 2.0, 0.5)
    (o,) = kinds(events, "overlap")
    assert (o.t, o.end) == (2.0, 2.5)


def test_a_quick_turn_switch_is_not_an_interruption():
    events = run(agent=[(0.0, 3.0)], customer=[(2.9, 6.0)])
    assert kinds(events, "interruption") == []


def test_starting_in_the_others_hangover_without_overlap_is_a_response_not_an_overlap():
    events = run(agent=[(0.0, 3.0)], customer=[(3.1, 6.0)])
    assert kinds(events, "interruption") == [] and kinds(events, "overlap") == []
    gaps = [s for s in kinds(events, "silence") if s.before == "agent" and s.after == "customer"]
    assert len(gaps) == 1 and gaps[0].end - gaps[0].t == pytest.approx(0.1)


def test_resuming_your_own_turn_after_a_pause_is_not_interrupting_who_cut_in():
    events = run(agent=[(2.0, 9.0)], customer=[(0.0, 4.0), (4.5, 8.0)])
    assert [(i.by, i.t) for i in kinds(events, "interruption")] == [("agent", 2.0)]


def test_silences_and_who_they_sit_between():
    events = run(agent=[(1.0, 2.0), (8.0, 9.0)], customer=[(3.0, 4.0)])
    got = [(s.t, s.end, s.before, s.after) for s in kinds(events, "silence")]
    assert got == [(0.0, 1.0, None, "agent"), (2.0, 3.0, "agent", "customer"), (4.0, 8.0, "customer", "agent")]


def test_interruptions_are_counted_per_party():
    parties_events = run(agent=[(2.0, 5.0), (12.0, 16.0)], customer=[(0.0, 4.0), (10.0, 14.0)])
    assert [i.by for i in kinds(parties_events, "interruption")] == ["agent", "agent"]
