"""Streaming voice activity: the Silero VAD ONNX model that faster-whisper ships, state carried frame to frame."""

from __future__ import annotations

import functools
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


class SileroVad:
    """Speech probability for consecutive 512-sample frames of one channel.

    One instance per channel (it holds that channel's LSTM state); the ONNX session is shared.
    """

    def __init__(self, path: str | Path | None = None):
        self._session = _session(str(path or silero_model_path()))
        self._input = np.zeros((1, CONTEXT + HOP), dtype=np.float32)
        self.reset()

    def reset(self) -> None:
        """Forget the recurrent state, e.g. after a long stretch the gate kept from the model."""
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._input[:] = 0.0

    def context(self, frame: np.ndarray) -> None:
        """Keep the frame's tail as context without running the model (a gated frame)."""
        self._input[0, :CONTEXT] = frame[-CONTEXT:]

    def __call__(self, frame: np.ndarray) -> float:
        """Probability that this 512-sample frame is speech."""
        self._input[0, CONTEXT:] = frame
        prob, self._h, self._c = self._session.run(None, {"input": self._input, "h": self._h, "c": self._c})
        self._input[0, :CONTEXT] = frame[-CONTEXT:]
        return float(prob[0])
