"""calmline's one web app: Starlette on uvicorn, built from parts (overlay, library, floor, ...).

`build_app` is the one place that decides who may talk to the app and what every response carries:

- a request or WebSocket handshake with two `Host`, `Cookie`, `Content-Length`, `Origin` or
  `Authorization` headers gets 400 before anything else reads them;
- the `Host` must be one of the server's own names (Starlette's TrustedHostMiddleware): this is what
  stops DNS rebinding, where an attacker's name resolves to 127.0.0.1;
- every WebSocket handshake and every request other than GET/HEAD must come from the server's own
  origin or a configured one (403 otherwise). A WebSocket without any Origin (not a browser) is let
  through only on routes marked with `origin_optional`, which authenticate by token themselves;
- every response carries a strict Content-Security-Policy, nosniff, frame-ancestors 'none' and
  a same-origin referrer policy, unless the route set its own.

`WebServer` runs uvicorn on its own event loop in a daemon thread (live, demo, replay) or until a
stop flag is set (`calmline server`); see docs/web.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import importlib.util
import ipaddress
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Match, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import UsageError

log = logging.getLogger("calmline.web")


class _QuietUvicorn(logging.Filter):
    """uvicorn logs an error for every WebSocket handshake the app refuses with an HTTP response (its sans-I/O
    protocol never marks that handshake complete) and a warning for each malformed request: both are the
    app working as meant, not faults."""

    NOISE = ("ASGI callable returned without completing handshake", "Invalid HTTP request received")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.NOISE)


logging.getLogger("uvicorn.error").addFilter(_QuietUvicorn())

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
ANY_HOST = ("", "0.0.0.0", "::")
SINGLE_HEADERS = frozenset({b"host", b"cookie", b"content-length", b"origin", b"authorization"})
"""Headers a request may carry once: two of them are an attack on whoever reads the first or the last."""
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),  # not no-referrer: under it a browser's form POST says `Origin: null`
    (b"cache-control", b"no-cache"),
)
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


@dataclass
class WebOptions:
    """Where and how the app listens, and who may talk to it."""

    host: str = "127.0.0.1"
    port: int = 8765
    allowed_hosts: list[str] = field(default_factory=list)
    """Host header names accepted besides the loopback names and the listen host (e.g. the server's DNS name)."""
    allowed_origins: list[str] = field(default_factory=list)
    """Origins (scheme://host[:port]) accepted besides the server's own, as the browser addressed it."""
    tls_cert: str | None = None
    tls_key: str | None = None
    send_buffer: int = 32 * 1024
    """Kernel send buffer per connection: a slow client's backlog then waits in its Outbox, where stale levels
    can be dropped, rather than in megabytes of socket buffer where they would delay the next cue."""
    graceful_s: float = 3.0
    """How long stop() lets open requests and streams finish."""


class Part(Protocol):
    """A piece of the app (overlay, library, floor, ...): its routes and what it does at start and stop."""

    routes: list[BaseRoute]

    async def startup(self) -> None: ...

    async def shutdown(self) -> None: ...


def origin_optional(route: BaseRoute) -> BaseRoute:
    """Mark a route that authenticates by token, so a client with no Origin at all (a monitor, a telephony
    platform; not a browser, which always sends one) may open it. A foreign Origin is still refused."""
    route.origin_optional = True
    return route


@functools.cache
def ui_dir() -> Path:
    """The ui/ package data directory (a data-only namespace package), wherever calmline is installed."""
    spec = importlib.util.find_spec("ui")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "overlay.html").is_file():
            return Path(location)
    raise UsageError("calmline's ui files are missing from this installation")


# ---- the middleware, outermost first ----

class _SecurityHeaders:
    """Adds SECURITY_HEADERS to every response (and WebSocket refusal) that does not set them itself."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)

        async def send_with_headers(message) -> None:
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in SECURITY_HEADERS if name not in present]
                message = {**message, "headers": headers}
            elif message["type"] == "websocket.accept":
                headers = list(message.get("headers", []))
                message = {**message, "headers": headers + [(b"x-content-type-options", b"nosniff")]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _SingleHeaders:
    """400 for a request with a duplicated SINGLE_HEADERS header, before any other code reads its headers."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            seen = set()
            for name, _ in scope["headers"]:
                name = name.lower()
                if name in SINGLE_HEADERS:
                    if name in seen:
                        # closed after: what follows on this connection could be framed differently by a proxy
                        response = PlainTextResponse(f"duplicate {name.decode()} header\n", status_code=400,
                                                     headers={"connection": "close"})
                        return await response(scope, receive, send)
                    seen.add(name)
        await self.app(scope, receive, send)


