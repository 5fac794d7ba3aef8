"""Worker processes that analyse the server's ingested calls (`[ingest] processes`, one per core by default).

One Python process has one GIL: with every call's pipeline on threads of the server process, the
calls and the event loop shared one core however many the machine has. So each call is owned by one
worker process, which runs its `CallWork` (timeline, pipeline, recording) and sends its events back;
the server process only speaks the protocols and moves bytes. Each worker opens the store itself
(SQLite in WAL mode takes writers from several processes; a recorder waits out a busy lock) and
loads its own models once, at its start (one speech model per process, not per call).

Messages cross a pipe per worker, pickled in batches: everything queued for a worker goes in one
write, and a worker answers a batch with one write holding its events, how many samples of each call
it has analysed (the route's back-pressure) and the calls it finished.

A worker that dies (killed, out of memory, a crash in native code) takes only its own calls: each
ends as interrupted, its recording mended as the store mends any recorder that died (FLAC header
rewritten, status `interrupted`), a `device` lost and a `call_end` event go to its outputs, and a new
process takes the dead one's place.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import Config

log = logging.getLogger("calmline.ingest")

FLUSH_S = 0.01
"""A worker sends what it has at least this often while it works through a long batch (cue latency)."""
BATCH_MAX = 2000
"""Items in one message to a worker at most."""
CALL_THREADS = 2
"""Threads that run a worker process's calls (see worker_main)."""
START_TIMEOUT_S = 120.0
"""How long a new worker may take to load its models before the server stops waiting for it."""
RESTARTS = 3
"""Replacements in a row that may die before they are ready (a broken install) before the pool stops trying."""


class PoolError(RuntimeError):
    """A worker process could not start."""


@dataclass
class PoolOptions:
    """What every worker process needs: the base configuration (each call brings its own), where the
    store is, whether calls are transcribed, and the model threads each process may use."""

    config: Config
    data_dir: str | None         # None: calls are not recorded
    transcribe: bool | None
    processes: int
    log_level: int = logging.WARNING
    store_url: str = ""          # the store's backend, as `open_store` takes it (empty: SQLite in data_dir)
    call_threads: int = 0        # threads running each worker's calls (0: CALL_THREADS)


@dataclass
class CallSpec:
    """Opens a call in a worker: the call's configuration (its agent in [store] agent_name) and source."""

    config: Config
    source: str
    transcribe: bool | None
    rate: int
    protocol: str
    started_at: float
    name: str


class PoolCall:
    """A call as the server sees it while a worker process analyses it.

    The callbacks are called on the worker's reader thread: `on_event(event)` for each event,
    `on_ack(samples)` as audio is analysed, `on_done(WorkDone)` once, or `on_lost(reason, call_id, t)`
    once if its process died first.
    """

    def __init__(self, key: int, on_event, on_ack, on_done, on_lost):
        self.key = key
        self.on_event, self.on_ack, self.on_done, self.on_lost = on_event, on_ack, on_done, on_lost
        self.worker: _Worker | None = None
        self.call_id: str | None = None
        self.last_t = 0.0
        self.over = False

    def post(self, item) -> None:
        worker = self.worker
        if not self.over and worker is not None:
            worker.out.put((self.key, item))

    @property
    def pid(self) -> int | None:
        return self.worker.process.pid if self.worker is not None else None


