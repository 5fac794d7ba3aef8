"""The stored recording is silenced over redacted words, whether the redaction comes while the audio is
held back, after it was written (repaired at the end), or never reaches the end (the recorder killed:
mended from the stored spans). Real FLAC files, a real SQLite store, a real SIGKILL."""

import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from audio import SAMPLE_RATE
from audio.silence import HoldBack, silence_file
from conftest import ROOT
from monitor.events import Transcript
from monitor.library.redaction import spans_of
from monitor.library.store import CallRecorder, Store

SECONDS = 10.0
# The customer's line 2.0-5.0 s; its redacted word 2.6-4.0 s, the word before it ends at 2.5 s.
LINE = Transcript(t=6.0, party="customer", start=2.0, end=5.0, text="card [card]",
                  words=[["card", 2.0, 2.5], ["[card]", 2.6, 4.0]])
PAD = 0.1
SILENT = (2.5, 5.1)  # back to the word before, on to the line's end plus the pad


def call_audio(seed=1):
    rng = np.random.default_rng(seed)
    n = int(SECONDS * SAMPLE_RATE) // 512 * 512
    return {p: (rng.uniform(-0.3, 0.3, n)).astype(np.float32) for p in ("agent", "customer")}


def record(tmp_path, hold_s, redact_audio=True, event_at=6.0, close=True):
    store = Store(tmp_path)
    rec = CallRecorder(store, "c1", "test", time.time(), "sam", redact_audio=redact_audio, hold_s=hold_s, pad_s=PAD)
    audio = call_audio()
    for i in range(0, len(audio["agent"]), 512):
        rec.write_audio({p: a[i : i + 512] for p, a in audio.items()})
        if i == int(event_at * SAMPLE_RATE) // 512 * 512:
            rec.write_events([LINE])
    if close:
        rec.close()
    return store, audio


def silent_where(stored, audio):
    """Per sample: True where the stored audio is silent in both channels, and checks it equals the
    input everywhere else."""
    original = np.stack([audio["agent"], audio["customer"]], axis=1)
    silent = np.all(stored == 0.0, axis=1)
    assert np.allclose(stored[~silent], original[~silent], atol=1e-4)
    return silent


@pytest.mark.parametrize("hold_s", [15.0, 3.0, 0.0], ids=["held", "partly-written", "all-written"])
def test_redacted_words_are_silent_in_the_recording_and_nothing_else(tmp_path, hold_s):
    store, audio = record(tmp_path, hold_s)
    call = store.call("c1")
    assert call["status"] == "ended"
    stored, rate = sf.read(store.audio_path(call), dtype="float32")
    assert len(stored) == len(audio["agent"])
    silent = silent_where(stored, audio)
    a, b = (round(x * rate) for x in SILENT)
    assert silent[a:b].all() and not silent[:a].any() and not silent[b:].any()
    assert store.redactions("c1") == [{"party": "customer", "start": SILENT[0], "end": SILENT[1],
                                       "label": "[card]", "silenced": True}]


def test_redact_audio_off_keeps_the_audio_and_the_spans(tmp_path):
    store, audio = record(tmp_path, 15.0, redact_audio=False)
    stored, _ = sf.read(store.audio_path(store.call("c1")), dtype="float32")
    assert not silent_where(stored, audio).any()
    assert [r["silenced"] for r in store.redactions("c1")] == [False]


KILLED = """
import os, signal, sys, time
sys.path.insert(0, {tests!r})
from test_redact_audio import record
store, _ = record(__import__("pathlib").Path({data!r}), hold_s=1.0, event_at=8.0, close=False)
time.sleep(1.5)  # the encoder thread writes and flushes what was released
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_recorder_killed_after_writing_unredacted_audio_is_silenced_when_mended(tmp_path):
    # The redaction comes at 8 s with 1 s held: its audio (2.5-5.1 s) is already in the file unsilenced.
    script = KILLED.format(tests=str(ROOT / "tests"), data=str(tmp_path))
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == -9, run.stderr
    store = Store(tmp_path)
    call = store.call("c1")
    assert call["status"] == "interrupted"
    stored, rate = sf.read(store.audio_path(call), dtype="float32")
    assert len(stored) > SILENT[1] * rate
    audio = call_audio()
    silent = silent_where(stored, {p: a[: len(stored)] for p, a in audio.items()})
    a, b = (round(x * rate) for x in SILENT)
    assert silent[a:b].all() and not silent[:a].any() and not silent[b:].any()


def test_spans_reach_the_neighbouring_words_and_the_lines_ends():
    line = {"party": "agent", "start": 1.0, "end": 9.0,
            "words": [["[number]", 1.4, 2.0], ["and", 2.3, 2.5], ["[email].", 3.0, 4.0], ["ok", 4.1, 4.2],
                      ["[card]", 6.0, 8.5]]}
    assert spans_of(line, 0.2) == [("agent", 1.0, 2.3, "[number]"), ("agent", 2.5, 4.2, "[email]"),
                                   ("agent", 4.2, 9.2, "[card]")]


def test_a_line_without_word_times_is_silenced_whole():
    line = {"party": "customer", "start": 3.0, "end": 4.2, "text": "[number].", "final": True, "words": []}
    assert spans_of(line, 0.25) == [("customer", 2.75, 4.45, "[number]")]
    assert spans_of({**line, "final": False}, 0.25) == [] and spans_of({**line, "text": "1734."}, 0.25) == []


def test_hold_back_silences_held_frames_and_lists_late_ones():
    out = []
    hold = HoldBack(out.append, hold=1000)
    for _ in range(10):
        hold.write(np.ones((300, 2), np.float32))
    assert hold.received == 3000 and hold.released == sum(len(b) for b in out) == 1800
    hold.silence(1500, 2500)
    hold.flush()
    data = np.concatenate(out)
    assert hold.late == [(1500, 1800)]
    assert (data[1800:2500] == 0).all() and (data[1500:1800] == 1).all() and (data[2500:] == 1).all()


def test_silence_file_keeps_format_length_and_mode(tmp_path):
    path = tmp_path / "a.flac"
    data = np.full((16000, 2), 0.25, np.float32)
    sf.write(str(path), data, SAMPLE_RATE, subtype="PCM_16")
    path.chmod(0o600)
    silence_file(path, [(100, 200), (15990, 20000)])
    out, rate = sf.read(str(path), dtype="float32")
    assert rate == SAMPLE_RATE and out.shape == data.shape and path.stat().st_mode & 0o777 == 0o600
    assert (out[100:200] == 0).all() and (out[15990:] == 0).all()
    assert np.allclose(out[:100], 0.25, atol=1e-4) and np.allclose(out[200:15990], 0.25, atol=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.flac"]
