"""The pipeline's transcription stage: cuts spurts out of each party's audio, submits them, turns results into events.

Two ways to run the model behind it: inline (a file analysed as fast as the CPU allows: each final is
transcribed when its spurt closes, so the same file always gives the same events) and on the shared
worker thread (live: acoustic analysis never waits; results come back on a later tick).
"""

from __future__ import annotations

import threading
from collections import deque

from audio import SAMPLE_RATE
from audio.sources import AudioRing

from .. import PARTIES
from ..config import RedactConfig, TranscriptionConfig
from ..events import Pace, TalkEnd, Transcript
from .pace import PaceMeter
from .redact import Redactor
from .transcriber import PAD_S, WINDOW_S, Engine, Job, Result, Worker, load_engine

RING_S = 60.0
JOIN_S = 1.0
PHRASE_MAX_S = 12.0
"""Spurts of one party at most JOIN_S apart form a phrase (up to PHRASE_MAX_S), transcribed as one."""
FORCE_CUT_S = 25.0
"""A spurt still open after this long is transcribed in pieces (Whisper's window is 30 s)."""


class Inline:
    """Transcribe finals at once in the pipeline's thread; no partials (nobody watches a file analysis)."""

    live = False

    def __init__(self, engine: Engine):
        self.engine = engine
        self._results: list[Result] = []

    def submit(self, job: Job) -> None:
        if job.final:
            self._results += self.engine.transcribe([job])

    def poll(self) -> list[Result]:
        out, self._results = self._results, []
        return out

    def drain(self) -> None:
        pass

    def close(self) -> None:
        pass


class OnWorker:
    """Hand jobs to the shared worker thread; its results are collected for the pipeline's next tick."""

    live = True

    def __init__(self, worker: Worker, call_id: str):
        self.worker, self.call_id = worker, call_id
        self._results: deque[Result] = deque()
        self._pending = 0
        self._cv = threading.Condition()
        worker.register(call_id, self._receive)

    def _receive(self, result: Result) -> None:
        with self._cv:
            self._results.append(result)
            self._pending -= result.job.final
            self._cv.notify_all()

    def submit(self, job: Job) -> None:
        with self._cv:
            self._pending += job.final
        self.worker.submit(job)

    def poll(self) -> list[Result]:
        out = []
        while self._results:
            out.append(self._results.popleft())
        return out

    def drain(self) -> None:
        with self._cv:
            self._cv.wait_for(lambda: self._pending <= 0)

    def close(self) -> None:
        self.worker.unregister(self.call_id)


_shared_worker: Worker | None = None
_lock = threading.Lock()


def shared_worker(cfg: TranscriptionConfig) -> Worker:
    """One worker thread over one loaded model for every call in this process."""
    global _shared_worker
    with _lock:
        if _shared_worker is None:
            _shared_worker = Worker(_engine(cfg))
        return _shared_worker


class SpeechStage:
    """Per call: audio rings, spurt jobs, transcript and pace events. Every transcript is redacted here,
    as it is made, so that no output ever sees the raw text (docs/privacy.md)."""

    def __init__(self, cfg: TranscriptionConfig, call_id: str, live: bool, redact: RedactConfig | None = None):
        self.cfg = cfg
        self.redact = Redactor(redact or RedactConfig())
        self.call_id = call_id
        if live:
            self.backend = OnWorker(shared_worker(cfg), call_id)
        else:
            self.backend = Inline(_engine(cfg))
        self.rings = {p: AudioRing(RING_S, SAMPLE_RATE) for p in PARTIES}
        self.pace = {p: PaceMeter(cfg.pace_window_s) for p in PARTIES}
        self._cut: dict[str, float | None] = {p: None for p in PARTIES}
        self._partial_at: dict[str, float] = {p: 0.0 for p in PARTIES}
        self._phrase: dict[str, tuple[float, float, float] | None] = {p: None for p in PARTIES}  # start, end, talk

    def append(self, party: str, samples) -> None:
        self.rings[party].append(samples)

    def step(self, now: float, parties: dict, talk: list) -> list:
        for event in talk:
            if isinstance(event, TalkEnd):
                start = max(event.start, self._cut[event.party] or 0.0)
                phrase_start, talk = self._phrase_of(event.party, start, event.t)
                self._submit(event.party, phrase_start, event.t, True, talk)
                self._cut[event.party] = None
        for name, party in parties.items():
            if not party.talking:
                continue
            start = self._cut[name] if self._cut[name] is not None else party.spurt_start
            if now - start >= FORCE_CUT_S:
                self._submit(name, start, now, True)
                self._cut[name] = now
                self._phrase[name] = None
            elif self.backend.live and now - start >= self.cfg.partial_every_s \
                    and now - self._partial_at[name] >= self.cfg.partial_every_s:
                self._partial_at[name] = now
                phrase = self._phrase[name]
                joined = phrase and start - phrase[1] <= JOIN_S and now - phrase[0] <= PHRASE_MAX_S
                self._submit(name, phrase[0] if joined else start, now, False)
        return self.collect(now)

    def _phrase_of(self, party: str, start: float, end: float) -> tuple[float, float]:
        """Where the phrase this spurt belongs to began, and its talk time: spurts of one party a short
        pause apart are transcribed together (Whisper hears "ask ... not" in its phrase), and each new
        final replaces the finals it covers."""
        phrase = self._phrase[party]
        if phrase and start - phrase[1] <= JOIN_S and end - phrase[0] <= PHRASE_MAX_S:
            phrase = (phrase[0], end, phrase[2] + end - start)
        else:
            phrase = (start, end, end - start)
        self._phrase[party] = phrase
        return phrase[0], phrase[2]

    def collect(self, now: float) -> list:
        out = []
        paced = False
        for result in self.backend.poll():
            job = result.job
            party = job.key[1]
            if job.final:
                self.pace[party].add(job.start, len(result.words), job.talk_s or job.end - job.start)
                paced = True
            if not result.text:
                continue
            words = [[w.text, round(w.start, 2), round(w.end, 2)] for w in result.words] if job.final else []
            out.append(self.redact(Transcript(t=now, party=party, start=job.start, end=job.end, text=result.text,
                                              final=job.final, words=words)))
        if paced:
            out.append(Pace(t=now, wpm={p: _round(m.wpm) for p, m in self.pace.items()}))
        return out

    def finish(self, now: float) -> list:
        self.backend.drain()
        return self.collect(now)

    def close(self) -> None:
        """Let go of the shared worker: no more results for this call."""
        self.backend.close()

    def _submit(self, party: str, start: float, end: float, final: bool, talk_s: float | None = None) -> None:
        ring = self.rings[party]
        b = min(int((end + PAD_S) * SAMPLE_RATE), ring.end)
        a = max(int((start - PAD_S) * SAMPLE_RATE), b - int(WINDOW_S * SAMPLE_RATE), ring.end - len(ring), 0)
        job = Job((self.call_id, party), start, end, ring.get(a, b), final, audio_start=a / SAMPLE_RATE, talk_s=talk_s)
        self.backend.submit(job)


def _engine(cfg: TranscriptionConfig) -> Engine:
    return load_engine(cfg.model_dir, cfg.compute_type, cfg.threads, cfg.beam_size, cfg.hotwords)


def _round(value):
    return None if value is None else round(value, 1)
