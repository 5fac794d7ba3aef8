"""How long cues stay up now that the monitor says when their behaviour is over (issue 12).

Runs the bundled demo call through the pipeline with transcription, as `calmline analyze` does, and prints
JSON: each cue with when it came, when its cue_end came, how long it was up, whether the agent did what it
asked, and for `wait_for_pause` how long after its overlap ended it went (it used to stay 8 s, whatever
happened). Also how many cues a page would have shown at once and what stats cost on the wire.
"""

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from audio.decode import read_audio  # noqa: E402
from monitor.analysis.pipeline import run_channels  # noqa: E402
from monitor.cli import DEMO_CALL  # noqa: E402
from monitor.config import Config  # noqa: E402

OLD_CUE_S = 8.0


def main() -> None:
    audio = read_audio(DEMO_CALL)
    started = time.perf_counter()
    events = run_channels({"agent": audio[:, 0], "customer": audio[:, 1]}, Config())
    elapsed = time.perf_counter() - started
    duration = events[-1].t
    cues, ends = [e for e in events if e.type == "cue"], [e for e in events if e.type == "cue_end"]
    overlaps = [e for e in events if e.type == "overlap" and e.by == "agent"]
    rows = []
    for cue in cues:
        end = next((e for e in ends if e.kind == cue.kind and e.t > cue.t), None)
        row = {"kind": cue.kind, "on_s": round(cue.t, 2), "off_s": round(end.t, 2) if end else None,
               "up_s": round((end.t if end else duration) - cue.t, 2), "done": end.done if end else None}
        if cue.kind == "wait_for_pause":
            overlap = next((o for o in overlaps if o.t <= cue.t <= o.end + 1.0), None)
            if overlap and end:
                row["off_after_overlap_end_s"] = round(end.t - overlap.end, 2)
                row["old_off_after_overlap_end_s"] = round(cue.t + OLD_CUE_S - overlap.end, 2)
        rows.append(row)
    stats = [e for e in events if e.type == "stats"]
    most_up = max((len(s.cues) for s in stats), default=0)
    print(json.dumps({
        "call": DEMO_CALL.name, "duration_s": round(duration, 1), "analysis_s": round(elapsed, 1),
        "cues": rows, "cue_ends": len(ends), "most_cues_up_at_once": most_up,
        "stats_events": len(stats), "stats_bytes_per_minute": round(sum(len(s.to_json()) for s in stats) / duration * 60),
        "final_share": stats[-1].share if stats else None,
    }, indent=1))


if __name__ == "__main__":
    main()
