"""Where a call's events go: the report, an --events file, the overlay's server, the recorder."""

from __future__ import annotations

from ..events import Event, StoreStatus
from ..library.store import CallRecorder


class Collect:
    """Keeps events for the report and hands each batch to every other sink.

    When recording fails (full disk), a `store` event says so once, to the overlay and the log,
    and the call goes on.
    """

    def __init__(self, out=None, publish=None, recorder: CallRecorder | None = None):
        self.events: list[Event] = []
        self.out, self.publish, self.recorder = out, publish, recorder

    def __call__(self, batch: list[Event]) -> None:
        rec = self.recorder
        if rec is not None:
            rec.write_events(batch)
            if rec.problem and not rec.reported:
                rec.reported = True
                batch = batch + [StoreStatus(t=batch[-1].t if batch else 0.0, message=rec.problem)]
        self.events.extend(batch)
        for event in batch:
            if self.publish:
                self.publish(event)
            if self.out:
                self.out.write(event.to_json() + "\n")

    def with_progress(self, progress, pipeline):
        if not progress:
            return self

        def emit(batch):
            self(batch)
            progress.update(pipeline.now)
        return emit

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
        if self.out:
            self.out.close()
