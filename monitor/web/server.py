"""Live event server: the overlay's static files over HTTP and the event stream on `/ws`.

The pipeline calls `EventServer.publish()` from its own thread; the asyncio loop runs in a daemon
thread so that nothing the network does (slow, stuck or vanished clients) can block the pipeline.
Each client gets its own bounded queue: when it fills, that client's oldest `levels` events are
dropped (they are superseded every 0.2 s); cues, transcripts and call boundaries never are.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import mimetypes
import os
import socket
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

import monitor

from ..errors import UsageError
from ..events import finite

log = logging.getLogger("calmline.server")

UI_DIR = Path(monitor.__file__).resolve().parent.parent / "ui"
DROPPABLE = frozenset({"levels"})
"""Event types a slow client may miss: each is superseded by the next one."""
TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".json": "application/json", ".svg": "image/svg+xml"}
SNAPSHOT_TRANSCRIPTS = 20
SEND_BUFFER = 32 * 1024
"""Bytes the kernel and websockets may hold per client: a backlog beyond it waits in our queue, where stale
levels can be dropped, instead of in a multi-megabyte socket buffer where they would delay the next cue."""


@dataclass
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 8765
    queue_size: int = 256
    """Per-client queue length beyond which `levels` are dropped; 4x this of other events closes the client."""


class _Client:
    """One WebSocket client: its queue and the sender task that drains it at the client's own pace."""

    def __init__(self, ws: ServerConnection, size: int):
        self.ws = ws
        self.size = size
        self.queue: deque[tuple[str, str]] = deque()
        self.ready = asyncio.Event()
        self.dropped = 0
        self.sender: asyncio.Task | None = None
        self.closing: asyncio.Future | None = None

    def put(self, kind: str, text: str) -> bool:
        """Queue one message; False when the client is hopelessly behind on events it may not miss."""
        if len(self.queue) >= self.size:
            oldest_levels = next((i for i, (k, _) in enumerate(self.queue) if k in DROPPABLE), None)
            if oldest_levels is not None:
                del self.queue[oldest_levels]
                self.dropped += 1
            elif kind in DROPPABLE:
                self.dropped += 1
                return True
            elif len(self.queue) >= 4 * self.size:
                return False
        self.queue.append((kind, text))
        self.ready.set()
        return True

    async def send_loop(self) -> None:
        while True:
            while not self.queue:
                self.ready.clear()
                await self.ready.wait()
            _, text = self.queue.popleft()
            try:
                await self.ws.send(text)
            except ConnectionClosed:
                return


