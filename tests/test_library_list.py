"""The call list from kept summaries: a restarted server (and `calmline calls`) lists every call, with its cue and
interruption counts and 0-100 score, without reading one call's events; a scorecard changed by the config
rescores each call once; an old data directory (call_summaries before interruptions and score) is migrated,
any number of times. Real SQLite files, a real HTTP server, the real CLI."""

import dataclasses
import http.client
import json
import sqlite3
import time

from conftest import calmline
from monitor.config import Config
from monitor.events import CallEnd, CallStart, Cue, Interruption, TalkEnd, Transcript
from monitor.library.scorecard import score_call
from monitor.library.store import SUMMARY_COLUMNS, CallRecorder, Store
from monitor.web.app import WebOptions, WebServer, build_app
from monitor.web.library import LibraryPart, card_key

LINES = [("customer", "my order never arrived and I am frustrated"), ("agent", "I am sorry, let me check that"),
         ("customer", "it was order one two three"), ("agent", "I have sent a new one today, anything else?"),
         ("customer", "no that is all"), ("agent", "thank you for calling, have a good day")]


def record(store: Store, call_id: str, interruptions: int, cues: int, started_at: float) -> None:
    rec = CallRecorder(store, call_id, "test", started_at, agent="ann", hold_s=0.0)
    batch = [CallStart(t=0.0, call_id=call_id, source="test", parties=["agent", "customer"])]
    for i, (party, text) in enumerate(LINES):
        batch += [TalkEnd(t=i * 5 + 4.0, party=party, start=i * 5.0),
                  Transcript(t=i * 5 + 4.0, party=party, start=i * 5.0, end=i * 5 + 4.0, text=text)]
    batch += [Interruption(t=2.0 + i, by="agent", at=2.5 + i, overlap_s=0.5) for i in range(interruptions)]
    batch += [Cue(t=3.0 + i, kind="slow_down", text="Slow down", reason="test", rank=4) for i in range(cues)]
    rec.write_events(sorted(batch, key=lambda e: e.t) + [CallEnd(t=30.0)])
    rec.close()
    assert rec.problem is None


def recorded(tmp_path) -> Store:
    store = Store(tmp_path)
    for i, (interruptions, cues) in enumerate([(0, 1), (2, 0), (3, 4)]):
        record(store, f"call-{i}", interruptions, cues, time.time() - 3600 * (i + 1))
    return store


def listed(store: Store, config: Config | None = None) -> list[dict]:
    """/calls from a real server over HTTP (a fresh LibraryPart: a restarted server)."""
    options = WebOptions(port=0)
    server = WebServer(build_app(options, [LibraryPart(store, config=config)]), options)
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("GET", "/calls")
        response = conn.getresponse()
        assert response.status == 200
        return json.loads(response.read())
    finally:
        server.stop()


def forget_events(tmp_path) -> None:
    with sqlite3.connect(tmp_path / "calls.db") as con:
        con.execute("DELETE FROM events")


def test_a_restarted_server_lists_kept_summaries_without_reading_events(tmp_path):
    store = recorded(tmp_path)
    first = listed(store)
    assert [(r["id"], r["cues"], r["interruptions"]) for r in first] == [("call-0", 1, 0), ("call-1", 0, 2),
                                                                          ("call-2", 4, 3)]
    expected = {r["id"]: score_call(store.events_json(r["id"], levels=False))["score"] for r in first}
    assert {r["id"]: r["score"]["score"] for r in first} == expected and all(r["score"]["total"] == 9 for r in first)
    store.close()

    restarted = Store(tmp_path)  # a restart: every SQL statement it runs is seen
    statements = []
    restarted.db.set_trace_callback(statements.append)
    assert listed(restarted) == first
    assert statements and not [s for s in statements if "events" in s], statements
    forget_events(tmp_path)  # and with the events gone for good, the list is still the same
    assert listed(restarted) == first
    restarted.close()

    cli = calmline("calls", "--json", "--data-dir", tmp_path)  # `calmline calls` lists the same kept rows
    assert cli.returncode == 0, cli.stderr
    assert [{k: r[k] for k in ("id", "cues", "interruptions", "score")} for r in json.loads(cli.stdout)] == \
        [{k: r[k] for k in ("id", "cues", "interruptions", "score")} for r in first]


