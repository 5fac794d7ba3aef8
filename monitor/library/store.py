"""Every call, recorded: a SQLite database (WAL) of calls, events and a metrics timeline, and each
call's audio as a stereo FLAC written as the call goes.

Events are committed about once a second, audio flushed about once a second: a monitor killed
mid-call leaves every event and the audio up to about the last second. A call whose recorder died
is mended the next time it is opened (its FLAC header rewritten, its duration taken from its events).
A failing disk never stops a call: the recorder reports the problem once and the call goes on.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import re
import sqlite3
import time
from pathlib import Path

import numpy as np

from audio import SAMPLE_RATE
from audio.errors import AudioError
from audio.recording import FlacWriter, repair_flac

from ..errors import UsageError
from ..events import Event

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
"""
DIGIT_RUN = re.compile(r"\d(?:[\s,.-]?\d){5,}")
"""Six or more digits, spaced, dashed or comma-grouped as speech recognisers write card and account numbers."""


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "calmline"


def resolve_data_dir(option: str | None, configured: str) -> Path:
    """--data-dir, else $CALMLINE_DATA_DIR, else [store] data_dir, else ~/.local/share/calmline."""
    return Path(option or os.environ.get("CALMLINE_DATA_DIR") or configured or default_data_dir())


def mask_digits(text: str) -> str:
    return DIGIT_RUN.sub(lambda m: "#" * len(re.sub(r"\D", "", m.group())), text)


class Store:
    """The recorded calls in one data directory."""

    def __init__(self, data_dir: Path):
        self.dir = Path(data_dir)
        try:
            (self.dir / "audio").mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.dir / "calls.db"), timeout=10, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except OSError as exc:
            raise UsageError(f"{self.dir}: cannot use as data directory ({exc.strerror})") from None
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"{self.dir / 'calls.db'}: damaged or not a calmline database ({exc})") from None

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
        if call["status"] == "recording" and not _alive(call["pid"]):
            call = self._mend(call)
        return call

    def events(self, call_id: str) -> list[dict]:
        return [json.loads(row[0]) for row in
                self._query("SELECT json FROM events WHERE call_id = ? ORDER BY seq", (call_id,))]

    def audio_path(self, call: dict) -> Path:
        return self.dir / "audio" / call["audio"]

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"{self.dir / 'calls.db'}: damaged database ({exc})") from None

    def _mend(self, call: dict) -> dict:
        """A call whose recorder was killed: repair its audio, close it at its last event."""
        last = self._query("SELECT max(t) FROM events WHERE call_id = ?", (call["id"],))[0][0] or 0.0
        path = self.audio_path(call)
        try:
            frames = repair_flac(path) if path.exists() else 0
        except AudioError as exc:
            log.warning("%s", exc)
            frames = 0
        duration = max(last, frames / SAMPLE_RATE)
        with self.db:
            self.db.execute("UPDATE calls SET status = 'interrupted', duration_s = ? WHERE id = ?", (duration, call["id"]))
        return {**call, "status": "interrupted", "duration_s": duration}

    # --- retention -------------------------------------------------------------------------
    def purge(self, older_than_days: float) -> list[str]:
        """Delete calls that started more than `older_than_days` ago, with their events and audio."""
        cutoff = time.time() - older_than_days * 86400
        rows = self._query("SELECT id, audio FROM calls WHERE started_at < ? AND status != 'recording'", (cutoff,))
        with self.db:
            for call_id, audio in rows:
                for table, key in (("events", "call_id"), ("metrics", "call_id"), ("calls", "id")):
                    self.db.execute(f"DELETE FROM {table} WHERE {key} = ?", (call_id,))
        for _, audio in rows:
            (self.dir / "audio" / audio).unlink(missing_ok=True)
        return [row[0] for row in rows]


class CallRecorder:
    """Writes one call as it happens. Every method swallows storage errors after reporting them:
    recording is never worth stopping a live call for."""

    def __init__(self, store: Store, call_id: str, source: str, started_at: float, agent: str = "",
                 mask: bool = True, commit_every_s: float = 1.0):
        self.store, self.call_id, self.mask = store, call_id, mask
        self.commit_every_s = commit_every_s
        self.problem: str | None = None
        self.reported = False
        self._seq = 0
        self._pending: list[tuple] = []
        self._metrics: list[tuple] = []
        self._wpm = {"agent": None, "customer": None}
        self._last_commit = time.monotonic()
        self.audio = None
        self.duration = 0.0
        self._guard(self._open, source, started_at, agent or getpass.getuser())

    def _open(self, source, started_at, agent):
        name = f"{self.call_id}.flac"
        with self.store.db:
            self.store.db.execute("INSERT INTO calls VALUES (?, ?, ?, 0, ?, 'recording', ?, ?)",
                                  (self.call_id, agent, started_at, source, os.getpid(), name))
        self.audio = FlacWriter(self.store.dir / "audio" / name, SAMPLE_RATE, 2)

    def write_audio(self, frames: dict[str, np.ndarray]) -> None:
        if self.audio is not None and self.problem is None:
            self._guard(self.audio.write, np.stack([frames["agent"], frames["customer"]], axis=1))

    def write_events(self, batch: list[Event]) -> None:
        if self.problem is not None:
            return
        for event in batch:
            data = event.to_dict()
            if data["type"] == "transcript" and self.mask:
                data["text"] = mask_digits(data["text"])
                data["words"] = [[mask_digits(w), a, b] for w, a, b in data.get("words", [])]
            elif data["type"] == "levels":
                self._metrics.append((self.call_id, data["t"], data["levels"]["agent"], data["levels"]["customer"],
                                      data["talking"]["agent"], data["talking"]["customer"],
                                      self._wpm["agent"], self._wpm["customer"]))
            elif data["type"] == "pace":
                self._wpm.update(data["wpm"])
            self._pending.append((self.call_id, self._seq, data["t"], data["type"], json.dumps(data)))
            self._seq += 1
            self.duration = max(self.duration, data["t"])
        if time.monotonic() - self._last_commit >= self.commit_every_s:
            self._guard(self._commit)

    def _commit(self) -> None:
        with self.store.db:
            self.store.db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", self._pending)
            self.store.db.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?)", self._metrics)
        self._pending, self._metrics = [], []
        self._last_commit = time.monotonic()

    def close(self) -> None:
        if self.problem is None:
            self._guard(self._commit)
        if self.audio is not None:
            self._guard(self.audio.close)
        if self.problem is None:
            self._guard(self._finish)

    def _finish(self) -> None:
        with self.store.db:
            self.store.db.execute("UPDATE calls SET status = 'ended', duration_s = ? WHERE id = ?",
                                  (self.duration, self.call_id))

    def _guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except (OSError, sqlite3.Error, RuntimeError) as exc:
            if self.problem is None:
                self.problem = f"recording stopped: {_reason(exc)} in {self.store.dir}"
                log.error("%s", self.problem)


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc).splitlines()[0]


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
