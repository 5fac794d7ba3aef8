"""The supervisors' floor as a part of the web app (monitor.web.app): login, the floor page and its stream,
and the desktop monitors' stream.

Routes: `GET /login` (page), `POST /login` (form or JSON `username`, `password`), `POST /logout`,
`GET /floor` (page, or 302 to /login), `GET /session` (who is signed in, or 401), WebSocket `/floor/ws`
(supervisors; a session is needed), WebSocket `/monitor` (agents' monitors; token in the first message,
no Origin needed). The same `/login` signs in supervisors ([hub.supervisors], sent to /floor) and agents
([hub.agents], sent to their overlay at /, monitor.web.agent_overlay); the session carries the role.
`FloorPart.authorize(request, call)` is the call library's check: supervisors every call, agents their own.

`calmline server` builds it with `FloorPart.from_config(config.hub, data_dir=..., tls=...)`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..config import RedactConfig
from .app import origin_optional, ui_dir
from .auth import (COOKIE, DEVICE_COOKIE, DUMMY_HASH, SUPERVISOR, LoginThrottle, Session, Sessions,
                   check_credentials, check_password)
from .floor_room import Floor, FloorOptions
from .jsonwire import JSONResponse
from .library import Access
from .monitors import MonitorLimits, Monitors, loads
from .redis_bridge import CHANNEL, RedisBridge
from .supervisors import Supervisor

log = logging.getLogger("calmline.floor")

MAX_LOGIN_BYTES = 8 * 1024


@dataclass
class FloorPartOptions:
    tokens: dict[str, str] = field(default_factory=dict)
    """Agent name -> the token its monitor presents (16 characters at least)."""
    supervisors: dict[str, str] = field(default_factory=dict)
    """Username -> `hash_password()` string."""
    agents: dict[str, str] = field(default_factory=dict)
    """Agent name -> `hash_password()` string: agents sign in to their overlay and their own calls."""
    data_dir: Path | None = None
    """Where the session signing key lives (None: a key for this process only; restarts sign everyone out)."""
    tls: bool = False
    """Served over TLS: session cookies get `Secure`."""
    redis_url: str | None = None
    redis_channel: str = CHANNEL
    session_ttl_s: float = 12 * 3600.0
    monitors: MonitorLimits = field(default_factory=MonitorLimits)
    floor: FloorOptions = field(default_factory=FloorOptions)
    throttle: dict = field(default_factory=dict)
    """LoginThrottle arguments (per_pair, per_address, per_account, reserve)."""
    redact: RedactConfig = field(default_factory=RedactConfig)
    """How monitors' transcripts are redacted again on arrival."""


