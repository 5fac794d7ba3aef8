"""Recording costs: storage per hour of call (database and audio), the overhead recording adds to
`analyze`, and the time to open the replay page's data for a 1-hour call. Prints JSON.
Targets: recording overhead under 10%."""

import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from audio.sources import array_frames  # noqa: E402
from monitor.library.store import Store  # noqa: E402
from monitor.session.session import CallSession  # noqa: E402
from rtf import ten_minute_call  # noqa: E402


def analyse(channels, data_dir=None, transcribe=False):
    """One call through the same session `calmline analyze` runs; (seconds, call id)."""
    session = CallSession(source="bench", transcribe=transcribe, store=Store(data_dir) if data_dir else None)
    t0 = time.perf_counter()
    result = session.run(array_frames(channels))
    return time.perf_counter() - t0, result.call_id


def main():
    minutes = 10
    channels = ten_minute_call(minutes)
    hours = minutes / 60
    plain = min(analyse(channels)[0] for _ in range(3))
    out = {"benchmark": "storage"}
    with tempfile.TemporaryDirectory() as tmp:
        runs = [(*analyse(channels, Path(tmp) / str(i)), Path(tmp) / str(i)) for i in range(3)]
        recorded, call_id, data = min(runs)
        db = sum(f.stat().st_size for f in data.glob("calls.db*"))
        audio = sum(f.stat().st_size for f in (data / "audio").glob("*.flac"))
        out["per_hour_mb"] = {"database": round(db / hours / 1e6, 1), "audio_flac": round(audio / hours / 1e6, 1)}
        out["analyze_s"] = {"without_recording": round(plain, 3), "with_recording": round(recorded, 3)}
        out["recording_overhead_acoustic_only"] = round(recorded / plain - 1, 3)
        out["replay_open_1h_s"] = replay_open(data, call_id)
        short = ten_minute_call(3)  # the default analyze transcribes: the same comparison on 3 minutes
        plain_t = analyse(short, transcribe=True)[0]
        recorded_t = analyse(short, Path(tmp) / "t", transcribe=True)[0]
        out["analyze_with_transcription_s"] = {"without_recording": round(plain_t, 3),
                                               "with_recording": round(recorded_t, 3)}
        out["recording_overhead_with_transcription"] = round(recorded_t / plain_t - 1, 3)
    out["targets"] = {"recording_overhead": 0.10}
    print(json.dumps(out))


def replay_open(data: Path, call_id: str):
    """Time to fetch the replay page and its call data for a call made 6x longer (one hour)."""
    from monitor.web.app import WebOptions
    from monitor.web.library import serve_replay

    store = Store(data)
    events = store.events(call_id)
    span = max(e["t"] for e in events)
    with store.db:  # six copies end to end: one hour of events in one call
        rows = []
        seq = len(events)
        for k in range(1, 6):
            for e in events:
                e = dict(e, t=e["t"] + k * span)
                rows.append((call_id, seq, e["t"], e["type"], json.dumps(e)))
                seq += 1
        store.db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", rows)
    server = serve_replay(store, call_id, WebOptions(port=0))
    try:
        t0 = time.perf_counter()
        for path in ("", "data.json"):
            urllib.request.urlopen(server.url + path).read()
        return round(time.perf_counter() - t0, 3)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