class ProcessPool:
    """`processes` worker processes; each call goes to the one with the fewest calls."""

    def __init__(self, options: PoolOptions):
        self.options = options
        self._keys = itertools.count(1)
        self._lock = threading.Lock()
        self._stopping = False
        self._failures = 0
        self.replaced = 0
        self.workers: list[_Worker] = []

    def start(self) -> None:
        """Start every worker and wait until each has loaded its models; PoolError if one cannot."""
        self.workers = [_Worker(self, i) for i in range(self.options.processes)]
        for worker in self.workers:
            if not worker.wait_ready(START_TIMEOUT_S):
                code = worker.process.exitcode
                self.stop(5)
                why = f"exit code {code}" if code is not None else f"not ready after {START_TIMEOUT_S:g} s"
                raise PoolError(f"an ingest worker process did not start ({why}; see its log above)")

    def open(self, spec: CallSpec, on_event: Callable, on_ack: Callable, on_done: Callable,
             on_lost: Callable) -> PoolCall:
        call = PoolCall(next(self._keys), on_event, on_ack, on_done, on_lost)
        with self._lock:
            alive = [w for w in self.workers if w.alive]
            if alive:
                worker = min(alive, key=lambda w: (not w.ready.is_set(), len(w.calls)))
                worker.calls[call.key] = call
                call.worker = worker
        if not alive:
            call.over = True
            on_lost("no call analysis process is running (see the log)", None, 0.0)
            return call
        worker.out.put((call.key, ("open", spec)))
        return call

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping = True
        for worker in list(self.workers):
            worker.out.put(None)
        deadline = time.monotonic() + timeout
        for worker in list(self.workers):
            worker.process.join(max(0.1, deadline - time.monotonic()))
            if worker.process.is_alive():
                log.warning("ingest worker %d did not stop; killing it", worker.process.pid)
                worker.process.kill()
                worker.process.join(5)
            worker.reader.join(5)

    # ---- from a worker's reader thread ----
    def _died(self, worker: "_Worker") -> None:
        worker.process.join(5)  # reaped: its pid is gone, so the store sees its recorders as dead
        with self._lock:
            worker.alive = False
            worker.died.set()
            calls, worker.calls = list(worker.calls.values()), {}
            self._failures = 0 if worker.ready.is_set() else self._failures + 1
            replace = not self._stopping and worker in self.workers and self._failures < RESTARTS
            if replace:
                index = self.workers.index(worker)
                self.workers[index] = _Worker(self, index)
                self.replaced += 1
        if not self._stopping and not replace and worker in self.workers:
            log.error("ingest worker processes keep dying before they are ready; not starting another")
        if calls or replace:
            log.error("ingest worker process %s died (exit code %s) with %d call(s)%s", worker.process.pid,
                      worker.process.exitcode, len(calls), "; starting another" if replace else "")
        reason = f"call analysis process died (exit code {worker.process.exitcode})"
        for call in calls:
            call.over = True
            try:
                call.on_lost(reason, call.call_id, call.last_t)
            except Exception:  # noqa: BLE001 - one call's outputs must not keep the others from ending
                log.exception("ending call %s after its worker died", call.call_id)


class _Worker:
    """The server's end of one worker process: a sender thread, a reader thread, the calls it owns."""

    def __init__(self, pool: ProcessPool, index: int):
        ctx = multiprocessing.get_context("spawn")  # not fork: the server has threads and an event loop
        self.pool = pool
        self.calls: dict[int, PoolCall] = {}
        self.out: queue.SimpleQueue = queue.SimpleQueue()
        self.ready = threading.Event()
        self.died = threading.Event()
        self.alive = True
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=worker_main, args=(child, pool.options), daemon=True,
                                   name=f"calmline-ingest-{index}")
        self.process.start()
        child.close()
        self.sender = threading.Thread(target=self._send, name=f"ingest-send-{index}", daemon=True)
        self.reader = threading.Thread(target=self._read, name=f"ingest-read-{index}", daemon=True)
        self.sender.start()
        self.reader.start()

    def wait_ready(self, timeout: float) -> bool:
        """True once the worker has loaded its models; False if it died first or took too long."""
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.05):
            if self.died.is_set() or time.monotonic() > deadline:
                return False
        return True

    def _send(self) -> None:
        stop = False
        while not stop:
            batch = [self.out.get()]
            while len(batch) < BATCH_MAX:
                try:
                    batch.append(self.out.get_nowait())
                except queue.Empty:
                    break
            if None in batch:
                stop = True
                batch = batch[:batch.index(None)] + [(0, ("stop",))]
            try:
                self.conn.send_bytes(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
            except (OSError, ValueError):
                return  # the process is gone: the reader finds out and ends its calls

    def _read(self) -> None:
        while True:
            try:
                messages = pickle.loads(self.conn.recv_bytes())
            except (EOFError, OSError):
                break
            except Exception:  # noqa: BLE001 - a message we cannot read: treat the worker as broken
                log.exception("unreadable message from ingest worker %s", self.process.pid)
                self.process.kill()
                break
            for message in messages:
                self._dispatch(message)
        self.out.put(None)  # the sender stops too
        self.pool._died(self)

    def _dispatch(self, message) -> None:
        kind = message[0]
        if kind == "ev":
            call = self.calls.get(message[1])
            if call is None:
                return
            event = message[2]
            if event.type == "call_start":
                call.call_id = event.call_id
            call.last_t = max(call.last_t, event.t)
            call.on_event(event)
        elif kind == "ack":
            for key, samples in message[1].items():
                call = self.calls.get(key)
                if call is not None:
                    call.on_ack(samples)
        elif kind == "done":
            call = self.calls.pop(message[1], None)
            if call is not None:
                call.over = True
                call.on_done(message[2])
        elif kind == "ready":
            self.ready.set()


# ---- inside a worker process ----

class _Outbox:
    """What a worker sends back, gathered from its call threads and sent by one thread in one write every
    FLUSH_S: events, acknowledgements and finished calls, in the order they happened. The call threads
    only append (no lock, no wake-up per event: a notify per event cost more than the write)."""

    def __init__(self, conn):
        self.conn = conn
        self.items: deque = deque()
        self.acks: deque = deque()
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ingest-outbox", daemon=True)
        self.thread.start()

    def publisher(self, key: int) -> Callable:
        items = self.items

        def publish(event) -> None:
            items.append(("ev", key, event))
        return publish

    def put(self, item) -> None:
        self.items.append(item)

    def ack(self, key: int, samples: int) -> None:
        self.acks.append((key, samples))

    def close(self) -> None:
        """Send what is left and stop."""
        self.closed.set()
        self.thread.join(10)

    def _run(self) -> None:
        while True:
            closed = self.closed.wait(FLUSH_S)
            items = [self.items.popleft() for _ in range(len(self.items))]
            if self.acks:
                acks: dict[int, int] = {}
                for _ in range(len(self.acks)):
                    key, samples = self.acks.popleft()
                    acks[key] = acks.get(key, 0) + samples
                items.append(("ack", acks))
            if items:
                try:
                    self.conn.send_bytes(pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL))
                except OSError:
                    return  # the server is gone
            if closed:
                return