class FloorPart:
    """Login, floor and monitors' routes over one Floor (see the module docstring)."""

    def __init__(self, options: FloorPartOptions | None = None):
        self.options = opts = options or FloorPartOptions()
        check_credentials(opts.tokens, opts.supervisors, agents=opts.agents)
        self.floor = Floor(opts.floor)
        self.monitors = Monitors(self.floor, opts.tokens, opts.monitors, opts.redact)
        self.sessions = Sessions(opts.supervisors, opts.session_ttl_s, opts.tls, opts.data_dir, opts.agents)
        self.throttle = LoginThrottle(**opts.throttle)
        self.floor.on_note.append(self._note_to_monitor)
        self._tasks: list[asyncio.Task] = []
        self.routes = [
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/floor", self.floor_page, methods=["GET"]),
            Route("/session", self.session, methods=["GET"]),
            WebSocketRoute("/floor/ws", self.floor_stream),
            origin_optional(WebSocketRoute("/monitor", self.monitors.serve)),
        ]

    @classmethod
    def from_config(cls, hub, data_dir: Path | None = None, tls: bool = False,
                    redis_url: str | None = None, redact: RedactConfig | None = None,
                    acknowledge=None) -> FloorPart:
        """From config.toml's [hub] section (monitor.config.HubConfig); UsageError naming a weak token.
        `acknowledge`: [cues.acknowledge], whose phrases clear and raise the floor's reasons."""
        return cls(FloorPartOptions(tokens=dict(hub.tokens), supervisors=dict(hub.supervisors),
                                    agents=dict(getattr(hub, "agents", {}) or {}), data_dir=data_dir,
                                    tls=tls, redis_url=redis_url or hub.redis_url or None,
                                    monitors=MonitorLimits(max_connections=hub.max_connections_per_agent),
                                    floor=FloorOptions(max_calls_per_agent=hub.max_calls_per_agent,
                                                       acknowledge=acknowledge),
                                    redact=redact or RedactConfig()))

    def _note_to_monitor(self, call, note: dict) -> None:
        """A supervisor's note to the desktop monitor sending the call (`calmline live --hub`), which shows it on
        its own overlay and records it with the call there."""
        if call.conn is not None:
            self.monitors._reply(call.conn, {"type": "note", "call_id": call.call_id, "event": note})

    # ---- the part's life ----

    async def startup(self) -> None:
        self._tasks.append(asyncio.create_task(self.floor.run()))
        if self.options.redis_url:
            self.floor.bridge = RedisBridge(self.options.redis_url, self.floor, self.options.redis_channel)
            await self.floor.bridge.start()
        log.info("floor %s ready (%d agents, %d supervisors%s)", self.floor.id, len(self.options.tokens),
                 len(self.options.supervisors), ", redis" if self.options.redis_url else "")

    async def shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.floor.bridge is not None:
            await self.floor.bridge.stop()

    def stats(self) -> dict:
        """Counts for logs and tests: calls, supervisors, monitors, Redis health."""
        return {**self.floor.stats(), "monitors": len(self.monitors)}

    # ---- sessions ----

    def session_of(self, request: HTTPConnection) -> Session | None:
        """Whoever is signed in on this request (or WebSocket), supervisor or agent, or None."""
        return self.sessions.read(request.cookies.get(COOKIE))

    def supervisor(self, request: HTTPConnection) -> Session | None:
        """The signed-in supervisor making this request, or None (agents included)."""
        session = self.session_of(request)
        return session if session is not None and session.role == SUPERVISOR else None

    def authorize(self, request: HTTPConnection, call: dict | None = None) -> bool | Access:
        """The call library's check: a supervisor sees every call; an agent lists only their own calls
        (`Access(agent=...)`) and opens only those; anyone else nothing (403)."""
        session = self.session_of(request)
        if session is None:
            return False
        if session.role == SUPERVISOR:
            return True
        if call is None:
            return Access(agent=session.user)
        return call.get("agent") == session.user

    async def login_page(self, request: Request) -> Response:
        """ui/login.html, its error line shown after a failed attempt (the page runs no script of its own)."""
        body = (ui_dir() / "login.html").read_text()
        if "failed" in request.query_params:
            body = body.replace('<p id="error" role="alert" hidden>', '<p id="error" role="alert">')
        return Response(body, media_type="text/html; charset=utf-8")

    async def login(self, request: Request) -> Response:
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            return PlainTextResponse("A login needs a Content-Length\n", status_code=411)
        if int(length) > MAX_LOGIN_BYTES:
            return PlainTextResponse("Too large\n", status_code=413)
        is_json = "json" in request.headers.get("content-type", "")
        username, password = await _credentials(request, is_json)
        address = request.client.host if request.client else "?"
        account = (username or "")[:128]
        device = self.sessions.device_user(request.cookies.get(DEVICE_COOKIE)) == account
        ticket = self.throttle.reserve_check(account, address, known_device=device)
        if ticket is None:
            log.warning("login throttled for %.40r from %s", account, address)
            return PlainTextResponse("Too many login attempts; wait a minute\n", status_code=429,
                                     headers={"Retry-After": "60"})
        stored = self.sessions.stored_hash(account)
        ok = await asyncio.get_running_loop().run_in_executor(
            None, check_password, password or "", stored or DUMMY_HASH)
        ok = bool(ok and stored and username)
        self.throttle.settle(ticket, ok)
        if not ok:
            log.warning("failed login for %.40r from %s", account, address)
            if is_json:
                return JSONResponse({"error": "wrong username or password"}, status_code=401)
            return RedirectResponse("/login?failed=1", status_code=303)
        value, new = self.sessions.issue(account)
        log.info("%s %s logged in from %s", new.role, account, address)
        response = RedirectResponse("/floor" if new.role == SUPERVISOR else "/", status_code=303)
        response.headers.append("set-cookie", self.sessions.cookie_header(value))
        response.headers.append("set-cookie", self.sessions.device_cookie_header(self.sessions.issue_device(account)))
        return response

    async def logout(self, request: Request) -> Response:
        session = self.session_of(request)
        if session is not None:
            self.sessions.revoke(session)
            self.floor.end_sessions(session.sid, "logged out")
            log.info("%s %s logged out", session.role, session.user)
        response = RedirectResponse("/login", status_code=303)
        response.headers.append("set-cookie", self.sessions.cookie_header("", max_age=0))
        return response

    async def floor_page(self, request: Request) -> Response:
        session = self.session_of(request)
        if session is None or session.role != SUPERVISOR:
            return RedirectResponse("/login" if session is None else "/", status_code=302)
        return Response((ui_dir() / "floor.html").read_bytes(), media_type="text/html; charset=utf-8")

    async def session(self, request: Request) -> Response:
        session = self.session_of(request)
        if session is None:
            return JSONResponse({"error": "not logged in"}, status_code=401)
        return JSONResponse({"user": session.user, "hub": self.floor.id, "role": session.role})

    # ---- the floor stream ----

    async def floor_stream(self, ws: WebSocket) -> None:
        session = self.session_of(ws)
        if session is None:
            await ws.send_denial_response(PlainTextResponse("Log in first\n", status_code=401))
            return
        if session.role != SUPERVISOR:
            await ws.send_denial_response(PlainTextResponse("Supervisors only\n", status_code=403))
            return
        await ws.accept()
        sup = Supervisor(ws, session.user, session.sid, session.expires, self.floor,
                         self.options.floor.queue_size)
        self.floor.connect(sup)
        log.info("supervisor %s connected (%d now)", sup.user, len(self.floor.supervisors))
        sender = asyncio.create_task(sup.pump())
        reader = asyncio.create_task(self._read_supervisor(ws, sup))
        try:
            await asyncio.wait({sender, reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sender.cancel()
            reader.cancel()
            self.floor.disconnect(sup)
            log.info("supervisor %s gone (%d watched levels dropped)", sup.user, sup.outbox.dropped)

    async def _read_supervisor(self, ws: WebSocket, sup: Supervisor) -> None:
        try:
            while not sup.closed:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                self.floor.on_supervisor_message(sup, loads(message.get("text") or message.get("bytes") or ""))
        except (WebSocketDisconnect, RuntimeError, OSError):
            return


async def _credentials(request: Request, is_json: bool) -> tuple[str | None, str | None]:
    """Username and password from a form (parsed by Starlette) or a JSON body; None for what is missing."""
    try:
        if is_json:
            data = json.loads(await request.body())
            data = data if isinstance(data, dict) else {}
            user, password = data.get("username"), data.get("password")
        else:
            async with request.form(max_files=0, max_fields=10) as form:
                user, password = form.get("username"), form.get("password")
    except Exception:  # any malformed body (bad JSON, bad form encoding, too many fields) is no login
        return None, None
    return (user if isinstance(user, str) else None), (password if isinstance(password, str) else None)

