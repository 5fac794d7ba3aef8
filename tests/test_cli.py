"""`calmline analyze` as a user runs it: a real subprocess, real files, one-line errors."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import calmline
from monitor.library.store import Store
from monitor.web.library import call_data
from synth import barge_in_call, write_call

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def call(tmp_path_factory):
    channels, barge_in = barge_in_call(
        "My order never arrived and I have been waiting for three weeks now, it is not okay.")
    path = write_call(tmp_path_factory.mktemp("call") / "call.wav", channels)
    return path, channels, barge_in


@pytest.mark.slow  # transcribes
def test_json_report_has_the_documented_shape(call):
    path, _, barge_in = call
    run = calmline("analyze", path, "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert set(report) >= {"duration_s", "parties", "interruptions", "cues", "transcript"}
    for party in ("agent", "customer"):
        assert set(report["parties"][party]) >= {"talk_s", "loudness_dbfs", "wpm", "interruptions"}
    assert report["parties"]["agent"]["interruptions"] == 1
    assert report["parties"]["agent"]["loudness_dbfs"] == pytest.approx(-24, abs=1.0)
    (i,) = report["interruptions"]
    assert i["by"] == "agent" and i["t"] == pytest.approx(barge_in.start, abs=0.15) and i["overlap_s"] > 1.0
    assert [c["kind"] for c in report["cues"]] == ["wait_for_pause"]
    lines = report["transcript"]
    assert {line["speaker"] for line in lines} == {"agent", "customer"}
    assert any("order" in line["text"].lower() for line in lines if line["speaker"] == "customer")
    assert all(set(line) == {"speaker", "start", "end", "text"} for line in lines)
    assert report["parties"]["agent"]["wpm"] > 60


def test_no_transcribe_keeps_the_acoustic_report(call):
    path, _, _ = call
    report = json.loads(calmline("analyze", path, "--json", "--no-transcribe").stdout)
    assert report["transcript"] == [] and report["parties"]["agent"]["wpm"] is None
    assert report["parties"]["agent"]["interruptions"] == 1


@pytest.mark.slow  # transcribes
def test_two_mono_files_give_the_same_report_as_the_stereo_file(call, tmp_path):
    path, channels, _ = call
    for party in channels:
        sf.write(tmp_path / f"{party}.flac", channels[party], 16000)
    mono = calmline("analyze", "--agent", tmp_path / "agent.flac", "--customer", tmp_path / "customer.flac", "--json")
    stereo = calmline("analyze", path, "--json")
    assert json.loads(mono.stdout)["interruptions"] == json.loads(stereo.stdout)["interruptions"]


@pytest.mark.slow  # transcribes
def test_swapped_channels_swap_the_parties(call):
    path, _, _ = call
    run = calmline("analyze", path, "--agent-channel", "1", "--customer-channel", "0", "--json")
    assert json.loads(run.stdout)["parties"]["customer"]["interruptions"] == 1


@pytest.mark.parametrize("name, rate", [("call44.ogg", 44100), ("call48.mp3", 48000), ("call8.flac", 8000)])
def test_any_rate_and_format_is_resampled(call, tmp_path, name, rate):
    path, channels, _ = call
    import soxr
    stereo = np.stack([channels["agent"], channels["customer"]], axis=1)
    sf.write(tmp_path / name, soxr.resample(stereo, 16000, rate), rate)
    run = calmline("analyze", tmp_path / name, "--json", "--no-transcribe", "--no-record")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["parties"]["agent"]["interruptions"] == 1


@pytest.mark.slow  # transcribes
def test_events_file_holds_every_event_as_json_lines(call, tmp_path):
    path, _, _ = call
    out = tmp_path / "events.jsonl"
    run = calmline("analyze", path, "--events", out)
    assert run.returncode == 0 and "Wait for the pause" in run.stdout
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert events[0]["type"] == "call_start" and events[-1]["type"] == "call_end"
    assert all(e["v"] == 1 for e in events)
    levels = [e for e in events if e["type"] == "levels"]
    assert len(levels) >= 5 * events[-1]["t"] - 1


@pytest.mark.slow  # transcribes
def test_the_bundled_demo_call_analyses():
    run = calmline("analyze", ROOT / "monitor" / "samples" / "demo_call.flac", "--json")
    kinds = {c["kind"] for c in json.loads(run.stdout)["cues"]}
    assert {"wait_for_pause", "speak_softly", "dead_air"} <= kinds


def one_line_error(run, *needles):
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    for needle in needles:
        assert needle in lines[0]


def test_bad_input_gets_one_line_errors(call, tmp_path):
    path, channels, _ = call
    mono = tmp_path / "mono.wav"
    sf.write(mono, channels["agent"], 16000)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 2)), 16000)
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all")
    one_line_error(calmline("analyze", tmp_path / "missing.wav"), "missing.wav", "no such file")
    one_line_error(calmline("analyze", text), "notes.wav", "not a readable audio file")
    one_line_error(calmline("analyze", mono), "mono", "--agent")
    one_line_error(calmline("analyze", path, "--customer-channel", "3"), "channel 3", "out of range")
    one_line_error(calmline("analyze", empty), "zero length")
    one_line_error(calmline("analyze", "--agent", mono), "--customer")
    one_line_error(calmline("analyze", path, "--events", tmp_path / "no" / "dir" / "e.jsonl"), "cannot write")


def test_invalid_config_names_the_key(call, tmp_path):
    path, _, _ = call
    bad = tmp_path / "config.toml"
    bad.write_text("[vad]\nthreshold = 'high'\n")
    one_line_error(calmline("--config", bad, "analyze", path), "vad.threshold", "a number")
    bad.write_text("[vad]\nthresold = 0.5\n")
    one_line_error(calmline("--config", bad, "analyze", path), "unknown key", "vad.thresold")
    bad.write_text("[vad\n")
    one_line_error(calmline("--config", bad, "analyze", path), "invalid TOML")


# --- progress, the short summary, `calls` -------------------------------------------------------

@pytest.fixture(scope="module")
def long_call(call, tmp_path_factory):
    """The barge-in call twelve times over: about two minutes, long enough to report progress."""
    _, channels, _ = call
    return write_call(tmp_path_factory.mktemp("long") / "long.wav",
                      {p: np.concatenate([channels[p]] * 12) for p in channels})


def test_piped_analyze_prints_progress_lines(long_call, tmp_path):
    run = calmline("analyze", long_call, "--no-transcribe", "--no-record", "--progress-every", "0.05")
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    assert "\r" not in run.stderr and lines[0].startswith("calmline: analysing 2:07")
    percents = [int(line.split(":")[2].split("%")[0]) for line in lines if line.startswith("calmline: analysing: ")]
    assert len(percents) >= 2 and percents == sorted(percents) and 0 < percents[-1] <= 100
    assert lines[-1].startswith("calmline: analysed 127 of 127 s audio in")


def test_the_summary_is_short_and_says_what_to_run_next(call, tmp_path):
    path, _, _ = call
    data = tmp_path / "data"
    run = calmline("analyze", path, "--no-transcribe", "--data-dir", data)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    (call_id,) = [line.split(": ")[1] for line in out.splitlines() if line.startswith("Call id: ")]
    assert f"calmline replay {call_id}" in out and f"calmline report {call_id}" in out
    assert "1 cues, 1 interruptions" in out and "Scorecard: " in out and " of 9 met" in out
    assert len(out.splitlines()) <= 10 and "interrupted (" not in out  # no lists without --verbose
    verbose = calmline("analyze", path, "--no-transcribe", "--no-record", "--verbose").stdout
    assert "agent interrupted (" in verbose and "Wait for the pause" in verbose and "(not recorded)" in verbose


def test_one_overlap_for_an_interruption_everywhere(call, tmp_path):
    """The CLI, its JSON, the report (JSON and HTML) and the replay's data show one figure: the whole overlap."""
    path, _, _ = call
    data = tmp_path / "data"
    report = json.loads(calmline("analyze", path, "--no-transcribe", "--json", "--data-dir", data).stdout)
    (cut,) = report["interruptions"]
    store = Store(data)
    (stored,) = store.calls()
    events = store.events(stored["id"])
    (event,) = [e for e in events if e["type"] == "interruption"]
    (overlap,) = [e for e in events if e["type"] == "overlap" and e["t"] == event["t"]]
    assert cut["overlap_s"] == round(overlap["end"] - overlap["t"], 2) > event["overlap_s"] + 0.2
    shown = f"{cut['overlap_s']:.1f} s"
    verbose = calmline("analyze", path, "--no-transcribe", "--no-record", "--verbose").stdout
    assert f"agent interrupted ({shown} overlap)" in verbose
    html = calmline("report", stored["id"], "--data-dir", data, "--out", tmp_path / "r.html")
    assert html.returncode == 0 and f"{shown} of overlap" in (tmp_path / "r.html").read_text()
    as_json = json.loads(calmline("report", stored["id"], "--data-dir", data, "--json").stdout)
    assert as_json["interruptions"][0]["overlap_s"] == cut["overlap_s"]
    assert call_data(stored, events)["report"]["interruptions"][0]["overlap_s"] == cut["overlap_s"]
    store.close()


