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
    and on noisy call audio the higher levels gain little. An encoder error (full disk) is kept in
    `error` and raised by the next write() or close()."""

    def __init__(self, path: Path, rate: int, channels: int, chunk_s: float = 0.25, flush_s: float = 1.0):
        self.path = Path(path)
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
                self._file.write(np.clip(data, -1.0, 1.0))
                since += len(data)
                if since >= self._every:
                    self._file.flush()
                    since = 0
            except (OSError, RuntimeError) as exc:
                self.error = exc
        try:
            self._file.close()
        except (OSError, RuntimeError) as exc:
            self.error = self.error or exc


def repair_flac(path: Path, block: int = 16000) -> int:
    """Rewrite a FLAC cut short (writer killed) so that it has a proper header; returns its frames.

    libsndfile still decodes such a file frame by frame up to where it stops; we copy what decodes.
    """
    path = Path(path)
    tmp = path.with_suffix(".repair.flac")
    try:
        with sf.SoundFile(str(path)) as src, sf.SoundFile(str(tmp), "w", samplerate=src.samplerate,
                                                          channels=src.channels, format="FLAC",
                                                          subtype="PCM_16") as dst:
            frames = 0
            while True:
                try:
                    data = src.read(block, dtype="float32")
                except (sf.LibsndfileError, RuntimeError):
                    break
                if not len(data):
                    break
                dst.write(data)
                frames += len(data)
    except (sf.LibsndfileError, RuntimeError) as exc:
        tmp.unlink(missing_ok=True)
        raise AudioError(f"{path}: damaged audio, cannot be read ({exc})") from None
    os.replace(tmp, path)
    return frames
