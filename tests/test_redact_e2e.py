"""A customer reads a card number in groups and the agent reads it back: the real pipeline with the real
speech model, then every output grepped for the card's digits in any form (digits, digit words,
"4.5.3.9."), and the stored recording checked silent over the card number and nowhere else.

Outputs: `analyze --json`, its `--events` file, `report --json`, the HTML report, every row of the
store's database and its raw files, what `calmline replay` serves (data, report, audio); and on the live path (`demo`, with
interim lines), the overlay's WebSocket stream, its `--events` file, its store and its recording.
"""

import html.parser
import json
import re
import sqlite3
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import soundfile as sf
from websockets.sync.client import connect

from conftest import ROOT, calmline, free_port
from leaks import digit_runs
from monitor.library.store import Store
from monitor.web.library import call_data
from synth import Turn, synth_call, write_call

pytestmark = pytest.mark.slow

CARD = "4539148803436467"  # passes the Luhn check
SAID = "four five three nine, one four eight eight, zero three four three, six four six seven."
ACCOUNT = "173412567299"  # read across three turns: "1734" ... "1 2 5 6" ... "7 to double 9"
PIECES = ["one seven three four.", "one two five six.", "seven two double nine."]
GRAMS = {number[i : i + 4] for number in (CARD, ACCOUNT) for i in range(len(number) - 3)}
GROUPS = re.compile(rb"(?<![\d.])(?:4539|1488|0343|6467|1734|1256|7299)(?!\d)|4\.5\.3\.9|1\.4\.8\.8|6\.4\.6\.7")
NOT_TEXT = {"id", "call_id", "audio", "source", "started_at", "pid", "agent"}


@pytest.fixture(scope="module")
def card_call(tmp_path_factory):
    greet = Turn("agent", 0.5, "Thank you for calling, how can I help you today?")
    ask = Turn("customer", greet.end + 0.8, "I would like to pay my bill. My card number is")
    card = Turn("customer", ask.end + 0.4, SAID)
    back = Turn("agent", card.end + 0.8, "Thank you. Let me read that back.")
    readback = Turn("agent", back.end + 0.4, SAID)
    yes = Turn("customer", readback.end + 0.8, "Yes, that is right. And my account number is")
    pieces = [Turn("customer", yes.end + 0.4, PIECES[0])]
    for said in PIECES[1:]:  # pauses long enough for each piece to be a final of its own
        pieces.append(Turn("customer", pieces[-1].end + 1.6, said))
    channels = synth_call([greet, ask, card, back, readback, yes, *pieces], bleed_db=-30)
    path = write_call(tmp_path_factory.mktemp("card") / "card.wav", channels)
    return path, channels, [card, readback, *pieces]


@pytest.fixture(scope="module")
def analyzed(card_call, tmp_path_factory):
    """`calmline analyze` of the call, and every output of it (name -> text or bytes)."""
    path, _, _ = card_call
    tmp = tmp_path_factory.mktemp("analyzed")
    data, events = tmp / "data", tmp / "events.jsonl"
    run = calmline("analyze", path, "--events", events, "--json", "--data-dir", data)
    assert run.returncode == 0, run.stderr
    (call,) = json.loads(calmline("calls", "--json", "--data-dir", data).stdout)
    report = calmline("report", call["id"], "--json", "--data-dir", data)
    page = tmp / "report.html"
    assert calmline("report", call["id"], "--out", page, "--data-dir", data).returncode == 0
    store = Store(data)
    served = _replay(call["id"], data)
    outputs = {"analyze --json": json.loads(run.stdout), "--events": _jsonl(events.read_text()),
               "report --json": json.loads(report.stdout), "report.html": _html_text(page.read_text()),
               "replay data.json": json.loads(served["data.json"]),
               "replay report": _html_text(served["report"].decode()),
               "call_data": call_data(store.call(call["id"]), store.events(call["id"]))}
    outputs.update(_database(data))
    raw = {p.name: p.read_bytes() for p in [events, page, *data.glob("calls.db*")]}
    raw.update({f"replay {name}": body for name, body in served.items() if name != "audio.flac"})
    assert served["audio.flac"] == store.audio_path(call).read_bytes()
    return {"outputs": outputs, "raw": raw, "store": store, "call": call, "events": _jsonl(events.read_text())}


