"""`calmline server` (and its old name `hub`) and a `calmline demo --hub` monitor as separate processes: the call
reaches the floor; weak secrets are refused at start with one line naming the key."""

import subprocess
import sys
from types import SimpleNamespace

from conftest import ROOT, calmline, free_port
from floor_server import PASSWORD, Floor, login
from monitor.web.auth import check_password, hash_password
from synth import barge_in_call, write_call

TOKEN = "sam-token-0123456789"


def test_a_monitor_publishes_its_call_to_the_server_and_a_supervisor_sees_its_cue(tmp_path):
    channels, _ = barge_in_call(
        "My order never arrived and I have been waiting for three weeks now, it is not okay.")
    call = write_call(tmp_path / "call.wav", channels)
    config = tmp_path / "config.toml"
    config.write_text(f'[store]\nagent_name = "sam"\n[hub.tokens]\nsam = "{TOKEN}"\n'
                      f'[hub.supervisors]\nsup = "{hash_password(PASSWORD)}"\n')
    port = free_port()
    base = [sys.executable, "-m", "monitor.cli", "--config", str(config)]
    server = subprocess.Popen(base + ["server", "--port", str(port), "--data-dir", str(tmp_path / "data")], cwd=ROOT,
                              stderr=subprocess.PIPE, text=True)
    demo = None
    try:
        assert f"server at http://127.0.0.1:{port}/" in server.stderr.readline()
        where = SimpleNamespace(url=f"http://127.0.0.1:{port}/", port=port)
        floor = Floor(where, login(where))
        demo = subprocess.Popen(base + ["demo", str(call), "--no-transcribe", "--no-record", "--port", str(free_port()),
                                        "--hub", where.url, "--token", TOKEN], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        floor.wait(lambda: any(t.get("agent") == "sam" and (t.get("cue") or {}).get("kind") == "wait_for_pause"
                               for t in floor.tiles.values()), "sam's tile with wait_for_pause", limit=40)
        floor.close()
    finally:
        if demo:
            demo.terminate()
            demo.wait(timeout=30)
        server.terminate()
        server.wait(timeout=30)
    assert server.returncode == 0


def test_hash_password_command():
    password = "a long enough password"
    run = subprocess.run([sys.executable, "-m", "monitor.cli", "hash-password"], input=password + "\n", cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 0
    assert check_password(password, run.stdout.strip()) and not check_password("other", run.stdout.strip())
    for short in ("", "s3cret", "x" * 15):
        run = subprocess.run([sys.executable, "-m", "monitor.cli", "hash-password"], input=short + "\n", cwd=ROOT,
                             capture_output=True, text=True, timeout=30)
        assert run.returncode == 2 and run.stdout == ""
        assert run.stderr.strip().splitlines() == [
            "calmline: error: a password (supervisor's or agent's) must be at least 16 characters"]


def test_a_weak_token_or_a_bad_hash_stops_the_server_at_start(tmp_path):
    for section, expected in [('[hub.tokens]\nsam = ""\n', "[hub.tokens] sam: a token must be at least 16 characters"),
                              ('[hub.tokens]\nann = "' + TOKEN + '"\nsam = "short"\n',
                               "[hub.tokens] sam: a token must be at least 16 characters"),
                              ('[hub.supervisors]\nlee = "hunter2"\n',
                               "[hub.supervisors] lee: not a password hash (make one with `calmline hash-password`)")]:
        config = tmp_path / "config.toml"
        config.write_text(section)
        for command in ("server", "hub"):
            run = calmline("--config", config, command, "--port", free_port(), "--data-dir", tmp_path / "data",
                           "--seconds", "5")
            assert run.returncode == 2, run.stderr
            assert run.stderr.strip().splitlines()[-1] == f"calmline: error: {expected}"
            assert "Traceback" not in run.stderr


def test_a_hub_without_a_token_is_a_one_line_error(tmp_path):
    run = subprocess.run([sys.executable, "-m", "monitor.cli", "demo", "--hub", "http://127.0.0.1:9/",
                          "--no-record"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == ["calmline: error: a hub needs this agent's token: --token T or [hub] token"]