class _OriginCheck:
    """403 for a WebSocket or a state-changing request from an origin other than the server's own."""

    def __init__(self, app: ASGIApp, allowed_origins: Sequence[str], routes: Sequence[BaseRoute]):
        self.app = app
        self.allowed = {key for key in map(_origin_key, allowed_origins) if key is not None}
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket" or (kind == "http" and scope["method"] not in ("GET", "HEAD")):
            origin = _header(scope, b"origin")
            if origin is None:
                # Browsers send Origin on every WebSocket handshake and every non-GET request, so none means no
                # browser: fine for a POST (no cross-site forgery without a browser), but a WebSocket stream is
                # opened only where the route authenticates the client itself.
                if kind == "websocket" and not self._origin_optional(scope):
                    return await _refuse(scope, receive, send, "a WebSocket needs an Origin header")
            elif not self._allowed(origin, scope):
                return await _refuse(scope, receive, send, "cross-origin request refused")
        await self.app(scope, receive, send)

    def _allowed(self, origin: str, scope: Scope) -> bool:
        key = _origin_key(origin)
        if key is None:  # "null" (a sandboxed page, a file:) or garbage
            return False
        scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme", "http"))
        own = _origin_key(f"{scheme}://{_header(scope, b'host') or ''}")
        return key == own or key in self.allowed

    def _origin_optional(self, scope: Scope) -> bool:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return bool(getattr(route, "origin_optional", False))
        return False


