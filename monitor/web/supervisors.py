"""One supervisor's floor stream: an Outbox for what may not be missed (alerts, the watched call's events)
and, beside it, the set of calls whose tile changed since this supervisor last got it. The sender sends
both together as one WebSocket message of newline-separated JSON objects, as fast as the supervisor reads;
a tile goes out as the fields that differ from what this supervisor already has of it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from starlette.websockets import WebSocket, WebSocketDisconnect

from .jsonwire import dumps
from .outbox import Outbox, close_websocket

log = logging.getLogger("calmline.floor")

CLOCK_FIELDS = ("t", "at")
BATCH_BYTES = 64 * 1024
TILE_LINGER_S = 0.02
"""Tile changes wait this long for others to share one WebSocket message (a send per change per supervisor
cost as much as reading the monitors); alerts and watched events never wait."""


@dataclass(eq=False)
class Supervisor:
    ws: WebSocket
    user: str
    sid: str
    expires: float
    """Unix time when the session ends."""
    floor: object
    """The Floor, whose `published` tiles this supervisor is sent."""
    queue_size: int = 512
    watching: str | None = None
    known: dict[str, dict] = field(default_factory=dict)
    """Each call's tile as this supervisor has it."""
    dirty: dict[str, None] = field(default_factory=dict)
    """Calls whose published tile changed since this supervisor was last sent it (in order)."""
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    def __post_init__(self):
        self.outbox = Outbox(self.queue_size, batch_bytes=BATCH_BYTES)

    def put(self, kind: str, text: str) -> bool:
        """Queue a message; False when hopelessly behind (the caller closes this supervisor)."""
        ok = self.outbox.put(kind, text)
        self.wake.set()
        return ok

    def tile_changed(self, call_id: str) -> None:
        self.dirty[call_id] = None
        self.wake.set()

    def forget(self, call_id: str) -> None:
        self.dirty.pop(call_id, None)
        self.known.pop(call_id, None)

    def close(self, code: int, reason: str) -> None:
        self.closed = True
        self.outbox.clear()
        self.dirty.clear()
        self.wake.set()
        asyncio.ensure_future(close_websocket(self.ws, code, reason))

    def _tiles(self) -> list[str]:
        """The changed tiles, each as only what changed for this supervisor."""
        out = []
        published = self.floor.published
        for call_id in self.dirty:
            tile = published.get(call_id)
            if tile is None:
                continue
            known = self.known.get(call_id)
            if known is None:
                self.known[call_id] = dict(tile)
                out.append(dumps({"type": "tile", "call": tile}))
                continue
            delta = {k: v for k, v in tile.items() if known.get(k) != v}
            if not delta.keys() - CLOCK_FIELDS:
                continue
            known.update(delta)
            delta["call_id"] = call_id
            for key in CLOCK_FIELDS:
                delta[key] = tile[key]
            out.append(dumps({"type": "tile", "call": delta}))
        self.dirty.clear()
        return out

    async def pump(self) -> None:
        """Send until the supervisor goes away or is closed."""
        while not self.closed:
            if not len(self.outbox) and not self.dirty:
                self.wake.clear()
                await self.wake.wait()
                continue
            if not len(self.outbox):  # tiles alone: let the changes of the next few ms share this message
                await asyncio.sleep(TILE_LINGER_S)
            parts = [await self.outbox.take()] if len(self.outbox) else []
            parts += self._tiles()
            if not parts:
                continue
            try:
                await self.ws.send_text("\n".join(parts))
            except (WebSocketDisconnect, RuntimeError, OSError):
                return
