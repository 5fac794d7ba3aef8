"""A full disk, for real: the data directory on a 2 MB tmpfs, nearly filled before the call.

The call goes on (live cues keep flowing), one line names the full disk, the call is closed as
`interrupted` with the audio and events written before the disk filled, and `calls`, `report` and
`replay` still work while the disk is still full.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import soundfile as sf
from websockets.sync.client import connect

from conftest import ROOT, calmline, free_port
from synth import barge_in_call, write_call


@pytest.fixture(scope="module")
def call_file(tmp_path_factory):
    channels, _ = barge_in_call("My order never arrived and I have been waiting for three weeks now, it is not okay.")
    return write_call(tmp_path_factory.mktemp("disk") / "call.wav", channels)


@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MB tmpfs (we run as root), unmounted afterwards."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode:
        pytest.fail(f"cannot mount a tmpfs (these tests need root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount: Path, leave: int, name: str = "ballast") -> None:
    """Fill the disk until `leave` bytes are free."""
    free = shutil.disk_usage(mount).free - leave
    with open(mount / name, "wb") as fh:
        fh.write(bytes(max(0, free)))


def fill_up(mount: Path) -> None:
    """Fill whatever room is left."""
    try:
        with open(mount / "more-ballast", "wb") as fh:
            while True:
                fh.write(bytes(4096))
                fh.flush()
    except OSError:
        pass
    assert shutil.disk_usage(mount).free < 8192


def check_after(data: Path) -> dict:
    """`calls`, `report` and `replay` on a full disk: they work, and the call is interrupted with what was written."""
    run = calmline("calls", "--json", "--data-dir", data)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    (call,) = json.loads(run.stdout)
    assert call["status"] == "interrupted" and call["duration_s"] > 1.0
    audio, rate = sf.read(data / "audio" / call["audio"])
    assert rate == 16000 and audio.shape[1] == 2 and len(audio) / rate > 1.0
    assert not list((data / "audio").glob("*.reserve"))
    report = calmline("report", call["id"], "--json", "--data-dir", data)
    assert report.returncode == 0 and "Traceback" not in report.stderr, report.stderr
    events = json.loads(report.stdout)
    assert events["call"]["id"] == call["id"]
    port = free_port()
    replay = subprocess.Popen([sys.executable, "-m", "monitor.cli", "replay", call["id"], "--port", str(port),
                               "--data-dir", str(data)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        for line in replay.stderr:
            if "replay of call" in line:
                break
        assert replay.poll() is None, line
        url = line.split(" at ")[-1].strip()
        assert urllib.request.urlopen(url, timeout=10).status == 200
    finally:
        replay.send_signal(signal.SIGINT)
        replay.wait(timeout=20)
    assert replay.returncode == 0
    return call


def test_analyze_on_a_full_disk_names_it_and_keeps_what_was_written(call_file, small_disk):
    data = small_disk / "calmline"
    fill(small_disk, leave=400 * 1024)
    run = calmline("analyze", call_file, "--no-transcribe", "--json", "--data-dir", data)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.strip().splitlines() == [f"recording stopped: disk full ({data})"]
    assert json.loads(run.stdout)["cues"], "the analysis itself went on"
    fill_up(small_disk)
    check_after(data)


def test_demo_on_a_full_disk_keeps_cues_flowing(call_file, small_disk):
    data = small_disk / "calmline"
    fill(small_disk, leave=320 * 1024)
    port = free_port()
    demo = subprocess.Popen([sys.executable, "-m", "monitor.cli", "demo", str(call_file), "--no-transcribe",
                             "--port", str(port), "--data-dir", str(data)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        for _ in range(150):
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
    assert demo.returncode == 0 and "Traceback" not in err, err
    problems = [e for e in seen if e["type"] == "store"]
    assert [p["message"] for p in problems] == [f"recording stopped: disk full ({data})"]
    assert f"recording stopped: disk full ({data})" in err
    cues = [e for e in seen if e["type"] == "cue"]
    assert cues and cues[-1]["t"] > problems[0]["t"], "cues stopped after the disk filled"
    assert problems[0]["t"] > 0.5, "the disk was meant to fill during the call, not before it"
    call = check_after(data)
    assert call["duration_s"] == pytest.approx(problems[0]["t"], abs=1.5)


def test_a_disk_full_before_the_call_is_one_line_and_the_call_goes_on(call_file, small_disk):
    data = small_disk / "calmline"
    data.mkdir()
    fill_up(small_disk)
    run = calmline("analyze", call_file, "--no-transcribe", "--json", "--data-dir", data)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "disk full" in run.stderr
    assert json.loads(run.stdout)["cues"]
    listing = calmline("calls", "--data-dir", data)
    assert listing.returncode == 0 and "Traceback" not in listing.stderr, listing.stderr
    assert os.stat(data).st_mode & 0o777 == 0o700