def test_a_summary_kept_by_another_server_is_read_not_worked_out_again(tmp_path):
    store = recorded(tmp_path)
    mine = LibraryPart(store)
    assert len(mine.rows()) == 3  # its kept summaries read
    other = Store(tmp_path)  # another server on the same library records and lists a call
    record(other, "call-new", 5, 2, time.time())
    (new, *_) = LibraryPart(other).rows()
    assert (new["id"], new["interruptions"], new["cues"]) == ("call-new", 5, 2)
    other.close()
    statements = []
    store.db.set_trace_callback(statements.append)
    assert mine.rows()[0] == new
    assert not [s for s in statements if "events" in s], statements
    store.close()


def test_a_changed_scorecard_rescores_each_call_once_and_keeps_it(tmp_path):
    store = recorded(tmp_path)
    before = listed(store)
    weights = dataclasses.replace(Config().scorecard.weights, **{
        f.name: 0.0 for f in dataclasses.fields(Config().scorecard.weights) if f.name != "thank"})
    config = Config(scorecard=dataclasses.replace(Config().scorecard, weights=weights))
    assert card_key(config) != card_key(None) == card_key(Config())
    after = listed(store, config)  # reads each call's events once, for the new score
    scores = {r["id"]: score_call(store.events_json(r["id"], levels=False), config)["score"] for r in before}
    assert {r["id"]: r["score"]["score"] for r in after} == scores
    assert [r["score"]["score"] for r in after] != [r["score"]["score"] for r in before]
    kept = {row[0]: row[1] for row in store.db.execute("SELECT call_id, card FROM call_summaries")}
    assert set(kept.values()) == {card_key(config)}
    forget_events(tmp_path)  # kept: the next server with this config reads no events
    assert listed(store, config) == after
    store.close()


OLD_SCHEMA = """
CREATE TABLE calls (id TEXT PRIMARY KEY, agent TEXT, started_at REAL, duration_s REAL, source TEXT, status TEXT,
                    pid INTEGER, audio TEXT);
CREATE TABLE events (call_id TEXT, seq INTEGER, t REAL, type TEXT, json TEXT, PRIMARY KEY (call_id, seq));
CREATE TABLE metrics (call_id TEXT, t REAL, agent_dbfs REAL, customer_dbfs REAL, agent_talking INTEGER,
                      customer_talking INTEGER, agent_wpm REAL, customer_wpm REAL);
CREATE TABLE call_summaries (call_id TEXT PRIMARY KEY, status TEXT, duration_s REAL, cues INTEGER, met INTEGER,
                             total INTEGER);
"""


def test_an_old_data_dir_is_migrated_and_its_calls_summarised_once(tmp_path):
    source = tmp_path / "new"
    store = recorded(source)
    events = {c: store.events_json(c) for c in ("call-0", "call-1", "call-2")}
    calls = store._query("SELECT * FROM calls")
    store.close()
    old = tmp_path / "old"  # the schema as it shipped, written by hand, with a summary kept the old way
    old.mkdir(mode=0o700)
    with sqlite3.connect(old / "calls.db") as con:
        con.executescript(OLD_SCHEMA)
        con.executemany("INSERT INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?)", calls)
        con.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)",
                        [(c, i, e["t"], e["type"], json.dumps(e)) for c, es in events.items() for i, e in enumerate(es)])
        con.execute("INSERT INTO call_summaries VALUES ('call-2', 'ended', 30.0, 4, 1, 9)")
    Store(old).close()
    migrated = Store(old)  # twice: nothing to add the second time
    columns = [row[1] for row in migrated.db.execute("PRAGMA table_info(call_summaries)")]
    assert columns == ["call_id", *SUMMARY_COLUMNS]
    assert migrated.summaries()["call-2"].interruptions is None  # kept the old way: summarised again, once
    rows = listed(migrated)
    assert [(r["id"], r["cues"], r["interruptions"]) for r in rows] == [("call-0", 1, 0), ("call-1", 0, 2),
                                                                         ("call-2", 4, 3)]
    assert all(isinstance(r["score"]["score"], int) for r in rows)
    assert {c: s.interruptions for c, s in migrated.summaries().items()} == {"call-0": 0, "call-1": 2, "call-2": 3}
    forget_events(old)
    assert listed(migrated) == rows
    migrated.close()
