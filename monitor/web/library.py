"""The call library on the web: the list of recorded calls, each call's replay page, data, audio and report.

    /calls                      the calls, newest first (JSON), each with its cue and interruption counts and
                                scorecard score; ?agent=NAME, ?from=YYYY-MM-DD, ?to=YYYY-MM-DD (server's local
                                dates, inclusive); `calmline calls` lists the same rows
    /calls/{id}/                replay page (ui/replay.html); /calls/{id} redirects here, so that the page
                                finds its data and audio beside it by relative URL
    /calls/{id}/overview.json   what the replay page draws first: the call, the report (no transcript), the
                                timeline's marks and the loudness in SUMMARY_BUCKETS summaries
    /calls/{id}/events.json     every event but levels, the final transcript and the scorecard
    /calls/{id}/levels.json     ?chunk=N: the levels of [N, N + 1) x LEVELS_CHUNK_S seconds, packed
    /calls/{id}/data.json       all of it in one: the call, its events (levels packed as arrays), the report
                                and the scorecard
    /calls/{id}/audio.flac      the recording, with byte ranges so that the browser can seek
    /calls/{id}/report          the HTML report (monitor/library/report_html)

Recorded calls are personal data: every route asks `authorize(request, call)` first (call is None for
the list). `calmline replay` serves on loopback and allows all; `calmline server` plugs in its sign-in,
which lets an agent list (an `Access` limited to their name) and open only their own calls.
A call still being recorded can be replayed: data.json is rebuilt when its events change.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gzip
import hashlib
import html
import inspect
import json
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from ..config import Config
from ..errors import UsageError
from ..library import scorecard
from ..library.report import build_report
from ..library.scorecard import events_from_dicts, score_call
from ..library.store import CallSummary, LibraryAway, Store
from .app import WebOptions, WebServer, build_app, ui_dir
from .jsonwire import JSONResponse, dumpb

log = logging.getLogger("calmline.library")

LEVELS_FORMAT = ["t", "agent_dbfs", "customer_dbfs", "agent_talking", "customer_talking"]
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
              "form-action 'none'; frame-ancestors 'none'")
"""The report is one self-contained page with its style inline and no script."""
CACHED_CALLS = 8
CACHED_SCORES = 10000
"""Summaries kept in memory for the list (a few hundred bytes each); an ended call's never changes."""
# Each ended call's counts and score as the list shows them are kept with the calls (the store's
# call_summaries table; a summary whose call is gone is deleted when a server first lists calls).


def card_key(config: Config | None) -> str:
    """Names the scorecard a kept score came from: a hash of the settings the scorecard may read ([scorecard]
    and [cues], the whole sections: simplest to get right) and of scorecard.py itself (a calmline that scores
    differently). A summary kept under another key is scored again, once, when next listed: changing the
    weights or a cue setting rescores every call lazily, never showing a score the current config would not give."""
    config = config or Config()
    settings = json.dumps([dataclasses.asdict(config.scorecard), dataclasses.asdict(config.cues)],
                          sort_keys=True, default=str)
    digest = hashlib.sha256(settings.encode())
    digest.update(Path(scorecard.__file__).read_bytes())
    return digest.hexdigest()[:16]


def _shown(summary: CallSummary) -> dict:
    """A summary as a list row shows it."""
    return {"cues": summary.cues, "interruptions": summary.interruptions,
            "score": {"score": summary.score, "met": summary.met, "total": summary.total}}


def _away(handler):
    """A route answering a clean one-line 503 while the shared library (PostgreSQL) is away."""
    @functools.wraps(handler)
    async def serve(request: Request) -> Response:
        try:
            return await handler(request)
        except LibraryAway as error:
            return PlainTextResponse(f"{error}\n", status_code=503, headers={"Retry-After": "5"})
    return serve


@dataclass(frozen=True)
class Access:
    """An `authorize` verdict for the list: allowed, but only the calls of `agent` (None: every call)."""

    agent: str | None = None


Authorize = Callable[[Request, "dict | None"], "bool | Access | Response | Awaitable[bool | Access | Response]"]


def allow_all(request: Request, call: dict | None) -> bool:
    return True