def worker_config(options: PoolOptions, config: Config) -> Config:
    """The call's configuration in a worker: the model's threads shared out between the processes."""
    cores = os.cpu_count() or 1
    threads = max(1, min(config.transcription.threads, cores // max(1, options.processes)))
    if threads == config.transcription.threads:
        return config
    return dataclasses.replace(config, transcription=dataclasses.replace(config.transcription, threads=threads))


def _warm_up(config: Config, transcribe: bool | None, pipeline) -> None:
    """Everything a call loads on first use, loaded before the worker says it is ready: the VAD, the speech
    model when transcribing, and librosa's pitch tracker for the customer's sentiment (its import and
    JIT compile take seconds of CPU that would otherwise land on the first calls)."""
    pipeline(config, call_id="warm-up", transcribe=transcribe, live=True).close()
    sentiment = getattr(config, "sentiment", None)
    if sentiment is not None and sentiment.enabled and getattr(sentiment, "pitch", False):
        from ..analysis.sentiment import median_pitch

        median_pitch(np.zeros(16000, np.float32), wait=True)


def worker_main(conn, options: PoolOptions) -> None:
    """A worker process: open the store, load the models, then run calls as the server's messages say.

    Its calls are actors on CALL_THREADS threads (workers.Workers), as in the server process with
    `processes` 0: a call's items are handled in order, and while one call's recorder waits on the
    disk (a commit's fsync) or a model runs outside the GIL, another call's audio is analysed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server stops us (Ctrl-C reaches the whole group)
    logging.basicConfig(level=options.log_level, format="calmline[%(process)d] %(levelname)s %(name)s: %(message)s")
    from ..analysis.pipeline import Pipeline
    from ..library.store import open_store
    from ..session.session import CallSession
    from .callwork import CallWork
    from .workers import Workers

    store = open_store(Path(options.data_dir), options.store_url) if options.data_dir else None
    _warm_up(worker_config(options, options.config), options.transcribe, Pipeline)
    gc.freeze()  # the libraries' objects loaded so far are never garbage: full collections skip them
    out = _Outbox(conn)
    threads = Workers(options.call_threads or CALL_THREADS, name="ingest-call")
    calls: dict[int, object] = {}   # key -> the call's actor, while it runs
    lock = threading.Lock()
    all_done = threading.Condition(lock)
    out.put(("ready", os.getpid()))

    def actor_for(key: int, work: CallWork):
        def handle(item) -> bool:
            over = work.handle(item)
            if item[0] == "audio":
                out.ack(key, len(item[2]))
            if over:
                out.put(("done", key, work.done))
                with lock:
                    calls.pop(key, None)
                    all_done.notify_all()
            return over
        return threads.actor(handle)

    while True:
        try:
            batch = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            break  # the server is gone
        if any(item[0] == "stop" for _, item in batch):
            batch = batch[:next(i for i, (_, item) in enumerate(batch) if item[0] == "stop")]
            stopping = True
        else:
            stopping = False
        for key, item in batch:
            if item[0] == "open":
                spec: CallSpec = item[1]
                session = CallSession(config=worker_config(options, spec.config), source=spec.source,
                                      transcribe=spec.transcribe, live=True, store=store,
                                      publish=[out.publisher(key)])
                actor = actor_for(key, CallWork(session, spec.rate, spec.protocol, spec.started_at, spec.name))
                with lock:
                    calls[key] = actor
                actor.post(("start",))
                continue
            with lock:
                actor = calls.get(key)
            if actor is not None:
                actor.post(item)
        if stopping:
            break
    with lock:  # the server stopped (or went away) before ending these calls
        running = list(calls.values())
    for actor in running:
        actor.post(("end", "server stopped", True))
    with lock:
        all_done.wait_for(lambda: not calls, timeout=60)
    threads.stop()
    out.close()
