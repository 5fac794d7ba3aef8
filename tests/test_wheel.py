"""calmline as pip installs it: build a wheel of the checkout, install it into a fresh virtualenv, and
check that the installed `calmline server` and `calmline replay` serve every ui page and asset (ui/ is
package data: a wheel without it served 404s). Nothing from the checkout is importable there: the
dependencies come from the project's .venv through a path file, its editable calmline left out."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, free_port
from synth import barge_in_call, write_call

pytestmark = pytest.mark.slow

TYPES = {".html": "text/html", ".css": "text/css", ".js": "text/javascript"}
GENERIC_WARNINGS = ("byte-compiling is disabled",)
"""Build output lines with 'warning' that are about the build machine, not calmline's configuration."""


def run(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, **kw)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with calmline installed from a wheel; returns its bin/ directory."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"  # build from a copy: the build writes build/ and *.egg-info beside the sources
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                             ".pytest_cache", "test-artifacts", "bench"))
    built = run(sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", base / "dist", src)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    output = built.stdout + built.stderr
    warnings = [line for line in output.splitlines() if "warning" in line.lower()
                and not line.strip().startswith("WARNING:")  # pip's own, about this machine's indexes
                and not any(generic in line for generic in GENERIC_WARNINGS)]
    assert not warnings, warnings
    (wheel,) = (base / "dist").glob("calmline-*.whl")

    venv = base / "venv"
    assert run(sys.executable, "-m", "venv", venv).returncode == 0
    python = venv / "bin" / "python"
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    # The project's dependencies, without processing that directory's .pth files (the editable calmline's).
    Path(site, "calmline-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = run(python, "-m", "pip", "install", "--no-deps", "--no-index", wheel)
    assert done.returncode == 0, done.stderr
    where = run(python, "-c", "import monitor, ui; print(monitor.__file__, *ui.__path__)", cwd=base)
    assert where.returncode == 0 and str(ROOT) not in where.stdout and str(venv) in where.stdout, where
    return venv / "bin"


def fetch(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as res:
            return res.status, res.headers.get("Content-Type", ""), res.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def wait_listening(url: str, proc: subprocess.Popen) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            pytest.fail(f"calmline exited: {proc.communicate()[1]}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"nothing listening at {url}")


def serve(bin_dir: Path, cwd: Path, *args) -> subprocess.Popen:
    return subprocess.Popen([str(bin_dir / "calmline"), *map(str, args)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def ui_files(bin_dir: Path) -> list[str]:
    listing = run(bin_dir / "python", "-c", "import importlib.resources as r; "
                  "print(*sorted(f.name for f in r.files('ui').iterdir() if f.is_file()))", cwd=bin_dir)
    return listing.stdout.split()


def test_the_installed_server_serves_every_page_and_asset(installed, tmp_path):
    names = ui_files(installed)
    assert {"overlay.html", "overlay.js", "floor.html", "login.html", "replay.html", "replay.js"} <= set(names)
    port = free_port()
    (tmp_path / "config.toml").write_text(f"[hub]\nport = {port}\n")
    proc = serve(installed, tmp_path, "server", "--data-dir", tmp_path / "data", "--seconds", 120)
    try:
        base = f"http://127.0.0.1:{port}/"
        wait_listening(base, proc)
        for name in names:
            status, kind, body = fetch(base + "ui/" + name)
            assert status == 200 and kind.startswith(TYPES[Path(name).suffix]) and body, name
        assert b'id="cue"' in fetch(base + "ui/overlay.html")[2]
        for page, marker in (("", b"<form"), ("login", b"<form")):  # `/` is the agent's overlay, behind sign-in
            status, kind, body = fetch(base + page)
            assert status == 200 and kind.startswith("text/html") and marker in body, page
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


def test_the_installed_replay_serves_its_page_data_and_audio(installed, tmp_path):
    channels, _ = barge_in_call("My order never arrived and I have been waiting for two weeks.")
    call = write_call(tmp_path / "call.wav", channels)
    data = tmp_path / "data"
    analysed = run(installed / "calmline", "analyze", call, "--no-transcribe", "--data-dir", data, cwd=tmp_path)
    assert analysed.returncode == 0, analysed.stderr
    (listed,) = json.loads(run(installed / "calmline", "calls", "--json", "--data-dir", data, cwd=tmp_path).stdout)
    call_id = listed["id"]
    port = free_port()
    proc = serve(installed, tmp_path, "replay", call_id, "--port", port, "--data-dir", data, "--seconds", 120)
    try:
        page = f"http://127.0.0.1:{port}/calls/{call_id}/"
        wait_listening(page, proc)
        status, kind, body = fetch(page)
        assert status == 200 and kind.startswith("text/html") and b'id="overlay-view"' in body
        for src in [s.split('"')[0] for s in body.decode().split('src="')[1:]] + \
                   [h.split('"')[0] for h in body.decode().split('href="')[1:] if not h.startswith("data:")]:
            status, _, _ = fetch(page + src if not src.startswith("/") else f"http://127.0.0.1:{port}{src}")
            assert status == 200, src
        status, kind, _ = fetch(page + "data.json")
        assert status == 200 and kind == "application/json"
        status, kind, _ = fetch(page + "audio.flac")
        assert status == 200 and kind == "audio/flac"
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
