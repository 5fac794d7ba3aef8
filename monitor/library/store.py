"""Every call, recorded: a SQLite database (WAL) of calls, events and a metrics timeline, and each
call's audio as a stereo FLAC written as the call goes.

Events are committed about once a second, audio flushed about once a second: a monitor killed
mid-call leaves every event and the audio up to about the last second. A call whose recorder died
is mended the next time it is opened (its FLAC header rewritten, its duration taken from its events), and
one whose line was lost to the end (an ingested stream cut off) is closed as `interrupted` too.
Transcripts come already redacted from the pipeline; with transcription on, the audio is held back
[store] redact_hold_s before it is encoded and silenced over redacted words (redaction.py,
docs/privacy.md), so a killed monitor loses that much audio.
A failing disk never stops a call: the recorder reports the problem once, in one line that names it,
closes the call as `interrupted` with what was written, and the call goes on unrecorded. So that a
full disk still leaves room to close the call, each recorder holds a small reserve file that it
gives back the moment writing fails.

Recordings are private: the data directory and its audio folder are 0700, every file in them 0600
(the database's -wal and -shm files take the database's mode), whatever the umask.

`open_store(data_dir, url)` picks the backend: this SQLite file (the default, nothing to set up), or with
`[store] url = "postgresql://..."` one library for several servers (monitor/library/pg.py; docs/scale.md).
Either way the audio is in the data directory, which servers sharing a library share too. The rest of
calmline sees only `Store`'s methods and `CallRecorder`; the SQL behind them is the backend's.
"""

from __future__ import annotations

import errno
import fcntl
import getpass
import json
import logging
import os
import resource
import shutil
import sqlite3
import time
from dataclasses import astuple, dataclass, fields
from pathlib import Path

import numpy as np

from audio import HOP, SAMPLE_RATE
from audio.errors import AudioError
from audio.recording import FlacWriter, private_file, repair_flac

from ..errors import UsageError
from ..events import Event
from .redaction import SCHEMA as REDACTIONS, AudioRedaction, silence_stored, spans_of