def test_calls_has_a_header_columns_and_filters(call, tmp_path):
    path, _, _ = call
    data = tmp_path / "data"
    assert calmline("analyze", path, "--no-transcribe", "--data-dir", data, "--agent-name", "ann").returncode == 0
    assert calmline("analyze", path, "--no-transcribe", "--data-dir", data).returncode == 0
    run = calmline("calls", "--data-dir", data)
    header, *rows = run.stdout.splitlines()
    assert header.split() == ["ID", "AGENT", "START", "DURATION", "CUES", "INTERRUPTIONS", "SCORE", "STATUS"]
    assert len(rows) == 2
    cells = [row.split() for row in rows]
    assert {c[1] for c in cells} == {"ann", "unknown"}  # an analysed file's agent is not the login name
    for c in cells:
        assert c[5:] == ["1", "1", c[7], "ended"] and 0 <= int(c[7]) <= 100  # the scorecard's 0-100 score
    listed = json.loads(calmline("calls", "--data-dir", data, "--json").stdout)
    assert [(c["agent"], c["cues"], c["interruptions"], str(c["score"]["score"]))
            for c in listed] == [(c[1], int(c[5]), int(c[6]), c[7]) for c in cells]
    only = json.loads(calmline("calls", "--data-dir", data, "--json", "--agent", "ann").stdout)
    assert [c["agent"] for c in only] == ["ann"]
    today = time.strftime("%Y-%m-%d")
    yesterday = time.strftime("%Y-%m-%d", time.localtime(time.time() - 86400))
    assert len(json.loads(calmline("calls", "--data-dir", data, "--json", "--since", today, "--until", today).stdout)) == 2
    assert json.loads(calmline("calls", "--data-dir", data, "--json", "--until", yesterday).stdout) == []
    assert "no recorded calls" in calmline("calls", "--data-dir", data, "--agent", "bob").stdout
    one_line_error(calmline("calls", "--data-dir", data, "--since", "yesterday"), "--since", "2026-12-01")


def test_analyze_at_a_terminal_shows_a_progress_bar(long_call):
    """stderr on a real pseudo-terminal (100 columns): a bar redrawn in place, gone at the end."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    run = subprocess.Popen([sys.executable, "-m", "monitor.cli", "analyze", str(long_call), "--no-transcribe",
                            "--no-record"], cwd=ROOT, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        shown += chunk
    out, _ = run.communicate(timeout=120)
    os.close(master)
    assert run.returncode == 0 and "Call id:" in out
    frames = [f for f in shown.decode("utf-8", "replace").split("\r") if f.strip()]
    bars = [f for f in frames if f.startswith("analysing") and "s audio" in f]
    assert len(bars) >= 3 and all("/127 s audio" in bar for bar in bars)
    assert [int(bar.split("%")[0].split()[-1]) for bar in bars] == sorted(int(bar.split("%")[0].split()[-1]) for bar in bars)
    assert "\n" not in "".join(bars)  # redrawn in place, not line after line
    assert "calmline: analysed" not in shown.decode("utf-8", "replace")  # the piped lines are for logs only
