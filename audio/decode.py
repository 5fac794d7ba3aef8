"""Reading call audio files into float32 arrays at 16 kHz."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from . import SAMPLE_RATE
from .errors import AudioError


def read_audio(path: str | Path) -> np.ndarray:
    """Decode WAV/FLAC/OGG/MP3 at any rate into a (samples, channels) float32 array at 16 kHz."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(f"{path}: not a readable audio file ({_reason(exc)})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: contains no audio (zero length)")
    return resample(data, rate)


def resample(data: np.ndarray, rate: int) -> np.ndarray:
    """Resample a (samples, channels) array to 16 kHz (soxr, high quality)."""
    if rate == SAMPLE_RATE:
        return np.ascontiguousarray(data, dtype=np.float32)
    out = soxr.resample(data, rate, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(out.reshape(-1, data.shape[1]), dtype=np.float32)


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text
