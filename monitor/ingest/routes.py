"""The ingest routes of `calmline server`: /ingest/audiohook, /ingest/twilio, /ingest/pcm.

Each WebSocket is checked at the upgrade (API key and signature, Twilio signature, token: 401 with
a one-line reason and a log line), then driven by its protocol's state machine. The event loop only
moves bytes: every call (`CallRun`) is analysed by a `CallWork` (callwork.py: its timeline resamples to
16 kHz, its `CallSession` analyses, records and publishes) in a worker process of the pool (pool.py,
`[ingest] processes`), or with `processes` 0 or 1 as an actor served by a few worker threads here
(`workers.Workers`). A call that
cannot keep up loses audio, not time: what is not analysed becomes silence at its place.

A dropped AudioHook connection holds its call for `reconnect_grace_s`; a new session whose `open`
lists it in `continuedSessions` carries on the same call (the time between is silence). Otherwise the
call ends as interrupted, with a `device` event saying why.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Callable, Sequence
from urllib.parse import urlsplit

from starlette.responses import PlainTextResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..config import Config
from ..events import CallEnd, DeviceStatus, Event
from ..library.store import Store
from ..session.session import CallResult, CallSession
from ..web.app import origin_optional
from ..web.outbox import close_websocket
from . import signature
from .actions import Audio, CloseSocket, Ended, Opened, Send
from .audiohook import AudioHookLimits, AudioHookSession
from .pcm import PcmStream, token_ok
from .timeline import TimelineStats
from .twilio import TwilioStream, signature_ok
from .callwork import CallWork, WorkDone
from .pool import CallSpec, PoolError, PoolOptions, ProcessPool
from .workers import Workers

log = logging.getLogger("calmline.ingest")

CLOSE_WAIT_S = 5.0
"""How long a connection we are closing may take to say goodbye (AudioHook's close transaction)."""
QUEUE_SECONDS = 10.0
"""Audio a call's analysis may fall behind by before new audio is dropped (and becomes silence)."""
UNKNOWN_AGENT = "unknown"
PCM_SUBPROTOCOLS = ("audio.jambonz.org", "audio.drachtio.org")
"""What jambonz `listen` and FreeSWITCH mod_audio_fork ask for; the stream is the same."""
CLOSING = ("DISCONNECTING", "CLOSED")


@dataclass
class FinishedCall:
    """What a finished ingested call left: for the log, tests and benchmarks."""

    call_id: str
    agent: str
    source: str
    stream_id: str
    result: CallResult | None
    interrupted: bool
    reason: str
    dropped_s: float
    timeline: TimelineStats
    wall_s: float
    pid: int = 0                 # the process that analysed it


class CallRun:
    """One call, on the loop's side: it posts audio and the end to whatever analyses the call (a
    `CallWork` on a worker thread here, or in a worker process of the pool), in order, and counts
    what is still waiting, so that a call that cannot keep up loses audio, not time."""

    def __init__(self, opened: Opened, on_done: Callable[[CallRun], None], started_at: float | None = None):
        self.opened = opened
        self.agent = opened.agent or UNKNOWN_AGENT
        self.queued = 0                # samples waiting (the loop adds, the analysis side removes)
        self.limit = int(QUEUE_SECONDS * opened.rate)
        self.end_position = 0          # loop side: the furthest sample queued, in call samples
        self.base = 0                  # loop side: where the current connection's sample 0 is in the call
        self.dropped = 0
        self.owner: object | None = None
        self.detached_at: float | None = None
        self.grace: asyncio.TimerHandle | None = None
        self.ending = False
        self.lost = False              # its worker process died: the call is over, its stream is closed
        self.reason = ""
        self.interrupted = False
        self.result: CallResult | None = None
        self.stats = TimelineStats()
        self.seconds = 0.0
        self.pid = os.getpid()
        self.call_id = ""             # known from the result, or from its events when its process died
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._on_done = on_done
        self.started_at = time.time() if started_at is None else started_at
        self._wall = time.monotonic()
        self._post: Callable[[tuple], None] = lambda item: None

    def on_thread(self, session: CallSession, workers: Workers) -> None:
        """Analyse the call on the server's worker threads."""
        work = CallWork(session, self.opened.rate, self.opened.source, self.started_at, self.opened.call_id)

        def handle(item) -> bool:
            if item[0] == "audio":
                self.acked(len(item[2]))
            if work.handle(item):
                self.finished(work.done)
                return True
            return False

        self._post = workers.actor(handle).post
        self._post(("start",))

    def in_process(self, pool: ProcessPool, spec: CallSpec, publish: Sequence[Callable[[Event], None]],
                   store: Store | None) -> None:
        """Analyse the call in a worker process; its events come back to `publish` here."""
        def on_event(event: Event) -> None:
            for target in publish:
                target(event)

        def on_lost(reason: str, call_id: str | None, t: float) -> None:
            self._lost(reason, call_id, t, publish, store)

        call = pool.open(spec, on_event, self.acked, self.finished, on_lost)
        self.pid = call.pid or 0
        self._post = call.post

    # ---- loop side ----
    def audio(self, item: Audio) -> None:
        if self.lost:
            return
        start = self.base + item.start
        n = len(item.samples)
        with self._lock:
            if self.queued + n > self.limit:
                if not self.dropped:
                    log.warning("call %s: analysis %.1f s behind; dropping audio (it becomes silence)",
                                self.opened.call_id, self.queued / self.opened.rate)
                self.dropped += n
                return
            self.queued += n
        self.end_position = max(self.end_position, start + n)
        self._post(("audio", start, item.samples, item.parties))

    def status(self, state: str, message: str) -> None:
        self._post(("status", state, message))

    def end(self, reason: str, interrupted: bool) -> None:
        if self.ending:
            return
        self.ending, self.reason, self.interrupted = True, reason, interrupted
        if self.grace is not None:
            self.grace.cancel()
            self.grace = None
        self._post(("end", reason, interrupted))

    # ---- the analysing side reports (a worker thread, or a pool's reader thread) ----
    def acked(self, samples: int) -> None:
        with self._lock:
            self.queued -= samples

    def finished(self, done: WorkDone) -> None:
        self.result, self.stats, self.seconds = done.result, done.stats, done.seconds
        self.done.set()
        self._on_done(self)

    def _lost(self, reason: str, call_id: str | None, t: float, publish, store: Store | None) -> None:
        """Its worker process died: the call ends as interrupted where its events stopped, what was
        recorded is kept (the store mends it: FLAC header, status), its outputs are told."""
        self.lost = self.ending = True
        self.interrupted, self.reason = True, reason
        if call_id is not None:
            for event in (DeviceStatus(t=round(t, 3), party="customer", state="lost", message=reason),
                          CallEnd(t=round(t, 3))):
                for target in publish:
                    target(event)
            if store is not None:
                try:
                    store.call(call_id)  # mends a call whose recorder is dead (its process is reaped)
                except Exception as exc:  # noqa: BLE001 - the next read mends it instead
                    log.warning("call %s: recording not mended yet (%s)", call_id, exc)
        self.call_id = call_id or ""
        self.finished(WorkDone(None, TimelineStats(), t, failed=True))

    def summary(self) -> FinishedCall:
        o = self.opened
        return FinishedCall(self.result.call_id if self.result else self.call_id, self.agent, o.source, o.call_id,
                            self.result, self.interrupted, self.reason, self.dropped / o.rate, self.stats,
                            time.monotonic() - self._wall, self.pid)


class IngestPart:
    """The three ingest WebSocket routes as a part of the app (see monitor/web/app.py's `Part`).

    `publish_for(agent, call)` gives the callables each of a call's events goes to (the floor, that
    agent's overlay); `on_finished` is told of each call once it is analysed and recorded.
    """

    def __init__(self, config: Config, store: Store | None = None,
                 publish_for: Callable[[str, Opened], Sequence[Callable[[Event], None]]] | None = None,
                 on_finished: Callable[[FinishedCall], None] | None = None, transcribe: bool | None = None,
                 workers: int | None = None, processes: int | None = None):
        """`processes`: worker processes for the calls' analysis (default `[ingest] processes`; -1 one per
        core without transcription, none with it; 0 or 1 none: the calls run on `workers` threads of this
        process). With transcription one model on all cores batching every call's finals beat a model per
        worker (bench/ingest.py, 10 calls: final p95 2.33 s here against 2.34-4.59 s in two workers)."""
        self.config = config
        self.ingest = config.ingest
        self.store = store
        self.publish_for = publish_for
        self.on_finished = on_finished
        self.transcribe = transcribe
        self.keys = {key: signature.decode_secret(secret) for key, secret in self.ingest.audiohook.api_keys.items()}
        self.nonces = signature.NonceCache(keep_s=self.ingest.audiohook.max_signature_age_s + 60)
        self.routes = [origin_optional(WebSocketRoute("/ingest/audiohook", self.audiohook)),
                       origin_optional(WebSocketRoute("/ingest/twilio", self.twilio)),
                       origin_optional(WebSocketRoute("/ingest/pcm", self.pcm))]
        self.loop: asyncio.AbstractEventLoop | None = None
        self.runs: set[CallRun] = set()
        self.finished: deque[FinishedCall] = deque(maxlen=1000)
        self._streams: dict[str, CallRun] = {}   # AudioHook session id -> its call, for continuedSessions
        self.worker_threads = workers or os.cpu_count() or 2
        self.workers: Workers | None = None
        wanted = self.ingest.processes if processes is None else processes
        transcribing = config.transcription.enabled if transcribe is None else transcribe
        self.processes = (0 if transcribing else os.cpu_count() or 1) if wanted < 0 else wanted
        self.pool: ProcessPool | None = None

    async def startup(self) -> None:
        self.loop = asyncio.get_running_loop()
        ingest = self.ingest
        calls_may_come = bool(ingest.audiohook.api_keys or ingest.twilio.auth_token or ingest.pcm.token)
        if calls_may_come and self.processes >= 2:
            options = PoolOptions(self.config, str(self.store.dir) if self.store is not None else None,
                                  self.transcribe, self.processes, logging.getLogger("calmline").getEffectiveLevel(),
                                  getattr(self.store, "url", ""))
            self.pool = ProcessPool(options)
            try:
                await asyncio.to_thread(self.pool.start)  # each loads its models before the first call
                return
            except PoolError as exc:
                log.error("%s; the calls run in the server process instead", exc)
                self.pool = None
        if calls_may_come:
            await asyncio.to_thread(self._warm_up)
            gc.freeze()  # the models' and libraries' objects: a full collection (~0.1 s) no longer walks them
        self.workers = Workers(self.worker_threads)

    def _warm_up(self) -> None:
        """Load the models now (VAD; the speech model when transcribing), so the first call is not late."""
        from ..analysis.pipeline import Pipeline

        Pipeline(self.config, call_id="warm-up", transcribe=self.transcribe, live=True).close()

    async def shutdown(self) -> None:
        for run in list(self.runs):
            run.end("server stopped", interrupted=True)
        for run in list(self.runs):
            await asyncio.to_thread(run.done.wait, 60)
        if self.workers is not None:
            await asyncio.to_thread(self.workers.stop)
        if self.pool is not None:
            await asyncio.to_thread(self.pool.stop)
        self.loop = None

    @property
    def live_calls(self) -> int:
        return sum(1 for run in self.runs if not run.ending)

    # ---- the routes ----

    async def audiohook(self, ws: WebSocket) -> None:
        headers = _headers(ws)
        key = headers.get("x-api-key", "")
        if key not in self.keys:
            return await self._deny(ws, 401, "unknown or missing X-API-KEY" if key else "missing X-API-KEY",
                                    "audiohook")
        if self.keys[key]:
            scheme, authority, target = self._addressed(ws)
            verdict = signature.verify(headers, {"@request-target": target,
                                                 "@authority": signature.authority(authority, scheme)},
                                       {key: self.keys[key]}, max_age_s=self.ingest.audiohook.max_signature_age_s,
                                       nonces=self.nonces)
            if not verdict.ok:
                return await self._deny(ws, 401, f"bad signature: {verdict.reason}", "audiohook")
        session_id = headers.get("audiohook-session-id", "")
        try:
            session_id = str(uuid.UUID(session_id))
        except ValueError:
            return await self._deny(ws, 400, "missing or malformed Audiohook-Session-Id", "audiohook")
        machine = AudioHookSession(session_id, AudioHookLimits(self.ingest.flood_budget_s), time.monotonic())
        await self._serve(ws, machine)

    async def twilio(self, ws: WebSocket) -> None:
        token = self.ingest.twilio.auth_token
        if not token:
            return await self._deny(ws, 401, "Twilio ingest is not configured ([ingest.twilio] auth_token)", "twilio")
        scheme, authority, target = self._addressed(ws)
        url = f"{scheme}://{authority}{target}"
        if not signature_ok(token, url, _headers(ws).get("x-twilio-signature")):
            return await self._deny(ws, 401, f"missing or bad X-Twilio-Signature for {url}", "twilio")
        await self._serve(ws, TwilioStream(self.ingest.flood_budget_s, time.monotonic()))

    async def pcm(self, ws: WebSocket) -> None:
        token = self.ingest.pcm.token
        if not token:
            return await self._deny(ws, 401, "PCM ingest is not configured ([ingest.pcm] token)", "pcm")
        if not token_ok(token, _headers(ws).get("authorization")):
            return await self._deny(ws, 401, "missing or wrong token", "pcm")
        offered = ws.scope.get("subprotocols") or []
        chosen = next((p for p in offered if p in PCM_SUBPROTOCOLS), None)
        await self._serve(ws, PcmStream(self.ingest.flood_budget_s, time.monotonic()), subprotocol=chosen)

    # ---- one connection ----

    async def _serve(self, ws: WebSocket, machine, subprotocol: str | None = None) -> None:
        await ws.accept(subprotocol=subprotocol)
        conn = object()
        run: CallRun | None = None
        idle = self.ingest.idle_timeout_s
        try:
            while True:
                closing = machine.state in CLOSING
                try:
                    async with asyncio.timeout(CLOSE_WAIT_S if closing else idle):  # no task per message
                        message = await ws.receive()
                except TimeoutError:
                    if closing:
                        await close_websocket(ws, 1000, "")
                        break
                    actions = machine.on_idle(idle)
                else:
                    if message["type"] == "websocket.disconnect":
                        code = message.get("code", 1005)
                        run = self._apply_local(machine.on_socket_closed(clean=code in (1000, 1001)), run, conn)
                        break
                    now = time.monotonic()
                    if message.get("bytes") is not None:
                        actions = machine.on_binary(message["bytes"], now)
                    else:
                        actions = machine.on_text(message.get("text") or "", now)
                run, closed = await self._apply(ws, actions, run, conn)
                if closed:
                    break
                if run is not None and run.lost and run.owner is conn:  # its worker process died
                    run.owner = None
                    await close_websocket(ws, 1011, run.reason)
                    break
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            log.info("ingest connection ended: %s", exc or type(exc).__name__)
            run = self._apply_local(machine.on_socket_closed(clean=False), run, conn)
        finally:
            if run is not None and run.owner is conn and not run.ending:
                self._release(run, conn, Ended("connection ended", interrupted=True))

    async def _apply(self, ws: WebSocket, actions: list, run: CallRun | None, conn: object):
        for action in actions:
            if isinstance(action, Send):
                try:
                    await ws.send_text(json.dumps(action.message))
                except (WebSocketDisconnect, RuntimeError, OSError):
                    pass  # the client went away; its disconnect ends the call
            elif isinstance(action, CloseSocket):
                await close_websocket(ws, action.code, action.reason)
                return run, True
            else:
                run = self._apply_local([action], run, conn)
        return run, False

    def _apply_local(self, actions: list, run: CallRun | None, conn: object) -> CallRun | None:
        """Opened, Audio and Ended: what happens to the call (no I/O on the socket)."""
        for action in actions:
            if isinstance(action, Opened):
                run = self._open(action, conn)
            elif isinstance(action, Audio):
                if run is not None and run.owner is conn:
                    run.audio(action)
            elif isinstance(action, Ended):
                if run is not None:
                    self._release(run, conn, action)
                run = None
        return run

    def _open(self, opened: Opened, conn: object) -> CallRun:
        for old in opened.continues:
            run = self._streams.get(old)
            if run is not None and not run.ending:
                return self._continue(run, opened, conn)
        if opened.continues:
            log.info("audiohook %s continues %s, which is not open here: a new call", opened.call_id,
                     ", ".join(opened.continues))
        config = self.config
        agent = opened.agent or UNKNOWN_AGENT
        if agent != config.store.agent_name:
            config = dataclasses.replace(config, store=dataclasses.replace(config.store, agent_name=agent))
        publish = list(self.publish_for(agent, opened)) if self.publish_for else []
        source = f"{opened.source}:{opened.call_id}"
        run = CallRun(opened, self._done)
        run.owner = conn
        self.runs.add(run)
        if self.pool is not None:
            spec = CallSpec(config, source, self.transcribe, opened.rate, opened.source, run.started_at,
                            opened.call_id)
            run.in_process(self.pool, spec, publish, self.store)
        else:
            run.on_thread(CallSession(config=config, source=source, transcribe=self.transcribe, live=True,
                                      store=self.store, publish=publish), self.workers)
        if opened.source == "audiohook":
            self._streams[opened.call_id] = run
        log.info("%s call %s for agent %r started", opened.source, opened.call_id, agent)
        return run

    def _continue(self, run: CallRun, opened: Opened, conn: object) -> CallRun:
        now = time.monotonic()
        if run.grace is not None:
            run.grace.cancel()
            run.grace = None
        gap_s = min(now - run.detached_at, self.ingest.reconnect_grace_s) if run.detached_at is not None else 0.0
        run.base = run.end_position + round(gap_s * opened.rate)
        run.owner, run.detached_at = conn, None
        self._streams[opened.call_id] = run
        run.status("ok", "call stream reconnected")
        log.info("audiohook %s continues call %s after %.1f s", opened.call_id, run.opened.call_id, gap_s)
        return run

    def _release(self, run: CallRun, conn: object, ended: Ended) -> None:
        if run.owner is not conn:
            return  # a newer connection carries this call on
        run.owner = None
        if ended.may_continue and self.ingest.reconnect_grace_s > 0 and self.loop is not None:
            run.detached_at = time.monotonic()
            run.grace = self.loop.call_later(self.ingest.reconnect_grace_s, self._give_up, run, ended.reason)
            log.info("call %s: %s; waiting %g s for a reconnect", run.opened.call_id, ended.reason,
                     self.ingest.reconnect_grace_s)
            return
        run.end(ended.reason, ended.interrupted)

    def _give_up(self, run: CallRun, reason: str) -> None:
        run.grace = None
        if run.owner is None and not run.ending:
            run.end(f"{reason}; no reconnect within {self.ingest.reconnect_grace_s:g} s", interrupted=True)

    def _done(self, run: CallRun) -> None:
        """From a worker, once the call's result is in."""
        summary = run.summary()
        log.info("%s call %s (agent %r) finished%s: %.1f s of audio, %.1f s dropped", summary.source,
                 summary.stream_id, summary.agent, " as interrupted (" + summary.reason + ")" if summary.interrupted
                 else "", run.seconds, summary.dropped_s)
        self.finished.append(summary)
        loop = self.loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._forget, run)
            except RuntimeError:
                self._forget(run)
        else:
            self._forget(run)
        if self.on_finished is not None:
            self.on_finished(summary)

    def _forget(self, run: CallRun) -> None:
        self.runs.discard(run)
        for key in [k for k, v in self._streams.items() if v is run]:
            del self._streams[key]

    # ---- the upgrade request ----

    def _addressed(self, ws: WebSocket) -> tuple[str, str, str]:
        """(scheme, authority, path?query) as the platform addressed this request: `[ingest] public_url` if set."""
        scope = ws.scope
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        target = path + (f"?{query}" if query else "")
        public = self.ingest.public_url
        if public:
            parts = urlsplit(public)
            return parts.scheme, parts.netloc, parts.path.rstrip("/") + target
        return scope.get("scheme", "ws"), _headers(ws).get("host", ""), target

    async def _deny(self, ws: WebSocket, status: int, reason: str, route: str) -> None:
        client = ws.client.host if ws.client else "?"
        log.warning("%s upgrade from %s refused (%d): %s", route, client, status, reason)
        await ws.send_denial_response(PlainTextResponse(reason + "\n", status_code=status))


def _headers(ws: WebSocket) -> dict[str, str]:
    """Lower-case header names; a repeated header's values joined with ", " (as signatures see them)."""
    out: dict[str, str] = {}
    for name, value in ws.scope["headers"]:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out
