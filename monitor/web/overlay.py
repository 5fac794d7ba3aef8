"""The agent's overlay: the page at `/` and the live event stream at `/ws`.

The pipeline calls `publish()` from its own thread; the event is encoded there and handed to the
server's loop, which queues it in every client's Outbox. Each client's own sender task drains its
Outbox at the client's pace, so a slow or stuck overlay only misses `levels` (superseded every 0.2 s)
and never delays another client's cues; one hopelessly behind on cues is closed (1013).
A client that connects gets the current call first: its call_start, the last cue of each kind still up
(a cue_end takes it out), the latest stats, pace, levels and call_end, and the last SNAPSHOT_TRANSCRIPTS
transcripts, in the order they were published.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import deque
from dataclasses import dataclass, field

from starlette.responses import FileResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from .app import WebOptions, WebServer, build_app, ui_dir
from .jsonwire import dumps
from .outbox import Outbox, close_websocket

log = logging.getLogger("calmline.overlay")

SNAPSHOT_TRANSCRIPTS = 20
LATEST = ("stats", "pace", "sentiment", "levels", "call_end")
"""Event types of which a new client needs only the latest."""
CLOSE_WAIT_S = 5.0
ENDED = 4000
"""Close code that tells an overlay its server has ended for good (the demo is over): it shows the reason
and does not reconnect."""


@dataclass(eq=False)
class _Client:
    ws: WebSocket
    outbox: Outbox
    sender: asyncio.Task | None = None
    closing: asyncio.Task | None = field(default=None, repr=False)


class OverlayPart:
    """The overlay page and its event stream; `publish(event)` from any thread."""

    def __init__(self, queue_size: int = 256):
        self.queue_size = queue_size
        """Per-client queue length beyond which `levels` are dropped; 4x this of other events closes the client."""
        self.routes = [Route("/", self.page, methods=["GET"]), WebSocketRoute("/ws", self.stream)]
        self.loop: asyncio.AbstractEventLoop | None = None
        self._clients: set[_Client] = set()
        self._seq = 0
        self._latest: dict[str, tuple[int, str]] = {}
        self._transcripts: deque[tuple[int, str]] = deque(maxlen=SNAPSHOT_TRANSCRIPTS)

    @property
    def client_count(self) -> int:
        """Stream clients currently registered (a client counts once its snapshot is queued)."""
        return len(self._clients)

    async def startup(self) -> None:
        self.loop = asyncio.get_running_loop()

    async def shutdown(self) -> None:
        self.loop = None  # publish() from now on is a no-op
        for client in list(self._clients):
            if client.sender is not None:
                client.sender.cancel()

    def publish(self, event) -> None:
        """Queue an event (an Event, or its dict) for every client; never blocks, from any thread."""
        loop = self.loop
        if loop is None:
            return
        data = event.to_dict() if hasattr(event, "to_dict") else event
        text = dumps(data)
        try:
            loop.call_soon_threadsafe(self._broadcast, str(data.get("type", "")), text, data.get("kind"))
        except RuntimeError:  # the loop closed between the check and the call
            pass

    # -- in the server's loop --

    async def page(self, request) -> FileResponse:
        return FileResponse(ui_dir() / "overlay.html")

    async def stream(self, ws: WebSocket) -> None:
        await ws.accept()
        client = _Client(ws, Outbox(self.queue_size))
        for _, text in sorted([*self._latest.values(), *self._transcripts]):
            client.outbox.put("snapshot", text)
        client.sender = asyncio.create_task(client.outbox.pump(ws.send_text))
        self._clients.add(client)
        log.info("overlay connected: %s (%d now)", ws.client, len(self._clients))
        try:
            while (await ws.receive())["type"] != "websocket.disconnect":
                pass  # the overlay has nothing to say; whatever it sends is ignored
        finally:
            self._clients.discard(client)
            client.sender.cancel()
            log.info("overlay gone: %s (%d levels dropped)", ws.client, client.outbox.dropped)

    def _broadcast(self, kind: str, text: str, cue_kind=None) -> None:
        self._remember(kind, text, cue_kind)
        for client in list(self._clients):
            if not client.outbox.put(kind, text):
                log.warning("closing %s: %d events behind", client.ws.client, len(client.outbox))
                self._close(client, 1013, "client too slow")

    def _remember(self, kind: str, text: str, cue_kind=None) -> None:
        """Keep what a (re)connecting overlay needs to show the current state at once."""
        self._seq += 1
        item = (self._seq, text)
        if kind == "call_start":
            self._latest = {"call_start": item}
            self._transcripts.clear()
        elif kind == "transcript":
            self._transcripts.append(item)
        elif kind == "cue":  # every cue still up, so that a lower one pushed aside is there too
            self._latest[f"cue:{cue_kind}"] = item
        elif kind == "cue_end":
            self._latest.pop(f"cue:{cue_kind}", None)
        elif kind in LATEST:
            self._latest[kind] = item

    async def farewell(self, reason: str) -> None:
        """Close every overlay with ENDED and `reason` (the server stops next and will not come back)."""
        clients, self._clients = list(self._clients), set()
        for client in clients:
            if client.sender is not None:
                client.sender.cancel()
        await asyncio.gather(*(close_websocket(c.ws, ENDED, reason, CLOSE_WAIT_S / 2) for c in clients))

    def _close(self, client: _Client, code: int, reason: str) -> None:
        self._clients.discard(client)
        client.outbox.clear()
        if client.sender is not None:
            client.sender.cancel()

        client.closing = asyncio.ensure_future(close_websocket(client.ws, code, reason, CLOSE_WAIT_S))


class OverlayServer:
    """The overlay served on its own (live, demo): a started WebServer with one OverlayPart."""

    def __init__(self, options: WebOptions, queue_size: int = 256):
        self.part = OverlayPart(queue_size)
        self.server = WebServer(build_app(options, [self.part]), options)

    def start(self) -> OverlayServer:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def farewell(self, reason: str) -> None:
        """Tell the connected overlays that this server ends for good (`reason` is shown), from any thread;
        call it before `stop`, which otherwise leaves them reconnecting."""
        loop = self.part.loop
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.part.farewell(reason), loop).result(CLOSE_WAIT_S)
        except Exception:  # noqa: BLE001 - a loop that closed meanwhile, a peer that is gone: nothing to tell
            pass

    def publish(self, event) -> None:
        self.part.publish(event)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def client_count(self) -> int:
        return self.part.client_count


def serve_overlay(options: WebOptions) -> OverlayServer:
    """A started overlay server; UsageError when it cannot listen. Prints where to open it."""
    server = OverlayServer(options).start()
    print(f"calmline: overlay at {server.url}", file=sys.stderr, flush=True)
    return server
