"""The agent's overlay on the server: `/` (the same page as `calmline live` serves) for a signed-in agent, and
`/ws`, their current call streamed live from the floor.

`calmline live` and `demo` serve the overlay alone, unauthenticated, on loopback (monitor.web.overlay); on
the server every call of every agent reaches the floor (monitor.web.floor_room), so this part streams from
there: on connect the snapshot of the agent's current call, then every event of that agent's calls as it
arrives, through the client's own Outbox (levels may be dropped for a slow client, cues and transcripts
never), and a `call_summary` after each `call_end` (sent again with the scorecard's score and the agent's
self-view, monitor.web.self_view, once a call recorded on this server is closed). Supervisors' notes
(monitor.web.notes) arrive as `note` events and are recorded with the call when it is recorded here. An agent is sent their own calls only. A supervisor may
open `/?agent=NAME` to see what that agent sees.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .app import ui_dir
from .auth import SUPERVISOR
from .notes import record_note
from .self_view import self_view
from .outbox import Outbox, close_websocket

log = logging.getLogger("calmline.agents")

CLOSE_WAIT_S = 5.0
SCORE_WAIT_S = 30.0
"""How long after a call's end its recording may take to close before the overlay goes without a score."""
SCORE_POLL_S = 0.5


@dataclass(eq=False)
class Viewer:
    """One overlay stream of one agent's calls (what the floor puts into, via `put`)."""

    ws: WebSocket
    agent: str
    user: str
    sid: str
    expires: float
    """Unix time when the session ends."""
    outbox: Outbox
    sender: asyncio.Task | None = None
    closing: asyncio.Task | None = field(default=None, repr=False)

    def put(self, kind: str, text: str) -> bool:
        return self.outbox.put(kind, text)

    def close(self, code: int, reason: str) -> None:
        self.outbox.clear()
        if self.sender is not None:
            self.sender.cancel()

        self.closing = asyncio.ensure_future(close_websocket(self.ws, code, reason, CLOSE_WAIT_S))


class AgentOverlayPart:
    """`/` and `/ws` for signed-in agents, over a FloorPart's sessions and floor."""

    def __init__(self, floor_part, queue_size: int = 256, library=None):
        """`library` (a LibraryPart): where a call recorded on this server is scored once it ends."""
        self.floor_part = floor_part
        self.queue_size = queue_size
        self.library = library
        self.routes = [Route("/", self.page, methods=["GET"]), WebSocketRoute("/ws", self.stream)]
        self._scoring: set[asyncio.Task] = set()

    async def startup(self) -> None:
        if self.library is not None:
            self.floor_part.floor.on_viewed_call_end.append(self._score_later)
            self.floor_part.floor.on_note.append(self._record_note)

    def _record_note(self, call, note: dict) -> None:
        """A supervisor's note goes into the call's stored events when the call is recorded here (its own
        server's: with several, that one records it)."""
        if call.origin != self.floor_part.floor.id:
            return
        task = asyncio.ensure_future(self.library._read(record_note, self.library.store, call.call_id, note))
        self._scoring.add(task)
        task.add_done_callback(self._scoring.discard)

    def _score_later(self, call) -> None:
        task = asyncio.ensure_future(self._score(call.call_id))
        self._scoring.add(task)
        task.add_done_callback(self._scoring.discard)

    async def _score(self, call_id: str) -> None:
        """Once the call's recording is closed, its score goes to the overlays still showing it. A call not
        recorded here (a desktop monitor records on its own machine) keeps the summary without one."""
        deadline = asyncio.get_running_loop().time() + SCORE_WAIT_S
        while asyncio.get_running_loop().time() < deadline:
            try:
                summary = await self.library.summary_of(call_id)
            except Exception:  # noqa: BLE001 - a score is a nicety: never a fault of the stream
                log.exception("cannot score call %s", call_id)
                return
            if summary == "absent":
                return
            if summary is not None:
                try:  # the self-view: score out of 100, one thing that went well, one to try next time
                    view = await self.library._read(
                        lambda: self_view(call_id, self.library.store.events(call_id), self.library.config))
                except Exception:  # noqa: BLE001
                    log.exception("cannot make the self-view of call %s", call_id)
                    view = None
                self.floor_part.floor.send_summary(call_id, summary["score"], view)
                return
            await asyncio.sleep(SCORE_POLL_S)

    async def shutdown(self) -> None:
        for task in list(self._scoring):
            task.cancel()
        for viewers in list(self.floor_part.floor.viewers.values()):
            for viewer in list(viewers):
                if viewer.sender is not None:
                    viewer.sender.cancel()

    def _agent(self, request) -> tuple[str | None, object]:
        """Whose calls this request may see (the agent's own; a supervisor's `?agent=NAME`), and the session."""
        session = self.floor_part.session_of(request)
        if session is None:
            return None, None
        if session.role == SUPERVISOR:
            return request.query_params.get("agent") or None, session
        return session.user, session

    async def page(self, request: Request) -> Response:
        agent, session = self._agent(request)
        if session is None:
            return RedirectResponse("/login", status_code=302)
        if agent is None:  # a supervisor who named no agent
            return RedirectResponse("/floor", status_code=302)
        return FileResponse(ui_dir() / "overlay.html")

    async def stream(self, ws: WebSocket) -> None:
        agent, session = self._agent(ws)
        if session is None:
            await ws.send_denial_response(PlainTextResponse("Log in first\n", status_code=401))
            return
        if agent is None:
            await ws.send_denial_response(PlainTextResponse("Name an agent: /ws?agent=NAME\n", status_code=400))
            return
        await ws.accept()
        floor = self.floor_part.floor
        viewer = Viewer(ws, agent, session.user, session.sid, session.expires, Outbox(self.queue_size))
        floor.view(viewer)  # the snapshot is queued before any later event: both run on this loop
        viewer.sender = asyncio.create_task(viewer.outbox.pump(ws.send_text))
        log.info("%s's overlay connected (%s)", agent, session.user)
        try:
            while (await ws.receive())["type"] != "websocket.disconnect":
                pass  # the overlay has nothing to say; whatever it sends is ignored
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            floor.unview(viewer)
            viewer.sender.cancel()
            log.info("%s's overlay gone (%d levels dropped)", agent, viewer.outbox.dropped)
