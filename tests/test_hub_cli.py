"""`calmline hub` and a `calmline demo --hub` monitor as separate processes: the call reaches the floor."""

import subprocess
import sys
from types import SimpleNamespace

from conftest import ROOT, free_port
from monitor.web.hub import check_password, hash_password
from synth import barge_in_call, write_call
from test_hub import Floor, login


def test_a_monitor_publishes_its_call_to_the_hub_and_a_supervisor_sees_its_cue(tmp_path):
    channels, _ = barge_in_call(
        "My order never arrived and I have been waiting for three weeks now, it is not okay.")
    call = write_call(tmp_path / "call.wav", channels)
    config = tmp_path / "config.toml"
    config.write_text(f'[store]\nagent_name = "sam"\n[hub.tokens]\nsam = "sam-token"\n'
                      f'[hub.supervisors]\nsup = "{hash_password("correct horse")}"\n')
    port = free_port()
    base = [sys.executable, "-m", "monitor.cli", "--config", str(config)]
    hub = subprocess.Popen(base + ["hub", "--port", str(port)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    demo = None
    try:
        assert f"hub at http://127.0.0.1:{port}/" in hub.stderr.readline()
        where = SimpleNamespace(url=f"http://127.0.0.1:{port}/", port=port)
        floor = Floor(where, login(where))
        demo = subprocess.Popen(base + ["demo", str(call), "--no-transcribe", "--no-record", "--port", str(free_port()),
                                        "--hub", where.url, "--token", "sam-token"], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        floor.wait(lambda: any(t["agent"] == "sam" and (t.get("cue") or {}).get("kind") == "wait_for_pause"
                               for t in floor.tiles.values()), "sam's tile with wait_for_pause", limit=40)
        floor.close()
    finally:
        if demo:
            demo.terminate()
            demo.wait(timeout=30)
        hub.terminate()
        hub.wait(timeout=30)
    assert hub.returncode == 0


def test_hash_password_command():
    run = subprocess.run([sys.executable, "-m", "monitor.cli", "hash-password"], input="s3cret\n", cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 0
    assert check_password("s3cret", run.stdout.strip()) and not check_password("other", run.stdout.strip())


def test_a_hub_without_a_token_is_a_one_line_error(tmp_path):
    run = subprocess.run([sys.executable, "-m", "monitor.cli", "demo", "--hub", "http://127.0.0.1:9/",
                          "--no-record"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == ["calmline: error: a hub needs this agent's token: --token T or [hub] token"]
