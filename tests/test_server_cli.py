"""`calmline server` (and its deprecated name `hub`) as a user runs it: it serves every part, says where,
warns once when it listens beyond loopback without TLS, and stops cleanly on SIGINT or SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from conftest import ROOT, calmline, free_port

pytestmark = pytest.mark.slow  # a calmline process per test

TOKEN = "sam-token-0123456789abcdef"


def start(tmp_path, *args, host: str = "127.0.0.1") -> tuple[subprocess.Popen, int, list[str]]:
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(f'[hub]\nhost = "{host}"\nport = {port}\n[hub.tokens]\nsam = "{TOKEN}"\n')
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "--config", str(config), *args, "--data-dir",
                             str(tmp_path / "data")], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line.rstrip("\n"))
        if " at http" in line:
            return proc, port, lines
    pytest.fail(f"the server did not start: {lines}")


def status(url: str) -> int:
    try:
        return urllib.request.urlopen(url, timeout=10).status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_server_serves_every_part_and_stops_cleanly(tmp_path, sig):
    proc, port, lines = start(tmp_path, "server")
    try:
        base = f"http://127.0.0.1:{port}"
        assert lines[-1].startswith(f"calmline: server at {base}/ ")
        assert not any("TLS" in line or "deprecated" in line for line in lines)
        assert status(base + "/") == 200            # the overlay
        assert status(base + "/ui/overlay.js") == 200
        assert status(base + "/login") == 200       # the floor
        assert status(base + "/calls") == 403       # the library: supervisors only
    finally:
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
    rest = proc.stderr.read()
    assert "Traceback" not in rest and "error" not in rest.lower(), rest


def test_hub_is_the_same_server_with_a_deprecation_warning(tmp_path):
    proc, port, lines = start(tmp_path, "hub")
    try:
        assert lines[0] == "calmline: warning: 'hub' is deprecated; use 'calmline server'"
        assert status(f"http://127.0.0.1:{port}/login") == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


def test_listening_beyond_loopback_without_tls_is_one_warning(tmp_path):
    proc, port, lines = start(tmp_path, "server", host="0.0.0.0")
    try:
        warnings = [line for line in lines if "without TLS" in line]
        assert warnings == ["calmline: warning: listening on 0.0.0.0 without TLS: passwords, sessions and calls "
                            "cross the network in clear (set [hub] tls_cert and tls_key)"]
        assert status(f"http://127.0.0.1:{port}/") == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


def test_a_taken_port_is_a_one_line_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "config.toml").write_text(f"[hub]\nport = {port}\n")
        run = calmline("--config", tmp_path / "config.toml", "server", "--data-dir", tmp_path / "data")
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == f"calmline: error: cannot listen on 127.0.0.1:{port}: " \
                                                  "address already in use"
    assert "Traceback" not in run.stderr
