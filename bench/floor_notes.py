"""A supervisor's word to the agent, and the floor's attention, under load; prints JSON.

- `note_delay_ms`: a supervisor's `say` on /floor/ws until the agent's overlay stream (/ws) has the note, while
  `--calls` monitors stream levels at 5/s and cues, on the real web app on loopback (the per-supervisor
  rate limit is lifted for the run: it measures delivery, not the policy);
- `attention_us_per_event`: CPU per event of one call's floor state (CallState.apply, then conditions and the
  tile as the floor computes them when it looks), over a 10-minute synthetic escalating call.

    python bench/floor_notes.py [--calls 50] [--notes 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from websockets.sync.client import connect  # noqa: E402

from floor_server import Floor, Monitor, call_start, cue, ev, form_login, levels  # noqa: E402
from monitor.events import parse_event  # noqa: E402
from monitor.web.floor import CallState  # noqa: E402
from monitor.web.notes import NoteLimiter  # noqa: E402
from test_messages import AGENT_PASSWORD, PASSWORD, Server  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def note_delays(calls: int, notes: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        srv = Server(Path(tmp) / "data")
        srv.floor.notes = NoteLimiter(rate=1e6, burst=1e6)
        agents = [f"agent{i:02d}" for i in range(min(calls, 24))]
        monitors = [Monitor(srv, agents[i % len(agents)], call_id=f"load-{i}") for i in range(calls)]
        target = Monitor(srv, "ann", call_id="target")
        for mon in (*monitors, target):
            mon.send(call_start(mon.call_id))
        stop = threading.Event()

        def stream():
            t = 0.0
            while not stop.wait(0.2):
                t += 0.2
                for i, mon in enumerate(monitors):
                    mon.send(levels(t))
                    if int(t * 5) % 100 == i % 100:
                        mon.send(cue(t, "slow_down", "Slow down"))
                target.send(levels(t))

        sender = threading.Thread(target=stream, daemon=True)
        sender.start()
        cookie = form_login(srv, AGENT_PASSWORD, user="ann").getheader("Set-Cookie").split(";")[0]
        overlay = connect(srv.url.replace("http", "ws", 1) + "ws", origin=srv.url.rstrip("/"),
                          additional_headers={"Cookie": cookie}, open_timeout=5).__enter__()
        sup = Floor(srv, form_login(srv, PASSWORD, user="sup").getheader("Set-Cookie").split(";")[0])
        delays = []
        for i in range(notes):
            sent = time.perf_counter()
            sup.ws.send(json.dumps({"type": "say", "call_id": "target", "text": f"note {i}"}))
            while True:
                message = json.loads(overlay.recv(timeout=10))
                if message.get("type") == "note" and message.get("text") == f"note {i}":
                    delays.append((time.perf_counter() - sent) * 1000)
                    break
            sup.pump(0.001)
            time.sleep(0.02)
        stop.set()
        sender.join()
        overlay.close()
        sup.close()
        for mon in (*monitors, target):
            mon.ws.close()
        srv.stop()
    return {"calls": calls, "notes": notes, "p50": round(statistics.median(delays), 2),
            "p95": round(percentile(delays, 95), 2), "max": round(max(delays), 2)}


def attention_cost() -> dict:
    events = [call_start("b")]
    t = 0.0
    for i in range(3000):  # 10 minutes: levels every 0.2 s, a line every 5 s, a cue every 20 s
        t = 0.2 * (i + 1)
        events.append(levels(t, talking=("customer",) if i % 50 < 25 else ("agent",)))
        if i % 25 == 0:
            party = "customer" if i % 50 == 0 else "agent"
            text = "This is ridiculous." if party == "customer" else "I'm sorry, let me fix that."
            events.append(ev("transcript", t, party=party, start=max(0.0, t - 1), end=t, text=text, final=True,
                             words=[]))
        if i % 100 == 0:
            events.append(cue(t, "acknowledge", "Acknowledge how they feel"))
        if i % 15 == 0:
            events.append(ev("sentiment", t, party="customer", trend=-0.4, recent=-0.4, talk_s=3.0))
    parsed = [(parse_event(raw), raw) for raw in events]
    best = float("inf")
    for _ in range(3):
        call = CallState("b", "bench", "here", 0.0)
        start = time.process_time()
        for event, raw in parsed:
            call.apply(event, raw, None)
            call.tile()
        best = min(best, time.process_time() - start)
    return {"events": len(parsed), "us_per_event": round(best / len(parsed) * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--notes", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps({"note_delay_ms": note_delays(args.calls, args.notes),
                      "attention_us_per_event": attention_cost()}, indent=1))


if __name__ == "__main__":
    main()
