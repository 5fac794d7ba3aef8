"""Recording calls: SQLite and FLAC round trip, crash safety under SIGKILL, a full disk mid-call,
masking, retention, and bad stores. Real files, real subprocesses."""

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
from websockets.sync.client import connect

from conftest import ROOT, calmline, free_port
from monitor.errors import UsageError
from monitor.library.store import Store
from synth import barge_in_call, write_call


@pytest.fixture(scope="module")
def call_file(tmp_path_factory):
    channels, _ = barge_in_call("My card number is 4111 1111 1111 1111 and my order never arrived, it is not okay.")
    return write_call(tmp_path_factory.mktemp("store") / "call.wav", channels), channels


def test_a_recorded_call_round_trips(call_file, tmp_path):
    path, channels = call_file
    run = calmline("analyze", path, "--json", "--data-dir", tmp_path)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    listing = json.loads(calmline("calls", "--json", "--data-dir", tmp_path).stdout)
    assert len(listing) == 1
    call = listing[0]
    assert call["status"] == "ended" and call["duration_s"] == pytest.approx(report["duration_s"], abs=0.1)
    store = Store(tmp_path)
    events = store.events(call["id"])
    assert events[0]["type"] == "call_start" and events[-1]["type"] == "call_end"
    assert [e["kind"] for e in events if e["type"] == "cue"] == [c["kind"] for c in report["cues"]]
    audio, rate = sf.read(store.audio_path(call))
    assert rate == 16000 and audio.shape[1] == 2
    n = len(channels["agent"])
    assert abs(len(audio) - n) < 512
    kept = np.ones(min(n, len(audio)), bool)  # the card number read in this call is silenced (test_redact_e2e.py)
    for span in store.redactions(call["id"]):
        kept[int(span["start"] * rate) : int(span["end"] * rate)] = False
    assert 0 < kept.sum() < len(kept)
    assert np.corrcoef(audio[: len(kept)][kept, 0], channels["agent"][: len(kept)][kept])[0, 1] > 0.99
    metrics = store.db.execute("SELECT count(*) FROM metrics WHERE call_id = ?", (call["id"],)).fetchone()[0]
    assert metrics == len([e for e in events if e["type"] == "levels"]) > 0


def test_long_digit_runs_are_redacted_in_stored_transcripts(call_file, tmp_path):
    """(The pipeline redacts them: tests/test_redact*.py.)"""
    path, _ = call_file
    calmline("analyze", path, "--data-dir", tmp_path)
    store = Store(tmp_path)
    (call,) = store.calls()
    texts = " ".join(e["text"] for e in store.events(call["id"]) if e["type"] == "transcript")
    assert "card" in texts.lower() and not any(ch.isdigit() for ch in texts)


def test_a_monitor_killed_mid_call_leaves_playable_audio_and_its_events(call_file, tmp_path):
    path, _ = call_file
    demo = subprocess.Popen([sys.executable, "-m", "monitor.cli", "demo", str(path), "--no-transcribe",
                             "--port", str(free_port()), "--data-dir", str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = tmp_path / "calls.db"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            with sqlite3.connect(db) as con:
                last = con.execute("SELECT max(t) FROM events").fetchone()[0]
        except sqlite3.Error:
            continue
        if last and last > 6.0:
            break
    demo.send_signal(signal.SIGKILL)
    demo.wait()
    store = Store(tmp_path)
    (call,) = store.calls()
    assert call["status"] == "interrupted"
    events = store.events(call["id"])
    assert events[0]["type"] == "call_start" and max(e["t"] for e in events) > 6.0
    audio, rate = sf.read(store.audio_path(call))
    assert audio.shape[1] == 2 and len(audio) / rate >= max(e["t"] for e in events) - 1.5
    assert call["duration_s"] >= 6.0


def _limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG, as on a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))


