"""How soon a long call's replay page draws: a 2-hour call (and a 5-minute one beside it) written straight into
a store as a monitor would have recorded it (levels every 0.2 s, stats every second, talk spurts with their
transcripts and pace, overlaps, interruptions and a cue every ~11 s; a real FLAC of quiet noise), served
by the real library (uvicorn) and opened in Debian's chromium. "first_draw_ms" is from navigation to the
timeline's first drawing (performance mark "calmline-first-draw" in ui/replay.js), "overview_fetch_ms" the
request for overview.json (the server builds a call's pieces on its first, "cold", request). Prints JSON.

    .venv/bin/python bench/replay_open.py [--minutes 120] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audio import SAMPLE_RATE  # noqa: E402
from monitor.events import Event  # noqa: E402
from monitor.library.store import CallRecorder, Store  # noqa: E402
from monitor.web.app import WebOptions, WebServer, build_app  # noqa: E402
from monitor.web.library import LibraryPart  # noqa: E402

CUES = [("wait_for_pause", "Wait for the pause"), ("slow_down", "Slow down"), ("speak_softly", "Speak softly"),
        ("acknowledge", "Acknowledge how they feel"), ("dead_air", "Keep them informed")]
WORDS = ("I understand let me check that order for you the parcel left our warehouse on Monday and should "
         "arrive soon thank you for waiting I am sorry about the delay").split()
CHROMIUM_ARGS = ["--no-sandbox", "--autoplay-policy=no-user-gesture-required", "--mute-audio"]


def long_call_events(call_id: str, minutes: float, seed: int = 1) -> list[dict]:
    """A call's events at the density the pipeline makes them: turns of 2-12 s, one in five taken over the
    other (an overlap; two in three an interruption), a cue every ~11 s."""
    rng = random.Random(seed)
    duration = minutes * 60.0
    out = [{"v": 1, "type": "call_start", "t": 0.0, "call_id": call_id, "source": "bench",
            "parties": ["agent", "customer"], "started_at": time.time() - duration}]
    turns, t, party = [], 0.5, "customer"
    while t < duration - 3:
        party = "agent" if party == "customer" else "customer"
        length = min(rng.uniform(1.5, 9.0), duration - 1 - t)
        overlap = rng.random() < 0.2 and turns
        start = max(turns[-1][2] - rng.uniform(0.4, 2.5), turns[-1][1] + 0.5) if overlap else t
        turns.append((party, round(start, 3), round(start + length, 3)))
        t = start + length + rng.uniform(0.2, 1.5)
    timed = []
    for i, (p, a, b) in enumerate(turns):
        timed.append((a, {"type": "talk_start", "t": a, "party": p}))
        timed.append((b, {"type": "talk_end", "t": b, "party": p, "start": a, "loudness_dbfs": -24.0}))
        text = " ".join(rng.choice(WORDS) for _ in range(max(2, int((b - a) * 2.6))))
        timed.append((b, {"type": "transcript", "t": b, "party": p, "start": a, "end": b, "text": text.capitalize() + ".",
                          "final": True, "words": []}))
        timed.append((b, {"type": "pace", "t": b, "wpm": {p: round(rng.uniform(120, 210), 1)}}))
        if i and a < turns[i - 1][2]:
            end = min(b, turns[i - 1][2])
            timed.append((end, {"type": "overlap", "t": a, "end": end, "by": p}))
            if i % 3 and end - a > 1.0:  # two in three overlaps of either party are interruptions
                timed.append((a + 1.0, {"type": "interruption", "t": a, "by": p, "at": a + 1.0, "overlap_s": 1.0}))
    cue_t = rng.uniform(5, 15)
    while cue_t < duration - 1:
        kind, text = rng.choice(CUES)
        timed.append((cue_t, {"type": "cue", "t": round(cue_t, 3), "kind": kind, "text": text, "reason": "bench",
                              "rank": 2}))
        cue_t += rng.expovariate(1 / 11.0)
    for k in range(1, int(duration / 0.2)):
        lt = round(0.2 * k, 3)
        timed.append((lt, {"type": "levels", "t": lt, "levels": {}, "talking": {}}))
        if k % 5 == 0:
            timed.append((lt, {"type": "stats", "t": lt, "talk_s": {"agent": 0.0, "customer": 0.0}, "share": 0.5,
                               "wpm": {"agent": None, "customer": None}, "cues": []}))
    timed.sort(key=lambda item: item[0])
    # levels follow the turns: loud while talking, a quiet floor otherwise
    spans = sorted(turns, key=lambda s: s[1])
    open_from = 0
    for _, event in timed:
        if event["type"] == "levels":
            lt = event["t"]
            while open_from < len(spans) and spans[open_from][2] < lt - 20:
                open_from += 1
            on = {p: False for p in ("agent", "customer")}
            for p, a, b in spans[open_from:open_from + 12]:
                if a <= lt < b:
                    on[p] = True
            event["talking"] = on
            event["levels"] = {p: round(-24 + rng.uniform(-6, 4), 1) if on[p] else round(-58 + rng.uniform(-4, 4), 1)
                               for p in on}
        out.append({"v": 1, **event})
    out.append({"v": 1, "type": "call_end", "t": duration, "parties": {
        p: {"talk_level_dbfs": -24.0, "voiced_s": duration / 3, "wpm": 170.0} for p in ("agent", "customer")}})
    return out


def record_call(store: Store, call_id: str, minutes: float, audio: bool = True, seed: int = 1) -> list[dict]:
    """Write the call into `store` through a CallRecorder, as a monitor would: events, then (optionally) a FLAC
    of quiet noise as long as the call. The events written."""
    events = long_call_events(call_id, minutes, seed)
    recorder = CallRecorder(store, call_id, "bench", events[0]["started_at"], agent="bench", redact_audio=False,
                            hold_s=0.0)
    if audio:
        rng = np.random.default_rng(seed)
        chunk = 10 * SAMPLE_RATE
        left = int(minutes * 60 * SAMPLE_RATE)
        while left > 0:
            n = min(chunk, left)
            noise = (rng.standard_normal((2, n)) * 0.003).astype(np.float32)
            recorder.write_audio({"agent": noise[0], "customer": noise[1]})
            left -= n
    for start in range(0, len(events), 2000):
        recorder.write_events([Event.from_dict(e) for e in events[start:start + 2000]])
    recorder.close()
    return events


def first_draw(browser, url: str) -> dict:
    """Open the replay page in a fresh context; ms from navigation to the first drawing, and to everything
    loaded (the transcript and scorecard in place)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        page.goto(url)
        page.wait_for_function("() => performance.getEntriesByName('calmline-first-draw').length > 0",
                               timeout=120_000)
        page.wait_for_function("() => document.body.classList.contains('loaded')", timeout=120_000)
        return page.evaluate("""() => ({
            first_draw_ms: performance.getEntriesByName('calmline-first-draw')[0].startTime,
            loaded_ms: (performance.getEntriesByName('calmline-loaded')[0] || {}).startTime,
            overview_ms: performance.getEntriesByType('resource').filter((r) => /overview.json/.test(r.name))
                         .map((r) => r.responseEnd - r.requestStart)[0],
            bytes: performance.getEntriesByType('resource').filter((r) => /json/.test(r.name))
                   .reduce((sum, r) => sum + (r.transferSize || 0), 0)})""")
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=120.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-audio", action="store_true", help="no FLAC (the page then loads only its data)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as data:
        store = Store(Path(data))
        start = time.perf_counter()
        events = record_call(store, "long", args.minutes, audio=not args.no_audio)
        record_call(store, "short", 5.0, audio=not args.no_audio, seed=2)
        written = time.perf_counter() - start
        options = WebOptions(port=0)
        server = WebServer(build_app(options, [LibraryPart(store)]), options)
        server.start()
        results = {}
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                for name in ("short", "long"):
                    runs = [first_draw(browser, f"{server.url}calls/{name}/") for _ in range(args.runs + 1)]
                    cold, warm = runs[0], runs[1:]
                    results[name] = {"cold_first_draw_ms": round(cold["first_draw_ms"]),
                                     "cold_overview_fetch_ms": round(cold["overview_ms"]),
                                     "overview_fetch_ms_median": round(statistics.median(r["overview_ms"] for r in warm)),
                                     "first_draw_ms_median": round(statistics.median(r["first_draw_ms"] for r in warm)),
                                     "loaded_ms_median": round(statistics.median(r["loaded_ms"] or 0 for r in warm)),
                                     "json_bytes": cold["bytes"]}
                browser.close()
        finally:
            server.stop()
            store.close()
    kinds: dict[str, int] = {}
    for e in events:
        kinds[e["type"]] = kinds.get(e["type"], 0) + 1
    print(json.dumps({"minutes": args.minutes, "audio": not args.no_audio, "events": len(events), "cues": kinds.get("cue", 0),
                      "levels": kinds.get("levels", 0), "write_s": round(written, 1), "runs": args.runs,
                      "long": results["long"], "short_5min": results["short"]}))


if __name__ == "__main__":
    main()
