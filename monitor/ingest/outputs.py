"""Where an ingested call's events go besides its recording: the floor of this server.

A desktop monitor sends its events over `/monitor`; an ingested call is on the server already, so its
events enter the floor the same way, as checked `EventMessage`s applied on the server's loop, with
the agent the stream named. `ingest_part` builds the IngestPart for `calmline server` from the parts
the server already has.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable, Sequence

from ..config import Config
from ..events import Event
from ..library.store import Store
from .actions import Opened
from .routes import IngestPart


def floor_publisher(floor) -> Callable[[str, Opened], list[Callable[[Event], None]]]:
    """`publish_for` for IngestPart: each call's events to `floor` (a monitor.web.floor_room.Floor)."""
    from ..web.monitors import EventMessage

    def publish_for(agent: str, opened: Opened) -> list[Callable[[Event], None]]:
        loop = asyncio.get_running_loop()  # called on the server's loop when the call opens
        state = {"seq": 0, "call_id": None}

        def publish(event: Event) -> None:  # from the call's thread
            if event.type == "call_start":
                state["call_id"] = event.call_id
            if state["call_id"] is None:
                return
            state["seq"] += 1
            msg = EventMessage(state["call_id"], state["seq"], time.time(), event, event.to_dict())
            try:
                loop.call_soon_threadsafe(_apply, floor, agent, msg)
            except RuntimeError:  # the server is stopping
                pass

        return [publish]

    return publish_for


def _apply(floor, agent: str, msg) -> None:
    error = floor.ingest(agent, msg, floor.id)
    if error is not None and msg.event.type == "call_start":
        import logging

        logging.getLogger("calmline.ingest").warning("floor refused %s's call %s: %s", agent, msg.call_id, error)


def ingest_part(config: Config, store: Store | None, parts: Sequence) -> IngestPart:
    """The ingest routes for `calmline server`, publishing to the floor when the server has one."""
    floor = next((getattr(p, "floor") for p in parts if hasattr(p, "floor") and hasattr(p, "monitors")), None)
    return IngestPart(config, store, publish_for=floor_publisher(floor) if floor is not None else None)
