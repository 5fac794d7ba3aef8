"""The analysing side of one ingested call: its timeline (telephony samples to 16 kHz frames) and its
`CallSession` (pipeline, recording, outputs), fed one work item at a time.

The same object runs a call on a worker thread of the server process (`[ingest] processes` 0 or 1)
and inside a worker process of the pool (pool.py), so a call is analysed the same way wherever it runs.
Work items are plain tuples, cheap to pickle: ("start",), ("audio", start, samples, parties),
("status", state, message), ("end", reason, interrupted).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..session.session import CallResult, CallSession
from .timeline import CallTimeline, TimelineStats

log = logging.getLogger("calmline.ingest")

TWILIO_SLACK = 80
"""Twilio timestamps within 10 ms of where a track's audio ended are taken as contiguous."""


@dataclass
class LineStatus:
    """A `device` event for the call's line (lost, ok), in the shape CallSession.push takes."""

    label: str
    state: str
    message: str
    t: float


@dataclass
class WorkDone:
    """What the analysing side tells the route when the call is over (picklable: it crosses processes)."""

    result: CallResult | None
    stats: TimelineStats
    seconds: float
    failed: bool = False


class CallWork:
    """One call's timeline and session; `handle(item)` does one item and returns True once the call is over."""

    def __init__(self, session: CallSession, rate: int, source: str, started_at: float, name: str):
        self.session = session
        self.timeline = CallTimeline(rate, max_skew_s=2.0, slack=TWILIO_SLACK if source == "twilio" else 0)
        self.started_at = started_at
        self.name = name
        self.done: WorkDone | None = None

    def handle(self, item) -> bool:
        session, timeline = self.session, self.timeline
        try:
            kind = item[0]
            if kind == "start":
                session.start(self.started_at)
            elif kind == "audio":
                _, start, samples, parties = item
                for frame in timeline.add_block(start, samples, parties):
                    session.push(frame)
            elif kind == "status":
                session.push(LineStatus("customer", item[1], item[2], round(timeline.seconds, 3)))
            else:
                _, reason, interrupted = item
                if interrupted:
                    session.push(LineStatus("customer", "lost", f"call stream interrupted: {reason}",
                                            round(timeline.seconds, 3)))
                for frame in timeline.finish():
                    session.push(frame)
                self.done = WorkDone(session.finish(), timeline.stats, timeline.seconds)
                return True
            return False
        except Exception:
            log.exception("call %s failed; its recording is closed as it was", self.name)
            session.abort()
            self.done = WorkDone(None, timeline.stats, timeline.seconds, failed=True)
            return True
