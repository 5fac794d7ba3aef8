"""Threads in the server process or worker processes: which keeps N calls' analysis on time?

N calls are fed as the ingest routes feed them (a 200 ms stereo block at 8 kHz per call every 200 ms,
staggered, as the reference client sends them), with each call recorded into a temporary store,
either to `monitor.ingest.workers` (2 threads of this process: `[ingest] processes = 0`) or to
`monitor.ingest.pool` (worker processes: `processes = -1`, one per core). It measures each block's
wait from being posted to being analysed (the analysing side's acknowledgement, what the route's
10 s back-pressure limit counts), how late a thread standing in for the event loop wakes from a
10 ms sleep, and the CPU seconds of this process and its workers per call-second. Prints JSON; no
network, no speech model. The machine is shared: modes are interleaved, and the load average is noted.

    python bench/ingest_workers.py [--calls 100] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

import numpy as np  # noqa: E402
import soxr  # noqa: E402

from cue_latency import interrupting_call  # noqa: E402
from monitor.config import Config  # noqa: E402
from monitor.ingest.callwork import CallWork  # noqa: E402
from monitor.ingest.pool import CallSpec, PoolOptions, ProcessPool  # noqa: E402
from monitor.ingest.workers import Workers  # noqa: E402
from monitor.library.store import Store  # noqa: E402
from monitor.session.session import CallSession  # noqa: E402

RATE = 8000
STEP = 1600  # 200 ms at 8 kHz
PARTIES = ["customer", "agent"]


class Lag:
    """Per call, the blocks posted and not yet acknowledged: each block's wait when its ack comes."""

    def __init__(self, out: list):
        self.posted: deque = deque()
        self.lock = threading.Lock()
        self.out = out
        self.owed = 0

    def post(self, n: int) -> None:
        with self.lock:
            self.posted.append([n, time.perf_counter()])

    def ack(self, n: int) -> None:
        now = time.perf_counter()
        with self.lock:
            self.owed += n
            while self.posted and self.owed >= self.posted[0][0]:
                size, t = self.posted.popleft()
                self.owed -= size
                self.out.append(now - t)


def cpu_of(pids: list[int]) -> float:
    """CPU seconds of these processes so far (the workers, after their start-up)."""
    ticks, total = os.sysconf("SC_CLK_TCK"), 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def run(mode: str, calls: int, seconds: float, audio: np.ndarray, data: Path, call_threads: int = 0) -> dict:
    lags: list[float] = []
    loop_lags: list[float] = []
    config = Config()
    store = Store(data)
    lag = [Lag(lags) for _ in range(calls)]
    pool = workers = None
    ends = []
    if mode == "processes":
        pool = ProcessPool(PoolOptions(config, str(data), False, os.cpu_count() or 1, call_threads=call_threads))
        pool.start()
        posts = []
        for i in range(calls):
            spec = CallSpec(config, f"bench:{i}", False, RATE, "audiohook", time.time(), f"bench-{i}")
            call = pool.open(spec, lambda e: None, lag[i].ack, lambda done: None, lambda *a: None)
            posts.append(call.post)
    else:
        workers = Workers(2)
        posts = []
        for i in range(calls):
            session = CallSession(config=config, source=f"bench:{i}", transcribe=False, live=True, store=store)
            work = CallWork(session, RATE, "audiohook", time.time(), f"bench-{i}")

            def handle(item, work=work, lag=lag[i]):
                if item[0] == "audio":
                    lag.ack(len(item[2]))
                return work.handle(item)

            actor = workers.actor(handle)
            actor.post(("start",))
            posts.append(actor.post)
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            t = time.perf_counter()
            time.sleep(0.01)
            loop_lags.append(time.perf_counter() - t - 0.01)

    threading.Thread(target=loop, daemon=True).start()
    blocks = len(audio) // STEP
    pids = [w.process.pid for w in pool.workers] if pool is not None else []
    cpu0, kids0 = time.process_time(), cpu_of(pids)
    t0, k = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        for i in range(calls):
            delay = t0 + k * 0.2 + i * 0.2 / calls - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            j = (k + i * 7) % blocks  # calls at different places in the call
            lag[i].post(STEP)
            posts[i](("audio", k * STEP, audio[j * STEP:(j + 1) * STEP], PARTIES))
        k += 1
    for i in range(calls):
        posts[i](("end", "bench over", False))
        ends.append(i)
    time.sleep(1.0)
    stop.set()
    cpu, cpu_kids = time.process_time() - cpu0, cpu_of(pids) - kids0
    if pool is not None:
        pool.stop()
    else:
        workers.stop()
    store.close()

    def ms(values, q):
        return round(float(np.percentile(values, q)) * 1000, 1) if values else None

    total = cpu + cpu_kids
    return {"mode": mode, "calls": calls, "call_threads": call_threads if pool else None, "blocks_analysed": len(lags), "blocks_posted": calls * k,
            "block_wait_ms": {"p50": ms(lags, 50), "p95": ms(lags, 95), "max": ms(lags, 100)},
            "loop_wake_late_ms": {"p95": ms(loop_lags, 95), "max": ms(loop_lags, 100)},
            "cpu_s": {"this_process": round(cpu, 1), "worker_processes": round(cpu_kids, 1)},
            "cpu_share_per_call": round(total / (calls * seconds), 4),
            "load_average": [round(x, 1) for x in os.getloadavg()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--modes", default="threads,processes,threads,processes",
                        help="threads, processes, or processes:T (T threads per worker process)")
    args = parser.parse_args()
    channels = interrupting_call(2)
    audio = soxr.resample(np.stack([channels["customer"], channels["agent"]], 1), 16000, RATE).astype(np.float32)
    out = {"benchmark": "ingest_workers", "cores": os.cpu_count(), "runs": []}
    for mode in args.modes.split(","):  # interleaved: the machine is shared
        mode, _, threads = mode.partition(":")
        with tempfile.TemporaryDirectory() as data:
            out["runs"].append(run(mode, args.calls, args.seconds, audio, Path(data), int(threads or 0)))
        print(json.dumps(out["runs"][-1]), file=sys.stderr, flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
