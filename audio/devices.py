"""Live capture from audio input devices (sounddevice/PortAudio) as labelled 16 kHz frames.

Each label is one channel of one device; labels that share a device share one stream. The
PortAudio callback only copies blocks into a queue; resampling and loss detection run in
`DeviceCapture.read()` on the consumer's thread, and reopening/closing a device on short helper
threads (PortAudio blocks there while a sound server hangs). Every label's timeline is continuous:
while its device is lost, silence at real-time pace stands in for it, so a consumer that waits
for every label never stalls and sample counts stay audio time.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import soxr

from . import SAMPLE_RATE
from .errors import AudioError
from .sources import Frame

log = logging.getLogger("calmline.audio")

_open_streams = 0  # our open PortAudio streams, process-wide: a re-scan would close them
_count_lock = threading.Lock()


@dataclass
class Input:
    """One channel of one device, under a label. `device` is an index or a name substring."""

    device: str | int
    channel: int = 0
    label: str = ""

    def __post_init__(self):
        self.label = self.label or f"{self.device}:{self.channel}"


@dataclass
class CaptureOptions:
    block_s: float = 0.1  # block length delivered by PortAudio, and of silence frames while lost
    retry_s: float = 1.0  # how often a lost device is reopened
    queue_blocks: int = 200  # blocks held per device when the consumer falls behind (then: overflow)
    first_block_s: float = 3.0  # how long a freshly opened device may take to deliver (PulseAudio: ~2 s)


@dataclass
class CaptureStatus:
    """A device's state changed or input overflowed.

    "ok": audio flows (sent when a device's first block arrives, at start and after recovery);
    "lost": silence stands in while the device is retried; "overflow": samples were dropped.
    """

    label: str
    state: str  # "ok" | "lost" | "overflow"
    message: str
    t: float  # seconds of this label's stream when it happened


def _sounddevice():
    """Import sounddevice late, so a machine without PortAudio still analyses files."""
    try:
        import sounddevice
    except Exception as exc:  # OSError: library not found; PortAudioError: Pa_Initialize failed
        raise AudioError(f"audio devices unavailable: PortAudio failed to load ({_line(exc)}); "
                         "install the system package libportaudio2") from None
    return sounddevice


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def rescan() -> bool:
    """Re-initialise PortAudio so devices plugged in (or sound servers started) since import appear.

    PortAudio enumerates devices only in Pa_Initialize, which sounddevice runs at import. Pa_Terminate
    closes every open stream, so this is skipped (returns False) while any of our streams is open.
    """
    sd = _sounddevice()
    if _open_streams:
        return False
    try:
        sd._terminate()
        sd._initialize()
    except sd.PortAudioError as exc:
        raise AudioError(f"audio devices unavailable: {_line(exc)}") from None
    return True


def list_devices() -> list[dict]:
    """Input-capable devices, freshly enumerated: index, name, hostapi, channels, samplerate, default."""
    sd = _sounddevice()
    rescan()
    try:
        default = sd.default.device[0]
        return [{"index": d["index"], "name": d["name"], "hostapi": sd.query_hostapis(d["hostapi"])["name"],
                 "channels": d["max_input_channels"], "samplerate": d["default_samplerate"],
                 "default": d["index"] == default}
                for d in sd.query_devices() if d["max_input_channels"] > 0]
    except sd.PortAudioError as exc:
        raise AudioError(f"cannot list audio devices: {_line(exc)}") from None


def format_devices(devs: list[dict]) -> str:
    """A table for `calmline devices`; `*` marks the default input."""
    if not devs:
        return "no input devices found"
    name_w = max(4, *(len(d["name"]) for d in devs))
    api_w = max(8, *(len(d["hostapi"]) for d in devs))
    lines = [f"  {'#':>3}  {'name':<{name_w}}  {'host API':<{api_w}}  {'in':>3}  rate"]
    for d in devs:
        mark = "*" if d["default"] else " "
        lines.append(f"{mark} {d['index']:>3}  {d['name']:<{name_w}}  {d['hostapi']:<{api_w}}  "
                     f"{d['channels']:>3}  {d['samplerate']:.0f}")
    return "\n".join(lines)


ROUTABLE = ("pulse", "pipewire", "monitor", "loopback", "blackhole", "cable", "stereo mix", "aggregate")
"""Names of inputs that can carry another application's output (a softphone's): sound servers that have
monitor sources, loopback and virtual devices."""
CAPTURE_DOC = Path(__file__).resolve().parents[1] / "docs" / "capture.md"


def capture_hint(devs: list[dict]) -> str | None:
    """What to read when none of `devs` can carry a softphone's audio (None when one can): docs/capture.md."""
    if any(word in d["name"].lower() for d in devs for word in ROUTABLE):
        return None
    where = CAPTURE_DOC if CAPTURE_DOC.is_file() else "docs/capture.md in calmline's source"
    what = "" if not devs else "none of these inputs carries a softphone's audio; "
    return (f"{what}to capture a call, route the softphone's audio into an input (a monitor source, a loopback "
            f"or a virtual device): {where} shows how on Linux, Windows and macOS")