def test_a_full_disk_is_reported_and_cues_keep_flowing(call_file, tmp_path):
    path, _ = call_file
    port = free_port()
    demo = subprocess.Popen([sys.executable, "-m", "monitor.cli", "demo", str(path), "--no-transcribe",
                             "--port", str(port), "--data-dir", str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_limit_file_size)
    seen = []
    try:
        for _ in range(100):
            try:
                ws = connect(f"ws://127.0.0.1:{port}/ws", open_timeout=2, origin=f"http://127.0.0.1:{port}")
                break
            except OSError:
                time.sleep(0.2)
        with ws:
            while not any(e["type"] == "call_end" for e in seen):
                seen.append(json.loads(ws.recv(timeout=30)))
    finally:
        out, err = demo.communicate(timeout=60)
    problems = [e for e in seen if e["type"] == "store"]
    assert len(problems) == 1 and "recording stopped" in problems[0]["message"]
    assert "recording stopped" in err
    cues = [e for e in seen if e["type"] == "cue"]
    assert cues and cues[-1]["t"] > problems[0]["t"], "cues stopped after the disk filled"
    assert demo.returncode == 0


def test_bad_stores_get_one_line_errors_and_harm_nothing(tmp_path, call_file):
    path, _ = call_file
    good = tmp_path / "good"
    calmline("analyze", path, "--no-transcribe", "--data-dir", good)
    before = (good / "calls.db").read_bytes()
    run = calmline("report", "deadbeef", "--data-dir", good)
    assert run.returncode == 2 and run.stderr.strip().splitlines() == ["calmline: error: no call with id 'deadbeef'"]
    assert (good / "calls.db").read_bytes() == before
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "calls.db").write_bytes(b"this is not a database" * 100)
    run = calmline("calls", "--data-dir", damaged)
    assert run.returncode == 2 and "damaged" in run.stderr and "Traceback" not in run.stderr
    blocked = tmp_path / "file"
    blocked.write_text("a file where the directory should be")
    run = calmline("calls", "--data-dir", blocked / "sub")
    assert run.returncode == 2 and "cannot use as data directory" in run.stderr and len(run.stderr.splitlines()) == 1
    with pytest.raises(UsageError):
        Store(good).call("nope")


def test_purge_deletes_old_calls_and_their_audio(call_file, tmp_path):
    path, _ = call_file
    calmline("analyze", path, "--no-transcribe", "--data-dir", tmp_path)
    calmline("analyze", path, "--no-transcribe", "--data-dir", tmp_path)
    store = Store(tmp_path)
    old, new = store.calls()
    with store.db:
        store.db.execute("UPDATE calls SET started_at = started_at - 100 * 86400 WHERE id = ?", (old["id"],))
    run = calmline("purge", "--data-dir", tmp_path)
    assert run.returncode == 0 and "deleted 1 call" in run.stdout
    assert [c["id"] for c in Store(tmp_path).calls()] == [new["id"]]
    assert not store.audio_path(old).exists() and store.audio_path(new).exists()
    assert Store(tmp_path).events(old["id"]) == []


def test_report_of_a_recorded_call_as_html_and_json(call_file, tmp_path):
    path, _ = call_file
    calmline("analyze", path, "--data-dir", tmp_path)
    (call,) = Store(tmp_path).calls()
    out = tmp_path / "report.html"
    run = calmline("report", call["id"][:6], "--out", out, "--data-dir", tmp_path)
    assert run.returncode == 0, run.stderr
    html = out.read_text()
    assert 'class="cue-marker"' in html and 'data-kind="wait_for_pause"' in html
    assert "Empathize" in html and "<script src" not in html
    report = json.loads(calmline("report", call["id"], "--json", "--data-dir", tmp_path).stdout)
    assert report["call"]["id"] == call["id"]
    assert [c["kind"] for c in report["cues"]] == ["wait_for_pause"]
    assert report["scorecard"]["total"] == 9
    listen = next(i for i in report["scorecard"]["items"] if i["item"] == "listen")
    assert not listen["met"]  # the agent barged in


def test_replay_command_serves_the_recorded_call(call_file, tmp_path):
    import urllib.request

    path, _ = call_file
    calmline("analyze", path, "--no-transcribe", "--data-dir", tmp_path)
    (call,) = Store(tmp_path).calls()
    port = free_port()
    replay = subprocess.Popen([sys.executable, "-m", "monitor.cli", "replay", call["id"], "--port", str(port),
                               "--data-dir", str(tmp_path)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        line = replay.stderr.readline()
        page = f"http://127.0.0.1:{port}/calls/{call['id']}/"
        assert f"at {page}" in line
        data = json.loads(urllib.request.urlopen(page + "data.json").read())
        assert data["call"]["id"] == call["id"]
    finally:
        replay.send_signal(signal.SIGINT)
        replay.wait(timeout=10)
    assert replay.returncode == 0
    run = calmline("replay", "nope", "--data-dir", tmp_path)
    assert run.returncode == 2 and run.stderr.strip() == "calmline: error: no call with id 'nope'"


def test_a_damaged_audio_file_harms_neither_the_report_nor_the_replay_data(call_file, tmp_path):
    import urllib.request

    from monitor.web.app import WebOptions
    from monitor.web.library import serve_replay

    path, _ = call_file
    calmline("analyze", path, "--no-transcribe", "--data-dir", tmp_path)
    store = Store(tmp_path)
    (call,) = store.calls()
    store.audio_path(call).write_bytes(b"fLaC" + os.urandom(2000))
    run = calmline("report", call["id"], "--json", "--data-dir", tmp_path)
    assert run.returncode == 0 and json.loads(run.stdout)["cues"]
    with serve_replay(Store(tmp_path), call["id"], WebOptions(port=0)) as server:
        data = json.loads(urllib.request.urlopen(server.url + "data.json").read())
    assert data["call"]["id"] == call["id"] and Store(tmp_path).call(call["id"])["status"] == "ended"
