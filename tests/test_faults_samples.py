"""Bad samples: NaN and infinities read as silence and counted in one warning; a file scaled far past
full scale is brought back to full scale with its speech intact; a writer thread that fails ends
the recording with a clear status instead of dying silently. Real files, real processes, real threads."""

import json

import numpy as np
import pytest
import soundfile as sf

from audio.decode import read_audio
from audio.recording import FlacWriter
from conftest import calmline
from monitor.library.store import CallRecorder, Store
from synth import barge_in_call


@pytest.fixture(scope="module")
def stereo():
    channels, _ = barge_in_call("My order never arrived and I have been waiting for three weeks now, it is not okay.")
    return np.stack([channels["agent"], channels["customer"]], axis=1)


def analyze(path, data_dir):
    run = calmline("analyze", path, "--no-transcribe", "--json", "--data-dir", data_dir)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    return json.loads(run.stdout), run.stderr.strip().splitlines()


def recorded(data_dir):
    (call,) = Store(data_dir).calls()
    audio, rate = sf.read(data_dir / "audio" / call["audio"])
    return call, audio


def test_nan_and_inf_samples_are_silence_counted_in_one_warning(stereo, tmp_path):
    reference, _ = analyze(_write(tmp_path / "clean.wav", stereo), tmp_path / "d0")
    bad = stereo.copy()
    bad[16000:16100, 0] = np.nan
    bad[32000:32010, 1] = np.inf
    bad[40000, 1] = -np.inf
    path = _write(tmp_path / "nan.wav", bad)
    report, warnings = analyze(path, tmp_path / "d1")
    assert warnings == [f"calmline: warning: {path}: 111 NaN or infinite samples read as silence"]
    assert report["interruptions"] == reference["interruptions"] and report["cues"] == reference["cues"]
    call, audio = recorded(tmp_path / "d1")
    assert call["status"] == "ended" and np.isfinite(audio).all()
    assert abs(len(audio) - len(stereo)) < 512 and np.abs(audio[16000:16100, 0]).max() == 0


@pytest.mark.parametrize("scale", [1e30, 1e6, 4.0])
def test_a_file_scaled_past_full_scale_keeps_its_speech(stereo, tmp_path, scale):
    reference, _ = analyze(_write(tmp_path / "clean.wav", stereo), tmp_path / "d0")
    path = _write(tmp_path / "loud.wav", stereo * np.float32(scale))
    report, warnings = analyze(path, tmp_path / "d1")
    (line,) = warnings
    assert line.startswith(f"calmline: warning: {path}: samples reach") and "scaled down to full scale" in line
    assert report["interruptions"] == reference["interruptions"]
    assert [c["kind"] for c in report["cues"]] == [c["kind"] for c in reference["cues"]]
    for party in ("agent", "customer"):
        assert report["parties"][party]["talk_s"] == pytest.approx(reference["parties"][party]["talk_s"], abs=0.3)
    call, audio = recorded(tmp_path / "d1")
    assert call["status"] == "ended"
    # the speech, not a clipped square wave: the recording follows the original's shape
    n = min(len(audio), len(stereo))
    assert np.corrcoef(audio[:n, 0], stereo[:n, 0])[0, 1] > 0.99
    assert np.abs(audio).max() <= 1.0 and np.mean(np.abs(audio[:n, 0]) > 0.99) < 0.001


def test_read_audio_gives_finite_samples_within_full_scale(stereo, tmp_path):
    bad = stereo * np.float32(1e30)
    bad[100:200] = np.nan
    audio = read_audio(_write(tmp_path / "bad.wav", bad))
    assert np.isfinite(audio).all() and np.abs(audio).max() == pytest.approx(1.0, abs=0.01)


def test_a_failing_writer_thread_is_heard_not_silent(tmp_path):
    """A block the encoder rejects fails on the writer's own thread; the next write says so."""
    writer = FlacWriter(tmp_path / "a.flac", 16000, 2, chunk_s=0.01)
    writer.write(np.zeros((1600, 2), np.float32))
    writer.write(np.zeros((1600, 3), np.float32))  # three channels into a stereo file
    with pytest.raises(Exception):
        for _ in range(200):  # the thread takes it in its own time
            writer.write(np.zeros((1600, 2), np.float32))
            import time
            time.sleep(0.01)
    assert writer.error is not None
    with pytest.raises(Exception):
        writer.close()


def test_a_writer_failure_ends_the_recording_with_a_clear_status(tmp_path):
    store = Store(tmp_path)
    recorder = CallRecorder(store, "c1", "test", 0.0, hold_s=0.0)  # audio straight to the writer
    tick = {"agent": np.full(512, 0.1, np.float32), "customer": np.zeros(512, np.float32)}
    for _ in range(125):
        recorder.write_audio(tick)
    recorder.audio.write(np.zeros((8000, 2), np.complex64))  # no encoder takes these: its thread fails
    for _ in range(400):
        recorder.write_audio(tick)
        if recorder.problem:
            break
        import time
        time.sleep(0.01)
    assert recorder.problem and recorder.problem.startswith("recording stopped: ")
    recorder.close()
    call = Store(tmp_path).call("c1")
    assert call["status"] == "interrupted"
    audio, _ = sf.read(tmp_path / "audio" / call["audio"])
    assert len(audio) >= 125 * 512 - 4000 and not list(tmp_path.glob("audio/*.reserve"))


def _write(path, data):
    sf.write(path, data, 16000, subtype="FLOAT")
    return path
