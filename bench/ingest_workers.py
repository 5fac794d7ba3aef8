"""A thread per call, or a few workers serving every call: which keeps calls and the event loop on time?

N calls' pipelines are fed a 200 ms frame each (both parties) every 200 ms, staggered, as the ingest
routes feed them, either through a queue and thread per call or through `monitor.ingest.workers`
(2 threads). It measures each frame's wait from being posted to being analysed, and how late a
thread standing in for the event loop wakes from a 10 ms sleep (what the loop suffers when the
analysis threads hold the GIL). Prints JSON; no network, no model but the VAD.

    python bench/ingest_workers.py [--calls 40] [--seconds 15]
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

import numpy as np  # noqa: E402

from audio.sources import Frame  # noqa: E402
from cue_latency import interrupting_call  # noqa: E402
from monitor.analysis.pipeline import Pipeline  # noqa: E402
from monitor.config import Config  # noqa: E402
from monitor.ingest.workers import Workers  # noqa: E402

STEP = 3200  # 200 ms at 16 kHz


def run(mode: str, calls: int, seconds: float, channels: dict) -> dict:
    frames = len(channels["agent"]) // STEP
    lags: list[float] = []
    loop_lags: list[float] = []

    def handler(pipeline):
        def handle(item):
            k, posted = item
            for party in ("agent", "customer"):
                pipeline.push(Frame(party, k * STEP, channels[party][k * STEP:(k + 1) * STEP]))
            lags.append(time.perf_counter() - posted)
            return False
        return handle

    pipelines = [Pipeline(Config(), transcribe=False) for _ in range(calls)]
    for p in pipelines:
        p.start()
    workers = None
    if mode == "workers":
        workers = Workers(2)
        post = [workers.actor(handler(p)).post for p in pipelines]
    else:
        queues = [queue.SimpleQueue() for _ in pipelines]

        def serve(q, handle):
            while (item := q.get()) is not None:
                handle(item)

        for q, p in zip(queues, pipelines):
            threading.Thread(target=serve, args=(q, handler(p)), daemon=True).start()
        post = [q.put for q in queues]
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            t = time.perf_counter()
            time.sleep(0.01)
            loop_lags.append(time.perf_counter() - t - 0.01)

    threading.Thread(target=loop, daemon=True).start()
    t0, k = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        for i in range(calls):
            delay = t0 + k * 0.2 + i * 0.2 / calls - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            post[i]((k % frames, time.perf_counter()))
        k += 1
    time.sleep(1.0)
    stop.set()
    if workers is not None:
        workers.stop()
    else:
        for q in queues:
            q.put(None)

    def ms(values, q):
        return round(float(np.percentile(values, q)) * 1000, 1)

    return {"mode": mode, "calls": calls,
            "frame_wait_ms": {"p50": ms(lags, 50), "p95": ms(lags, 95), "max": ms(lags, 100)},
            "loop_wake_late_ms": {"p95": ms(loop_lags, 95), "max": ms(loop_lags, 100)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    import os

    channels = interrupting_call(1)
    out = {"benchmark": "ingest_workers", "load_average": [round(x, 1) for x in os.getloadavg()], "runs": []}
    for mode in ("thread_per_call", "workers", "thread_per_call", "workers"):  # interleaved: the machine is shared
        out["runs"].append(run(mode, args.calls, args.seconds, channels))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
