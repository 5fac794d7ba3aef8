"""The scorecard's 0-100 score on calls of known quality, and what scoring a call costs. Prints JSON.

- `calm`: a calm request handled well (empathy at once, an offer with a time, a check, thanks);
- `demo_like_R`: the demo call's story with R rounds of its mistakes (a complaint, 8 s of dead air, policy
  talk over the customer with a raised voice, the cues they raise) a minute apart, then a late apology and
  a good ending; R = 18 is the 20-minute call repeating the same mistakes;
- `demo_call`: the bundled demo call through the real pipeline (speech model; skipped with --no-model);
- `ms_per_call`: the median time to score a call of M minutes of events (levels every 0.2 s included, as
  the store gives them to the replay; the call list leaves levels out).

    .venv/bin/python bench/scorecard.py [--no-model] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.library.scorecard import score_call  # noqa: E402


def spoken(party: str, start: float, end: float, text: str) -> list[dict]:
    return [{"v": 1, "type": "talk_start", "t": start, "party": party},
            {"v": 1, "type": "talk_end", "t": end, "party": party, "start": start, "loudness_dbfs": -24.0},
            {"v": 1, "type": "transcript", "t": end + 0.5, "party": party, "start": start, "end": end,
             "text": text, "final": True, "words": []}]


def cue(t: float, kind: str, reason: str = "") -> dict:
    return {"v": 1, "type": "cue", "t": t, "kind": kind, "text": kind, "reason": reason, "rank": 1}


def mistakes(t0: float) -> list[dict]:
    return [*spoken("customer", t0, t0 + 6.0, "Are you still there? This is ridiculous, I have been waiting."),
            {"v": 1, "type": "silence", "t": t0 + 6.0, "end": t0 + 14.0, "before": "customer", "after": "agent"},
            cue(t0 + 11.0, "dead_air"), cue(t0 + 16.0, "acknowledge"),
            *spoken("customer", t0 + 14.5, t0 + 18.0, "I just want my laptop."),
            *spoken("agent", t0 + 16.0, t0 + 22.0, "Look, it is our policy, there is nothing I can do about it."),
            {"v": 1, "type": "interruption", "t": t0 + 16.0, "by": "agent", "at": t0 + 17.0, "overlap_s": 1.0},
            cue(t0 + 17.0, "wait_for_pause"), cue(t0 + 19.0, "speak_softly", "agent +10.9 dB over their own level"),
            cue(t0 + 23.0, "own_the_problem", 'agent said "it is our policy"')]


def call(parts: list[dict], duration: float, levels: bool = False) -> list[dict]:
    events = [{"v": 1, "type": "call_start", "t": 0.0, "call_id": "bench", "source": "bench",
               "parties": ["agent", "customer"], "started_at": 0.0}, *parts]
    if levels:
        events += [{"v": 1, "type": "levels", "t": i * 0.2, "levels": {"agent": -30.0, "customer": -40.0},
                    "talking": {"agent": False, "customer": False}} for i in range(int(duration / 0.2))]
    return sorted(events, key=lambda e: e["t"]) + [{"v": 1, "type": "call_end", "t": duration, "parties": {}}]


def calm() -> list[dict]:
    return call([*spoken("agent", 0.5, 3.5, "Thank you for calling Northwind, how can I help you?"),
                 *spoken("customer", 4.3, 11.0, "My order arrived with a cracked screen and I would like a new one."),
                 *spoken("agent", 11.8, 15.0, "I am sorry to hear that, that must be disappointing."),
                 *spoken("agent", 15.2, 17.0, "Would you prefer a new one or a refund?"),
                 *spoken("customer", 17.4, 18.6, "A new one please."),
                 *spoken("agent", 18.8, 20.0, "I will send you a new one today."),
                 *spoken("agent", 20.4, 22.0, "Does that work for you?"),
                 *spoken("customer", 22.8, 25.0, "Yes, that works, thank you."),
                 *spoken("agent", 25.8, 28.0, "Thank you for your patience, have a good day.")], 29.0)


def demo_like(rounds: int, gap: float = 62.0, levels: bool = False) -> list[dict]:
    t = 14.0 + rounds * gap
    return call([*spoken("agent", 0.5, 3.5, "Thank you for calling Northwind support, how can I help you today?"),
                 *spoken("customer", 4.3, 11.0, "I ordered a laptop three weeks ago, the third time I call."),
                 *spoken("agent", 11.5, 13.5, "I see, let me look up your order."),
                 *(e for i in range(rounds) for e in mistakes(14.0 + i * gap)),
                 *spoken("agent", t, t + 4.0, "I am sorry, I understand how frustrating that is, what would work best?"),
                 *spoken("customer", t + 4.5, t + 6.0, "Just send me the laptop please."),
                 *spoken("agent", t + 6.5, t + 11.0, "I will send the replacement today. Does that work for you?"),
                 *spoken("customer", t + 11.5, t + 13.0, "Okay, that works, thank you."),
                 *spoken("agent", t + 13.5, t + 15.0, "Thank you for your patience.")], t + 16.0, levels)


def demo_call() -> dict:
    from audio.decode import read_audio
    from monitor.analysis.pipeline import run_channels
    from monitor.cli import DEMO_CALL

    audio = read_audio(DEMO_CALL)
    card = score_call([e.to_dict() for e in run_channels({"agent": audio[:, 0], "customer": audio[:, 1]})])
    return {"score": card["score"], "met": card["met"], "credits": {i["item"]: i["credit"] for i in card["items"]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-model", action="store_true", help="skip the demo call through the speech model")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per call length (the median is given)")
    args = parser.parse_args()
    out = {"calm": score_call(calm())["score"]}
    for rounds in (1, 3, 6, 18):
        out[f"demo_like_{rounds}"] = score_call(demo_like(rounds))["score"]
    timing = {}
    for minutes, rounds in ((5, 4), (20, 18), (60, 57)):
        events = demo_like(rounds, gap=minutes * 60.0 / (rounds + 1), levels=True)
        runs = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            score_call(events)
            runs.append(1000 * (time.perf_counter() - start))
        timing[f"{minutes}min"] = {"events": len(events), "ms": round(statistics.median(runs), 1)}
    out["ms_per_call"] = timing
    if not args.no_model:
        out["demo_call"] = demo_call()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
