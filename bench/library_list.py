"""How long `/calls` takes with a cue count and a scorecard score on every row: N recorded calls of a few
minutes each (levels every 0.2 s, talk spurts, transcripts, cues), listed over HTTP from a real server, first
cold (every score computed), then warm (kept in memory), then from a restarted server (kept in the store:
`restart_event_queries` counts the SQL statements that read the events table then, 0 when the kept summaries
carry all the list shows). Prints JSON.

    .venv/bin/python bench/library_list.py [--calls 200] [--minutes 5]
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.events import Event  # noqa: E402
from monitor.library.store import CallRecorder, Store  # noqa: E402
from monitor.web.app import WebOptions, WebServer, build_app  # noqa: E402
from monitor.web.library import LibraryPart  # noqa: E402


def call_events(call_id: str, minutes: float) -> list[dict]:
    duration = minutes * 60.0
    events = [{"v": 1, "type": "call_start", "t": 0.0, "call_id": call_id, "source": "bench",
               "parties": ["agent", "customer"], "started_at": time.time()}]
    t = 0.0
    while t < duration:
        t = round(t + 0.2, 3)
        events.append({"v": 1, "type": "levels", "t": t, "levels": {"agent": -30.0, "customer": -40.0},
                       "talking": {"agent": int(t) % 8 < 4, "customer": int(t) % 8 >= 4}})
        if t % 4 == 0:
            party = "agent" if int(t) % 8 == 4 else "customer"
            events.append({"v": 1, "type": "talk_end", "t": t, "party": party, "start": t - 3.5,
                           "loudness_dbfs": -25.0})
            events.append({"v": 1, "type": "transcript", "t": t, "party": party, "start": t - 3.5, "end": t,
                           "text": "I understand, let me check that for you today, does that work",
                           "final": True, "words": []})
        if t % 30 == 0:
            events.append({"v": 1, "type": "cue", "t": t, "kind": "slow_down", "text": "Slow down",
                           "reason": "bench", "rank": 4})
    events.append({"v": 1, "type": "call_end", "t": duration, "parties": {}})
    return events


def get(port: int, path: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("GET", path)
    body = conn.getresponse().read()
    conn.close()
    return time.perf_counter() - start, body


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        store = Store(Path(data))
        events = None
        for i in range(args.calls):
            call_id = f"call-{i:04d}"
            events = call_events(call_id, args.minutes)
            recorder = CallRecorder(store, call_id, "bench", time.time() - i * 600, agent=f"agent{i % 20:02d}",
                                    hold_s=0.0)
            recorder.write_events([Event.from_dict(e) for e in events])
            recorder.close()
        options = WebOptions(port=0)
        server = WebServer(build_app(options, [LibraryPart(store)]), options)
        server.start()
        try:
            cold, body = get(server.port, "/calls")
            warm, _ = get(server.port, "/calls")
            agent, rows = get(server.port, "/calls?agent=agent03")
        finally:
            server.stop()
        store.close()
        store = Store(Path(data))  # a restarted server: its own connection, every statement it runs seen
        statements = []
        store.db.set_trace_callback(statements.append)
        server = WebServer(build_app(options, [LibraryPart(store)]), options)
        server.start()
        try:
            restarted, again = get(server.port, "/calls")
            same = json.loads(again) == json.loads(body)
        finally:
            server.stop()
            store.close()
    print(json.dumps({"calls": args.calls, "events_per_call": len(events), "minutes_per_call": args.minutes,
                      "list_cold_s": round(cold, 3), "list_warm_s": round(warm, 3),
                      "list_after_restart_s": round(restarted, 3), "restart_same_rows": same,
                      "restart_event_queries": sum(1 for s in statements if "FROM events" in s),
                      "list_one_agent_warm_s": round(agent, 3), "rows": len(json.loads(body)),
                      "agent_rows": len(json.loads(rows))}))


if __name__ == "__main__":
    main()
