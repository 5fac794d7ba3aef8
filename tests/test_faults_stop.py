"""Clean stops: a call stopped at any moment (SIGTERM or SIGINT) ends as a call should: exit 0,
`call_end` sent, the call `ended` in the store, its audio playable. Real subprocesses, real signals,
at 20 random moments of `demo`, `analyze`, `live` (a private PulseAudio) and `server` (a PCM stream).

Also the stalled recording of a looping demo: another writer holding the database's lock used to
end the recording for good, and the call stayed `recording` while the process looped on.
"""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audio.sources import Frame
from conftest import ROOT, free_port
from monitor.analysis.pipeline import Pipeline
from pulse import pulse  # noqa: F401  (session fixture)
from senders import send_pcm
from synth import barge_in_call, write_call

PCM_TOKEN = "pcm-stream-token-0123456789"


def test_finish_with_only_one_party_buffered_pads_the_other():
    """A stop can land after one party's block and before the other's: finish() must still close."""
    pipeline = Pipeline(transcribe=False)
    pipeline.start()
    assert pipeline.push(Frame("agent", 0, np.full(300, 0.1, np.float32))) == []
    events = pipeline.finish()
    assert events[-1].type == "call_end" and events[-1].t == pipeline.frame_s  # one padded tick


@pytest.fixture(scope="module")
def calls(tmp_path_factory):
    """A 10 s call (real time) and the same call 30 times over (5 minutes: analysis takes a while)."""
    folder = tmp_path_factory.mktemp("stops")
    channels, _ = barge_in_call("My order never arrived and I have been waiting for three weeks now, it is not okay.")
    short = write_call(folder / "call.wav", channels)
    long = write_call(folder / "long.wav", {k: np.tile(v, 30) for k, v in channels.items()})
    return short, long


def trials():
    """20 stops: command, signal and moment drawn once from a fixed seed (the same 20 every run)."""
    rng = random.Random(20261201)
    commands = ["demo", "analyze", "live", "demo", "analyze", "live", "demo", "analyze", "live", "server"] * 2
    limits = {"demo": 9.0, "analyze": 8.0, "live": 6.0, "server": 6.0}
    return [pytest.param(cmd, rng.choice(["SIGTERM", "SIGINT"]),  # every fourth one early: during start-up
                         round(rng.uniform(0.0, 0.5 if i % 4 == 3 else limits[cmd]), 2), id=f"{i:02d}-{cmd}")
            for i, cmd in enumerate(commands)]


