"""Redaction costs: the redactor's time per transcript line (text and words), and what redacting the
audio adds to recording: the hold-back per 32 ms tick, its memory, and the re-encoding at the end of
a call whose redactions all came too late (the worst case). Prints JSON."""

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from audio import HOP, SAMPLE_RATE  # noqa: E402
from monitor.analysis.redact import Redactor  # noqa: E402
from monitor.config import RedactConfig  # noqa: E402
from monitor.events import Transcript  # noqa: E402
from monitor.library.store import CallRecorder, Store  # noqa: E402

LINES = [
    "Thank you for calling Northwind support, my name is Sam, how can I help you today?",
    "I ordered a laptop three weeks ago and it still has not arrived, this is the third time I am calling.",
    "My card number is 4539. 1488. 0343. 6467. and the expiry is 04 27.",
    "Let me read that back: four five three nine, one four double eight, oh three four three, six four six seven.",
    "My email is john dot smith at example dot com, I will call you back in 2 minutes.",
    "It was $49.99 in 2019 and the order was 3 of 5.",
]


def line(text: str, i: int) -> Transcript:
    words = [[w, i * 10 + k * 0.3, i * 10 + k * 0.3 + 0.25] for k, w in enumerate(text.split())]
    return Transcript(t=i * 10 + 8, party="customer" if i % 2 else "agent", start=i * 10.0, end=i * 10 + 8.0,
                      text=text, final=True, words=words)


def redactor_cost(rounds: int = 300) -> dict:
    events = [line(LINES[i % len(LINES)], i) for i in range(rounds * len(LINES))]
    redactor = Redactor(RedactConfig())
    times = []
    for event in events:
        t0 = time.perf_counter()
        redactor(event)
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"lines": len(times), "median_us": round(statistics.median(times) * 1e6, 1),
            "p99_us": round(times[int(len(times) * 0.99)] * 1e6, 1),
            "words_per_line": round(statistics.mean(len(e.words) for e in events), 1)}


def record(data: Path, minutes: float, hold_s: float, late: bool) -> dict:
    """Record `minutes` of noise as fast as possible, with a redacted word every 20 s (arriving at once,
    or after its audio was written when `late`): the time per tick in the pipeline's thread, and the
    time to close (the encoder thread catching up, and for late redactions the re-encoding)."""
    store = Store(data)
    rec = CallRecorder(store, "bench", "bench", time.time(), "sam", redact_audio=True, hold_s=hold_s)
    rng = np.random.default_rng(0)
    block = {p: rng.uniform(-0.2, 0.2, HOP).astype(np.float32) for p in ("agent", "customer")}
    ticks = int(minutes * 60 * SAMPLE_RATE / HOP)
    lag = 60.0 if late else 1.0
    every = int(20 * SAMPLE_RATE / HOP)
    t0 = time.perf_counter()
    for k in range(ticks):
        rec.write_audio({p: b.copy() for p, b in block.items()})
        if k % every == every - 1:
            t = (k + 1) * HOP / SAMPLE_RATE - lag
            if t > 0:
                rec.write_events([Transcript(t=t + lag, party="customer", start=t, end=t + 0.8, text="[number]",
                                             words=[["[number]", t, t + 0.8]])])
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    rec.close()
    close_s = time.perf_counter() - t0
    store.close()
    return {"per_tick_us": round(write_s / ticks * 1e6, 1), "close_s": round(close_s, 3),
            "total_s": round(write_s + close_s, 3)}


def main():
    out = {"benchmark": "redact", "redactor": redactor_cost()}
    minutes = 10
    runs = {"plain": (0.0, False), "held": (15.0, False), "late": (15.0, True)}
    best = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(3):  # interleaved, best of three: the machine is shared
            for name, (hold_s, late) in runs.items():
                result = record(Path(tmp) / f"{name}{i}", minutes, hold_s, late)
                if name not in best or result["total_s"] < best[name]["total_s"]:
                    best[name] = result
    plain, held, late = best["plain"], best["held"], best["late"]
    out["recording"] = {
        "call_minutes": minutes,
        "no_hold": plain,
        "hold_15s": held,
        "hold_15s_all_redactions_late": late,
        "hold_memory_mb_per_call": round(15.0 * SAMPLE_RATE * 2 * 4 / 1e6, 2),
        "tick_us_of_audio": round(HOP / SAMPLE_RATE * 1e6),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
