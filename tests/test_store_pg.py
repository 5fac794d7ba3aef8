"""The call library in PostgreSQL: a real server (tests/pg.py), migrations run twice, a call recorded by one
process read by another, PostgreSQL stopped mid-call with nothing lost, a recorder killed mid-call mended
from the shared audio directory, and a bad URL named in one line."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import psycopg
import pytest
import soundfile as sf

from conftest import ROOT, calmline
from monitor.events import CallEnd, CallStart, Cue, Levels, Transcript
from monitor.library import pg as pgmod
from monitor.library.pg import PgStore, migrate
from monitor.library.store import SUMMARY_COLUMNS, CallRecorder, CallSummary, open_store
from monitor.web.app import WebOptions, WebServer, build_app
from monitor.web.library import LibraryPart
from pg import postgres  # noqa: F401 - the fixture

RATE = 16000


def record(store, call_id: str, seconds: int, between=None) -> CallRecorder:
    """A call of `seconds` one-second steps (levels, a cue each 5 s, a transcript), audio a tone."""
    rec = CallRecorder(store, call_id, "test", time.time(), agent="ann", hold_s=0.0)
    rec.write_events([CallStart(t=0.0, call_id=call_id, source="test", parties=["agent", "customer"])])
    tone = (0.2 * np.sin(np.arange(RATE) * 2 * np.pi * 440 / RATE)).astype(np.float32)
    for second in range(seconds):
        rec.write_audio({"agent": tone, "customer": tone * 0.5})
        batch = [Levels(t=second + k / 10, levels={"agent": -20.0, "customer": -30.0},
                        talking={"agent": True, "customer": False}) for k in range(10)]
        if second % 5 == 4:
            batch.append(Cue(t=second + 0.5, kind="speak_softly", text="Speak softly", reason="test"))
        batch.append(Transcript(t=second + 0.9, party="agent", start=second, end=second + 0.9, text=f"line {second}"))
        rec._next_commit = 0  # commit every step: the test is about what reaches PostgreSQL
        rec.write_events(batch)
        if between is not None:
            between(second)
    return rec


def test_migrations_run_twice_and_from_two_servers(postgres):
    with psycopg.connect(postgres.url, autocommit=True) as con:
        assert migrate(con) == migrate(con) == pgmod.MIGRATIONS[-1][0]
        assert con.execute("SELECT count(*) FROM schema_version").fetchone()[0] == len(pgmod.MIGRATIONS)
    a, b = PgStore(ROOT / "unused-a", postgres.url), PgStore(ROOT / "unused-b", postgres.url)
    a.close(), b.close()
    for path in ("unused-a", "unused-b"):
        subprocess.run(["rm", "-rf", str(ROOT / path)], check=True)


def test_a_call_recorded_by_one_server_is_read_by_another(postgres, tmp_path):
    a = open_store(tmp_path, postgres.url)
    rec = record(a, "call-one", 6)
    rec.write_events([CallEnd(t=6.0)])
    rec.close()
    assert a.flush(10)
    b = open_store(tmp_path, postgres.socket_url)  # another server: the unix socket this time
    (call,) = b.list_calls()
    assert call["id"] == "call-one" and call["status"] == "ended" and call["agent"] == "ann"
    events = b.events("call-one")
    assert len(events) == 1 + 6 * 11 + 1 + 1 and events[-1]["type"] == "call_end"
    assert [e["seq"] if "seq" in e else i for i, e in enumerate(events)] == list(range(len(events)))
    assert b.list_calls(agent="bob") == [] and len(b.list_calls(agent="ann", since=time.time() - 60)) == 1
    metrics = b._query("SELECT count(*) FROM metrics WHERE call_id = ?", ("call-one",))[0][0]
    assert metrics == 60
    audio, rate = sf.read(b.audio_path(call))
    assert rate == RATE and len(audio) == 6 * RATE
    b.keep_summary("call-one", CallSummary("ended", 6.0, 1, 3, 9, 0, 40, "card-a"))
    b.keep_summary("call-one", CallSummary("ended", 6.0, 1, 4, 9, 2, 55, "card-b"))
    assert a.summaries() == {"call-one": CallSummary("ended", 6.0, 1, 4, 9, 2, 55, "card-b")}
    a._write("INSERT INTO servers VALUES ('gone-long-ago:1:aaaaaa', 0)")
    assert a.purge(-1) == ["call-one"] and b.list_calls() == []
    servers = {row[0] for row in a._query("SELECT id FROM servers")}
    assert a.server in servers and "gone-long-ago:1:aaaaaa" not in servers  # a live server's beat is kept
    a.close(), b.close()


def test_postgres_stopped_mid_call_loses_nothing(postgres, tmp_path):
    """Five seconds without PostgreSQL: the recorder never fails or waits, and every row is written after."""
    store = open_store(tmp_path, postgres.url)

    def outage(second):
        if second == 3:
            postgres.stop()
        if second == 8:
            postgres.start()
        time.sleep(0.5 if 3 <= second < 8 else 0.0)

    rec = record(store, "call-two", 12, between=outage)
    assert rec.problem is None
    rec.write_events([CallEnd(t=12.0)])
    rec.close()
    assert store.queue.down_since is None or store.flush(20)
    assert store.flush(20), f"{store.queue.rows} rows still queued"
    expected = 1 + 12 * 11 + 2 + 1
    events = store.events("call-two")
    assert len(events) == expected and len({e["t"] for e in events if e["type"] == "levels"}) == 120
    assert store.call("call-two")["status"] == "ended"
    assert store._query("SELECT count(*) FROM metrics WHERE call_id = ?", ("call-two",))[0][0] == 120
    store.close()


KILLED = """
import sys, time
sys.path.insert(0, {tests!r})
from monitor.library.store import open_store
from test_store_pg import record
store = open_store({data!r}, {url!r})
rec = record(store, "call-killed", 8)  # kept: its reserve stays locked
store.flush(10)
print("recorded", flush=True)
time.sleep(600)
"""


def test_a_server_killed_mid_call_is_mended_by_another(postgres, tmp_path, monkeypatch):
    code = KILLED.format(tests=str(ROOT / "tests"), data=str(tmp_path), url=postgres.url)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "recorded"
    reader = open_store(tmp_path, postgres.url)
    reader.server = "another-machine:1:abcdef"  # reads as a server elsewhere would: by the heartbeat alone
    assert reader.call("call-killed")["status"] == "recording"  # its server beats: not mended
    time.sleep(2.0)  # the FLAC writer flushes about once a second
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    monkeypatch.setattr(pgmod, "LEASE_S", 3.0)
    assert reader.call("call-killed")["status"] == "recording"  # dead, but its lease has not run out yet
    time.sleep(3.5)
    call = reader.call("call-killed")
    assert call["status"] == "interrupted" and call["duration_s"] >= 7.0
    audio, rate = sf.read(reader.audio_path(call))
    assert rate == RATE and len(audio) >= 6 * RATE
    reader.close()


def test_a_bad_store_url_is_one_line(tmp_path):
    run = calmline("calls", "--data-dir", tmp_path, "--store-url", "mysql://x@y/z")
    assert run.returncode != 0 and run.stderr.count("\n") == 1 and "[store] url" in run.stderr
    run = calmline("calls", "--data-dir", tmp_path, "--store-url", "postgresql://nobody@127.0.0.1:1/none")
    assert run.returncode != 0 and run.stderr.count("\n") == 1 and "PostgreSQL" in run.stderr, run.stderr


def test_on_the_recording_machine_a_dead_recorder_is_mended_at_once(postgres, tmp_path):
    code = KILLED.format(tests=str(ROOT / "tests"), data=str(tmp_path), url=postgres.url)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "recorded"
    reader = open_store(tmp_path, postgres.url)
    assert reader.call("call-killed")["status"] == "recording"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert reader.call("call-killed")["status"] == "interrupted"  # its process is gone: no lease to wait out
    reader.close()


def test_the_cli_records_and_lists_calls_in_postgres(postgres, tmp_path):
    """`analyze` records into PostgreSQL (its queue written as it exits), `calls`, `report` and `purge` read it."""
    from synth import barge_in_call, write_call

    channels, _ = barge_in_call("I have been waiting three weeks for my order.")
    wav = write_call(tmp_path / "call.wav", channels)
    where = ["--data-dir", tmp_path / "data", "--store-url", postgres.url]
    run = calmline("analyze", wav, "--no-transcribe", "--json", *where)
    assert run.returncode == 0, run.stderr
    duration = json.loads(run.stdout)["duration_s"]
    listed = calmline("calls", "--json", *where)
    assert listed.returncode == 0, listed.stderr
    (call,) = json.loads(listed.stdout)
    assert call["status"] == "ended" and call["duration_s"] == pytest.approx(duration, abs=0.1)
    report = calmline("report", call["id"], "--json", *where)
    assert report.returncode == 0 and json.loads(report.stdout)["call"]["id"] == call["id"]
    assert (tmp_path / "data" / "audio" / call["audio"]).is_file()
    assert not (tmp_path / "data" / "calls.db").exists()  # no SQLite beside it
    purged = calmline("purge", "--older-than", "-1", *where)
    assert purged.returncode == 0 and "deleted 1 call" in purged.stdout


def _get(port: int, path: str) -> tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read()


def test_kept_summaries_list_without_events_after_migration_and_pages_say_503_while_away(postgres, tmp_path):
    """A library made before migration 2 gains the summary columns; a restarted server lists from kept rows
    (the events deleted, the list the same); each replay route answers one line, 503, while PostgreSQL is away."""
    with psycopg.connect(postgres.url, autocommit=True) as con:  # the library as version 1 left it
        con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION)")
        con.execute(pgmod.MIGRATIONS[0][1])
        con.execute("INSERT INTO schema_version VALUES (1, 0)")
    store = open_store(tmp_path, postgres.url)
    columns = [r[0] for r in store._query("SELECT column_name FROM information_schema.columns WHERE table_name = "
                                          "'call_summaries' ORDER BY ordinal_position")]
    assert columns == ["call_id", *SUMMARY_COLUMNS] and store.version == 2
    for call_id in ("call-a", "call-b"):
        rec = record(store, call_id, 6)
        rec.write_events([CallEnd(t=6.0)])
        rec.close()
    assert store.flush(10)

    def served(library):
        options = WebOptions(port=0)
        server = WebServer(build_app(options, [LibraryPart(library)]), options)
        server.start()
        return server

    server = served(store)
    status, body = _get(server.port, "/calls")
    server.stop()
    first = json.loads(body)
    assert status == 200 and [(r["id"], r["cues"], r["interruptions"]) for r in first] == [("call-b", 1, 0),
                                                                                          ("call-a", 1, 0)]
    assert {s.card for s in store.summaries().values()} != {None}
    store.close()
    restarted = open_store(tmp_path, postgres.url)
    restarted._write("DELETE FROM events")
    server = served(restarted)
    try:
        status, body = _get(server.port, "/calls")
        assert status == 200 and json.loads(body) == first
        postgres.stop()
        for path in ("/calls", "/library", "/calls/call-a/", "/calls/call-a/data.json",
                     "/calls/call-a/overview.json", "/calls/call-a/events.json", "/calls/call-a/levels.json?chunk=0",
                     "/calls/call-a/audio.flac", "/calls/call-a/report"):
            status, body = _get(server.port, path)
            assert status == 503 and body.count(b"\n") == 1 and b"unavailable" in body, (path, status, body)
        postgres.start()
        for path in ("/calls", "/calls/call-a/overview.json", "/calls/call-a/audio.flac"):
            assert _get(server.port, path)[0] == 200, path
    finally:
        server.stop()
        restarted.close()
