"""Telephony sample formats: G.711 μ-law (PCMU) and 16-bit linear PCM, and 8 kHz to 16 kHz.

Telephony platforms send 8 kHz audio as μ-law bytes or 16-bit linear samples, usually two
channels interleaved. This module turns those bytes into float32 samples in [-1, 1) per channel and
resamples them to the analysis rate, a chunk at a time, with a per-stream resampler whose state
carries across chunks (so chunk boundaries leave no clicks and the sample count stays exact).

The μ-law table is built from the G.711 definition rather than taken from `audioop` (deprecated
in Python 3.11, removed in 3.13).
"""

from __future__ import annotations

import numpy as np
import soxr

from . import SAMPLE_RATE

_BIAS = 0x84
"""G.711 μ-law bias (132) added to the magnitude before the segment is found."""
_CLIP = 32635
"""Largest magnitude μ-law can code once the bias is added (32635 + 132 = 0x7FFF)."""


def _ulaw_table() -> np.ndarray:
    """All 256 μ-law code words decoded to 16-bit linear samples (ITU-T G.711, table 2b)."""
    code = ~np.arange(256, dtype=np.int32) & 0xFF          # code words are sent complemented
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


ULAW_TO_INT16 = _ulaw_table()
"""Index with μ-law bytes to get int16 samples."""
ULAW_TO_FLOAT = (ULAW_TO_INT16 / 32768.0).astype(np.float32)
"""Index with μ-law bytes to get float32 samples in [-1, 1)."""


def ulaw_decode(data: bytes | np.ndarray) -> np.ndarray:
    """μ-law bytes to float32 samples, one sample per byte (interleaving is left as it was)."""
    return ULAW_TO_FLOAT[np.frombuffer(data, dtype=np.uint8)]


def ulaw_encode(samples: np.ndarray) -> bytes:
    """int16 (or float in [-1, 1]) samples to μ-law bytes: what a telephony sender does."""
    x = np.asarray(samples)
    if x.dtype.kind == "f":
        x = np.round(np.clip(x, -1.0, 1.0) * 32767.0)
    x = x.astype(np.int32)
    sign = np.where(x < 0, 0x80, 0x00)
    magnitude = np.minimum(np.abs(x), _CLIP) + _BIAS
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7   # segment: top set bit above bit 7
    exponent = np.clip(exponent, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    code = ~(sign | (exponent << 4) | mantissa) & 0xFF
    return code.astype(np.uint8).tobytes()


def pcm16_decode(data: bytes, big_endian: bool = False) -> np.ndarray:
    """16-bit linear samples to float32 (interleaving is left as it was); `len(data)` must be even."""
    if len(data) % 2:
        raise ValueError(f"{len(data)} bytes is not a whole number of 16-bit samples")
    return (np.frombuffer(data, dtype=">i2" if big_endian else "<i2") / 32768.0).astype(np.float32)


def deinterleave(samples: np.ndarray, channels: int) -> np.ndarray:
    """Interleaved samples to a (frames, channels) array; the count must be whole frames."""
    if len(samples) % channels:
        raise ValueError(f"{len(samples)} samples is not a whole number of {channels}-channel frames")
    return samples.reshape(-1, channels)


class Upsampler:
    """Streaming resampler from a telephony rate to 16 kHz, all channels of one stream at once.

    Push (frames, channels) float32 blocks of any size; `finish()` flushes the filter's tail, after
    which the total output is the input length times the rate ratio (to the sample). A stream
    already at 16 kHz passes through untouched.
    """

    def __init__(self, rate: int, channels: int):
        if rate <= 0 or channels <= 0:
            raise ValueError(f"rate {rate} and channels {channels} must be positive")
        self.rate, self.channels = rate, channels
        self._stream = (soxr.ResampleStream(rate, SAMPLE_RATE, channels, dtype="float32", quality="HQ")
                        if rate != SAMPLE_RATE else None)

    def push(self, block: np.ndarray) -> np.ndarray:
        block = np.ascontiguousarray(block, dtype=np.float32).reshape(-1, self.channels)
        if self._stream is None:
            return block
        return self._stream.resample_chunk(block)

    def finish(self) -> np.ndarray:
        if self._stream is None:
            return np.zeros((0, self.channels), np.float32)
        return self._stream.resample_chunk(np.zeros((0, self.channels), np.float32), last=True)
