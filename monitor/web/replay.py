"""Replay one recorded call in a browser: its audio, a timeline, the transcript and the overlay as it was.

`ReplayServer` runs the standard library's HTTP server in a daemon thread and answers a fixed set of
routes, nothing else (no file system paths come from the request):

    /             ui/replay.html           /replay.js, /replay.css   the page's script and style
    /call.json    the call, its events (levels packed as arrays), the report and the scorecard
    /audio.flac   the recording, with byte ranges (206 Partial Content) so the browser can seek

A call still being recorded can be replayed: /call.json is rebuilt when its events change.
Recorded calls are personal data: the server answers only requests addressed to the host it listens
on (or localhost), which keeps a web page in the browser from reading them through DNS rebinding.
"""

from __future__ import annotations

import errno
import gzip
import json
import logging
import math
import os
import re
import socket
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import monitor

from ..errors import UsageError
from ..events import finite
from ..library.report import build_report
from ..library.scorecard import events_from_dicts, score_call
from ..library.store import Store

log = logging.getLogger("calmline.replay")

UI_DIR = Path(monitor.__file__).resolve().parent.parent / "ui"
PAGES = {"/": ("replay.html", "text/html; charset=utf-8"),
         "/replay.html": ("replay.html", "text/html; charset=utf-8"),
         "/replay.js": ("replay.js", "text/javascript; charset=utf-8"),
         "/replay.css": ("replay.css", "text/css; charset=utf-8")}
PAGES |= {f"/ui/{name}": (name, f"text/{kind}; charset=utf-8") for name, kind in [  # as the page names them
    ("replay.js", "javascript"), ("calmline.js", "javascript"), ("replay.css", "css"), ("common.css", "css")]}