def _active(stream) -> bool:
    try:
        return stream is not None and stream.active
    except Exception:  # PortAudioError from a stream whose device went away
        return False


def _shut(stream, name: str) -> None:
    global _open_streams
    try:
        stream.abort()
        stream.close()
    except Exception as exc:  # a dead device may fail to close; it is gone either way
        log.debug("closing %r: %s", name, _line(exc))
    finally:
        with _count_lock:
            _open_streams -= 1


@dataclass
class _Device:
    """One opened device and the labels that read channels of it."""

    name: str
    rate: int
    channels: int
    inputs: list[Input]
    state: str = "starting"  # "starting" (opened, no block yet) | "ok" | "lost"
    stream: Any = None
    gen: int = 0  # bumped per open: blocks from an older stream are ignored
    opened_at: float = 0.0
    last_data: float = 0.0
    next_retry: float = 0.0
    dropped: int = 0  # blocks the callback could not queue (written on the audio thread)
    dropped_seen: int = 0
    pos: dict[str, int] = field(default_factory=dict)  # next start sample per label
    lost_at: tuple[float, dict[str, int]] | None = None  # wall time and positions where silence began
    resamplers: dict[str, Any] = field(default_factory=dict)
    retry: threading.Thread | None = None  # reopening, off the consumer's thread


