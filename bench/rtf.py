"""Real-time factor of the acoustic analysis (VAD, loudness, conversation, cues) on a 10-minute call, one core,
run through the call session `calmline analyze` uses (no transcription, no outputs).

Prints JSON. Target: rtf <= 0.01 (one core follows 100 calls).
"""

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402

from audio.sources import array_frames  # noqa: E402
from monitor.analysis.pipeline import Pipeline  # noqa: E402
from monitor.session.session import CallSession  # noqa: E402
from synth import synth_call, turns_in_sequence  # noqa: E402

LINES = [
    ("agent", "Thank you for calling Northwind support, this is Sam, how can I help you today?"),
    ("customer", "Hi, I ordered a laptop three weeks ago and it still has not arrived."),
    ("agent", "I am sorry to hear that, let me look up your order for you."),
    ("customer", "It is the third time I am calling about it, and nobody tells me anything."),
    ("agent", "I understand how frustrating that is. I can see the parcel is with the courier."),
    ("customer", "Okay, so what happens now?"),
    ("agent", "I will send a replacement today and call you back within the hour."),
    ("customer", "Thank you, that works for me."),
]


def ten_minute_call(minutes: float = 10.0) -> dict[str, np.ndarray]:
    one = turns_in_sequence(*LINES, gap=0.7)
    length = one[-1].end + 0.7
    repeats = int(np.ceil(minutes * 60 / length))
    turns = []
    for r in range(repeats):
        turns += turns_in_sequence(*LINES, first=0.5 + r * length, gap=0.7)
    channels = synth_call(turns, bleed_db=-26, noise_dbfs=-62)
    n = int(minutes * 60 * 16000)
    return {k: v[:n] for k, v in channels.items()}


def main() -> None:
    channels = ten_minute_call()
    audio_s = len(channels["agent"]) / 16000
    Pipeline(transcribe=False).start()  # load the VAD model outside the timing
    best = None
    for _ in range(3):
        session = CallSession(transcribe=False)  # the acoustic analysis alone
        published = []
        session.publish = (published.append,)  # every event, as the overlay would get them
        start, cpu = time.perf_counter(), time.process_time()
        session.run(array_frames(channels))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        if best is None or wall < best[0]:
            best = (wall, cpu, len(published))
    wall, cpu, n_events = best
    print(json.dumps({
        "benchmark": "acoustic_rtf",
        "audio_s": round(audio_s, 1),
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "rtf": round(wall / audio_s, 5),
        "rtf_cpu": round(cpu / audio_s, 5),
        "calls_per_core": int(audio_s / cpu),
        "events": n_events,
        "target_rtf": 0.01,
    }))


if __name__ == "__main__":
    main()
