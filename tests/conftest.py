import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REAL = SHARED / "data" / "real"
sys.path.insert(0, str(Path(__file__).parent))
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


# --- the fast tier: `pytest -m "not slow"` (no model, no browser, no real time; under a minute) ------
SLOW_FIXTURES = {"browser", "pulse", "real_data"}
"""A test that uses one of these (directly or through another fixture) is slow: chromium, a PulseAudio
server capturing in real time, real recordings run through the speech model."""
SLOW_MODULES = {"test_transcription", "test_real_speech", "test_live_cli", "test_devices", "test_demo_e2e",
                "test_sentiment_speech",
                "test_faults_stop", "test_faults_disk", "test_hub_cli",
                "test_cli", "test_privacy", "test_faults_samples", "test_faults_files", "test_scale_e2e",
                "test_ingest_pool"}
"""Modules whose tests load the speech model, run a call in real time, or run `calmline` end to end in
subprocess after subprocess (each pays the start-up and model loads; the probe below cannot see them)."""
SLOW_IN = {"test_phrases": {"test_spoken_lines_cue_through_the_real_pipeline"},
           "test_scorecard": {"good_call", "bad_call"}, "test_report_html": {"rendered"},
           "test_store": {"call_file"}, "test_replay": {"recorded"},
           "test_config_ranges": {"test_out_of_range_is_one_line_naming_key_and_range"},
           "test_hub_redis": {"test_a_server_outlives_redis_and_reconnects",
                              "test_a_server_whose_lease_runs_out_has_its_calls_interrupted_everywhere"},
           "test_store_pg": {"test_postgres_stopped_mid_call_loses_nothing",
                             "test_a_server_killed_mid_call_is_mended_by_another",
                             "test_on_the_recording_machine_a_dead_recorder_is_mended_at_once",
                             "test_the_cli_records_and_lists_calls_in_postgres",
                             "test_kept_summaries_list_without_events_after_migration_and_pages_say_503_while_away"},
           "test_hub": {"test_a_slow_supervisor_is_cut_off_without_delaying_another",
                        "test_publisher_catches_up_after_the_server_restarts"},
           "test_ingest_e2e": {"test_pcm_stream_that_stops_without_closing"}}
"""Per module, the fixtures that transcribe a synthesized call (in-process or through `calmline analyze`),
the tests that run `calmline` once per parameter, and the tests that wait out real timeouts (a peer's,
a reconnect's, a stream's idle limit)."""


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__ if item.module else ""
        uses = set(getattr(item, "fixturenames", ()))
        named = uses | {getattr(item, "originalname", item.name)}
        if module in SLOW_MODULES or uses & SLOW_FIXTURES or named & SLOW_IN.get(module, set()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _fast_tier_stays_fast(request):
    """A test not marked slow that runs the speech model in this process fails, saying how to fix it:
    the fast tier must never quietly grow a model run. (Subprocesses are not seen: mark those by hand.)"""
    if request.node.get_closest_marker("slow"):
        yield
        return
    from monitor.analysis import transcriber

    before = transcriber.Engine.runs
    yield
    if transcriber.Engine.runs != before:
        pytest.fail("this test runs the speech model: mark it @pytest.mark.slow (or pass transcribe=False)",
                    pytrace=False)


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL.is_dir():
        pytest.fail(f"real-speech data not found at {REAL} (../shared must sit beside the repository)")
    return REAL


def of_type(events, kind):
    return [e for e in events if e.type == kind]


def calmline(*args, env=None, **kw) -> subprocess.CompletedProcess:
    """Run the `calmline` command as a user would, in a subprocess; arguments may be paths."""
    return subprocess.run([sys.executable, "-m", "monitor.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env={**os.environ, **(env or {})}, **kw)


def run_async(coro):
    """asyncio.run in a thread of its own: Playwright's sync API keeps a loop running in the main thread once a
    browser test has run, and asyncio.run refuses to start beside it."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def private_data_dir(tmp_path_factory):
    """Calls recorded by tests (every analyze records by default) go to a temporary data directory."""
    os.environ["CALMLINE_DATA_DIR"] = str(tmp_path_factory.mktemp("calmline-data"))
