"""Recordings are private whatever the umask: the data directory and its folders 0700, every file
in them (database, -wal, -shm, FLAC, anything else) 0600. Real processes with a real umask."""

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, free_port
from synth import barge_in_call, write_call


@pytest.fixture(scope="module")
def call_file(tmp_path_factory):
    channels, _ = barge_in_call("My order never arrived and I have been waiting for three weeks now.")
    return write_call(tmp_path_factory.mktemp("privacy") / "call.wav", channels)


def modes(data: Path) -> dict[str, int]:
    return {str(p.relative_to(data)): stat.S_IMODE(p.stat().st_mode) for p in [data, *data.rglob("*")]}


def assert_private(data: Path) -> None:
    found = modes(data)
    assert found["."] == 0o700 and found["audio"] == 0o700
    loose = {name: oct(mode) for name, mode in found.items()
             if mode != (0o700 if (data / name).is_dir() else 0o600)}
    assert not loose, f"not private: {loose}"


def run_with_umask(umask: int, *args, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "monitor.cli", *map(str, args)], cwd=ROOT,
                            preexec_fn=lambda: os.umask(umask), **kw)


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_every_file_of_a_recorded_call_is_private(call_file, tmp_path, umask):
    data = tmp_path / "data"
    run = run_with_umask(umask, "analyze", call_file, "--no-transcribe", "--data-dir", data,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert run.wait(timeout=120) == 0, run.stderr.read()
    assert list((data / "audio").glob("*.flac"))
    assert_private(data)


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_files_are_private_while_the_call_is_being_recorded(call_file, tmp_path, umask):
    """During a call the database's -wal and -shm files exist too, and the FLAC is being written."""
    data = tmp_path / "data"
    demo = run_with_umask(umask, "demo", call_file, "--no-transcribe", "--port", free_port(), "--data-dir", data,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not ((data / "calls.db-wal").exists() and (data / "calls.db-shm").exists()
                   and list((data / "audio").glob("*.flac"))):
            assert time.monotonic() < deadline and demo.poll() is None, "no recording appeared"
            time.sleep(0.2)
        time.sleep(1.0)  # a commit or two and a FLAC flush
        assert_private(data)
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=60)
    assert demo.returncode == 0
    assert_private(data)


def test_an_existing_loose_data_directory_is_made_private(call_file, tmp_path):
    """Calls recorded before recordings were private (dirs 755, files 644) are tightened when opened."""
    data = tmp_path / "data"
    (data / "audio").mkdir(parents=True)
    (data / "audio" / "old.flac").write_bytes(b"old")
    (data / "notes.txt").write_text("left by an older version")
    for path in (data, data / "audio"):
        path.chmod(0o755)
    for path in (data / "audio" / "old.flac", data / "notes.txt"):
        path.chmod(0o644)
    run = run_with_umask(0o022, "calls", "--data-dir", data, stdout=subprocess.DEVNULL)
    assert run.wait(timeout=60) == 0
    assert_private(data)
