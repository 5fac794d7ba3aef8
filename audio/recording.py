"""Writing audio to FLAC as it arrives, and mending a FLAC whose writer was killed."""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import AudioError


class FlacWriter:
    """Appends blocks to a FLAC file as they come, encoding on its own thread so that the caller (the
    pipeline) never waits for the encoder. Blocks are gathered for `chunk_s` and the file is flushed
    about every `flush_s`: a killed writer loses at most about that much (the file then needs
    `repair_flac`: its header still says "no length"). Fastest FLAC level: a monitor encodes all day,
    and on noisy call audio the higher levels gain little. Any encoder failure (full disk, a bad
    block) is kept in `error` and raised by the next write() or close(): the thread never dies
    silently. Samples that are not numbers are written as silence. The file is private (0600)."""

    def __init__(self, path: Path, rate: int, channels: int, chunk_s: float = 0.25, flush_s: float = 1.0):
        self.path = Path(path)
        private_file(self.path)
        self._file = sf.SoundFile(str(self.path), "w", samplerate=rate, channels=channels, format="FLAC",
                                  subtype="PCM_16", compression_level=0.0)
        self._chunk, self._every = int(chunk_s * rate), int(flush_s * rate)
        self._blocks: list[np.ndarray] = []
        self._held = 0
        self._queue: queue.Queue = queue.Queue()
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._encode, name="flac-writer", daemon=True)
        self._thread.start()

    def write(self, block: np.ndarray) -> None:
        if self.error:
            raise self.error
        self._blocks.append(block)
        self._held += len(block)
        if self._held >= self._chunk:
            self._queue.put(np.concatenate(self._blocks))
            self._blocks, self._held = [], 0

    def close(self) -> None:
        if self._blocks:
            self._queue.put(np.concatenate(self._blocks))
            self._blocks = []
        self._queue.put(None)
        self._thread.join()
        if self.error:
            raise self.error

    def _encode(self) -> None:
        since = 0
        while (data := self._queue.get()) is not None:
            if self.error:
                continue
            try:
                self._file.write(np.clip(np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0))
                since += len(data)
                if since >= self._every:
                    self._file.flush()
                    since = 0
            except Exception as exc:  # noqa: BLE001 - whatever it is, the recorder must hear of it
                self.error = exc
        try:
            self._file.close()
        except Exception as exc:  # noqa: BLE001
            self.error = self.error or exc


def private_file(path: Path) -> None:
    """Create (or truncate) a file readable and writable by its owner only, whatever the umask:
    libsndfile then writes into it and the mode stays."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def repair_flac(path: Path, block: int = 1024) -> int:
    """Give a FLAC cut short (writer killed, disk full) a proper header; returns its frames.

    libsndfile still decodes such a file frame by frame up to where it stops; we count what decodes
    and write that length into STREAMINFO in place, so that a full disk needs no room for a copy.
    """
    path = Path(path)
    frames = 0
    try:
        with sf.SoundFile(str(path)) as src:
            while True:
                try:
                    data = src.read(block, dtype="float32")
                except (sf.LibsndfileError, RuntimeError):
                    break
                if not len(data):
                    break
                frames += len(data)
        _set_total_samples(path, frames)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(f"{path}: damaged audio, cannot be read ({exc})") from None
    return frames


def _set_total_samples(path: Path, frames: int) -> None:
    """STREAMINFO (always the first metadata block) holds the length in the low 36 bits of bytes 18-25."""
    with open(path, "r+b") as fh:
        head = fh.read(26)
        if len(head) < 26 or head[:4] != b"fLaC" or head[4] & 0x7F != 0:
            raise OSError(f"not a FLAC stream with STREAMINFO first ({head[:4]!r})")
        word = int.from_bytes(head[18:26], "big")
        mask = (1 << 36) - 1
        if word & mask != frames:
            fh.seek(18)
            fh.write(((word & ~mask) | frames).to_bytes(8, "big"))