LEVELS_FORMAT = ["t", "agent_dbfs", "customer_dbfs", "agent_talking", "customer_talking"]
LOCAL_NAMES = {"localhost", "127.0.0.1", "::1"}
ANY_HOST = {"", "0.0.0.0", "::"}
CHUNK = 64 * 1024
RANGE = re.compile(r"bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


@dataclass
class ReplayOptions:
    host: str = "127.0.0.1"
    port: int = 8767


# --- the call as the page reads it --------------------------------------------------------------

def call_data(call: dict, events: list[dict]) -> dict:
    """What /call.json holds: the call, its events with `levels` packed as arrays (see LEVELS_FORMAT)
    and transcripts without word timings, the report and the scorecard."""
    levels, thinned = [], []
    for event in events:
        kind = event.get("type")
        if kind == "levels":
            db, talking = event.get("levels") or {}, event.get("talking") or {}
            levels.append([event["t"], _db(db.get("agent")), _db(db.get("customer")),
                           int(bool(talking.get("agent"))), int(bool(talking.get("customer")))])
            continue
        out = {k: v for k, v in event.items() if k not in ("v", "words")}
        thinned.append(out)
    return {
        "call": {k: v for k, v in call.items() if k != "pid"},
        "events": thinned,
        "levels_format": LEVELS_FORMAT,
        "levels": levels,
        "report": build_report(events_from_dicts(events)),
        "scorecard": score_call(events),
    }


def _db(value) -> float | None:
    return round(value, 1) if isinstance(value, (int, float)) and math.isfinite(value) else None


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range a single-range `Range` header asks for, None to send the whole file.
    Raises ValueError when the range lies beyond the file (416). Several ranges or a malformed header
    are ignored, as RFC 9110 allows."""
    match = RANGE.match(header.strip()) if header else None
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":  # the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise ValueError("empty suffix range")
        return max(0, size - n), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if last != "" and int(last) < start:
        return None
    if start >= size:
        raise ValueError("range starts beyond the end")
    return start, end


# --- the server --------------------------------------------------------------------------------

class ReplayServer:
    """Serves the replay page of one recorded call; `start()` listens in a daemon thread."""

    def __init__(self, store: Store, call_id: str, options: ReplayOptions | None = None):
        self.store = store
        self.options = options or ReplayOptions()
        self.call = store.call(call_id)  # UsageError for an unknown or ambiguous id, before listening
        self.call_id = self.call["id"]
        self._lock = threading.Lock()
        self._cache: tuple[tuple, bytes, bytes] | None = None
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1] if self._httpd is not None else self.options.port

    @property
    def url(self) -> str:
        host = self.options.host
        host = "127.0.0.1" if host in ANY_HOST else f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    def start(self) -> None:
        """Listen; raise UsageError when the address cannot be used (e.g. the port is taken)."""
        where = f"{self.options.host}:{self.options.port}"
        try:
            family = socket.AF_INET6 if ":" in self.options.host else socket.AF_INET
            self._httpd = _HTTPServer((self.options.host, self.options.port), _Handler, self, family)
        except OSError as error:
            reason = "address already in use" if error.errno == errno.EADDRINUSE else \
                (os.strerror(error.errno) if (error.errno or 0) > 0 else error.strerror or str(error)).lower()
            raise UsageError(f"cannot listen on {where}: {reason}") from None
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="calmline-replay", daemon=True)
        self._thread.start()
        log.info("replay of call %s at %s", self.call_id, self.url)

    def stop(self) -> None:
        """Stop listening and close open connections; waits for the server thread."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ReplayServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- used by the request handler, in its threads --

    def call_json(self) -> tuple[bytes, bytes]:
        """/call.json as (plain, gzipped) bytes, rebuilt only when the call has changed."""
        with self._lock:
            call = self.store.call(self.call_id)
            events = self.store.events(self.call_id)
            key = (call["status"], call["duration_s"], len(events))
            if self._cache is None or self._cache[0] != key:
                body = json.dumps(finite(call_data(call, events)), separators=(",", ":"),
                                  allow_nan=False).encode()
                self._cache = (key, body, gzip.compress(body, compresslevel=5))
            self.call = call
            return self._cache[1], self._cache[2]

    def audio_path(self) -> Path | None:
        return self.store.audio_path(self.call) if self.call.get("audio") else None

    def allowed_host(self, header: str | None) -> bool:
        if self.options.host in ANY_HOST:
            return True
        if not header:
            return False
        name = urlsplit("//" + header).hostname or ""
        return name in LOCAL_NAMES or name == self.options.host.strip("[]").lower()


def serve_replay(store: Store, call_id: str, options: ReplayOptions | None = None) -> ReplayServer:
    """A started ReplayServer for one call; UsageError for an unknown call or an unusable address."""
    server = ReplayServer(store, call_id, options)
    server.start()
    return server


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # a restarted replay may bind while old connections sit in TIME_WAIT
    allow_reuse_port = False    # never share the port with another live listener

    def __init__(self, address, handler, replay: ReplayServer, family: int):
        self.address_family = family
        self.replay = replay
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request_thread(self, request, client_address):
        with self._connections_lock:
            self._connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            for conn in list(self._connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the media player makes many range requests
    server_version = "calmline-replay"
    timeout = 60
    server: _HTTPServer

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's name
        log.debug("%s %s", self.address_string(), format % args)

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        replay = self.server.replay
        if not replay.allowed_host(self.headers.get("Host")):
            return self._plain(HTTPStatus.FORBIDDEN, "unexpected Host header\n", head)
        path = unquote(urlsplit(self.path).path)
        if "\0" in path or ".." in path.replace("\\", "/").split("/"):
            return self._plain(HTTPStatus.FORBIDDEN, "Forbidden\n", head)
        try:
            if path in PAGES:
                name, kind = PAGES[path]
                return self._bytes((UI_DIR / name).read_bytes(), kind, head)
            if path == "/call.json":
                plain, packed = replay.call_json()
                if "gzip" in (self.headers.get("Accept-Encoding") or ""):
                    return self._bytes(packed, "application/json", head, [("Content-Encoding", "gzip")])
                return self._bytes(plain, "application/json", head)
            if path == "/audio.flac":
                return self._audio(replay.audio_path(), head)
        except UsageError as error:  # e.g. the call was purged while the page was open
            return self._plain(HTTPStatus.NOT_FOUND, f"{error}\n", head)
        except (BrokenPipeError, ConnectionResetError):
            return
        return self._plain(HTTPStatus.NOT_FOUND, "Not found\n", head)

    def _plain(self, status: HTTPStatus, text: str, head: bool) -> None:
        self._bytes(text.encode(), "text/plain; charset=utf-8", head, status=status)

    def _bytes(self, body: bytes, kind: str, head: bool, extra=(), status=HTTPStatus.OK) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _audio(self, path: Path | None, head: bool) -> None:
        try:
            file = open(path, "rb") if path is not None else None
        except OSError:
            file = None
        if file is None:
            return self._plain(HTTPStatus.NOT_FOUND, "no audio recorded for this call\n", head)
        with file:
            stat = os.fstat(file.fileno())
            size = stat.st_size
            etag = f'"{size:x}-{stat.st_mtime_ns:x}"'
            wanted = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if if_range is not None and if_range.strip() != etag:
                wanted = None  # the file changed since the client's earlier part: send it whole
            try:
                span = parse_range(wanted, size)
            except ValueError:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start, end = span if span is not None else (0, size - 1)
            length = max(0, end - start + 1)
            self.send_response(HTTPStatus.PARTIAL_CONTENT if span is not None else HTTPStatus.OK)
            self.send_header("Content-Type", "audio/flac")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(length))
            if span is not None:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("ETag", etag)
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            if head:
                return
            file.seek(start)
            while length > 0:
                chunk = file.read(min(CHUNK, length))
                if not chunk:  # the file shrank under us: the promised length cannot be kept
                    self.close_connection = True
                    break
                self.wfile.write(chunk)
                length -= len(chunk)
