"""The call pipeline: frames of both parties in, events out, in audio time.

Frames may arrive in any block size and either party first (a file, two devices, a stream); the
pipeline buffers each party and analyses one 32 ms tick once every party has it, so that the same
audio always gives the same events however it was delivered.
"""

from __future__ import annotations

import time
import uuid

import numpy as np

from audio import HOP
from audio.sources import Frame

from .. import PARTIES
from ..config import Config
from .conversation import Conversation
from .cues import CueRules
from ..events import CallEnd, CallStart, Event, Levels, Pace, Stats, TalkEnd
from .pace import PaceMeter
from .sentiment import SentimentTracker
from .party import FRAME_S, PartyTrack, frames_for
from .speech import SpeechStage
from .view import CallView


class Pipeline:
    """One call: push frames of either party, get events; `finish()` closes the call."""

    frame_s = FRAME_S

    def __init__(self, config: Config | None = None, call_id: str | None = None, source: str = "",
                 transcribe: bool | None = None, live: bool = False):
        self.config = config or Config()
        self.call_id = call_id or uuid.uuid4().hex[:12]
        self.source = source
        self.parties = {name: PartyTrack(name, self.config) for name in PARTIES}
        if transcribe is None:
            transcribe = self.config.transcription.enabled
        self.speech = SpeechStage(self.config.transcription, self.call_id, live, self.config.redact) if transcribe else None
        self.pace = self.speech.pace if self.speech else {p: PaceMeter(1.0) for p in PARTIES}
        self.conversation = Conversation(self.config.conversation, self.parties)
        self.cues = CueRules(self.config)
        self.sentiment = SentimentTracker(self.config.sentiment, live) if self.config.sentiment.enabled else None
        self._paces = {p: (None, 0.0) for p in PARTIES}  # (wpm, recent talk s): change only with a Pace event
        self.k = 0
        self._pending = {name: [] for name in PARTIES}
        self._pending_n = {name: 0 for name in PARTIES}
        self._levels_every = frames_for(self.config.loudness.levels_every_s)
        self._stats_every = frames_for(self.config.loudness.stats_every_s)
        self._talk_s = {name: 0.0 for name in PARTIES}  # closed talk spurts, for the stats
        self.audio_taps: list = []  # given the frames of the ticks about to run {party: n x 512 samples}: the recorder

    @property
    def now(self) -> float:
        """Audio time at the end of the last analysed tick."""
        return self.k * FRAME_S

    def start(self, started_at: float | None = None) -> list[Event]:
        started_at = time.time() if started_at is None else started_at
        return [CallStart(t=0.0, call_id=self.call_id, source=self.source, parties=list(PARTIES),
                          started_at=round(started_at, 3))]

    def push(self, frame: Frame) -> list[Event]:
        """Take a block of one party's samples; return the events of every tick it completes."""
        self._pending[frame.channel].append(np.asarray(frame.samples, dtype=np.float32))
        self._pending_n[frame.channel] += len(frame.samples)
        ready = min(self._pending_n.values()) // HOP
        if ready == 0:
            return []
        blocks = {name: self._take(name, ready * HOP) for name in PARTIES}
        self._feed(blocks)
        if ready > 1:
            for name, party in self.parties.items():
                party.expect(blocks[name].reshape(ready, HOP))
        out: list[Event] = []
        for i in range(ready):
            out += self._tick({name: block[i * HOP : (i + 1) * HOP] for name, block in blocks.items()})
        return out

    def finish(self) -> list[Event]:
        """Flush what is buffered (padding the last tick with silence), close every open state, end the call."""
        longest = max(self._pending_n.values())
        out: list[Event] = []
        if longest:
            ticks = -(-longest // HOP)
            blocks = {name: self._take(name, self._pending_n[name]) for name in PARTIES}
            blocks = {name: np.pad(b, (0, ticks * HOP - len(b))) for name, b in blocks.items()}
            self._feed(blocks)
            for i in range(ticks):
                out += self._tick({name: block[i * HOP : (i + 1) * HOP] for name, block in blocks.items()})
        talk = [p.close() for p in self.parties.values() if p.talking]
        last = talk + self.conversation.step(self.now, talk)
        if self.speech:
            last += self.speech.step(self.now, self.parties, talk) + self.speech.finish(self.now)
        out += last + self._cues(last)
        if self.sentiment:
            out += self.sentiment.step(self.now, last, final=True)
        out.append(self._call_end())
        self.close()
        return out

    def close(self) -> None:
        """Let go of what outlives the call (the shared transcription worker's receiver). finish() does
        this; a caller whose call ended some other way (an error) calls it itself. Safe to repeat."""
        if self.speech:
            self.speech.close()

    # --- one tick --------------------------------------------------------------------------
    def _take(self, name: str, n: int) -> np.ndarray:
        chunks = self._pending[name]
        if not chunks:  # this party has nothing buffered (the other may): finish() pads it with silence
            return np.zeros(0, np.float32)
        data = np.concatenate(chunks) if len(chunks) != 1 else chunks[0]
        rest = data[n:]
        self._pending[name] = [rest] if len(rest) else []
        self._pending_n[name] = len(rest)
        return data[:n]

    def _feed(self, blocks: dict[str, np.ndarray]) -> None:
        """The audio of the ticks about to run, once for all of them: the recorder and the sentiment's ring
        cost per call, not per sample (a 200 ms ingest block is 6 ticks); both only read audio up to a tick."""
        for tap in self.audio_taps:
            tap(blocks)
        if self.sentiment:
            self.sentiment.append(blocks["customer"])

    def _tick(self, frames: dict[str, np.ndarray]) -> list[Event]:
        k = self.k
        for name, frame in frames.items():
            self.parties[name].level(frame)
            if self.speech:
                self.speech.append(name, frame)
        talk: list[Event] = []
        (a, party_a), (b, party_b) = self.parties.items()
        talk += party_a.step(k, frames[a], party_b)
        talk += party_b.step(k, frames[b], party_a)
        for event in talk:
            if type(event) is TalkEnd:
                self._talk_s[event.party] += max(0.0, event.t - event.start)
        self.k = k + 1
        now = self.now
        out = talk + self.conversation.step(now, talk)
        if self.speech:
            out += self.speech.step(now, self.parties, talk)
        out += self._cues(out)
        if self.sentiment:
            out += self.sentiment.step(now, out)
        if self.k % self._levels_every == 0:
            out.append(Levels(
                t=now,
                levels={name: round(p.level_db, 1) for name, p in self.parties.items()},
                talking={name: p.talking for name, p in self.parties.items()},
            ))
        if self.k % self._stats_every == 0:
            out.append(self._stats(now))
        return out

    def _stats(self, now: float) -> Stats:
        """The call so far as the pipeline measures it (talk time with open spurts, share, pace, cues up)."""
        talk = {name: self._talk_s[name] + (now - p.spurt_start if p.talking and p.spurt_start is not None else 0.0)
                for name, p in self.parties.items()}
        total = sum(talk.values())
        return Stats(t=now, talk_s={name: round(s, 2) for name, s in talk.items()},
                     share=round(talk["agent"] / total, 3) if total > 0 else None,
                     wpm={name: None if m.wpm is None else round(m.wpm, 1) for name, m in self.pace.items()},
                     cues=self.cues.active)

    def _cues(self, events: list[Event]) -> list[Event]:
        """The cue rules' verdicts on this tick, from a view of the call (they never see the pipeline)."""
        if any(type(e) is Pace for e in events):
            self._paces = {p: (m.wpm, m.recent_talk_s) for p, m in self.pace.items()}
        parties = {name: p.view(*self._paces[name]) for name, p in self.parties.items()}
        return self.cues.step(CallView(self.now, parties, self.conversation.silence_start, events,
                                       last_speaker=self.conversation.last_speaker))

    def _call_end(self) -> CallEnd:
        return CallEnd(t=self.now, parties={
            name: {"talk_level_dbfs": p.talk_level_dbfs, "voiced_s": round(p.voiced_frames * FRAME_S, 3),
                   "wpm": self.pace[name].overall_wpm}
            for name, p in self.parties.items()
        })


def run_channels(channels: dict[str, np.ndarray], config: Config | None = None, block: int = 1600, **kw) -> list[Event]:
    """Analyse whole arrays (one per party) as a stream; the events of the whole call."""
    from audio.sources import array_frames

    pipeline = Pipeline(config, **kw)
    events = pipeline.start()
    for frame in array_frames(channels, block):
        events += pipeline.push(frame)
    return events + pipeline.finish()
