"""`calmline demo` end to end: a real subprocess replaying a synthesized call in real time, its real
server, and the overlay in headless chromium showing the cue within 2 s of the moment it is due."""

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


def test_demo_shows_the_cue_on_the_overlay_within_2_s_of_when_it_is_due(browser, barge_in_call, tmp_path):
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
        page.evaluate("""() => {
            const cue = document.querySelector('#cue');
            new MutationObserver(() => {
                if (cue.textContent.includes('Wait for the pause') && !window.cueSeenAt) window.cueSeenAt = Date.now();
            }).observe(cue, {childList: true, characterData: true, subtree: true});
        }""")
        expect(page.locator("#cue")).to_have_text("Wait for the pause", timeout=int((due + 10) * 1000))
        seen = page.evaluate("window.cueSeenAt") / 1000
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "demo-wait-for-pause.png"))
        page.close()
    finally:
        demo.terminate()
        demo.wait(timeout=60)
    started_at = json.loads(events.read_text().splitlines()[0])["started_at"]
    lag = seen - (started_at + due)
    assert -0.1 <= lag <= 2.0, f"cue shown {lag:.2f} s after it was due"