def call_data(call: dict, events: list[dict], config: Config | None = None) -> dict:
    """What data.json holds: the call, its events with `levels` packed as arrays (see LEVELS_FORMAT)
    and transcripts without word timings, the report and the scorecard (judged by the user's config).
    The replay page loads the same in pieces (call_pieces); data.json is the whole call in one."""
    return _whole(call_pieces(call, events), config)


def _whole(pieces: dict, config: Config | None) -> dict:
    overview = pieces["overview"]
    return {"call": overview["call"], "events": pieces["events"], "levels_format": LEVELS_FORMAT,
            "levels": pieces["levels"], "report": {**overview["report"], "transcript": pieces["transcript"]},
            "scorecard": scorecard_of(pieces, config)}


def scorecard_of(pieces: dict, config: Config | None) -> dict:
    """The call's scorecard, worked out when first wanted (it reads every line: not on the way to the first drawing)."""
    if pieces.get("scorecard") is None:
        pieces["scorecard"] = score_call(pieces["parsed"], config)
    return pieces["scorecard"]


def call_pieces(call: dict, events: list[dict]) -> dict:
    """The replay page's data in the order it draws it, so that a 2-hour call opens at once:
    - "overview": the call, the report without its transcript, the timeline's marks (spurts, overlaps,
      interruptions, cues) and the loudness as SUMMARY_BUCKETS summaries (overview.json);
    - "events": every event but `levels`, transcripts without word timings, the final transcript and the
      scorecard (events.json: the transcript and the overlay as it was; scorecard_of works it out);
    - "levels": every level, packed (LEVELS_FORMAT), served LEVELS_CHUNK_S at a time when zoomed in.
    Events are parsed once and `levels` are left out of the report and the scorecard (neither reads them)."""
    levels, kept = [], []
    for event in events:
        if event.get("type") == "levels":
            db, talking = event.get("levels") or {}, event.get("talking") or {}
            levels.append([event["t"], _db(db.get("agent")), _db(db.get("customer")),
                           int(bool(talking.get("agent"))), int(bool(talking.get("customer")))])
        else:
            kept.append(event)
    return _pieces(call, kept, levels)


def stored_pieces(store: Store, call_id: str, call: dict) -> dict:
    """call_pieces of a stored call, its levels read from the store's metrics table (the same values, without
    parsing each levels event's JSON: a 2-hour call has 36,000); a call with no metrics rows from its events."""
    kept = store.events_json(call_id, levels=False)
    rows = store._query("SELECT t, agent_dbfs, customer_dbfs, agent_talking, customer_talking FROM metrics "
                        "WHERE call_id = ? ORDER BY t", (call_id,))
    if not rows:
        return call_pieces(call, store.events(call_id))
    table = np.array(rows, dtype=float).reshape(-1, 5)
    db = np.round(table[:, 1:3], 1)
    packed = [[t, a, c, int(x), int(y)] for t, a, c, x, y in zip(
        table[:, 0].tolist(), *(np.where(np.isfinite(db[:, i]), db[:, i], np.nan).tolist() for i in (0, 1)),
        (table[:, 3] != 0).tolist(), (table[:, 4] != 0).tolist())]
    for row in packed:  # no NaN in JSON: a level that was not a number is null, as _db makes it
        if row[1] != row[1]:
            row[1] = None
        if row[2] != row[2]:
            row[2] = None
    return _pieces(call, kept, packed)


def _pieces(call: dict, kept: list[dict], levels: list[list]) -> dict:
    thinned = [{k: v for k, v in event.items() if k not in ("v", "words")} for event in kept]
    parsed = events_from_dicts([e for e in kept if e.get("type") not in UNREAD])
    report = build_report(parsed)
    duration = max(call.get("duration_s") or 0.0, report["duration_s"], levels[-1][0] if levels else 0.0)
    marks = [e for e in thinned if e.get("type") in MARKS]
    transcript = report.pop("transcript")
    overview = {"call": _public(call), "duration_s": duration, "report": report, "marks": marks,
                "summary_format": SUMMARY_FORMAT, "summary": level_summary(levels, duration),
                "levels_format": LEVELS_FORMAT, "levels_chunk_s": LEVELS_CHUNK_S, "levels_count": len(levels)}
    return {"overview": overview, "events": thinned, "levels": levels, "transcript": transcript, "parsed": parsed,
            "scorecard": None}


