"""The call library in PostgreSQL, shared by several servers (`[store] url = "postgresql://..."`).

Same tables as the SQLite store (calls, events, metrics, redactions, call_summaries) plus `servers`, each
server's heartbeat, and `schema_version`: migrations are numbered, applied in order under an advisory lock
(two servers starting together do not race) and skipped when applied already, so they can run any number
of times. Audio stays in the data directory, which the servers share (docs/scale.md says why).

Live calls never wait on the database: a recorder's rows go into one write-behind queue per process, which
a thread writes in order, one transaction per batch, retrying every half second while PostgreSQL is away.
Every write is idempotent (primary keys and ON CONFLICT), so a batch that was written but whose reply
was lost is written again harmlessly: nothing is lost and nothing doubled.

A call is `recording` while its server's heartbeat (written by that thread every second) is fresh; a
server killed mid-call stops beating, and whoever reads the call after LEASE_S mends it (FLAC header,
status `interrupted`) from the shared audio directory. On the machine that recorded it, the recorder's
process and lock say so at once, as in the SQLite store.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util
import os
import secrets
import socket
import threading
import time
from collections import deque
from pathlib import Path

from ..errors import UsageError
from .store import SUMMARY_COLUMNS, LibraryAway, Store, _private_dirs, _private_files

log = logging.getLogger("calmline.store")

LEASE_S = 10.0
"""A server whose heartbeat is older than this is dead: its recording calls are mended as interrupted.
Longer than a short PostgreSQL outage (each server beats again within a second of its return)."""
BEAT_S = 1.0
RETRY_S = 0.5
MAX_QUEUED = 2_000_000
"""Rows held while PostgreSQL is away (about 300 bytes each); beyond this recording stops, calls go on."""
BATCH_ROWS = 5000

MIGRATIONS = [
    (1, """
CREATE TABLE IF NOT EXISTS calls (
    id TEXT PRIMARY KEY, agent TEXT, started_at DOUBLE PRECISION, duration_s DOUBLE PRECISION, source TEXT,
    status TEXT, pid INTEGER, audio TEXT, server TEXT
);
CREATE INDEX IF NOT EXISTS calls_started ON calls (started_at);
CREATE INDEX IF NOT EXISTS calls_agent ON calls (agent, started_at);
CREATE TABLE IF NOT EXISTS events (
    call_id TEXT, seq INTEGER, t DOUBLE PRECISION, type TEXT, json TEXT, PRIMARY KEY (call_id, seq)
);
CREATE TABLE IF NOT EXISTS metrics (
    call_id TEXT, t DOUBLE PRECISION, agent_dbfs DOUBLE PRECISION, customer_dbfs DOUBLE PRECISION,
    agent_talking INTEGER, customer_talking INTEGER, agent_wpm DOUBLE PRECISION, customer_wpm DOUBLE PRECISION,
    PRIMARY KEY (call_id, t)
);
CREATE TABLE IF NOT EXISTS redactions (
    call_id TEXT, party TEXT, start DOUBLE PRECISION, "end" DOUBLE PRECISION, label TEXT, silenced INTEGER,
    PRIMARY KEY (call_id, party, start, "end")
);
CREATE TABLE IF NOT EXISTS call_summaries (
    call_id TEXT PRIMARY KEY, status TEXT, duration_s DOUBLE PRECISION, cues INTEGER, met INTEGER, total INTEGER
);
CREATE TABLE IF NOT EXISTS servers (id TEXT PRIMARY KEY, seen_at DOUBLE PRECISION);
"""),
    (2, """
ALTER TABLE call_summaries ADD COLUMN IF NOT EXISTS interruptions INTEGER, ADD COLUMN IF NOT EXISTS score INTEGER,
    ADD COLUMN IF NOT EXISTS card TEXT;