class DeviceCapture:
    """Capture labelled channels from devices in real time; `read()` yields Frames and CaptureStatus."""

    def __init__(self, inputs: list[Input], options: CaptureOptions | None = None):
        labels = [i.label for i in inputs]
        if not inputs or len(set(labels)) != len(labels):
            raise AudioError(f"capture needs one input per label, each label once (got {labels})")
        self.inputs = list(inputs)
        self.options = options or CaptureOptions()
        self._devices: list[_Device] = []
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()  # attaching/detaching streams: retries run while stop() may close
        self._stopped = threading.Event()
        self._out: deque[Frame | CaptureStatus] = deque()  # made, not yet yielded

    def __enter__(self) -> "DeviceCapture":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        """Resolve and open every device; a missing device or channel is an AudioError now, not later."""
        self._devices = self._resolve()
        self._queue = queue.Queue(maxsize=self.options.queue_blocks * len(self._devices))
        self._stopped.clear()
        self._out.clear()
        try:
            for dev in self._devices:
                self._open(dev)
        except Exception as exc:
            self.stop()
            raise AudioError(f"cannot open input device '{dev.name}': {_line(exc)}") from None
        now = time.monotonic()
        for dev in self._devices:
            dev.last_data = now

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            closers = [self._close(dev) for dev in self._devices]
        for closer in filter(None, closers):
            closer.join(timeout=2)  # released for whoever opens the device next, unless hung

    def read(self, timeout: float | None = None) -> Iterator[Frame | CaptureStatus]:
        """Yield frames and statuses as they happen, until stop() or `timeout` seconds have passed.

        State changes are made before items are handed out (through `_out`), so read() may be
        called again after leaving a previous read() early without losing or repeating anything.
        """
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            while self._out:
                yield self._out.popleft()
            if self._stopped.is_set() or (end is not None and time.monotonic() >= end):
                return
            try:
                self._take(*self._queue.get(timeout=self.options.block_s / 2))
            except queue.Empty:
                pass
            now = time.monotonic()
            for dev in self._devices:
                self._watch(dev, now)

    # -- devices --------------------------------------------------------------------------------

    def _resolve(self) -> list[_Device]:
        sd = _sounddevice()
        by_index: dict[int, list[Input]] = {}
        infos = {}
        for inp in self.inputs:
            info = self._query(sd, inp.device)
            if info is None and rescan():  # a device (or sound server) that came after import
                info = self._query(sd, inp.device)
            if info is None:
                raise AudioError(f"no input device matching {str(inp.device)!r} (see `calmline devices`)")
            if not 0 <= inp.channel < info["max_input_channels"]:
                raise AudioError(f"input device '{info['name']}' has {info['max_input_channels']} input "
                                 f"channel(s): channel {inp.channel} ({inp.label}) is out of range")
            infos[info["index"]] = info
            by_index.setdefault(info["index"], []).append(inp)
        return [_Device(infos[i]["name"], int(infos[i]["default_samplerate"]),
                        max(inp.channel for inp in group) + 1, group, pos={inp.label: 0 for inp in group})
                for i, group in by_index.items()]

    @staticmethod
    def _query(sd, device: str | int) -> dict | None:
        try:
            return sd.query_devices(device, "input")
        except ValueError as exc:  # no match, or ambiguous: say which
            if str(exc).startswith("Multiple"):
                raise AudioError(_line(exc).rstrip(":") + " (give a longer name or an index)") from None
            return None
        except sd.PortAudioError:  # an index that is not an input device
            return None

    def _index(self, sd, dev: _Device) -> int | None:
        """Find the device again by its exact name: indices move when devices come and go."""
        for attempt in range(2):
            for d in sd.query_devices():
                if d["name"] == dev.name and d["max_input_channels"] >= dev.channels:
                    return d["index"]
            if attempt or not rescan():
                return None

    def _open(self, dev: _Device) -> None:
        """Open and start the device's stream. May block (a hung sound server), so retries run it
        on their own thread; the lock is held only to attach the stream, never while PortAudio works."""
        global _open_streams
        sd = _sounddevice()
        index = self._index(sd, dev)
        if index is None:
            raise AudioError("device not present")
        with self._lock:
            dev.gen += 1
            gen, q = dev.gen, self._queue
            dev.resamplers = {i.label: soxr.ResampleStream(dev.rate, SAMPLE_RATE, 1, dtype="float32")
                              for i in dev.inputs}

        def callback(indata, frames, t, status):  # audio thread: copy, queue, return
            try:
                q.put_nowait((dev, gen, indata.copy(), status))
            except queue.Full:
                dev.dropped += 1

        def finished():  # audio thread: the stream ended (error, or our own close)
            try:
                q.put_nowait((dev, gen, None, None))
            except queue.Full:
                pass

        stream = sd.InputStream(device=index, channels=dev.channels, samplerate=dev.rate, dtype="float32",
                                blocksize=round(dev.rate * self.options.block_s), callback=callback,
                                finished_callback=finished)
        with _count_lock:
            _open_streams += 1
        try:
            stream.start()
        except Exception:
            _shut(stream, dev.name)
            raise
        with self._lock:
            if self._stopped.is_set() or dev.gen != gen:  # stopped while we were opening
                threading.Thread(target=_shut, args=(stream, dev.name), daemon=True).start()
                return
            dev.stream, dev.opened_at = stream, time.monotonic()
        log.info("opened %r: %d channel(s) at %d Hz for %s", dev.name, dev.channels, dev.rate,
                 ", ".join(i.label for i in dev.inputs))

    def _retry(self, dev: _Device) -> None:
        try:
            self._open(dev)
        except Exception as exc:
            log.debug("reopening %r: %s", dev.name, _line(exc))

    def _close(self, dev: _Device) -> threading.Thread | None:
        """Close off this thread: with a hung sound server, PortAudio's abort blocks until it wakes."""
        if dev.stream is None:
            return None
        stream, dev.stream = dev.stream, None
        dev.gen += 1
        closer = threading.Thread(target=_shut, args=(stream, dev.name), name="calmline-audio-close", daemon=True)
        closer.start()
        return closer

    # -- the consumer side ----------------------------------------------------------------------

    def _take(self, dev: _Device, gen: int, data: np.ndarray | None, status) -> None:
        if gen != dev.gen:
            return
        if data is None:
            self._lose(dev, "stream stopped")
            return
        if dev.state != "ok":
            self._status(dev, "ok", "audio flowing")
            dev.state, dev.lost_at = "ok", None
        dev.last_data = time.monotonic()
        if dev.dropped != dev.dropped_seen:  # blocks lost to a full queue: zeros keep the timeline true
            n, dev.dropped_seen = dev.dropped - dev.dropped_seen, dev.dropped
            self._status(dev, "overflow", f"consumer fell behind: {n} block(s) dropped")
            data = np.concatenate([np.zeros((n * len(data), data.shape[1]), np.float32), data])
        if status is not None and status.input_overflow:
            self._status(dev, "overflow", "input overflow: samples were dropped by the device")
        for inp in dev.inputs:
            self._emit(dev, inp.label, dev.resamplers[inp.label].resample_chunk(data[:, inp.channel]))

    def _watch(self, dev: _Device, now: float) -> None:
        """Detect a silent or dead stream; while lost, pad with silence and retry opening."""
        opt = self.options
        if dev.state == "ok":
            if now - dev.last_data > 3 * opt.block_s:
                self._lose(dev, f"no audio for {now - dev.last_data:.1f} s")
            elif dev.stream is not None and not _active(dev.stream):
                self._lose(dev, "stream stopped")
            return
        if dev.stream is not None and now - dev.opened_at > opt.first_block_s:
            if dev.state == "starting":
                self._lose(dev, f"no audio {opt.first_block_s:.0f} s after opening")
            else:
                with self._lock:
                    self._close(dev)
        if dev.state != "lost":
            return
        since, at = dev.lost_at
        block = round(SAMPLE_RATE * opt.block_s)
        for label in dev.pos:
            due = at[label] + int((now - since) * SAMPLE_RATE)
            while due - dev.pos[label] >= block:
                self._emit(dev, label, np.zeros(block, np.float32))
        retrying = dev.retry is not None and dev.retry.is_alive()
        if dev.stream is None and not retrying and now >= dev.next_retry and not self._stopped.is_set():
            dev.next_retry = now + opt.retry_s
            dev.retry = threading.Thread(target=self._retry, args=(dev,), name="calmline-audio-retry", daemon=True)
            dev.retry.start()

    def _lose(self, dev: _Device, why: str) -> None:
        with self._lock:
            self._close(dev)
        if dev.state == "lost":  # a reopened stream that died again: still lost, silence goes on
            return
        for inp in dev.inputs:  # the resampler's tail: the last real samples before the gap
            self._emit(dev, inp.label, dev.resamplers[inp.label].resample_chunk(
                np.zeros(0, np.float32), last=True))
        log.warning("input device %r lost (%s); retrying every %.1f s", dev.name, why, self.options.retry_s)
        self._status(dev, "lost", f"device {dev.name!r} lost: {why}")
        dev.state, dev.lost_at = "lost", (dev.last_data, dict(dev.pos))
        dev.next_retry = time.monotonic() + self.options.retry_s

    def _status(self, dev: _Device, state: str, message: str) -> None:
        for inp in dev.inputs:
            self._out.append(CaptureStatus(inp.label, state, message, dev.pos[inp.label] / SAMPLE_RATE))

    def _emit(self, dev: _Device, label: str, samples: np.ndarray) -> None:
        if len(samples):
            self._out.append(Frame(label, dev.pos[label], np.ascontiguousarray(samples, np.float32)))
            dev.pos[label] += len(samples)
