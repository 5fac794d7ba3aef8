"""Transcription benchmarks on this machine: final-transcript latency in a real-time replay, accuracy
against offline whole-file transcription, and how many simultaneous calls one machine follows.

Prints one JSON object. Usage: bench/transcription.py [latency|accuracy|capacity ...]
"""

import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
REAL = ROOT.parent / "shared" / "data" / "real"

import jiwer  # noqa: E402
import numpy as np  # noqa: E402

from audio.decode import read_audio  # noqa: E402
from audio.sources import Frame  # noqa: E402
from monitor.analysis.pipeline import Pipeline, run_channels  # noqa: E402
from monitor.library.report import final_lines  # noqa: E402
from monitor.analysis.transcriber import load_model  # noqa: E402
from test_real_speech import SPEAKERS, read_rttm, route  # noqa: E402

BLOCK = 1600  # 0.1 s, as a capture callback delivers


def pyannote_call():
    audio = read_audio(REAL / "pyannote" / "sample.wav")[:, 0]
    turns = read_rttm(REAL / "pyannote" / "sample.rttm")
    return {party: route(audio, turns, spk) for party, spk in SPEAKERS.items()}


def replay(calls, config=None):
    """Push several calls in real time from one thread; latency of each final from its spurt's end."""
    pipelines = [Pipeline(config, call_id=f"call{i}", live=True) for i in range(len(calls))]
    n = max(len(ch["agent"]) for ch in calls)
    latencies = []
    t0 = time.perf_counter()
    for p in pipelines:
        p.start()

    def note(events, now_wall):
        for e in events:
            if e.type == "transcript" and e.final:
                latencies.append(now_wall - (t0 + e.end))

    for start in range(0, n, BLOCK):
        due = t0 + (start + BLOCK) / 16000
        time.sleep(max(0.0, due - time.perf_counter()))
        for p, ch in zip(pipelines, calls):
            for party in ("agent", "customer"):
                note(p.push(Frame(party, start, ch[party][start : start + BLOCK])), time.perf_counter())
    for p in pipelines:
        note(p.finish(), time.perf_counter())
    return np.array(latencies)


def pct(values, q):
    return round(float(np.percentile(values, q)), 3) if len(values) else None


def latency():
    load_model()
    lat = replay([pyannote_call()])
    return {"final_latency_s": {"p50": pct(lat, 50), "p95": pct(lat, 95), "max": pct(lat, 100), "n": len(lat)},
            "target_p95_s": 0.8, "note": "from the end of a spurt (audio time) to its final transcript event; "
                                          "includes the VAD's 0.3 s end-of-spurt hangover"}


def normal(text):
    return " ".join(re.sub(r"[^a-z' ]+", " ", text.lower()).split())


def offline_text(audio):
    segments, _ = load_model().transcribe(audio, language="en", beam_size=1, temperature=0.0,
                                          condition_on_previous_text=False, vad_filter=False)
    return " ".join(s.text for s in segments)


def streamed_text(events, party=None):
    return " ".join(e.text for e in final_lines(events) if party in (None, e.party))


def accuracy():
    out = {}
    # pyannote sample: each speaker on a channel, scored against the STM.
    stm = [line.split(maxsplit=5) for line in (REAL / "pyannote" / "sample.stm").read_text().splitlines()]
    ref = " ".join(normal(f[5]) for f in stm if len(f) > 5)
    audio = read_audio(REAL / "pyannote" / "sample.wav")[:, 0]
    events = run_channels(pyannote_call())
    out["pyannote_sample"] = {"streaming_wer": round(jiwer.wer(ref, normal(streamed_text(events))), 3),
                              "offline_wer": round(jiwer.wer(ref, normal(offline_text(audio))), 3)}
    refs = {}
    for line in (REAL / "librivox" / "transcription").read_text().splitlines():
        m = re.match(r"<s> (.*) </s> \((.*)\)", line.strip())
        refs[m.group(2)] = m.group(1)
    ref_all, stream_all, off_all = [], [], []
    for name, text in sorted(refs.items()):
        a = read_audio(REAL / "librivox" / f"{name}.wav")[:, 0]
        ev = run_channels({"agent": a, "customer": np.zeros_like(a)})
        ref_all.append(normal(text))
        stream_all.append(normal(streamed_text(ev, "agent")))
        off_all.append(normal(offline_text(a)))
    out["librivox"] = {"streaming_wer": round(jiwer.wer(" ".join(ref_all), " ".join(stream_all)), 3),
                       "offline_wer": round(jiwer.wer(" ".join(ref_all), " ".join(off_all)), 3)}
    jfk = read_audio(REAL / "whisper" / "jfk.flac")[:, 0]
    ref = normal((REAL / "whisper" / "jfk.txt").read_text())
    ev = run_channels({"agent": jfk, "customer": np.zeros_like(jfk)})
    out["jfk"] = {"streaming_wer": round(jiwer.wer(ref, normal(streamed_text(ev, "agent"))), 3),
                  "offline_wer": round(jiwer.wer(ref, normal(offline_text(jfk))), 3)}
    return {"accuracy": out, "note": "same model (tiny.en int8, greedy); offline = whole file in one transcribe()"}


def capacity(counts=(1, 5, 10, 12), staggers=2):
    """N calls in real time, each the pyannote call rolled to its own offset; pooled over `staggers` runs
    with different offsets, since one 30 s run holds only ~11 finals a call."""
    load_model()
    base = pyannote_call()
    n = len(base["agent"])
    rows = []
    for count in counts:
        lat = np.concatenate([
            replay([{p: np.roll(x, int((i + k / staggers) * n / count)) for p, x in base.items()} for i in range(count)])
            for k in range(staggers)])
        rows.append({"calls": count, "p50_s": pct(lat, 50), "p95_s": pct(lat, 95), "finals": len(lat)})
    ok = [r["calls"] for r in rows if r["p95_s"] is not None and r["p95_s"] < 2.0]
    return {"capacity": rows, "max_calls_with_p95_under_2s": max(ok) if ok else 0, "target_calls": 10}


if __name__ == "__main__":
    parts = sys.argv[1:] or ["latency", "accuracy", "capacity"]
    result = {"benchmark": "transcription"}
    for part in parts:
        result.update(globals()[part]())
    print(json.dumps(result))
