"""CPU seconds one acoustic-only ingested call costs per second of its audio (the pool's per-call cost).

One recorded call (the bench's interrupting call, stereo 8 kHz, 200 ms blocks as the routes post them)
goes through `CallWork` as fast as it can, `--repeat` times, with a temporary store; CPU counts this
process and its threads (the FLAC encoder). `--profile N` prints the N costliest functions instead.
Prints JSON. The machine is shared: compare runs made together.

    python bench/call_cpu.py [--repeat 3] [--profile 25]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

import numpy as np  # noqa: E402
import soxr  # noqa: E402

from cue_latency import interrupting_call  # noqa: E402
from monitor.config import Config  # noqa: E402
from monitor.ingest.callwork import CallWork  # noqa: E402
from monitor.library.store import Store  # noqa: E402
from monitor.session.session import CallSession  # noqa: E402

RATE = 8000
STEP = 1600  # 200 ms at 8 kHz
PARTIES = ["customer", "agent"]


def one_call(audio: np.ndarray, store: Store, config: Config, n: int) -> int:
    """Run one call through CallWork; returns its event count."""
    session = CallSession(config=config, source=f"bench:{n}", transcribe=False, live=True, store=store)
    work = CallWork(session, RATE, "audiohook", time.time(), f"bench-{n}")
    work.handle(("start",))
    for k in range(len(audio) // STEP):
        work.handle(("audio", k * STEP, audio[k * STEP:(k + 1) * STEP], PARTIES))
    work.handle(("end", "bench over", False))
    return len(work.done.result.events) if work.done and work.done.result else 0


def interleaved(audio: np.ndarray, store: Store, config: Config, calls: int, seconds: float) -> None:
    """`calls` calls at once, block by block in real time on this thread (as a worker's thread meets them:
    each call's state cold in the caches), for `seconds`."""
    works = []
    for n in range(calls):
        session = CallSession(config=config, source=f"bench:{n}", transcribe=False, live=True, store=store)
        works.append(CallWork(session, RATE, "audiohook", time.time(), f"bench-{n}"))
        works[-1].handle(("start",))
    blocks = len(audio) // STEP
    t0 = time.perf_counter()
    for k in range(int(seconds / 0.2)):
        for i, work in enumerate(works):
            delay = t0 + k * 0.2 + i * 0.2 / calls - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            j = (k + i * 7) % blocks
            work.handle(("audio", k * STEP, audio[j * STEP:(j + 1) * STEP], PARTIES))
    for work in works:
        work.handle(("end", "bench over", False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--barge-ins", type=int, default=4)
    parser.add_argument("--calls", type=int, default=0,
                        help="instead: this many calls at once in real time for --seconds (audio s = calls x seconds)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--profile", type=int, default=0, help="print the N costliest functions (cumulative)")
    args = parser.parse_args()
    if args.repeat < 1 or args.calls < 0 or args.seconds <= 0:
        sys.exit("call_cpu: --repeat must be at least 1, --calls at least 0, --seconds above 0")
    channels = interrupting_call(args.barge_ins)
    audio = soxr.resample(np.stack([channels["customer"], channels["agent"]], 1), 16000, RATE).astype(np.float32)
    seconds = len(audio) / RATE
    config = Config()
    if config.sentiment.enabled and config.sentiment.pitch:
        from monitor.analysis.sentiment import _load_librosa

        _load_librosa()  # as in a worker that has run for a while: pitch is read from the first spurt
    with tempfile.TemporaryDirectory() as data:
        store = Store(Path(data))
        one_call(audio, store, config, -1)  # warm: model session, imports
        profile = cProfile.Profile(time.thread_time) if args.profile else None  # CPU, not waits for the GIL
        cpu0, main0, wall0 = time.process_time(), time.thread_time(), time.perf_counter()
        if profile:
            profile.enable()
        if args.calls:
            interleaved(audio, store, config, args.calls, args.seconds)
            events, seconds, args.repeat = [None], args.seconds, args.calls
        else:
            events = [one_call(audio, store, config, n) for n in range(args.repeat)]
        if profile:
            profile.disable()
        cpu, main, wall = time.process_time() - cpu0, time.thread_time() - main0, time.perf_counter() - wall0
        store.close()
    if profile:
        pstats.Stats(profile, stream=sys.stderr).sort_stats("tottime").print_stats(args.profile)
    print(json.dumps({"benchmark": "call_cpu", "audio_s_per_call": round(seconds, 1), "calls": args.repeat,
                      "events_per_call": events[0], "cpu_s_per_audio_s": round(cpu / (seconds * args.repeat), 5),
                      "main_thread_cpu_s_per_audio_s": round(main / (seconds * args.repeat), 5),
                      "wall_s_per_audio_s": round(wall / (seconds * args.repeat), 5),
                      "load_average": [round(x, 1) for x in os.getloadavg()]}))


if __name__ == "__main__":
    main()