def handlers_in(proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until the process catches SIGTERM and SIGINT (its SigCgt mask): before that no program can
    choose what a signal does, after it every moment counts."""
    want = (1 << (signal.SIGTERM - 1)) | (1 << (signal.SIGINT - 1))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
        except FileNotFoundError:
            return
        caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt")), 16)
        if caught & want == want:
            return
        time.sleep(0.005)
    pytest.fail("the process never installed its signal handlers")


@pytest.mark.parametrize("command, sig, delay", trials())
def test_a_stop_at_any_moment_ends_the_call_cleanly(calls, tmp_path, command, sig, delay, pulse):
    short, long = calls
    data, events = tmp_path / "data", tmp_path / "events.jsonl"
    common = ["--no-transcribe", "--data-dir", data]
    args = {"demo": ["demo", short, "--port", free_port(), "--events", events, *common],
            "analyze": ["analyze", long, "--events", events, *common],
            "live": ["live", "--device", "pulse", "--port", free_port(), "--events", events, *common]}
    player = sender = None
    if command == "server":
        config = tmp_path / "config.toml"
        config.write_text(f'[ingest.pcm]\ntoken = "{PCM_TOKEN}"\n')
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "--config", config, "server", "--port", str(port),
                                 "--data-dir", data], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in proc.stderr:
            if "server at" in line:
                break
        sender = threading.Thread(target=_send_quietly, args=(f"ws://127.0.0.1:{port}/ingest/pcm", short), daemon=True)
        sender.start()
        time.sleep(1.0)  # the stream has begun: the stop lands mid-call
    else:
        proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", *map(str, args[command])], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if command == "live":
            player = pulse.play(short)
    try:
        handlers_in(proc)
        time.sleep(delay)
        proc.send_signal(getattr(signal, sig))
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        if player is not None:
            player.kill()
            player.wait()
        if sender is not None:
            sender.join(30)
    assert proc.returncode == 0 and "Traceback" not in err, err
    call = _only_call(data)
    stored = [json.loads(row[0]) for row in _db(data).execute(
        "SELECT json FROM events WHERE call_id = ? ORDER BY seq", (call["id"],))]
    assert stored[0]["type"] == "call_start" and stored[-1]["type"] == "call_end"
    # A local monitor stopped by its user ends its call; a server that stops under a stream still coming in
    # cuts that call short: it is kept as interrupted, with the lost line recorded as the reason.
    cut = [e for e in stored if e["type"] == "device" and e.get("state") == "lost"]
    assert call["status"] == ("interrupted" if cut else "ended"), call
    assert not cut or (command == "server" and "interrupted" in cut[0]["message"]), cut
    if command != "server":
        sent = [json.loads(line) for line in events.read_text().splitlines()]
        assert sent[-1]["type"] == "call_end" and sent[-1]["t"] == stored[-1]["t"]
    audio, rate = sf.read(data / "audio" / call["audio"])
    assert rate == 16000 and audio.shape[1] == 2 and np.isfinite(audio).all()
    assert abs(len(audio) / rate - stored[-1]["t"]) < 0.1, "the audio holds the whole call, to its end"


def _send_quietly(url, wav):
    try:
        send_pcm(url, wav, PCM_TOKEN, agent="sam", rate=16000)
    except Exception:  # the server went away mid-stream: that is the point
        pass


def _db(data: Path) -> sqlite3.Connection:
    return sqlite3.connect(data / "calls.db")


def _only_call(data: Path) -> dict:
    """The call as its recorder left it (read directly: Store would mend a call left `recording`)."""
    rows = _db(data).execute("SELECT id, status, duration_s, audio FROM calls").fetchall()
    assert len(rows) == 1, rows
    return dict(zip(("id", "status", "duration_s", "audio"), rows[0]))


def test_a_locked_database_does_not_stall_a_looping_demo(calls, tmp_path):
    """The stalled recording: another writer (a purge, a mend, a slow checkpoint under load) held the
    database's lock longer than SQLite's 10 s timeout; the recorder gave up for good, and the call stayed
    `recording` (its process alive, looping) with its events and audio stopping there. Now the recorder
    waits briefly and retries: the call is recorded to its end and `ended` while the demo loops on."""
    short, _ = calls
    data = tmp_path / "data"
    demo = subprocess.Popen([sys.executable, "-m", "monitor.cli", "demo", str(short), "--loop", "--no-transcribe",
                             "--port", str(free_port()), "--data-dir", str(data)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (data / "calls.db").exists() or not _db(data).execute("SELECT count(*) FROM events").fetchone()[0]:
            assert time.monotonic() < deadline and demo.poll() is None, "the demo never recorded"
            time.sleep(0.2)
        holder = sqlite3.connect(data / "calls.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # the write lock, for longer than SQLite's own 10 s timeout
        time.sleep(11)
        holder.execute("COMMIT")
        holder.close()
        deadline = time.monotonic() + 60
        while True:  # until the first call has ended and the loop has begun the next one
            rows = _db(data).execute("SELECT id, status FROM calls ORDER BY started_at").fetchall()
            if len(rows) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert demo.poll() is None, "the demo loops on"
        first = rows[0]
        assert first[1] == "ended", rows
        last_t = _db(data).execute("SELECT max(t) FROM events WHERE call_id = ?", (first[0],)).fetchone()[0]
        duration = sf.info(str(short)).duration
        assert last_t == pytest.approx(duration, abs=0.2), "events recorded to the end of the call"
        audio, _ = sf.read(data / "audio" / f"{first[0]}.flac")
        assert len(audio) / 16000 == pytest.approx(duration, abs=0.2)
    finally:
        demo.send_signal(signal.SIGTERM)
        _, err = demo.communicate(timeout=60)
    assert demo.returncode == 0 and "recording stopped" not in err, err
    assert {row[0] for row in _db(data).execute("SELECT status FROM calls")} == {"ended"}


def _open_files(pid: int) -> list[str]:
    out = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            out.append(os.readlink(fd))
        except FileNotFoundError:  # closed while we looked
            pass
    return out


def test_a_looping_demo_holds_the_same_files_round_after_round(calls, tmp_path):
    """Each round of a loop opened a store of its own and never closed it: three more files (database,
    -wal, -shm) held per round, until a long-running demo ran out of descriptors and stopped recording."""
    short, _ = calls
    audio, rate = sf.read(short, dtype="float32")
    two = tmp_path / "two.wav"
    sf.write(two, audio[: 2 * rate], rate)
    data = tmp_path / "data"
    demo = subprocess.Popen([sys.executable, "-m", "monitor.cli", "demo", str(two), "--loop", "--no-transcribe",
                             "--port", str(free_port()), "--data-dir", str(data)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def ended() -> int:
        if not (data / "calls.db").exists():
            return 0
        try:  # the database file appears a moment before its tables
            return _db(data).execute("SELECT count(*) FROM calls WHERE status = 'ended'").fetchone()[0]
        except sqlite3.OperationalError:
            return 0

    def most_held(first: int, last: int) -> int:
        """The most database files the demo held at once while rounds `first` to `last` ended: a single look
        could land between a recorder opening its connection and closing it."""
        deadline, most = time.monotonic() + 120, 0
        while ended() < last:
            assert time.monotonic() < deadline and demo.poll() is None, "the loop stopped"
            if ended() >= first:
                most = max(most, sum(str(data) in p and "audio" not in p for p in _open_files(demo.pid)))
            time.sleep(0.05)
        return most

    try:
        early = most_held(1, 3)
        late = most_held(5, 7)
    finally:
        demo.send_signal(signal.SIGTERM)
        _, err = demo.communicate(timeout=60)
    assert demo.returncode == 0, err
    assert 0 < late <= early, f"held {early} database files around round 2, {late} around round 6"
