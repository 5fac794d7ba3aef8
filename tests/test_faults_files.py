"""Damaged and unwritable files: a call cut short is analysed with a warning that says how much
was read of how much its header promised; `report` in a directory it cannot write is one line.
Real files (cut with truncate), a real read-only mount, the real command."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT, calmline
from synth import barge_in_call, write_call


@pytest.fixture(scope="module")
def call(tmp_path_factory):
    channels, _ = barge_in_call("My order never arrived and I have been waiting for three weeks now, it is not okay.")
    folder = tmp_path_factory.mktemp("files")
    return write_call(folder / "call.wav", channels), channels


def cut(path, keep: float):
    """Keep the first `keep` of the file's bytes, as a copy interrupted part way would."""
    size = os.path.getsize(path)
    with open(path, "r+b") as fh:
        fh.truncate(int(size * keep))


@pytest.mark.parametrize("fmt, ext", [("WAV", "wav"), ("FLAC", "flac")])
def test_a_truncated_file_is_analysed_with_a_warning(call, tmp_path, fmt, ext):
    _, channels = call
    full = np.stack([channels["agent"], channels["customer"]], axis=1)
    path = tmp_path / f"call.{ext}"
    sf.write(path, full, 16000, format=fmt, subtype="PCM_16")
    total = len(full) / 16000
    cut(path, 0.5)
    run = calmline("analyze", path, "--no-transcribe", "--json", "--data-dir", tmp_path / "data")
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    (line,) = run.stderr.strip().splitlines()
    prefix, _, rest = line.partition(" is truncated: read ")
    assert prefix == f"calmline: warning: {path}"
    read_s, _, of = rest.partition(" s of ")
    assert of == f"{total:.1f} s"
    assert 0.3 * total < float(read_s) < 0.6 * total
    report = json.loads(run.stdout)
    assert report["duration_s"] == pytest.approx(float(read_s), abs=0.2)


def test_a_whole_file_gives_no_warning(call, tmp_path):
    path, _ = call
    run = calmline("analyze", path, "--no-transcribe", "--json", "--no-record")
    assert run.returncode == 0 and run.stderr == ""


def test_a_wav_whose_header_says_nothing_of_its_length_is_not_called_truncated(call, tmp_path):
    """A WAV written by a streaming recorder that never came back to fill in its length (0 or 0xFFFFFFFF)."""
    path, _ = call
    raw = bytearray(path.read_bytes())
    at = raw.index(b"data") + 4
    raw[at:at + 4] = b"\xff\xff\xff\xff"
    stream = tmp_path / "stream.wav"
    stream.write_bytes(bytes(raw))
    run = calmline("analyze", stream, "--no-transcribe", "--json", "--no-record")
    assert run.returncode == 0 and "truncated" not in run.stderr, run.stderr


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory nobody can write, root included: a read-only tmpfs."""
    mount = tmp_path / "ro"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode:
        pytest.fail(f"cannot mount a read-only tmpfs (these tests need root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_report_in_an_unwritable_directory_is_one_line(call, tmp_path, read_only_dir):
    path, _ = call
    data = tmp_path / "data"
    assert calmline("analyze", path, "--no-transcribe", "--data-dir", data).returncode == 0
    (listed,) = json.loads(calmline("calls", "--json", "--data-dir", data).stdout)
    run = subprocess.run([sys.executable, "-m", "monitor.cli", "report", listed["id"], "--data-dir", str(data)],
                         cwd=read_only_dir, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith(f"calmline: error: {read_only_dir}/calmline-report-{listed['id']}.html: cannot write")
    assert "--out" in line
    run = calmline("report", listed["id"], "--out", read_only_dir / "r.html", "--data-dir", data)
    assert run.returncode == 2 and "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
