"""The conversation between two parties: overlaps, interruptions, backchannels and silences.

It reads the parties' talk spurts tick by tick. An overlap is where two spurts intersect. A
candidate interruption opens when one party starts while the other's spurt is open; it becomes an
interruption, attributed to the party who started second at their onset, when both keep talking for
`interruption_overlap_s`, or when the other stops and the newcomer goes on past a backchannel's
length. A short spurt under the other's speech is a backchannel.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ConversationConfig
from ..events import Backchannel, Interruption, Overlap, Silence, TalkEnd, TalkStart
from .party import PartyTrack


@dataclass
class Candidate:
    """A party started over the other: not yet known whether it is an interruption."""

    by: str
    other: str
    start: float
    other_end: float | None = None


class Conversation:
    def __init__(self, cfg: ConversationConfig, parties: dict[str, PartyTrack]):
        self.cfg = cfg
        self.parties = parties
        self.candidate: Candidate | None = None
        self.silence_start: float | None = 0.0
        self.last_speaker: str | None = None
        self.interruptions: dict[str, int] = {name: 0 for name in parties}

    def step(self, now: float, talk: list) -> list:
        """Advance to audio time `now` given this tick's TalkStart/TalkEnd events."""
        out = []
        for event in talk:
            out += self._started(event) if isinstance(event, TalkStart) else self._ended(event)
        if self.candidate is not None:
            out += self._decide(now)
        return out

    # --- transitions -----------------------------------------------------------------------
    def _started(self, event: TalkStart) -> list:
        out = []
        if self.silence_start is not None:
            if event.t > self.silence_start:
                out.append(Silence(t=self.silence_start, end=event.t, before=self.last_speaker, after=event.party))
            self.silence_start = None
        others = [name for name, p in self.parties.items()
                  if name != event.party and p.talking and p.spurt_start < event.t]
        if others and self.candidate is None and not self._resumes(event, self.parties[others[0]]):
            self.candidate = Candidate(by=event.party, other=others[0], start=event.t)
        return out

    def _resumes(self, event: TalkStart, other: PartyTrack) -> bool:
        """The party goes on with their own turn after a short pause, into someone who started over them."""
        last_end = self.parties[event.party].last_end
        return (last_end is not None and other.spurt_start < last_end
                and event.t - last_end <= self.cfg.resume_gap_s)

    def _ended(self, event: TalkEnd) -> list:
        out = self._overlap(event)
        self.last_speaker = event.party
        ov = self.candidate
        if ov is not None and event.party == ov.by:
            self.candidate = None
            if event.t - event.start <= self.cfg.backchannel_max_s:
                out.append(Backchannel(t=event.start, party=event.party, duration=event.t - event.start))
        elif ov is not None and event.party == ov.other:
            ov.other_end = event.t
            if event.t - ov.start < self.cfg.min_overlap_s:  # a turn switch, not someone cut off
                self.candidate = None
        talking = [(p.spurt_start, name) for name, p in self.parties.items() if p.talking]
        if not talking:
            self.silence_start = max(event.t, self.silence_start or 0.0)
        elif min(talking)[0] > event.t:  # the next speaker began in this one's hangover: a response gap
            start, name = min(talking)
            out.append(Silence(t=event.t, end=start, before=event.party, after=name))
        return out

    def _overlap(self, event: TalkEnd) -> list:
        """The overlap of the spurt that just ended with the other party's spurt, if they intersect."""
        out = []
        for name, other in self.parties.items():
            if name == event.party:
                continue
            start, end = (other.spurt_start, None) if other.talking else (other.last_start, other.last_end)
            if start is None or (end is not None and (end < event.t or end == event.t and name < event.party)):
                continue
            if max(start, event.start) < event.t:
                by = event.party if event.start > start else name
                out.append(Overlap(t=max(start, event.start), end=event.t, by=by))
        return out

    def _decide(self, now: float) -> list:
        ov = self.candidate
        newcomer, other = self.parties[ov.by], self.parties[ov.other]
        if ov.other_end is None:
            overlap_s = other.last_voiced_end - ov.start
            decided = now - ov.start >= self.cfg.interruption_overlap_s and overlap_s >= self.cfg.min_overlap_s
        else:  # the other stopped: the newcomer took the floor if they go on past a backchannel
            overlap_s = ov.other_end - ov.start
            decided = newcomer.talking and now - ov.start > self.cfg.backchannel_max_s
            if not decided and now - ov.start > self.cfg.backchannel_max_s:
                self.candidate = None
        if not decided:
            return []
        self.candidate = None
        self.interruptions[ov.by] += 1
        return [Interruption(t=ov.start, by=ov.by, at=now, overlap_s=overlap_s)]
