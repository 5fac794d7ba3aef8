"""Where a call's events go: the report, an --events file, the overlay's server, the recorder."""

from __future__ import annotations

from ..events import Event, Levels, StoreStatus, Transcript
from ..library.store import CallRecorder


def for_the_report(event: Event) -> bool:
    """Whether the call's report (and its summary) needs this event: not the meters' levels (5 a second,
    for hours) nor interim transcripts (each replaced by a final). The recorder and the outputs still
    get every event."""
    return not isinstance(event, Levels) and not (isinstance(event, Transcript) and not event.final)


class Collect:
    """Hands each batch to every sink, and keeps what the report needs (`events`).

    When recording fails (full disk), a `store` event says so once, to the overlay and the log,
    and the call goes on.
    """

    def __init__(self, out=None, publish=None, recorder: CallRecorder | None = None):
        self.events: list[Event] = []
        self.out, self.publish, self.recorder = out, publish, recorder

    def __call__(self, batch: list[Event]) -> list[Event]:
        """Send `batch` on; the batch as sent (with a `store` event when recording just failed)."""
        rec = self.recorder
        if rec is not None:
            rec.write_events(batch)
            if rec.problem and not rec.reported:
                rec.reported = True
                batch = batch + [StoreStatus(t=max([rec.problem_t] + [e.t for e in batch[-1:]]), message=rec.problem)]
        self.events.extend(e for e in batch if for_the_report(e))
        for event in batch:
            if self.publish:
                self.publish(event)
            if self.out:
                self.out.write(event.to_json() + "\n")
        return batch

    def close(self) -> None:
        """Close the recording and the events file; safe to repeat."""
        recorder, self.recorder = self.recorder, None
        out, self.out = self.out, None
        try:
            if recorder is not None:
                recorder.close()
        finally:
            if out:
                out.close()


class Publishers:
    """Publish to several targets (the overlay's server and, when configured, the hub), and stop them all.
    They outlive a call: `demo --loop` runs call after call to the same ones."""

    def __init__(self, *targets):
        self.targets = [t for t in targets if t is not None]

    def __call__(self, event: Event) -> None:
        for target in self.targets:
            target.publish(event)

    def stop(self) -> None:
        for target in self.targets:
            target.stop()