async def _refuse(scope: Scope, receive: Receive, send: Send, why: str) -> None:
    log.info("refused %s %s: %s", scope["type"], scope.get("path"), why)
    await PlainTextResponse(why + "\n", status_code=403)(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _origin_key(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin, with the scheme's default port filled in; None if it is not one."""
    try:
        parts = urlsplit(origin.strip())
        scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:
        return None
    if scheme not in DEFAULT_PORTS or not host:
        return None
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    return scheme, host.lower(), port or DEFAULT_PORTS[scheme]


def allowed_hosts(options: WebOptions) -> list[str]:
    """Host header names the app answers: loopback, the listen address, the configured names; on a wildcard
    address also this machine's own name and addresses."""
    for name in options.allowed_hosts:
        if "*" in name[1:] or (name.startswith("*") and not name.startswith("*.")) or name == "*":
            raise UsageError(f"[hub] allowed_hosts: {name!r} is not a host name or a '*.example.com' pattern")
    names = [*LOOPBACK_NAMES, *options.allowed_hosts]
    host = options.host.strip("[]")
    if host in ANY_HOST:
        names += _own_names()
    else:
        names.append(f"[{host}]" if ":" in host else host)
    return list(dict.fromkeys(n.lower() for n in names))


def _own_names() -> list[str]:
    names = [socket.gethostname(), socket.getfqdn()]
    with contextlib.suppress(OSError):
        for *_, address in socket.getaddrinfo(socket.gethostname(), None):
            ip = address[0].split("%")[0]
            names.append(f"[{ip}]" if ipaddress.ip_address(ip).version == 6 else ip)
    return names


def build_app(options: WebOptions, parts: Sequence[Part]) -> Starlette:
    """The app serving `parts`' routes and ui/ files at /ui/<file>, behind the checks described above."""
    routes: list[BaseRoute] = [route for part in parts for route in part.routes]
    routes.append(Mount("/ui", StaticFiles(directory=ui_dir()), name="ui"))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        started = []
        try:
            for part in parts:
                await part.startup()
                started.append(part)
            yield
        finally:
            for part in reversed(started):
                try:
                    await part.shutdown()
                except Exception:
                    log.exception("%s did not shut down cleanly", type(part).__name__)

    middleware = [
        Middleware(_SecurityHeaders),
        Middleware(_SingleHeaders),
        Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(options), www_redirect=False),
        Middleware(_OriginCheck, allowed_origins=options.allowed_origins, routes=routes),
    ]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


# ---- the server ----

class WebServer:
    """uvicorn serving one app on its own event loop, in a daemon thread.

    Publishers in other threads hand events to the loop with `server.loop.call_soon_threadsafe`."""

    def __init__(self, app: ASGIApp, options: WebOptions):
        self.app = app
        self.options = options
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._failure: BaseException | None = None

    @property
    def port(self) -> int:
        return self._port if self._port is not None else self.options.port

    @property
    def tls(self) -> bool:
        return bool(self.options.tls_cert)

    @property
    def url(self) -> str:
        host = self.options.host.strip("[]")
        host = "127.0.0.1" if host in ANY_HOST else f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/"

    def start(self) -> None:
        """Listen and serve in a daemon thread; return once serving. UsageError when it cannot listen."""
        where = f"{self.options.host}:{self.options.port}"
        config = uvicorn.Config(
            self.app, ws="websockets-sansio", http="h11", lifespan="on", log_config=None, access_log=False,
            server_header=False, proxy_headers=False, ws_max_size=64 * 1024, ws_per_message_deflate=False,
            ssl_certfile=self.options.tls_cert, ssl_keyfile=self.options.tls_key,
            timeout_graceful_shutdown=self.options.graceful_s)
        try:
            config.load()  # reads the TLS files: their errors belong to the user, here and not in the thread
        except (OSError, ValueError) as error:
            raise UsageError(f"cannot use the TLS certificate or key: {_reason(error)}") from None
        sock = self._bind(where)
        self._port = sock.getsockname()[1]
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, args=(sock,), name="calmline-web", daemon=True)
        self._thread.start()
        while not self._server.started and self._thread.is_alive():
            time.sleep(0.005)
        if not self._server.started:
            self._thread.join()
            sock.close()
            raise UsageError(f"cannot start the web app on {where}: "
                             f"{_reason(self._failure) if self._failure else 'a part failed to start'}")
        log.info("serving at %s", self.url)

    def stop(self) -> None:
        """Stop listening, close open connections (after up to `graceful_s`), run the parts' shutdown."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=self.options.graceful_s + 5)
        self.loop = None

    def run_forever(self, stop_flag: threading.Event, seconds: float | None = None) -> None:
        """Serve until `stop_flag` is set (by a signal handler) or `seconds` pass; then stop cleanly."""
        self.start()
        try:
            stop_flag.wait(seconds)
        finally:
            self.stop()

    def __enter__(self) -> WebServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _bind(self, where: str) -> socket.socket:
        host = self.options.host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart while old sockets sit in TIME_WAIT
            if family == socket.AF_INET6 and host in ANY_HOST:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            if self.options.send_buffer:  # accepted connections inherit it
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.options.send_buffer)
            sock.bind((host or "0.0.0.0", self.options.port))
            sock.listen(2048)
        except OSError as error:
            sock.close()
            raise UsageError(f"cannot listen on {where}: {_reason(error)}") from None
        except (OverflowError, socket.gaierror) as error:
            sock.close()
            raise UsageError(f"cannot listen on {where}: {_reason(error)}") from None
        sock.setblocking(False)
        return sock

    def _run(self, sock: socket.socket) -> None:
        async def serve() -> None:
            self.loop = asyncio.get_running_loop()
            await self._server.serve(sockets=[sock])

        try:
            asyncio.run(serve())
        except BaseException as error:  # reported by start() when it happens before serving
            self._failure = error
            if self._server.started:
                log.exception("web server stopped on an error")
        finally:
            sock.close()


def _reason(error: BaseException) -> str:
    """A short lowercase reason, without the address asyncio and ssl repeat."""
    if isinstance(error, OSError) and (error.errno or 0) > 0:
        if error.errno == errno.EADDRINUSE:
            return "address already in use"
        return os.strerror(error.errno).lower()
    return (getattr(error, "strerror", None) or str(error) or type(error).__name__).lower()