class EventServer:
    """Serves ui/ and streams published events to every connected overlay."""

    def __init__(self, options: ServerOptions | None = None):
        self.options = options or ServerOptions()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._port: int | None = None
        self._clients: set[_Client] = set()
        self._seq = 0
        self._snapshot: dict[str, tuple[int, str]] = {}
        self._transcripts: deque[tuple[int, str]] = deque(maxlen=SNAPSHOT_TRANSCRIPTS)

    @property
    def port(self) -> int:
        return self._port if self._port is not None else self.options.port

    @property
    def client_count(self) -> int:
        """WebSocket clients currently registered (a client counts once its snapshot is queued)."""
        return len(self._clients)

    @property
    def url(self) -> str:
        return f"http://{self.options.host}:{self.port}/"

    def start(self) -> None:
        """Listen in a daemon thread; return once listening, or raise UsageError (e.g. port taken)."""
        started = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(started, failure), name="calmline-server",
                                        daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            self._thread.join()
            error = failure[0]
            reason = str(error)
            if isinstance(error, OSError):  # asyncio's own message repeats the address: keep the cause
                reason = os.strerror(error.errno) if (error.errno or 0) > 0 else error.strerror or reason
            where = f"{self.options.host}:{self.options.port}"
            raise UsageError(f"cannot listen on {where}: {reason.lower()}") from error
        log.info("overlay at %s", self.url)

    def stop(self) -> None:
        """Close every connection and the listening socket; waits for the loop thread to end."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=5)
        self._loop = None

    def publish(self, event) -> None:
        """Queue an event (dict, or an Event with to_dict) for every client; never blocks, any thread."""
        if hasattr(event, "to_dict"):
            event = event.to_dict()
        try:
            text = json.dumps(event, separators=(",", ":"), allow_nan=False)
        except ValueError:  # NaN/inf is not JSON a browser can parse: send null instead
            text = json.dumps(finite(event), separators=(",", ":"))
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._broadcast, str(event.get("type", "")), text)
        except RuntimeError:  # the loop closed between the check and the call
            pass

    # -- inside the loop thread --

    def _run(self, started: threading.Event, failure: list) -> None:
        try:
            asyncio.run(self._main(started))
        except BaseException as error:  # reported to start() when it happened before listening
            if not started.is_set():
                failure.append(error)
                started.set()
            else:
                log.exception("event server stopped on an error")

    async def _main(self, started: threading.Event) -> None:
        self._stop = asyncio.Event()
        async with serve(self._handle, self.options.host, self.options.port, process_request=self._http,
                         compression=None, max_size=64 * 1024, write_limit=SEND_BUFFER, close_timeout=2,
                         logger=log.getChild("websockets")) as server:
            self._port = server.sockets[0].getsockname()[1]
            self._loop = asyncio.get_running_loop()
            started.set()
            await self._stop.wait()
            self._loop = None  # publish() from now on is a no-op

    def _broadcast(self, kind: str, text: str) -> None:
        self._remember(kind, text)
        for client in list(self._clients):
            if not client.put(kind, text):
                log.warning("closing %s: %d events behind", client.ws.remote_address, len(client.queue))
                self._drop(client, 1013, "client too slow")

    def _remember(self, kind: str, text: str) -> None:
        """Keep what a (re)connecting overlay needs to show the current state at once."""
        self._seq += 1
        item = (self._seq, text)
        if kind == "call_start":
            self._snapshot = {"call_start": item}
            self._transcripts.clear()
        elif kind == "transcript":
            self._transcripts.append(item)
        elif kind in ("cue", "pace", "levels", "call_end"):
            self._snapshot[kind] = item

    def _drop(self, client: _Client, code: int, reason: str) -> None:
        self._clients.discard(client)
        client.queue.clear()
        if client.sender is not None:
            client.sender.cancel()
        client.closing = asyncio.ensure_future(client.ws.close(code, reason))

    async def _handle(self, ws: ServerConnection) -> None:
        client = _Client(ws, self.options.queue_size)
        sock = ws.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        for _, text in sorted([*self._snapshot.values(), *self._transcripts]):
            client.queue.append(("snapshot", text))
        client.ready.set()
        client.sender = asyncio.create_task(client.send_loop())
        self._clients.add(client)
        log.info("client connected: %s (%d now)", ws.remote_address, len(self._clients))
        try:
            async for message in ws:
                try:
                    json.loads(message)
                except ValueError:
                    log.debug("ignoring a malformed message: %.80r", message)
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)
            client.sender.cancel()
            log.info("client gone: %s (%d dropped levels)", ws.remote_address, client.dropped)

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        """Answer plain HTTP GETs with files from ui/; let `/ws` go on to the WebSocket handshake."""
        path = unquote(urlsplit(request.path).path)
        if path == "/ws":
            return None
        if path == "/":
            path = "/overlay.html"
        path = path[3:] if path.startswith("/ui/") else path  # pages name their files /ui/..., as the web app does
        if ".." in path.split("/") or "\0" in path:
            return connection.respond(http.HTTPStatus.FORBIDDEN, "Forbidden\n")
        file = (UI_DIR / path.lstrip("/")).resolve()
        if not file.is_relative_to(UI_DIR):  # e.g. a symlink out of ui/
            return connection.respond(http.HTTPStatus.FORBIDDEN, "Forbidden\n")
        if not file.is_file():
            return connection.respond(http.HTTPStatus.NOT_FOUND, "Not found\n")
        body = file.read_bytes()
        kind = TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        headers = Headers([("Content-Type", kind), ("Content-Length", str(len(body))),
                           ("Cache-Control", "no-cache"), ("Connection", "close")])
        return Response(200, "OK", headers, body)
