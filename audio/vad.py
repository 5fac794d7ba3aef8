"""Streaming voice activity: the Silero VAD ONNX model that faster-whisper ships, state carried frame to frame."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import HOP

CONTEXT = 64
"""Silero v5/v6 at 16 kHz sees the last 64 samples of the previous window before each 512-sample window."""


def silero_model_path() -> Path:
    import faster_whisper  # only for the location of its bundled assets

    return Path(faster_whisper.__file__).parent / "assets" / "silero_vad_v6.onnx"


@functools.lru_cache(maxsize=None)
def _session(path: str):
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 4
    return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"], sess_options=opts)


@dataclass
class _Ahead:
    """Probabilities worked out in one batch for frames the caller expects to run, and the state they assume."""

    offsets: list[int]  # each row's frame, counted from the prefetch
    rows: np.ndarray  # (n, CONTEXT + HOP): each frame with the tail of the frame before it
    probs: np.ndarray
    h0: np.ndarray  # the state before the first row
    c0: np.ndarray
    h: np.ndarray  # the state after the last row
    c: np.ndarray
    used: int = 0


class SileroVad:
    """Speech probability for consecutive 512-sample frames of one channel.

    One instance per channel (it holds that channel's LSTM state); the ONNX session is shared.
    `prefetch` lets the caller say which of its next frames it expects to run: Silero takes a sequence
    of windows in one run (the LSTM state carried from row to row, the same numbers as one run per
    window) at about half the CPU per window. A frame is answered from that batch only when it is the
    expected frame at its expected place; anything else (a frame the caller then gated, a reset) falls
    back to running the model, after working out the state the batch had reached, so results never differ.
    """

    def __init__(self, path: str | Path | None = None):
        self._session = _session(str(path or silero_model_path()))
        self._input = np.zeros((1, CONTEXT + HOP), dtype=np.float32)
        self._ahead: _Ahead | None = None
        self._seen = 0  # frames taken (run or kept as context) since the last prefetch
        self.reset()

    def reset(self) -> None:
        """Forget the recurrent state, e.g. after a long stretch the gate kept from the model."""
        self._ahead = None
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._input[:] = 0.0

    def context(self, frame: np.ndarray) -> None:
        """Keep the frame's tail as context without running the model (a gated frame)."""
        self._input[0, :CONTEXT] = frame[-CONTEXT:]
        self._seen += 1

    def prefetch(self, frames: np.ndarray, run: np.ndarray) -> None:
        """The next `len(frames)` frames of this channel (n x 512), and which of them the caller expects to
        run the model on: those are worked out now, in one batch (fewer than two: nothing to gain)."""
        self._settle()
        self._seen = 0
        offsets = np.flatnonzero(run).tolist()
        if len(offsets) < 2:
            return
        frames = np.asarray(frames, dtype=np.float32)
        rows = np.empty((len(offsets), CONTEXT + HOP), dtype=np.float32)
        for r, i in enumerate(offsets):
            rows[r, :CONTEXT] = frames[i - 1, -CONTEXT:] if i else self._input[0, :CONTEXT]
            rows[r, CONTEXT:] = frames[i]
        probs, h, c = self._run(rows, self._h, self._c)
        self._ahead = _Ahead(offsets, rows, probs, self._h, self._c, h, c)

    def prime(self, frames: list[np.ndarray]) -> None:
        """Run the model over frames heard before (warming a fresh state up) in one batch, as if each had
        been run in turn; their probabilities are not needed."""
        if not frames:
            return
        self._settle()
        rows = np.empty((len(frames), CONTEXT + HOP), dtype=np.float32)
        context = self._input[0, :CONTEXT].copy()
        for r, frame in enumerate(frames):
            rows[r, :CONTEXT], rows[r, CONTEXT:] = context, frame
            context = frame[-CONTEXT:]
        _, self._h, self._c = self._run(rows, self._h, self._c)
        self._input[0, :CONTEXT] = context

    def __call__(self, frame: np.ndarray) -> float:
        """Probability that this 512-sample frame is speech."""
        self._input[0, CONTEXT:] = frame
        ahead, seen = self._ahead, self._seen
        self._seen = seen + 1
        if ahead is not None:
            if ahead.offsets[ahead.used] == seen and np.array_equal(ahead.rows[ahead.used], self._input[0]):
                prob = ahead.probs[ahead.used]
                ahead.used += 1
                if ahead.used == len(ahead.offsets):
                    self._h, self._c, self._ahead = ahead.h, ahead.c, None
                self._input[0, :CONTEXT] = frame[-CONTEXT:]
                return float(prob)
            self._settle()
        prob, self._h, self._c = self._run(self._input, self._h, self._c)
        self._input[0, :CONTEXT] = frame[-CONTEXT:]
        return float(prob[0])

    def _settle(self) -> None:
        """Drop what is left of a batch: the state becomes the one after the rows already answered."""
        ahead, self._ahead = self._ahead, None
        if ahead is None or not ahead.used:
            return  # nothing answered: the state is still the one the batch started from
        if ahead.used == len(ahead.offsets):
            self._h, self._c = ahead.h, ahead.c
        else:
            _, self._h, self._c = self._run(ahead.rows[: ahead.used], ahead.h0, ahead.c0)

    def _run(self, rows: np.ndarray, h: np.ndarray, c: np.ndarray):
        return self._session.run(None, {"input": rows, "h": h, "c": c})
