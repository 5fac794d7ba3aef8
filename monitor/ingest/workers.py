"""A few threads that run every ingested call's analysis in turn, off the event loop.

A thread per call looks simpler, but with dozens of calls the threads that have work all queue for
Python's GIL, and the event loop, which needs it for every message it moves, waits behind all of
them: pongs went out seconds late and the reference client hung up (bench/ingest.py, 50 calls). So
calls are actors instead: each has its own queue of work, and when it has some it is put on one
ready queue served by `threads` workers. A call is on the ready queue at most once, so its items
are handled one at a time and in order; a worker hands a busy call back after `budget_s` so that
one call's backlog never holds up the others.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from typing import Any, Callable

log = logging.getLogger("calmline.ingest")


class Actor:
    """Work items for one call, handled in order by whichever worker takes the call next."""

    def __init__(self, workers: "Workers", handle: Callable[[Any], bool]):
        """`handle(item)` does one item; it returns True when the actor is done (no more items will come)."""
        self._workers = workers
        self._handle = handle
        self._items: deque = deque()
        self._lock = threading.Lock()
        self._scheduled = False
        self.finished = False

    def post(self, item) -> None:
        """Queue an item (from any thread); the actor is scheduled if it was idle."""
        with self._lock:
            if self.finished:
                return
            self._items.append(item)
            if self._scheduled:
                return
            self._scheduled = True
        self._workers.schedule(self)

    def run(self, budget_s: float) -> None:
        """On a worker: handle items until none is left or the budget is spent (then go back in line)."""
        deadline = time.monotonic() + budget_s
        while True:
            with self._lock:
                if not self._items or self.finished:
                    self._scheduled = False
                    return
                item = self._items.popleft()
            if self._handle(item):
                with self._lock:
                    self.finished = True
                    self._items.clear()
                    self._scheduled = False
                return
            if time.monotonic() >= deadline:
                self._workers.schedule(self)  # still scheduled: its remaining items wait their turn
                return


class Workers:
    """`threads` daemon threads serving the actors that have work, first come first served."""

    def __init__(self, threads: int = 2, budget_s: float = 0.05, name: str = "ingest-worker"):
        self.budget_s = budget_s
        self._ready: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._serve, name=f"{name}-{i}", daemon=True) for i in range(threads)]
        for thread in self._threads:
            thread.start()

    def actor(self, handle: Callable[[Any], bool]) -> Actor:
        return Actor(self, handle)

    def schedule(self, actor: Actor) -> None:
        self._ready.put(actor)

    def stop(self, timeout: float = 10.0) -> None:
        for _ in self._threads:
            self._ready.put(None)
        for thread in self._threads:
            thread.join(timeout)

    def _serve(self) -> None:
        while True:
            actor = self._ready.get()
            if actor is None:
                return
            try:
                actor.run(self.budget_s)
            except Exception:  # the actor's handler reports its own errors; this keeps the worker alive
                log.exception("an ingest worker's call failed")
