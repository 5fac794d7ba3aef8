"""Running a call live: frames from a source (devices, or a file paced in real time) through the
pipeline, every event published to the overlay's server as it happens."""

from __future__ import annotations

import logging
from typing import Callable, Iterable

from audio.sources import Frame

from ..events import DeviceStatus, Event
from ..analysis.pipeline import Pipeline
from .stop import Stop  # noqa: F401  (re-exported: the stop every call loop checks)

log = logging.getLogger("calmline.live")


def run_call(source: Iterable, pipeline: Pipeline, emit: Callable[[list[Event]], None], stop: Stop | None = None,
             started_at: float | None = None) -> None:
    """Push every frame of `source` through `pipeline`; `emit` gets each batch of events at once.

    A source may also yield capture status objects (with label, state, message, t): they become
    `device` events, so the overlay says when a headset or line drops.
    """
    emit(pipeline.start(started_at))
    for item in source:
        if isinstance(item, Frame):
            emit(pipeline.push(item))
        else:
            log.warning("%s device %s: %s", item.label, item.state, item.message)
            emit([DeviceStatus(t=item.t, party=item.label, state=item.state, message=item.message)])
        if stop is not None and stop.flag.is_set():
            break
    emit(pipeline.finish())
