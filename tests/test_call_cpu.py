"""The per-call CPU cuts (batched VAD, recorder and sentiment fed per block) leave the analysis as it was."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from audio import HOP
from audio.sources import Frame
from audio.vad import SileroVad
from monitor.analysis.pipeline import Pipeline
from synth import speak

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from cue_latency import interrupting_call  # noqa: E402


def frames(x):
    return x[: len(x) // HOP * HOP].reshape(-1, HOP)


def events_of(channels, block):
    """The call's events, its channels pushed `block` samples at a time (one HOP: one tick per push, so
    nothing is batched; 3200: a 200 ms ingest block, six ticks per push)."""
    pipe = Pipeline(call_id="same", source="test", transcribe=False)
    out = pipe.start(0.0)
    n = min(len(x) for x in channels.values())
    for start in range(0, n, block):
        for name in ("customer", "agent"):
            out += pipe.push(Frame(name, start, channels[name][start:start + block]))
    out += pipe.finish()
    return [e.to_dict() for e in out]


def test_a_call_pushed_in_blocks_gives_the_events_of_one_tick_at_a_time():
    channels = interrupting_call(3)  # its agent bleeds into the customer's line at -26 dB: batches miss too
    runs = []
    original = SileroVad._run

    def counted(self, rows, h, c):
        runs.append(len(rows))
        return original(self, rows, h, c)

    SileroVad._run = counted
    try:
        one = events_of(channels, HOP)
        unbatched = len(runs)
        runs.clear()
        blocks = events_of(channels, 3200)
    finally:
        SileroVad._run = original
    assert blocks == one
    assert any(e["type"] == "interruption" for e in one)
    assert max(runs) > 1, "no frames were batched"
    assert len(runs) < 0.7 * unbatched, (len(runs), unbatched)


def test_a_batch_answers_only_the_frames_it_was_worked_out_for():
    speech = frames(speak("Let me check that order for you, it will only take a moment.", level_dbfs=-24))
    tone = np.tile(0.3 * np.sin(2 * np.pi * np.arange(64) / 64), HOP // 64 * len(speech))
    tone = frames(tone.astype(np.float32))  # every frame the same: only its place tells them apart
    for x in (speech, tone):
        plain, batched = SileroVad(), SileroVad()
        want, got = [], []
        for start in range(0, len(x) - 6, 6):
            block = x[start:start + 6]
            batched.prefetch(block, np.ones(6, bool))
            for i, f in enumerate(block):
                if i == 2:  # the caller gates a frame it expected to run (bleed)
                    plain.context(f)
                    batched.context(f)
                else:
                    want.append(plain(f))
                    got.append(batched(f))
            if start == 12:
                plain.reset()
                batched.reset()
        assert got == want


def test_priming_in_one_batch_is_running_each_frame_in_turn():
    speech = frames(speak("Thank you for calling, how can I help you today?", level_dbfs=-24))
    one, batch = SileroVad(), SileroVad()
    for f in speech[:4]:
        one(f)
    batch.prime(list(speech[:4]))
    assert [one(f) for f in speech[4:]] == [batch(f) for f in speech[4:]]


def test_call_cpu_bench_prints_json():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "call_cpu.py"), "--repeat", "1"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT, check=True)
    data = json.loads(out.stdout)
    assert data["benchmark"] == "call_cpu" and data["cpu_s_per_audio_s"] > 0 and data["events_per_call"] > 10
    bad = subprocess.run([sys.executable, str(ROOT / "bench" / "call_cpu.py"), "--repeat", "0"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert bad.returncode != 0 and "--repeat" in bad.stderr and "Traceback" not in bad.stderr