"""),  # the list reads only kept summaries (store.CallSummary)
]
"""(version, SQL): append, never edit one that has shipped."""

NOW = "extract(epoch from clock_timestamp())"
"""PostgreSQL's clock: heartbeats are compared on one clock, whatever the servers' own."""


def migrate(con) -> int:
    """Bring the schema up to date (any number of times, from any number of servers at once); its version."""
    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(7146351)")  # 'calmline' schema lock
        con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at "
                    "DOUBLE PRECISION)")
        done = {row[0] for row in con.execute("SELECT version FROM schema_version")}
        for version, sql in MIGRATIONS:
            if version not in done:
                con.execute(sql)
                con.execute(f"INSERT INTO schema_version VALUES (%s, {NOW})", (version,))
                log.info("call library schema migrated to version %d", version)
    return max([v for v, _ in MIGRATIONS])


def _pg(sql: str) -> str:
    """The store's SQL (SQLite's ? placeholders, INSERT OR REPLACE) for psycopg."""
    if sql.startswith("INSERT OR REPLACE INTO call_summaries"):
        sql = sql.replace("INSERT OR REPLACE", "INSERT") + " ON CONFLICT (call_id) DO UPDATE SET " + ", ".join(
            f"{name} = excluded.{name}" for name in SUMMARY_COLUMNS)
    return sql.replace("?", "%s")


class PgStore(Store):
    """The Store API over PostgreSQL; audio in `data_dir` (shared by the servers)."""

    def __init__(self, data_dir: Path, url: str):
        import psycopg

        self.dir = Path(data_dir)
        self.url = url
        self.full = False
        self.server = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        """This process, as the calls it records name it (and its heartbeat)."""
        try:
            _private_dirs(self.dir, self.dir / "audio")
            _private_files(self.dir / "audio")
        except OSError as exc:
            raise UsageError(f"{self.dir}: cannot use as data directory ({exc.strerror})") from None
        self._lock = threading.RLock()
        try:
            self.db = self._connect()
            self.version = migrate(self.db)
        except psycopg.Error as exc:
            raise UsageError(f"[store] url: cannot use the PostgreSQL call library ({_first_line(exc)})") from None
        self.queue = WriteBehind(url, self.server)
        self._closed = False
        # A process that exits without closing its store (a worker whose server went away) still writes what
        # it holds: at interpreter exit, and at a multiprocessing child's exit (which skips atexit).
        atexit.register(self._at_exit)
        multiprocessing.util.Finalize(self, self._at_exit, exitpriority=100)

    def _at_exit(self) -> None:
        if not self._closed:
            self.close()

    def _connect(self):
        import psycopg

        return psycopg.connect(self.url, autocommit=True, connect_timeout=5)

    def close(self) -> None:
        self._closed = True
        self.queue.close()
        with self._lock:
            self.db.close()

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self._run(sql, args, fetch=True)

    def _write(self, sql: str, args: tuple = ()) -> None:
        self._run(sql, args, fetch=False)

    def _run(self, sql: str, args: tuple, fetch: bool):
        """One statement on the reading connection, reconnecting once if PostgreSQL went away meanwhile;
        a UsageError naming the problem if it is still away."""
        import psycopg

        for attempt in (0, 1):
            with self._lock:
                try:
                    if self.db.closed:
                        self.db = self._connect()
                    cur = self.db.execute(_pg(sql), args)
                    return cur.fetchall() if fetch else None
                except psycopg.OperationalError as exc:
                    try:
                        self.db.close()
                    except Exception:  # noqa: BLE001
                        pass
                    if attempt:
                        raise LibraryAway(f"the call library is unavailable ({_first_line(exc)})") from None
                except psycopg.Error as exc:
                    raise UsageError(f"the call library refused a query ({_first_line(exc)})") from None

    def _recording(self, call: dict) -> bool:
        """Recording while the server recording it beats (or while its own rows still wait in our queue)."""
        if self.queue.finishing(call["id"]):
            return True
        rows = self._query(f"SELECT c.server, s.seen_at > {NOW} - %s FROM calls c LEFT JOIN servers s "
                           "ON c.server = s.id WHERE c.id = %s", (LEASE_S, call["id"]))
        if rows and _host(rows[0][0]) == _host(self.server):  # this machine's (ours, a worker's): is its
            return super()._recording(call)                    # process alive, its recorder open?
        return bool(rows and rows[0][1])

    def purge(self, older_than_days: float) -> list[str]:
        """Old calls as in the SQLite store, and heartbeats of servers gone for a day (none still recording)."""
        removed = super().purge(older_than_days)
        self._write(f"DELETE FROM servers WHERE seen_at < {NOW} - 86400 AND id NOT IN "
                    "(SELECT server FROM calls WHERE status = 'recording' AND server IS NOT NULL)")
        return removed

    def writer(self) -> QueuedWriter:
        return QueuedWriter(self.queue)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued row is written (tests, shutdown); False if PostgreSQL stayed away."""
        return self.queue.flush(timeout)


class QueuedWriter:
    """A recorder's writer: rows into the process's write-behind queue (never blocks, never fails while
    there is room)."""

    def __init__(self, queue: WriteBehind):
        self.queue = queue
        self.call_id = None

    def begin(self, call: tuple) -> None:
        self.call_id = call[0]
        self.queue.put("calls", [(*call, self.queue.server)], call_id=self.call_id)

    def commit(self, events: list, metrics: list, spans: list) -> None:
        self.queue.put("events", events)
        self.queue.put("metrics", [(*m[:4], int(m[4]), int(m[5]), *m[6:]) for m in metrics])  # as SQLite keeps them
        self.queue.put("redactions", spans)

    def finish(self, call_id: str, status: str, duration: float) -> None:
        self.queue.put("finish", [(status, duration, call_id)], call_id=call_id, done=True)

    def close(self) -> None:
        pass


