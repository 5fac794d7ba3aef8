"""`calmline demo` end to end: a real subprocess replaying a synthesized call in real time, its real
server, and the overlay in headless chromium showing the cue the pipeline made. (How soon it shows is
measured by bench/overlay_latency.py, not asserted here.)"""

import json
import subprocess
import sys

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