def _replay(call_id: str, data) -> dict[str, bytes]:
    """What `calmline replay` serves for the call: its data, its report page and its audio."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "monitor.cli", "replay", call_id, "--port", str(port),
                               "--seconds", "120", "--data-dir", str(data)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stderr.readline()
        assert "replay of call" in line, line + server.stderr.read()
        base = line.split(" at ", 1)[1].strip().rstrip("/")
        return {name: urllib.request.urlopen(f"{base}/{name}", timeout=30).read()
                for name in ("data.json", "report", "audio.flac")}
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_analyze_leaves_no_trace_of_the_card_number_in_any_output(analyzed):
    for name, output in analyzed["outputs"].items():
        assert not leaks(output), f"{name}: {leaks(output)}"
    for name, data in analyzed["raw"].items():
        assert not GROUPS.search(data), f"{name}: {GROUPS.search(data)}"
    # The card number was heard, and said so, by both parties.
    finals = [e for e in analyzed["events"] if e["type"] == "transcript" and e["final"]]
    redacted = {e["party"] for e in finals if re.search(r"\[(card|number)\]", e["text"])}
    assert redacted == {"agent", "customer"}


def test_the_recording_is_silent_over_the_card_number_and_nowhere_else(analyzed, card_call):
    _, channels, said = card_call
    store, call = analyzed["store"], analyzed["call"]
    check_recording(store, call["id"], channels, said)


def test_the_live_path_shows_the_overlay_no_card_number(card_call, tmp_path):
    """`demo` plays the call in real time (interim lines too) to the overlay, a --events file and the store."""
    path, channels, said = card_call
    port, data, events = free_port(), tmp_path / "data", tmp_path / "events.jsonl"
    demo = subprocess.Popen([sys.executable, "-m", "monitor.cli", "demo", str(path), "--port", str(port),
                             "--events", str(events), "--data-dir", str(data), "--linger", "3"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stream = []
    try:
        ws = _overlay(port)
        with ws:
            while not stream or stream[-1].get("type") != "call_end":
                stream.append(json.loads(ws.recv(timeout=120)))
        assert demo.wait(timeout=60) == 0, demo.stderr.read()
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert any(e["type"] == "transcript" and not e["final"] for e in stream), "no interim line reached the overlay"
    store = Store(data)
    (call,) = store.calls()
    outputs = {"overlay stream": stream, "--events": _jsonl(events.read_text()), **_database(data)}
    for name, output in outputs.items():
        assert not leaks(output), f"{name}: {leaks(output)}"
    for p in [events, *data.glob("calls.db*")]:
        assert not GROUPS.search(p.read_bytes()), p.name
    check_recording(store, call["id"], channels, said)


def check_recording(store, call_id, channels, said):
    """Each reading of the card number silent in both channels (under 1% of its energy left); the
    recording equal to the call wherever it was not silenced, and little silenced beyond the readings."""
    audio, rate = sf.read(store.audio_path(store.call(call_id)), dtype="float32")
    original = np.stack([channels["agent"], channels["customer"]], axis=1)[: len(audio)]
    audio = audio[: len(original)]  # (the last tick is padded with silence)
    for turn in said:
        a, b = int(turn.start * rate), int(turn.end * rate)
        left = np.sum(audio[a:b] ** 2) / np.sum(original[a:b] ** 2)
        assert left < 0.01, f"{turn.party}'s reading keeps {left:.1%} of its energy"
    spans = store.redactions(call_id)
    assert spans and all(s["silenced"] for s in spans)
    kept = np.ones(len(audio), bool)
    for span in spans:
        kept[int(span["start"] * rate) : int(span["end"] * rate)] = False
    assert np.allclose(audio[kept], original[kept], atol=2e-4)
    assert (~kept).sum() / rate < sum(t.end - t.start + 1.5 for t in said)


# --- what "leaks" means ----------------------------------------------------------------------
def leaks(output) -> list[str]:
    """Runs of digits (written as digits or words, with any separators) that hold 4 digits in a row
    of the card number, in any string of the output."""
    found = []
    for text in _strings(output):
        for run in digit_runs(text):
            if any(g in run for g in GRAMS):
                found.append(f"{run} in {text[:80]!r}")
    return found


def test_the_leak_check_finds_the_card_in_any_form():
    for said in (CARD, "4539 1488 0343 6467", "4.5.3.9. 1.4.8.8.", "four five three nine", "453, 9148",
                 "14 double 8 oh 3", {"text": "my card is 4539, 1488"}):
        assert leaks(said), said
    for said in ("I'll call you back in 2 minutes", "[card]", {"t": 45.39, "text": "ok"}, "order 3 of 5"):
        assert not leaks(said), said


def _strings(output):
    if isinstance(output, str):
        yield output
    elif isinstance(output, dict):
        for key, value in output.items():
            if key not in NOT_TEXT:
                yield from _strings(value)
    elif isinstance(output, (list, tuple)):
        for value in output:
            yield from _strings(value)


def _jsonl(text: str) -> list:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class _Text(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts, self._skip = [], 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag):
        self._skip -= tag in ("script", "style")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def _html_text(page: str) -> list[str]:
    parser = _Text()
    parser.feed(page)
    return parser.parts


def _database(data) -> dict:
    """Every row of every table of the store (events' JSON parsed), through sqlite3 itself."""
    con = sqlite3.connect(data / "calls.db")
    out = {}
    for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        rows = con.execute(f"SELECT * FROM {table}").fetchall()
        out[f"db {table}"] = [[json.loads(v) if isinstance(v, str) and v.startswith("{") else v for v in row]
                              for row in rows]
    con.close()
    return out


def _overlay(port: int):
    deadline = time.monotonic() + 60
    while True:
        try:
            return connect(f"ws://127.0.0.1:{port}/ws", origin=f"http://127.0.0.1:{port}", open_timeout=2)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
