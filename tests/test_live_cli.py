"""`calmline live` capturing a call played into a real PulseAudio null sink, events read over a real WebSocket."""

import json
import signal
import subprocess
import sys
import time

import pytest
from websockets.sync.client import connect

from conftest import ROOT, free_port
from pulse import pulse  # noqa: F401  (session fixture)
from synth import barge_in_call, write_call


def next_event(ws, want, timeout):
    """Read events until `want(event)`; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            event = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        except TimeoutError:
            break
        seen.append(event["type"])
        if want(event):
            return event
    pytest.fail(f"no matching event within {timeout} s (saw {sorted(set(seen))})")


def connect_when_up(port, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"calmline live exited: {proc.stderr.read()}")
        try:
            return connect(f"ws://127.0.0.1:{port}/ws", open_timeout=2, origin=f"http://127.0.0.1:{port}")
        except OSError:
            time.sleep(0.2)
    pytest.fail("calmline live never served /ws")


def test_live_capture_gets_wait_for_pause_and_survives_a_lost_device(pulse, tmp_path):
    channels, _ = barge_in_call(
        "My order never arrived and I have been waiting for three weeks now, it is not okay at all.")
    call = write_call(tmp_path / "call.wav", channels)
    port = free_port()
    live = subprocess.Popen([sys.executable, "-m", "monitor.cli", "live", "--device", "pulse", "--port", str(port),
                             "--no-transcribe"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with connect_when_up(port, live) as ws:
            next_event(ws, lambda e: e["type"] == "call_start", 10)
            player = pulse.play(call)
            cue = next_event(ws, lambda e: e["type"] == "cue", 30)
            assert cue["kind"] == "wait_for_pause" and cue["text"] == "Wait for the pause"
            player.wait(timeout=30)

            pulse.unload_sink()
            lost = next_event(ws, lambda e: e["type"] == "device" and e["state"] == "lost", 10)
            assert lost["party"] in ("agent", "customer")
            levels = next_event(ws, lambda e: e["type"] == "levels", 5)  # the pipeline goes on meanwhile
            pulse.load_sink()
            next_event(ws, lambda e: e["type"] == "device" and e["state"] == "ok" and e["t"] > levels["t"], 15)
            next_event(ws, lambda e: e["type"] == "levels", 5)
    finally:
        live.send_signal(signal.SIGINT)
        out, err = live.communicate(timeout=30)
    assert live.returncode == 0, err
    assert "Wait for the pause" in out


def test_live_with_a_missing_device_is_a_one_line_error():
    run = subprocess.run([sys.executable, "-m", "monitor.cli", "live", "--device", "no-such-headset"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == ["calmline: error: no input device matching 'no-such-headset' "
                                               "(see `calmline devices`)"]


def test_live_check_opens_the_configured_devices(pulse, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[devices]\ndevice = "pulse"\n')
    run = subprocess.run([sys.executable, "-m", "monitor.cli", "--config", str(config), "live", "--check"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "devices ready: agent=pulse:0, customer=pulse:1"
