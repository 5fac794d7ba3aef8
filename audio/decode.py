"""Reading call audio files as a stream of float32 blocks at 16 kHz.

A file is decoded a block at a time (soundfile) and resampled with a streaming resampler (soxr), so
a 4-hour call takes the same memory as a 4-minute one. Samples a user cannot have meant are made
safe here, once, for every consumer: NaN and infinite samples become silence, and a float file whose
samples go far past full scale (a wrong gain somewhere upstream) is scaled down to full scale, so
its speech survives instead of being clipped into noise.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import soundfile as sf
import soxr

from . import SAMPLE_RATE
from .errors import AudioError

BLOCK_S = 1.0
"""Seconds of the file decoded at a time."""
FLOAT_SUBTYPES = {"FLOAT", "DOUBLE"}
"""Only these can hold NaN, infinities or samples past full scale; integer PCM and codecs cannot."""


@dataclass
class AudioInfo:
    """What an audio file's header says, checked to be readable audio with at least one sample."""

    path: Path
    rate: int
    channels: int
    frames: int          # as libsndfile reads the header (it shortens a WAV to what is on disk)
    header_frames: int   # what the header promised: the truncation check compares the frames read to it
    subtype: str

    @property
    def duration_s(self) -> float:
        return self.header_frames / self.rate


@dataclass
class SampleCheck:
    """What a pass over a float file found: samples that are not numbers, and the peak of those that are."""

    nonfinite: int = 0
    peak: float = 0.0

    @property
    def gain(self) -> float:
        return 1.0 / self.peak if self.peak > 1.0 else 1.0


def probe(path: str | Path) -> AudioInfo:
    """Open a file's header; every reason it is unusable is one AudioError line."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(f"{path}: not a readable audio file ({_reason(exc)})") from None
    if info.frames <= 0:
        raise AudioError(f"{path}: contains no audio (zero length)")
    promised = _wav_data_frames(path) if info.format == "WAV" else None
    return AudioInfo(path, int(info.samplerate), int(info.channels), int(info.frames),
                     max(promised or 0, int(info.frames)), info.subtype)


def check_samples(info: AudioInfo) -> SampleCheck:
    """One streaming pass over a float file: count non-finite samples and find the finite peak."""
    check = SampleCheck()
    if info.subtype not in FLOAT_SUBTYPES:
        return check
    for block in _raw_blocks(info, None):
        finite = np.isfinite(block)
        check.nonfinite += int(block.size - np.count_nonzero(finite))
        if check.nonfinite:
            block = np.where(finite, block, 0.0)
        check.peak = max(check.peak, float(np.abs(block).max(initial=0.0)))
    return check


def stream_audio(info: AudioInfo, picks: list[int] | None = None, gain: float = 1.0,
                 warn: Callable[[str], None] | None = None) -> Iterator[np.ndarray]:
    """Yield (samples, len(picks)) float32 blocks at 16 kHz, finite and within [-1, 1].

    A file that ends before its header says (cut short while copying, a recorder killed) is read to
    where it stops and `warn` is told how much was read of how much was promised.
    """
    picks = list(range(info.channels)) if picks is None else picks
    resampler = (soxr.ResampleStream(info.rate, SAMPLE_RATE, len(picks), dtype="float32", quality="HQ")
                 if info.rate != SAMPLE_RATE else None)
    read = 0
    for block in _raw_blocks(info, picks):
        read += len(block)
        yield _resampled(_safe(block, gain), resampler, last=False)
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros((0, len(picks)), np.float32), last=True)
        if len(tail):
            yield _safe(tail, 1.0)
    missing_s = (info.header_frames - read) / info.rate
    if warn and missing_s > max(0.25, 0.005 * info.duration_s):
        warn(f"{info.path} is truncated: read {read / info.rate:.1f} s of {info.duration_s:.1f} s")


def read_audio(path: str | Path) -> np.ndarray:
    """A whole (short) file as one (samples, channels) float32 array at 16 kHz; long calls use stream_audio."""
    info = probe(path)
    blocks = list(stream_audio(info, gain=check_samples(info).gain))
    return np.concatenate(blocks) if blocks else np.zeros((0, info.channels), np.float32)


def resample(data: np.ndarray, rate: int) -> np.ndarray:
    """Resample a (samples, channels) array to 16 kHz (soxr, high quality)."""
    if rate == SAMPLE_RATE:
        return np.ascontiguousarray(data, dtype=np.float32)
    out = soxr.resample(data, rate, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(out.reshape(-1, data.shape[1]), dtype=np.float32)


def _raw_blocks(info: AudioInfo, picks: list[int] | None) -> Iterator[np.ndarray]:
    """The file's own samples, BLOCK_S at a time; a decoder that loses its way mid-file ends the stream."""
    size = max(1, int(BLOCK_S * info.rate))
    try:
        with sf.SoundFile(str(info.path)) as fh:
            while True:
                try:
                    block = fh.read(size, dtype="float32", always_2d=True)
                except (sf.LibsndfileError, RuntimeError):
                    return  # a damaged or cut-short stream: what came before it stands
                if not len(block):
                    return
                yield block if picks is None else np.ascontiguousarray(block[:, picks])
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"{info.path}: not a readable audio file ({_reason(exc)})") from None


def _safe(block: np.ndarray, gain: float) -> np.ndarray:
    if gain != 1.0:
        block = block * np.float32(gain)
    block = np.nan_to_num(block, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(block, -1.0, 1.0, out=block).astype(np.float32, copy=False)


def _resampled(block: np.ndarray, resampler, last: bool) -> np.ndarray:
    if resampler is None:
        return block
    return np.clip(resampler.resample_chunk(block, last=last), -1.0, 1.0)


def _wav_data_frames(path: Path) -> int | None:
    """Frames a RIFF/WAVE header's data chunk promises (libsndfile quietly shortens it to the file).

    None when the header does not say (a streaming writer's 0 or 0xFFFFFFFF, RF64, no data chunk).
    """
    try:
        with open(path, "rb") as fh:
            riff = fh.read(12)
            if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
                return None
            block_align = 0
            while len(head := fh.read(8)) == 8:
                ident, size = head[:4], struct.unpack("<I", head[4:])[0]
                if ident == b"fmt ":
                    body = fh.read(size)
                    block_align = struct.unpack("<H", body[12:14])[0] if len(body) >= 14 else 0
                    fh.seek(size & 1, 1)
                elif ident == b"data":
                    if not block_align or size in (0, 0xFFFFFFFF):
                        return None
                    return size // block_align
                else:
                    fh.seek(size + (size & 1), 1)
    except OSError:
        return None
    return None


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text