MARKS = ("talk_end", "overlap", "interruption", "cue")
UNREAD = ("stats", "talk_start", "pace")
"""Events neither the report nor the scorecard reads (most of a call's events but levels): not parsed for them."""
"""Events the timeline draws (the overview carries them; the rest come with events.json)."""
SUMMARY_BUCKETS = 1500
SUMMARY_FORMAT = ["t", "end", "agent_dbfs", "customer_dbfs", "agent_talking", "customer_talking"]
"""A summary: the loudest level of each party in [t, end) and the share of its levels they were talking in."""
LEVELS_CHUNK_S = 300.0


def level_summary(levels: list[list], duration: float, buckets: int = SUMMARY_BUCKETS) -> list[list]:
    """The levels in at most `buckets` spans of equal length (never shorter than one level, 0.2 s)."""
    if not levels:
        return []
    step = max(duration / buckets, 0.2)
    table = np.array([[row[0], -np.inf if row[1] is None else row[1], -np.inf if row[2] is None else row[2],
                       row[3], row[4]] for row in levels], dtype=float)
    index = np.minimum((table[:, 0] / step).astype(int), buckets - 1)
    count = np.bincount(index, minlength=buckets)
    loudest = np.full((buckets, 2), -np.inf)
    for k in (0, 1):
        np.maximum.at(loudest[:, k], index, table[:, 1 + k])
    on = [np.bincount(index, weights=table[:, 3 + k], minlength=buckets) for k in (0, 1)]
    out = []
    for i in np.flatnonzero(count).tolist():
        db = [None if not np.isfinite(v) else round(float(v), 1) for v in loudest[i]]
        out.append([round(i * step, 3), round((i + 1) * step, 3), *db,
                    round(on[0][i] / count[i], 2), round(on[1][i] / count[i], 2)])
    return out


def _db(value) -> float | None:
    return round(value, 1) if isinstance(value, (int, float)) and math.isfinite(value) else None


def day_start(text: str | None, name: str, after: int = 0) -> float | None:
    """Unix time of the start of a YYYY-MM-DD day (`after` days later; the server's local time, daylight
    saving included), None when not given."""
    if not text:
        return None
    try:
        day = time.strptime(text, "%Y-%m-%d")
        return time.mktime((day.tm_year, day.tm_mon, day.tm_mday + after, 0, 0, 0, 0, 0, -1))
    except (ValueError, OverflowError):
        raise ValueError(f"{name} must be a date like 2026-12-01") from None


_day = day_start


def _row_html(call: dict) -> str:
    """One call as a table row of the list page (every value escaped)."""
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(call["started_at"] or 0))
    seconds = int(call["duration_s"] or 0)
    score = call.get("score") or {}
    link = "/calls/" + quote(call["id"], safe="")
    cells = [started, call["agent"] or "", f"{seconds // 60}:{seconds % 60:02d}", call["status"] or "",
             str(call.get("cues", "")), score.get("score", "–")]
    return ("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
            + f'<td><a href="{link}/">Replay</a><a href="{link}/report">Report</a></td></tr>')


def _public(call: dict) -> dict:
    return {k: v for k, v in call.items() if k != "pid"}


