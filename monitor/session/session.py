"""One call session: a source's frames through the pipeline, into the recorder and every output.

`analyze`, `demo`, `live`, bench/ and a telephony server all run a call through this one object, so
a call is recorded, published and reported the same way whatever its audio comes from. It needs
no terminal and installs no signal handler: a caller stops it by setting `stop.flag` (a command
line wires that to SIGINT/SIGTERM; a server sets it when the call's stream closes), or drives it
frame by frame with `start`/`push`/`finish` from its own loop.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence, TextIO

from audio.sources import Frame

from ..analysis.pipeline import Pipeline
from ..config import Config
from ..errors import UsageError
from ..events import DeviceStatus, Event
from ..library.report import build_report
from ..library.store import CallRecorder, Store
from .sinks import Collect
from .stop import Stop

log = logging.getLogger("calmline.session")


@dataclass
class CallResult:
    """What a finished call leaves behind: its id, the events a report needs, and the report."""

    call_id: str
    events: list[Event]
    report: dict
    stopped: bool = False  # ended by `stop`, not by the end of its audio


@dataclass
class CallSession:
    """One call, from its first frame to its report. Options are fields; outputs are optional.

    - `store`: record the call there (events, metrics, FLAC); None records nothing.
    - `events_path`: write every event as JSON Lines there (opened, truncated, when the call starts).
    - `publish`: callables given every event as it happens (the overlay's server, the hub publisher).
      They are the caller's to start and stop: one server outlives many calls.
    - `progress`: called with the audio time after each batch of events (a progress bar).
    - `live`: audio arrives in real time, so transcription runs on the shared worker and never holds
      up the acoustic analysis; a file analysed as fast as possible transcribes inline.
    """

    config: Config = field(default_factory=Config)
    source: str = ""
    transcribe: bool | None = None  # None: as [transcription] enabled says
    live: bool = False
    store: Store | None = None
    events_path: str | None = None
    publish: Sequence[Callable[[Event], None]] = ()
    progress: Callable[[float], None] | None = None
    stop: Stop = field(default_factory=Stop)
    call_id: str | None = None

    def __post_init__(self):
        self.pipeline: Pipeline | None = None
        self.recorder: CallRecorder | None = None
        self._sink: Collect | None = None

    # --- the whole call from an iterable source ---------------------------------------------
    def run(self, frames: Iterable, started_at: float | None = None) -> CallResult:
        """Every frame of `frames` (and capture status items: see `push`) until it ends or `stop` is set."""
        self.start(started_at)
        try:
            for item in frames:
                self.push(item)
                if self.stop.flag.is_set():
                    break
        except BaseException:
            self.abort()
            raise
        return self.finish()

    # --- or step by step, from the caller's own loop ----------------------------------------
    def start(self, started_at: float | None = None) -> list[Event]:
        """Open the outputs and begin the call; its `call_start` event. `started_at` is the wall clock at
        audio time 0 (default: now, once the models are loaded and the outputs open)."""
        if self.pipeline is not None:
            raise RuntimeError("a CallSession runs one call; make another for the next")
        self.pipeline = Pipeline(self.config, call_id=self.call_id, source=self.source, transcribe=self.transcribe,
                                 live=self.live)
        self.call_id = self.pipeline.call_id
        try:
            out = _open_out(self.events_path)
        except UsageError:
            self.pipeline.close()
            raise
        started_at = time.time() if started_at is None else started_at
        self.recorder = self._recorder(started_at) if self.store is not None else None
        self._sink = Collect(out, self._publish if self.publish else None, self.recorder)
        return self._emit(self.pipeline.start(started_at))

    def push(self, item) -> list[Event]:
        """A frame of either party, or a capture status (label, state, message, t: a headset or line that
        dropped or came back), which becomes a `device` event. The events it completed."""
        if isinstance(item, Frame):
            return self._emit(self.pipeline.push(item))
        log.warning("%s device %s: %s", item.label, item.state, item.message)
        return self._emit([DeviceStatus(t=item.t, party=item.label, state=item.state, message=item.message)])

    def finish(self) -> CallResult:
        """End the call (spurts closed, finals transcribed, `call_end`), close the outputs; the result."""
        try:
            self._emit(self.pipeline.finish())
        finally:
            self._sink.close()
        events = self._sink.events
        return CallResult(self.call_id, events, build_report(events), self.stop.flag.is_set())

    def abort(self) -> None:
        """The call cannot go on (an error in the caller's loop): close the outputs without a `call_end`."""
        if self.pipeline is not None:
            self.pipeline.close()
        if self._sink is not None:
            self._sink.close()

    # --- inside ---------------------------------------------------------------------------
    def _emit(self, batch: list[Event]) -> list[Event]:
        batch = self._sink(batch)
        if self.progress is not None:
            self.progress(self.pipeline.now)
        return batch

    def _publish(self, event: Event) -> None:
        for publish in self.publish:
            publish(event)

    def _recorder(self, started_at: float) -> CallRecorder:
        config, pipeline = self.config, self.pipeline
        recorder = CallRecorder(self.store, pipeline.call_id, pipeline.source, started_at, config.store.agent_name,
                                redact_audio=config.store.redact_audio, pad_s=config.redact.audio_pad_s,
                                hold_s=config.store.redact_hold_s if pipeline.speech else 0.0)  # no words, no redactions
        pipeline.audio_taps.append(recorder.write_audio)
        return recorder


def _open_out(path: str | None) -> TextIO | None:
    if not path:
        return None
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot write ({exc.strerror})") from None
