"""One client's bounded queue of outgoing messages, drained at the client's own pace.

A stream (the overlay's `/ws`, a supervisor's floor) gives each client an Outbox and one task that
runs `pump()`, so a slow or stuck client only ever holds up itself. What a full outbox does:

- messages of a droppable kind (`levels`: each is superseded by the next) are dropped first, oldest first;
- a message put with a `key` replaces the one with the same key still waiting (e.g. a call's floor tile),
  keeping its place in the queue, so keyed messages are bounded by the number of keys, not by time;
- when `size` is reached with nothing droppable, other messages are still queued (they may not be
  missed) up to `hopeless * size`; beyond that `put()` returns False and the caller closes the client.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState


class Outbox:
    """Bounded per-client queue; `put` from the event loop's thread, `pump` as the client's sender task."""

    def __init__(self, size: int = 256, droppable: frozenset[str] = frozenset({"levels"}), hopeless: int = 4,
                 batch_bytes: int = 0):
        """`batch_bytes` > 0 sends what is waiting as one message of newline-separated texts, up to that size."""
        self.size = size
        self.droppable = droppable
        self.hopeless = hopeless
        self.batch_bytes = batch_bytes
        self._items: deque[tuple[str, str | None, str]] = deque()  # (kind, key, text); keyed texts live in _keyed
        self._keyed: dict[str, str] = {}
        self._ready = asyncio.Event()
        self.dropped = 0
        """Droppable messages this client never got."""

    def __len__(self) -> int:
        return len(self._items)

    @property
    def backlog(self) -> int:
        """Waiting messages that count against `size` (keyed ones are bounded by their keys)."""
        return len(self._items) - len(self._keyed)

    def put(self, kind: str, text: str, key: str | None = None) -> bool:
        """Queue one message; False when the client is hopelessly behind on messages it may not miss."""
        if key is not None:
            if key not in self._keyed:
                self._items.append((kind, key, ""))
            self._keyed[key] = text
            self._ready.set()
            return True
        backlog = self.backlog
        if backlog >= self.size:
            oldest = next((i for i, (k, key_, _) in enumerate(self._items)
                           if k in self.droppable and key_ is None), None)
            if oldest is not None:
                del self._items[oldest]
                self.dropped += 1
            elif kind in self.droppable:
                self.dropped += 1
                return True
            elif backlog >= self.hopeless * self.size:
                return False
        self._items.append((kind, None, text))
        self._ready.set()
        return True

    def clear(self) -> None:
        self._items.clear()
        self._keyed.clear()

    def _pop(self) -> str:
        _, key, text = self._items.popleft()
        return self._keyed.pop(key) if key is not None else text

    async def take(self) -> str:
        """Wait for the next message (or batch of them) and take it off the queue."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        if self.batch_bytes <= 0:
            return self._pop()
        batch, size = [], 0
        while self._items and size < self.batch_bytes:
            batch.append(self._pop())
            size += len(batch[-1])
        return "\n".join(batch)

    async def pump(self, send: Callable[[str], Awaitable[None]]) -> None:
        """Send messages as fast as the client takes them, until it goes away (or the task is cancelled)."""
        while True:
            text = await self.take()
            try:
                await send(text)
            except (WebSocketDisconnect, OSError, RuntimeError):  # gone, or closed under us
                return


async def close_websocket(ws: WebSocket, code: int, reason: str, timeout: float = 2.0) -> None:
    """Close with `code` and `reason` (cut to the 123 bytes a close frame allows); a peer that is gone, or
    reads nothing, holds us up for at most `timeout`."""
    if ws.application_state == WebSocketState.DISCONNECTED:
        return
    reason = reason.encode("utf-8")[:120].decode("utf-8", "ignore")
    try:
        await asyncio.wait_for(ws.close(code, reason), timeout)
    except (asyncio.TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
        pass