class LibraryPart:
    """The recorded calls of one Store, behind `authorize`; scorecards and reports judged by `config`."""

    def __init__(self, store: Store, authorize: Authorize = allow_all, config: Config | None = None):
        self.store = store
        self.authorize = authorize
        self.config = config
        self._lock = threading.Lock()  # one SQLite connection, shared by the thread pool's threads
        self._cache: OrderedDict[str, tuple[tuple, dict, dict]] = OrderedDict()
        self._scores: OrderedDict[str, CallSummary] = OrderedDict()
        self._stored: dict[str, CallSummary] | None = None
        self._card = card_key(config)
        self._warming: set[asyncio.Future] = set()  # pieces being worked out ahead of the page's request
        self.routes = [
            Route("/calls", self.list_calls, methods=["GET"]),
            Route("/library", self.list_page, methods=["GET"]),
            Route("/calls/{call_id}", _away(self.to_page), methods=["GET"]),
            Route("/calls/{call_id}/", _away(self.page), methods=["GET"]),
            Route("/calls/{call_id}/data.json", _away(self.data), methods=["GET"]),
            Route("/calls/{call_id}/overview.json", _away(self.overview), methods=["GET"]),
            Route("/calls/{call_id}/events.json", _away(self.events), methods=["GET"]),
            Route("/calls/{call_id}/levels.json", _away(self.levels), methods=["GET"]),
            Route("/calls/{call_id}/audio.flac", _away(self.audio), methods=["GET"]),
            Route("/calls/{call_id}/report", _away(self.report), methods=["GET"]),
        ]

    async def startup(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    # -- routes --

    async def list_calls(self, request: Request) -> Response:
        rows = await self._listed(request)
        return rows if isinstance(rows, Response) else JSONResponse(rows)

    async def list_page(self, request: Request) -> Response:
        """The list as a page (ui/calls.html, filled in here: the page runs no script), with links to each
        call's replay and report."""
        rows = await self._listed(request)
        if isinstance(rows, Response):
            return rows
        query = request.query_params
        fill = {key: html.escape(query.get(key) or "", quote=True) for key in ("agent", "from", "to")}
        fill.update(none="hidden" if rows else "", rows="".join(map(_row_html, rows)))
        body = re.sub(r"\{(agent|from|to|none|rows)\}", lambda m: fill[m.group(1)],  # one pass: nothing filled in
                      (ui_dir() / "calls.html").read_text())            # is read as a placeholder again
        return HTMLResponse(body)

    async def _listed(self, request: Request) -> list[dict] | Response:
        """The calls this request may list, by its filters (`agent`, `from`, `to`), or a refusal."""
        verdict = await self._verdict(request, None)
        if isinstance(verdict, Response):
            return verdict
        query = request.query_params
        try:
            since = _day(query.get("from"), "from")
            until = _day(query.get("to"), "to", after=1)  # the day after: `to` is inclusive
        except ValueError as error:
            return PlainTextResponse(f"{error}\n", status_code=400)
        agent = query.get("agent") or None
        if isinstance(verdict, Access) and verdict.agent is not None:
            if agent is not None and agent != verdict.agent:
                return []  # an agent sees only their own calls, whatever they ask for
            agent = verdict.agent
        try:
            return await self._read(self._rows, agent, since, until)
        except UsageError as error:  # the shared library (PostgreSQL) is away: say so, the server serves on
            return PlainTextResponse(f"{error}\n", status_code=503, headers={"Retry-After": "5"})

    def rows(self, agent: str | None = None, since: float | None = None, until: float | None = None) -> list[dict]:
        """The list's rows, newest first (`calmline calls` and /calls show the same): by agent, and started in
        [since, until) (Unix times)."""
        with self._lock:
            return self._rows(agent, since, until)

    async def to_page(self, request: Request) -> Response:
        return RedirectResponse(request.url.path + "/", status_code=308)

    async def page(self, request: Request) -> Response:
        call = await self._call(request)
        if isinstance(call, Response):
            return call
        # The page asks for overview.json once its script runs: work out the call's pieces meanwhile.
        task = asyncio.ensure_future(self._read(self._data, call["id"], "overview"))
        self._warming.add(task)
        task.add_done_callback(self._warmed)
        return FileResponse(ui_dir() / "replay.html")

    def _warmed(self, task: asyncio.Future) -> None:
        self._warming.discard(task)
        if not task.cancelled() and task.exception() is not None:  # the page's own request will say what failed
            log.warning("replay data of a call not prepared: %s", task.exception())

    async def data(self, request: Request) -> Response:
        return await self._piece(request, "data")

    async def overview(self, request: Request) -> Response:
        """What the replay page draws first: the call, report, scorecard, marks and summarised loudness."""
        return await self._piece(request, "overview")

    async def events(self, request: Request) -> Response:
        """Every event but `levels`: the transcript and the overlay as it was, loaded after the first drawing."""
        return await self._piece(request, "events")

    async def levels(self, request: Request) -> Response:
        """?chunk=N: the levels in [N, N + 1) * LEVELS_CHUNK_S, packed (the zoomed-in timeline, the overlay's meters)."""
        try:
            chunk = int(request.query_params.get("chunk", ""))
            if not 0 <= chunk < 10**6:
                raise ValueError
        except ValueError:
            return PlainTextResponse("chunk must be a whole number, 0 or more\n", status_code=400)
        return await self._piece(request, "levels", chunk)

    async def _piece(self, request: Request, name: str, chunk: int | None = None) -> Response:
        call = await self._call(request)
        if isinstance(call, Response):
            return call
        plain, packed = await self._read(self._data, call["id"], name, chunk)
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(packed, media_type="application/json",
                            headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
        return Response(plain, media_type="application/json", headers={"Vary": "Accept-Encoding"})

    async def audio(self, request: Request) -> Response:
        call = await self._call(request)
        if isinstance(call, Response):
            return call
        path = self.store.audio_path(call) if call.get("audio") else None
        if path is None or not path.is_file():
            return PlainTextResponse("no audio recorded for this call\n", status_code=404)
        return FileResponse(path, media_type="audio/flac")

    async def report(self, request: Request) -> Response:
        call = await self._call(request)
        if isinstance(call, Response):
            return call
        from ..library.report_html import render_report

        events = await self._read(self.store.events, call["id"])
        html = await run_in_threadpool(render_report, call, events, self.config)
        return HTMLResponse(html, headers={"Content-Security-Policy": REPORT_CSP})

    # -- helpers --

    async def _call(self, request: Request) -> dict | Response:
        """The call the URL names exactly (no prefixes or patterns on the web), if this request may see it."""
        call_id = request.path_params["call_id"]
        try:
            call = await self._read(self.store.call, call_id)
        except LibraryAway:
            raise
        except UsageError:
            call = None
        if call is None or call["id"] != call_id:
            return PlainTextResponse(f"no call with id '{call_id}'\n", status_code=404)
        refusal = await self._refusal(request, call)
        return call if refusal is None else refusal

    async def _refusal(self, request: Request, call: dict | None) -> Response | None:
        verdict = await self._verdict(request, call)
        return verdict if isinstance(verdict, Response) else None

    async def _verdict(self, request: Request, call: dict | None) -> bool | Access | Response:
        """What `authorize` says, a refusal (403) as a Response."""
        verdict = self.authorize(request, call)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        if isinstance(verdict, Response):
            return verdict
        return verdict if verdict else PlainTextResponse("not allowed\n", status_code=403)

    def _rows(self, agent: str | None, since: float | None, until: float | None) -> list[dict]:
        """The list's rows (runs under the lock): each call with its cue count and its score ({met, total}: the
        scorecard's), worked out once per version of the call and kept (in memory, and in the store's
        call_summaries table for ended calls, so a restarted server does not score every call again)."""
        rows = []
        for call in self.store.list_calls(agent, since, until):  # mends the call of a recorder that died
            call = _public(call)
            call.update(self._summary(call))
            rows.append(call)
        return rows

    async def summary_of(self, call_id: str) -> dict | str | None:
        """{"cues", "score"} of a recorded call once its recording is closed; None while it is still being
        recorded; "absent" when this store has no such call."""
        def read():
            try:
                call = self.store.call(call_id)
            except UsageError:
                return "absent"
            if call["id"] != call_id:
                return "absent"
            return None if call["status"] == "recording" else self._summary(_public(call))
        return await self._read(read)

    def _summary(self, call: dict) -> dict:
        """{"cues": N, "interruptions": N, "score": {score (0-100), met, total}} of one call: the kept summary
        when it is of this version of the call (status, duration) and of this scorecard (card_key), else worked
        out from the call's events and kept (in memory; in the store once the call is closed). A restarted
        server reads every kept summary in one query and no call's events."""
        def fresh(summary: CallSummary | None) -> bool:
            return summary is not None and summary.interruptions is not None and (
                summary.status, summary.duration_s, summary.card) == (call["status"], call["duration_s"], self._card)

        summary = self._scores.get(call["id"]) or self._stored_summaries().get(call["id"])
        if not fresh(summary) and call["status"] != "recording":  # kept since they were read (another server)
            summary = self._kept(call["id"])
        if not fresh(summary):
            events = self.store.events_json(call["id"], levels=False)
            card = score_call(events, self.config)
            summary = CallSummary(call["status"], call["duration_s"],
                                  cues=sum(1 for e in events if e.get("type") == "cue"),
                                  met=card["met"], total=card["total"],
                                  interruptions=sum(1 for e in events if e.get("type") == "interruption"),
                                  score=card["score"], card=self._card)
            if call["status"] != "recording":
                self._keep_summary(call["id"], summary)
        self._scores[call["id"]] = summary
        self._scores.move_to_end(call["id"])
        while len(self._scores) > CACHED_SCORES:
            self._scores.popitem(last=False)
        return _shown(summary)

    def _stored_summaries(self) -> dict[str, CallSummary]:
        """The summaries the store keeps, read once (none when it cannot keep them: a read-only store)."""
        if self._stored is None:
            try:
                self._stored = self.store.summaries()
            except LibraryAway:
                raise  # not read: tried again on the next listing
            except Exception as error:  # noqa: BLE001 - the backend's error
                self._stored = {}
                log.warning("%s: call summaries are not kept across restarts (%s)", self.store.dir, error)
        return self._stored

    def _kept(self, call_id: str) -> CallSummary | None:
        try:
            return self.store.summary(call_id)
        except LibraryAway:
            raise
        except Exception:  # noqa: BLE001 - a store that cannot keep them (read-only, older): worked out instead
            return None

    def _keep_summary(self, call_id: str, summary: CallSummary) -> None:
        try:
            self.store.keep_summary(call_id, summary)
        except Exception:  # noqa: BLE001 - a full disk or a read-only store: kept in memory only
            pass

    async def _read(self, fn, *args):
        def locked():
            with self._lock:
                return fn(*args)
        return await run_in_threadpool(locked)

    def _data(self, call_id: str, name: str = "data", chunk: int | None = None) -> tuple[bytes, bytes]:
        """A piece of a call's data (see call_pieces; "data" is data.json) as (plain, gzipped) bytes; the call's
        pieces are worked out once per version of the call and each encoded when first asked for (runs under
        the lock)."""
        call = self.store.call(call_id)
        pieces = None
        key = (call["status"], call["duration_s"])
        if call["status"] == "recording":  # still growing: what it holds says whether it changed
            pieces = stored_pieces(self.store, call_id, call)
            key += (len(pieces["events"]), pieces["overview"]["levels_count"])
        cached = self._cache.get(call_id)
        if cached is None or cached[0] != key:
            cached = (key, pieces or stored_pieces(self.store, call_id, call), {})
            self._cache[call_id] = cached
        self._cache.move_to_end(call_id)
        while len(self._cache) > CACHED_CALLS:
            self._cache.popitem(last=False)
        _, pieces, encoded = cached
        slot = (name, chunk)
        if slot not in encoded:
            if name == "levels":
                lo, hi = chunk * LEVELS_CHUNK_S, (chunk + 1) * LEVELS_CHUNK_S
                value = {"chunk": chunk, "from": lo, "to": hi, "levels_format": LEVELS_FORMAT,
                         "levels": [row for row in pieces["levels"] if lo <= row[0] < hi]}
            elif name == "data":
                value = _whole(pieces, self.config)
            elif name == "events":
                value = {"events": pieces["events"], "transcript": pieces["transcript"],
                         "scorecard": scorecard_of(pieces, self.config)}
            else:
                value = pieces[name]
            body = dumpb(value)
            encoded[slot] = (body, gzip.compress(body, compresslevel=5))
        return encoded[slot]


class ReplayServer:
    """`calmline replay`: the library served on its own, pointing at one call's replay page."""

    def __init__(self, store: Store, call_id: str, options: WebOptions, config: Config | None = None):
        self.call_id = store.call(call_id)["id"]  # UsageError for an unknown or ambiguous id, before listening
        self.part = LibraryPart(store, config=config)
        self.server = WebServer(build_app(options, [self.part]), options)
        self._started = False

    def start(self) -> ReplayServer:
        if not self._started:
            self.server.start()
            self._started = True
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        """The call's replay page."""
        return f"{self.server.url}calls/{self.call_id}/"

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_replay(store: Store, call_id: str, options: WebOptions, config: Config | None = None) -> ReplayServer:
    """A started ReplayServer for one call; UsageError for an unknown call or an unusable address."""
    return ReplayServer(store, call_id, options, config).start()