log = logging.getLogger("calmline.store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id TEXT PRIMARY KEY, agent TEXT, started_at REAL, duration_s REAL, source TEXT,
    status TEXT,            -- recording, ended, interrupted
    pid INTEGER, audio TEXT
);
CREATE TABLE IF NOT EXISTS events (
    call_id TEXT, seq INTEGER, t REAL, type TEXT, json TEXT, PRIMARY KEY (call_id, seq)
);
CREATE TABLE IF NOT EXISTS metrics (
    call_id TEXT, t REAL, agent_dbfs REAL, customer_dbfs REAL, agent_talking INTEGER, customer_talking INTEGER,
    agent_wpm REAL, customer_wpm REAL
);
CREATE INDEX IF NOT EXISTS metrics_call ON metrics (call_id, t);
CREATE TABLE IF NOT EXISTS call_summaries (
    call_id TEXT PRIMARY KEY, status TEXT, duration_s REAL, cues INTEGER, met INTEGER, total INTEGER,
    interruptions INTEGER, score INTEGER, card TEXT
);
""" + REDACTIONS
CALL_COLUMNS = ("id", "agent", "started_at", "duration_s", "source", "status", "pid", "audio")
ADDED_SUMMARY_COLUMNS = (("interruptions", "INTEGER"), ("score", "INTEGER"), ("card", "TEXT"))
"""Columns call_summaries gained after it first shipped: added to an older data directory when it is opened."""


@dataclass(frozen=True)
class CallSummary:
    """What the call list shows of an ended call beyond its `calls` row, kept so that listing reads no events.
    `card` names the scorecard that scored it (monitor/web/library.py card_key): a summary scored by another
    is stale. A row kept before interruptions and score were kept reads None for them (and so is stale too)."""

    status: str
    duration_s: float
    cues: int
    met: int
    total: int
    interruptions: int | None = None
    score: int | None = None
    card: str | None = None


SUMMARY_COLUMNS = tuple(f.name for f in fields(CallSummary))


class LibraryAway(UsageError):
    """The call library cannot be reached now (PostgreSQL away): worth a 503 and a retry, not a 404."""


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "calmline"


def resolve_data_dir(option: str | None, configured: str) -> Path:
    """--data-dir, else $CALMLINE_DATA_DIR, else [store] data_dir, else ~/.local/share/calmline."""
    return Path(option or os.environ.get("CALMLINE_DATA_DIR") or configured or default_data_dir())


def resolve_store_url(option: str | None, configured: str) -> str:
    """--store-url, else $CALMLINE_STORE_URL, else [store] url; empty: the SQLite file in the data directory."""
    return option or os.environ.get("CALMLINE_STORE_URL") or configured or ""


def open_store(data_dir: Path, url: str = "") -> Store:
    """The call library: SQLite in `data_dir`, or PostgreSQL at `url` (audio in `data_dir` either way)."""
    if not url:
        return Store(data_dir)
    if not url.startswith(("postgresql://", "postgres://")):
        raise UsageError(f"[store] url: {url.split('://')[0]!r} is not supported (postgresql://... or empty)")
    from .pg import PgStore

    return PgStore(data_dir, url)


class Store:
    """The recorded calls in one data directory."""

    def __init__(self, data_dir: Path):
        self.dir = Path(data_dir)
        self.full = False  # the disk was full when opened: calls can be read, not recorded
        try:
            _private_dirs(self.dir, self.dir / "audio")
            db = self.dir / "calls.db"
            os.close(os.open(db, os.O_RDWR | os.O_CREAT, 0o600))
            for folder in (self.dir, self.dir / "audio"):
                _private_files(folder)
            self.db = self._connect(db)
        except OSError as exc:
            raise UsageError(f"{self.dir}: cannot use as data directory ({exc.strerror})") from None
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"{self.dir / 'calls.db'}: damaged or not a calmline database ({exc})") from None

    def _connect(self, db: Path) -> sqlite3.Connection:
        """The database in WAL mode; on a full disk (no room for its -wal/-shm files) read-only, so
        that `calls`, `report` and `replay` still work."""
        con = sqlite3.connect(str(db), timeout=10, check_same_thread=False)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.executescript(SCHEMA)
            _add_columns(con, "call_summaries", ADDED_SUMMARY_COLUMNS)
            return con
        except sqlite3.OperationalError as exc:
            con.close()
            if not _disk_full(exc, self.dir):
                raise
            self.full = True
            if db.stat().st_size == 0:  # never written: no calls, and none can be recorded
                con = sqlite3.connect(":memory:", check_same_thread=False)
                con.executescript(SCHEMA)
                return con
            return sqlite3.connect(f"{db.resolve().as_uri()}?immutable=1", uri=True, check_same_thread=False)

    def close(self) -> None:
        self.db.close()

    # --- reading ---------------------------------------------------------------------------
    def calls(self) -> list[dict]:
        rows = self._query("SELECT id FROM calls ORDER BY started_at DESC")
        return [self.call(row[0]) for row in rows]

    def call(self, call_id: str) -> dict:
        rows = self._query("SELECT id, agent, started_at, duration_s, source, status, pid, audio FROM calls "
                           "WHERE id = ? OR id LIKE ?", (call_id, call_id + "%"))
        if len(rows) != 1:
            raise UsageError(f"no call with id '{call_id}'" if not rows else f"call id '{call_id}' is ambiguous")
        call = dict(zip(("id", "agent", "started_at", "duration_s", "source", "status", "pid", "audio"), rows[0]))
        if call["status"] == "recording" and not self._recording(call):
            call = self._mend(call)
        return call

    def events(self, call_id: str) -> list[dict]:
        return [json.loads(row[0]) for row in
                self._query("SELECT json FROM events WHERE call_id = ? ORDER BY seq", (call_id,))]

    def redactions(self, call_id: str) -> list[dict]:
        """Where the call's transcripts were redacted: party, start, end, label, silenced (in the audio)."""
        rows = self._query('SELECT party, start, "end", label, silenced FROM redactions WHERE call_id = ? '
                           "ORDER BY start", (call_id,))
        return [dict(zip(("party", "start", "end", "label", "silenced"), (*r[:4], bool(r[4])))) for r in rows]

    def audio_path(self, call: dict) -> Path:
        return self.dir / "audio" / call["audio"]

    def list_calls(self, agent: str | None = None, since: float | None = None,
                   until: float | None = None) -> list[dict]:
        """Calls (newest first) of `agent`, started in [since, until); a dead recorder's call mended."""
        sql, args = f"SELECT {', '.join(CALL_COLUMNS)} FROM calls WHERE 1 = 1", []
        for clause, value in (("agent = ?", agent), ("started_at >= ?", since), ("started_at < ?", until)):
            if value is not None:
                sql, args = f"{sql} AND {clause}", [*args, value]
        calls = []
        for row in self._query(sql + " ORDER BY started_at DESC", tuple(args)):
            call = dict(zip(CALL_COLUMNS, row))
            calls.append(self.call(call["id"]) if call["status"] == "recording" else call)
        return calls

    def events_json(self, call_id: str, levels: bool = True) -> list[dict]:
        """The call's events in order (without `levels` when not wanted: the list's scoring skips them)."""
        sql = "SELECT json FROM events WHERE call_id = ?" + ("" if levels else " AND type != 'levels'")
        return [json.loads(row[0]) for row in self._query(sql + " ORDER BY seq", (call_id,))]

    def summaries(self) -> dict[str, CallSummary]:
        """Kept list summaries by call id, in one query; those of deleted calls go first."""
        self._write("DELETE FROM call_summaries WHERE call_id NOT IN (SELECT id FROM calls)")
        return {row[0]: CallSummary(*row[1:]) for row in
                self._query(f"SELECT call_id, {', '.join(SUMMARY_COLUMNS)} FROM call_summaries")}

    def summary(self, call_id: str) -> CallSummary | None:
        """One call's kept summary (kept since `summaries` was read: by another server sharing the library)."""
        rows = self._query(f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM call_summaries WHERE call_id = ?", (call_id,))
        return CallSummary(*rows[0]) if rows else None

    def keep_summary(self, call_id: str, summary: CallSummary) -> None:
        self._write(f"INSERT OR REPLACE INTO call_summaries (call_id, {', '.join(SUMMARY_COLUMNS)}) "
                    f"VALUES (?{', ?' * len(SUMMARY_COLUMNS)})", (call_id, *astuple(summary)))

    def _write(self, sql: str, args: tuple = ()) -> None:
        """One statement in its own transaction; raises the backend's error (callers decide how much it matters)."""
        with self.db:
            self.db.execute(sql, args)

    def writer(self) -> "SqliteWriter":
        """A recorder's own connection (see CallRecorder)."""
        return SqliteWriter(self.dir / "calls.db")

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"{self.dir / 'calls.db'}: damaged database ({exc})") from None

    def _recording(self, call: dict) -> bool:
        """Is a recorder writing this call now? It holds a lock on the call's reserve file until it
        closes, whatever becomes of it; a process that lives on after its recorder let go (a looping
        demo, a server) no longer keeps a dead call `recording`."""
        if not _alive(call["pid"]):
            return False
        try:
            fd = os.open(self.dir / "audio" / f"{call['id']}.reserve", os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def _mend(self, call: dict) -> dict:
        """A call whose recorder was killed: repair its audio, close it at its last event."""
        last = self._query("SELECT max(t) FROM events WHERE call_id = ?", (call["id"],))[0][0] or 0.0
        path = self.audio_path(call)
        try:
            frames = repair_flac(path) if path.exists() else 0
        except AudioError as exc:
            log.warning("%s", exc)
            frames = 0
        self._silence(path, call["id"])
        duration = max(last, frames / SAMPLE_RATE)
        (self.dir / "audio" / f"{call['id']}.reserve").unlink(missing_ok=True)
        try:
            self._write("UPDATE calls SET status = 'interrupted', duration_s = ? WHERE id = ?", (duration, call["id"]))
        except Exception as exc:  # noqa: BLE001  # a full disk or a read-only store: shown mended, mended for good later
            log.warning("%s: call %s not mended yet (%s)", self.dir, call["id"], exc)
        return {**call, "status": "interrupted", "duration_s": duration}

    def _silence(self, path: Path, call_id: str) -> None:
        """A mended call's audio silenced over its stored redactions (its recorder died holding them);
        audio that cannot be silenced is deleted rather than kept."""
        try:
            silence_stored(path, self._query('SELECT start, "end" FROM redactions WHERE call_id = ? AND silenced != 0',
                                             (call_id,)))
        except Exception as exc:  # noqa: BLE001
            log.warning("%s: cannot silence its redacted words (%s); audio deleted", path, exc)
            path.unlink(missing_ok=True)

    # --- retention -------------------------------------------------------------------------
    def purge(self, older_than_days: float) -> list[str]:
        """Delete calls that started more than `older_than_days` ago, with their events and audio."""
        cutoff = time.time() - older_than_days * 86400
        rows = self._query("SELECT id, audio FROM calls WHERE started_at < ? AND status != 'recording'", (cutoff,))
        for call_id, audio in rows:
            for table, key in (("events", "call_id"), ("metrics", "call_id"), ("redactions", "call_id"),
                               ("call_summaries", "call_id"), ("calls", "id")):
                self._write(f"DELETE FROM {table} WHERE {key} = ?", (call_id,))
        for _, audio in rows:
            (self.dir / "audio" / audio).unlink(missing_ok=True)
        return [row[0] for row in rows]


RESERVE_BYTES = 128 * 1024
"""Room each recorder holds back, and frees when writing fails, to commit what it has and close the call."""
BUSY_WAIT_S = 0.25
"""How long a recorder's commit waits for another writer's lock before trying again a second later:
a live call never stalls on the database."""
BUSY_GIVE_UP_S = 60.0
"""A database locked this long by someone else is a failure like any other."""


class CallRecorder:
    """Writes one call as it happens. Every method swallows storage errors after reporting them:
    recording is never worth stopping a live call for. The first failure (of the database, the
    FLAC writer's thread, anything) stops the recording and closes the call as `interrupted`."""

    def __init__(self, store: Store, call_id: str, source: str, started_at: float, agent: str = "",
                 redact_audio: bool = True, hold_s: float = 15.0, pad_s: float = 0.25, commit_every_s: float = 1.0):
        self.store, self.call_id = store, call_id
        self.redact_audio, self.hold_s, self.pad_s = redact_audio, hold_s, pad_s
        self.redaction: AudioRedaction | None = None
        self._spans: list[tuple] = []
        self.commit_every_s = commit_every_s
        self.problem: str | None = None
        self.problem_t = 0.0  # audio time at which recording stopped
        self._audio_s = 0.0
        self.reported = False
        self._seq = 0
        self._pending: list[tuple] = []
        self._metrics: list[tuple] = []
        self._wpm = {"agent": None, "customer": None}
        self._lines: dict = {}  # each party's device or line state, from `device` events
        self._last_commit = time.monotonic()  # the last success (a busy database is retried at _next_commit)
        self._next_commit = self._last_commit + commit_every_s
        self.audio = None
        self.duration = 0.0
        self._reserve = store.dir / "audio" / f"{call_id}.reserve"
        self._held = None  # the reserve, open and locked while this recorder records (see Store._recording)
        self.db = None  # the backend's writer: SqliteWriter here, pg.QueuedWriter for PostgreSQL
        self._guard(self._open, source, started_at, agent or getpass.getuser())

    def _open(self, source, started_at, agent):
        name = f"{self.call_id}.flac"
        if self.store.full:
            raise OSError(errno.ENOSPC, "disk full")
        private_file(self._reserve)
        self._held = open(self._reserve, "r+b")
        fcntl.flock(self._held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._held.write(bytes(RESERVE_BYTES))
        self._held.flush()
        self.db = self.store.writer()
        self.db.begin((self.call_id, agent, started_at, 0.0, source, "recording", os.getpid(), name))
        self.audio = FlacWriter(self.store.dir / "audio" / name, SAMPLE_RATE, 2)
        self.redaction = AudioRedaction(self.audio.write, self.redact_audio, self.hold_s)

    def write_audio(self, frames: dict[str, np.ndarray]) -> None:
        if self.audio is not None and self.problem is None:
            self._audio_s += len(frames["agent"]) / SAMPLE_RATE
            self._guard(self.redaction.write, np.stack([frames["agent"], frames["customer"]], axis=1))

    def write_events(self, batch: list[Event]) -> None:
        if self.problem is not None:
            return
        fresh = False
        for event in batch:
            data = event.to_dict()
            if data["type"] == "transcript":  # already redacted in the pipeline; silence its spans here
                spans = spans_of(data, self.pad_s)
                fresh = fresh or bool(spans)
                self._spans += [(self.call_id, *span, int(self.redact_audio)) for span in spans]
                if self.redaction is not None:
                    self.redaction.silence(spans)
            elif data["type"] == "levels":
                self._metrics.append((self.call_id, data["t"], data["levels"]["agent"], data["levels"]["customer"],
                                      data["talking"]["agent"], data["talking"]["customer"],
                                      self._wpm["agent"], self._wpm["customer"]))
            elif data["type"] == "pace":
                self._wpm.update(data["wpm"])
            elif data["type"] == "device":
                self._lines[data.get("party")] = data.get("state")
            self._pending.append((self.call_id, self._seq, data["t"], data["type"], json.dumps(data)))
            self._seq += 1
            self.duration = max(self.duration, data["t"])
        if fresh or time.monotonic() >= self._next_commit:
            self._guard(self._commit)  # a new redaction at once: a recorder killed later is mended with it

    def _commit(self) -> None:
        try:
            self.db.commit(self._pending, self._metrics, self._spans)
        except sqlite3.OperationalError as exc:
            # Another writer holds the lock (a purge, a mend, a checkpoint under load): keep the rows and
            # try again next time instead of giving the recording up for good.
            if not _busy(exc) or time.monotonic() - self._last_commit > BUSY_GIVE_UP_S:
                raise
            self._next_commit = time.monotonic() + self.commit_every_s  # not on every tick meanwhile
            log.debug("%s: busy, events kept for the next commit", self.store.dir)
            return
        self._pending, self._metrics, self._spans = [], [], []
        self._last_commit = time.monotonic()
        self._next_commit = self._last_commit + self.commit_every_s

    def close(self) -> None:
        if self.problem is None:
            self._guard(self._commit_all)
        if self.audio is not None and self.problem is None:
            self._guard(self._close_audio)
        if self.problem is None:  # a call whose line (or device) was lost to the end is kept as interrupted:
            self._guard(self._finish, "interrupted" if "lost" in self._lines.values() else "ended")  # cut short
        self._let_go()
        if self.db is not None:
            self.db.close()

    def _commit_all(self) -> None:
        """The last commit may not be put off: wait out another writer's lock (bounded by BUSY_GIVE_UP_S)."""
        self._commit()
        while self._pending or self._metrics or self._spans:
            time.sleep(BUSY_WAIT_S)
            self._commit()

    def _let_go(self) -> None:
        """Remove the reserve and unlock it: the room is free again, and readers see no recorder here."""
        self._reserve.unlink(missing_ok=True)
        if self._held is not None:
            self._held.close()
            self._held = None

    def _close_audio(self) -> None:
        """The held audio out (silenced where known), the file closed, then late redactions silenced in it."""
        if self._audio_s == 0:  # stopped before any audio: one tick of silence, so the file is a playable FLAC
            self.redaction.write(np.zeros((HOP, 2), np.float32))
        self.redaction.flush()
        self.audio.close()
        self.redaction.repair(self.audio.path)

    def _finish(self, status: str) -> None:
        deadline = time.monotonic() + BUSY_GIVE_UP_S
        while True:
            try:
                self.db.finish(self.call_id, status, self.duration)
                return
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or time.monotonic() > deadline:
                    raise

    def _guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - nothing in recording may end the call
            if self.problem is None:
                self.problem = f"recording stopped: {_reason(exc, self.store.dir)}"
                self.problem_t = round(max(self.duration, self._audio_s), 3)
                log.error("%s", self.problem)
                self._stop()

    def _stop(self) -> None:
        """Writing failed: give back the reserve, keep what can be kept, close the call as interrupted."""
        self._let_go()
        if self.audio is not None:
            try:
                self.audio.close()
            except Exception:  # noqa: BLE001 - already reported
                pass
            try:  # what was flushed before the failure, with a header that says how long it is
                repair_flac(self.audio.path)
                self.redaction.repair(self.audio.path)
            except Exception as exc:  # noqa: BLE001 - an AudioError, or no room to silence (the file is gone)
                log.warning("%s", exc)
        for step in (self._commit, lambda: self._finish("interrupted")) if self.db is not None else ():
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - the problem is reported already
                log.debug("%s: %s", self.store.dir, _reason(exc, self.store.dir))


class SqliteWriter:
    """A recorder's own SQLite connection, waiting only briefly for another writer's lock (CallRecorder._commit
    keeps the rows and tries again when the database is busy)."""

    def __init__(self, db: Path):
        self.con = sqlite3.connect(str(db), timeout=BUSY_WAIT_S, check_same_thread=False)
        # In WAL mode NORMAL keeps every commit through a killed process (only a power cut may lose the last
        # second); FULL waited ~6 ms per commit for the disk and stalled the calls sharing a worker thread.
        self.con.execute("PRAGMA synchronous=NORMAL")

    def begin(self, call: tuple) -> None:
        with self.con:
            self.con.execute("INSERT INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?)", call)

    def commit(self, events: list, metrics: list, spans: list) -> None:
        with self.con:
            self.con.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", events)
            self.con.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?)", metrics)
            self.con.executemany("INSERT INTO redactions VALUES (?, ?, ?, ?, ?, ?)", spans)

    def finish(self, call_id: str, status: str, duration: float) -> None:
        with self.con:
            self.con.execute("UPDATE calls SET status = ?, duration_s = ? WHERE id = ?", (status, duration, call_id))

    def close(self) -> None:
        self.con.close()


def _reason(exc: Exception, where: Path) -> str:
    """One line naming what went wrong: a full disk by name, whatever the library's wording."""
    if _disk_full(exc, where):
        return f"disk full ({where})"
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG or _over_file_limit(where):
        return f"file size limit reached ({where})"
    text = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    return f"{text} ({where})"


def _busy(exc: Exception) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def _disk_full(exc: Exception, where: Path) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(exc, sqlite3.Error) and "full" in str(exc):
        return True
    try:  # libsndfile says only "System error.": look at the disk itself
        return shutil.disk_usage(where).free < 64 * 1024
    except OSError:
        return False


def _over_file_limit(where: Path) -> bool:
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit == resource.RLIM_INFINITY:
        return False
    try:
        sizes = [p.stat().st_size for p in (where / "audio").glob("*.flac")] + [(where / "calls.db").stat().st_size]
    except OSError:
        return False
    return max(sizes, default=0) >= limit - 64 * 1024


def _add_columns(con: sqlite3.Connection, table: str, columns: tuple) -> None:
    """Columns added since `table` first shipped, to a database made before them; any number of times (and by
    two processes opening one data directory at once: a column the other just added is no error)."""
    have = {row[1] for row in con.execute(f"PRAGMA table_info({table})")}
    for name, kind in columns:
        if name not in have:
            try:
                with con:
                    con.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc):
                    raise


def _private_dirs(*folders: Path) -> None:
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if folder.stat().st_mode & 0o777 != 0o700:
            folder.chmod(0o700)


def _private_files(folder: Path) -> None:
    """Files made before recordings were private (or by another umask) become private too."""
    for path in folder.iterdir():
        if path.is_file() and path.stat().st_mode & 0o077:
            path.chmod(0o600)


def _alive(pid) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