SQL = {
    "calls": "INSERT INTO calls VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
    "events": "INSERT INTO events VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
    "metrics": "INSERT INTO metrics VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
    "redactions": "INSERT INTO redactions VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
    "finish": "UPDATE calls SET status = %s, duration_s = %s WHERE id = %s",
}


class WriteBehind:
    """Rows for PostgreSQL, written in order by one thread; retried until PostgreSQL takes them."""

    def __init__(self, url: str, server: str):
        self.url, self.server = url, server
        self.items: deque[tuple[str, list]] = deque()
        self.rows = 0
        self.written = 0
        self.down_since: float | None = None
        self._open_calls: dict[str, int] = {}  # call id -> queued items until its finish is written
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="calmline-pg-writer", daemon=True)
        self._thread.start()

    def put(self, kind: str, rows: list, call_id: str | None = None, done: bool = False) -> None:
        if not rows:
            return
        with self._cond:
            if self.rows + len(rows) > MAX_QUEUED:
                raise OSError(f"PostgreSQL away for {time.monotonic() - (self.down_since or 0):.0f} s "
                              f"and {self.rows} rows waiting")
            self.items.append((kind, list(rows)))
            self.rows += len(rows)
            if call_id is not None and done:
                self._open_calls[call_id] = self._open_calls.get(call_id, 0) + 1
            self._cond.notify()

    def finishing(self, call_id: str) -> bool:
        """Is the end of this call still waiting to be written (so it must not be mended meanwhile)?"""
        with self._cond:
            return call_id in self._open_calls

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.items or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (waiting up to `timeout` for PostgreSQL), then stop the thread."""
        if not self.flush(timeout):
            log.error("call library: %d rows not written (PostgreSQL unreachable)", self.rows)
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout=5)

    _busy = False

    def _take(self) -> list[tuple[str, list]]:
        """The next batch (whole items, in order, up to BATCH_ROWS rows), left in the queue until written."""
        batch, rows = [], 0
        for kind, items in self.items:
            if batch and rows + len(items) > BATCH_ROWS:
                break
            batch.append((kind, items))
            rows += len(items)
        return batch

    def _run(self) -> None:
        import psycopg

        con = None
        next_beat = 0.0
        while True:
            with self._cond:
                while not self.items and not self._stop and time.monotonic() < next_beat:
                    self._cond.wait(max(0.0, next_beat - time.monotonic()))
                if self._stop and not self.items:
                    break
                batch = self._take()
                self._busy = bool(batch)
            try:
                if con is None or con.closed:
                    con = psycopg.connect(self.url, connect_timeout=3)
                with con.transaction():
                    with con.cursor() as cur:
                        for kind, rows in batch:
                            cur.executemany(SQL[kind], rows)
                        if time.monotonic() >= next_beat:
                            cur.execute(f"INSERT INTO servers VALUES (%s, {NOW}) ON CONFLICT (id) DO UPDATE "
                                        f"SET seen_at = {NOW}", (self.server,))
                            next_beat = time.monotonic() + BEAT_S
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:  # away: keep the rows, try again
                if self.down_since is None:
                    self.down_since = time.monotonic()
                    log.warning("call library: PostgreSQL unreachable (%s); %d rows kept, retrying",
                                _first_line(exc), self.rows)
                if con is not None:
                    try:
                        con.close()
                    except Exception:  # noqa: BLE001
                        pass
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
                    if self._stop:
                        break  # close() gave up waiting
                time.sleep(RETRY_S)
                continue
            except Exception:  # noqa: BLE001 - a bug: drop the batch rather than retry it for ever
                log.exception("call library: a batch could not be written and is dropped")
            if self.down_since is not None:
                log.warning("call library: PostgreSQL back after %.1f s; writing %d kept rows",
                            time.monotonic() - self.down_since, self.rows)
                self.down_since = None
            with self._cond:
                for kind, rows in batch:
                    self.items.popleft()
                    self.rows -= len(rows)
                    self.written += len(rows)
                    if kind == "finish":
                        for row in rows:
                            left = self._open_calls.get(row[2], 0) - 1
                            if left <= 0:
                                self._open_calls.pop(row[2], None)
                            else:
                                self._open_calls[row[2]] = left
                self._busy = False
                self._cond.notify_all()
        if con is not None:
            con.close()


def _host(server: str | None) -> str:
    return (server or "").rsplit(":", 2)[0]


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
