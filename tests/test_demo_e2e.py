"""`calmline demo` end to end: a real subprocess replaying a synthesized call in real time, its real
server, and the overlay in headless chromium showing the cue the pipeline made. (How soon it shows is
measured by bench/overlay_latency.py, not asserted here.)"""

import json
import signal
import subprocess
import sys
import time

import pytest
from playwright.sync_api import expect

from conftest import ARTIFACTS, ROOT, free_port, of_type
from monitor.analysis.pipeline import run_channels
import synth
from synth import write_call


@pytest.fixture(scope="module")
def barge_in_call(tmp_path_factory):
    channels, _ = synth.barge_in_call(
        "My order never arrived and I have been waiting for three weeks now, it is not okay at all.")
    path = write_call(tmp_path_factory.mktemp("demo") / "call.wav", channels)
    (due,) = [c.t for c in of_type(run_channels(channels, transcribe=False), "cue")]
    return path, due


def test_demo_shows_the_cue_on_the_overlay(browser, barge_in_call, tmp_path):
    path, due = barge_in_call
    port = free_port()
    events = tmp_path / "events.jsonl"
    demo = subprocess.Popen([sys.executable, "-m", "monitor.cli", "demo", str(path), "--port", str(port),
                             "--events", str(events), "--linger", "5"],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        banner = demo.stderr.readline()
        assert f"overlay at http://127.0.0.1:{port}/" in banner
        page = browser.new_page(viewport={"width": 360, "height": 240})
        page.goto(f"http://127.0.0.1:{port}/")
        expect(page.locator("#cue")).to_have_text("Wait for the pause", timeout=int((due + 30) * 1000))
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "demo-wait-for-pause.png"))
        page.close()
    finally:
        demo.terminate()
        demo.wait(timeout=60)
    written = [json.loads(line) for line in events.read_text().splitlines()]
    assert ("wait_for_pause", round(due, 3)) in [(e["kind"], e["t"]) for e in written if e["type"] == "cue"]
    assert written[-1]["type"] == "call_end", "a stopped demo still ends its call"


def start_demo(path, port, tmp_path, *options):
    return subprocess.Popen([sys.executable, "-m", "monitor.cli", "demo", str(path), "--port", str(port),
                             "--data-dir", str(tmp_path / "data"), "--no-transcribe", *options],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_until(stream, needle: str, limit: int = 20) -> list[str]:
    lines = []
    for _ in range(limit):
        line = stream.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"{needle!r} not in {lines}")


def test_demo_waits_for_the_overlay_then_ends_it_and_says_what_next(browser, barge_in_call, tmp_path):
    path, due = barge_in_call
    port = free_port()
    events = tmp_path / "events.jsonl"
    demo = start_demo(path, port, tmp_path, "--events", str(events), "--wait", "120", "--linger", "2")
    try:
        lines = read_until(demo.stderr, "waiting for the overlay")
        assert f"open http://127.0.0.1:{port}/" in lines[-1] and "120 s" in lines[-1]
        time.sleep(2)
        assert demo.poll() is None and not events.exists()  # no call until a browser comes
        page = browser.new_page(viewport={"width": 360, "height": 240})
        page.goto(f"http://127.0.0.1:{port}/")
        read_until(demo.stderr, "overlay connected; the call starts")
        expect(page.locator("#cue")).to_have_text("Wait for the pause", timeout=int((due + 30) * 1000))
        # after the call and its linger the server ends, and the overlay says so instead of reconnecting
        expect(page.locator("#notice")).to_contain_text("The demo has ended", timeout=60_000)
        out, _ = demo.communicate(timeout=60)
        expect(page.locator("#status")).to_have_text("ended")
        page.wait_for_timeout(3000)  # longer than the overlay's longest back-off
        expect(page.locator("#status")).to_have_text("ended")
        page.close()
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 0
    written = [json.loads(line) for line in events.read_text().splitlines()]
    call_id = written[0]["call_id"]
    assert f"Call id: {call_id}" in out
    assert f"calmline replay {call_id}" in out and f"calmline report {call_id}" in out
    assert "Scorecard:" in out and "--verbose" in out and len(out.splitlines()) < 12
    listed = subprocess.run([sys.executable, "-m", "monitor.cli", "calls", "--data-dir", str(tmp_path / "data"),
                             "--json"], cwd=ROOT, capture_output=True, text=True)
    (call,) = json.loads(listed.stdout)
    assert call["id"] == call_id and call["agent"] == "demo"  # not the login name (root)


def test_demo_starts_anyway_when_no_overlay_comes(barge_in_call, tmp_path):
    path, _ = barge_in_call
    demo = start_demo(path, free_port(), tmp_path, "--wait", "1", "--no-record")
    out, err = demo.communicate(timeout=120)
    assert demo.returncode == 0, err
    assert "no overlay after 1 s; starting anyway" in err
    assert "Call id:" in out and "(not recorded)" in out
    scripted = start_demo(path, free_port(), tmp_path, "--no-record")  # from a script: no waiting by default
    out, err = scripted.communicate(timeout=120)
    assert scripted.returncode == 0 and "waiting for the overlay" not in err and "Call id:" in out


def test_demo_loops_until_stopped(barge_in_call, tmp_path):
    path, _ = barge_in_call
    demo = start_demo(path, free_port(), tmp_path, "--wait", "0", "--loop")
    try:
        read_until(demo.stdout, "Call id:", limit=40)
        read_until(demo.stderr, "the call starts again", limit=40)
        read_until(demo.stdout, "Call id:", limit=40)  # a second round, with an id of its own
    finally:
        demo.send_signal(signal.SIGINT)
        out, _ = demo.communicate(timeout=60)
    assert demo.returncode in (0, 130)
    listed = subprocess.run([sys.executable, "-m", "monitor.cli", "calls", "--data-dir", str(tmp_path / "data"),
                             "--json"], cwd=ROOT, capture_output=True, text=True)
    assert len({c["id"] for c in json.loads(listed.stdout)}) >= 2
