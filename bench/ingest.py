"""How many telephony calls one `calmline server` process coaches at once, in real time, on this machine.

The reference AudioHook client (Genesys's, in ../shared/peers/audiohook-client) streams N copies of a
synthesized call with agent barge-ins (`--session-count N`) into a server process running the ingest
routes, recording every call, with an overlay stream carrying every call's events. A WebSocket client
on that stream times each cue from the moment its condition was met, in audio time
(call_start.started_at + cue.t), to its arrival; and each final transcript from the end of its speech.

- acoustic: the largest N with cue latency p95 <= 0.25 s and no audio dropped (target: 100 calls);
- transcription: the largest N with final-transcript latency p95 <= 2 s (target: 10 calls);
- at each N: the CPU of the server and its ingest worker processes (share of one core per call, and
  the server process's part apart), their RSS together, and RSS per call.

The server runs the calls in worker processes, one per core (`[ingest] processes` -1); `--processes 0`
runs them on threads of the server process, as before the pool, for comparison.

Prints JSON. `--counts` and `--transcribe-counts` choose the N tried (in order; a failing N stops the
climb, after a second try, since other work on the machine can spoil a trial). Each trial runs for
the call's length in real time; the load average is recorded with it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

PEER = Path("/work/shared/peers/audiohook-client/dist/client/src/index.js")
API_KEY = "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh"
SECRET = "TXlTdXBlclNlY3JldEtleVRlbGxOby0xITJAMyM0JDU="
CUE_P95_S = 0.25
TRANSCRIPT_P95_S = 2.0


# ---- the server process ----

def serve(port: int, transcribe: bool, data_dir: str, record: bool = True, processes: int = -1) -> None:
    """The ingest part, an overlay stream tagged with each call, a store: until stdin closes."""
    import logging

    from monitor.config import AudioHookIngestConfig, Config, IngestConfig, TranscriptionConfig
    from monitor.ingest.routes import IngestPart
    from monitor.library.store import Store
    from monitor.web.app import WebOptions, WebServer, build_app
    from monitor.web.overlay import OverlayPart

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    config = Config(transcription=TranscriptionConfig(enabled=transcribe),
                    ingest=IngestConfig(audiohook=AudioHookIngestConfig(api_keys={API_KEY: SECRET})))
    overlay = OverlayPart(queue_size=8192)

    def publish_for(agent, opened):
        def publish(event):
            data = event.to_dict()
            data["call"] = opened.call_id  # one stream for every call: say whose event it is
            overlay.publish(data)
        return [publish]

    said = threading.Lock()  # calls finish on several workers at once: one line each

    def finished(call):
        with said:
            print(json.dumps({"finished": call.stream_id, "interrupted": call.interrupted, "reason": call.reason,
                              "dropped_s": call.dropped_s,
                              "late_samples": call.timeline.dropped_samples, "wall_s": round(call.wall_s, 2)}),
                  flush=True)

    store = Store(Path(data_dir)) if record else None
    part = IngestPart(config, store, publish_for=publish_for, on_finished=finished, processes=processes)
    options = WebOptions(port=port)
    server = WebServer(build_app(options, [overlay, part]), options)
    server.start()
    print(json.dumps({"ready": server.port, "pid": os.getpid()}), flush=True)
    sys.stdin.read()  # the bench closes our stdin to stop us
    server.stop()


# ---- the bench ----

def proc_stats(pid: int, cpu_seen: dict | None = None) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) of a process and its descendants (the ingest worker processes), all
    threads. `cpu_seen` keeps each process's last CPU time, so a worker that died still counts."""
    ticks, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
    cpu_seen = {} if cpu_seen is None else cpu_seen
    rss, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
        cpu_seen[p] = (int(fields[11]) + int(fields[12])) / ticks
        rss += int(fields[21]) * page
    return sum(cpu_seen.values()), rss


async def listen(port: int, stop: threading.Event, out: dict) -> None:
    from websockets.asyncio.client import connect

    started: dict[str, float] = {}
    ws = None
    for _ in range(100):
        try:
            ws = await connect(f"ws://127.0.0.1:{port}/ws", origin=f"http://127.0.0.1:{port}", max_size=None)
            break
        except OSError:
            await asyncio.sleep(0.1)
    async with ws:
        while not stop.is_set():
            try:
                event = json.loads(await asyncio.wait_for(ws.recv(), timeout=0.5))
            except asyncio.TimeoutError:
                continue
            now = time.time()
            call, kind = event.get("call"), event.get("type")
            if kind == "call_start":
                started[call] = event["started_at"]
            elif kind == "cue" and call in started:
                out["cues"].append(now - (started[call] + event["t"]))
            elif kind == "transcript" and event.get("final") and call in started:
                out["finals"].append(now - (started[call] + event["end"]))
            elif kind == "call_end":
                out["ended"] += 1


def spread(n: int, call_s: float) -> float:
    """Calls per second for the client: starts spread over a third of a call, since real calls are not in
    step (N copies of one call started at once would all barge in, and cue, in the same second); all N
    are live together for the rest of it."""
    return max(0.1, n / (call_s / 3))


def trial(n: int, wav: Path, call_s: float, transcribe: bool, record: bool = True, processes: int = -1) -> dict:
    from conftest import free_port

    port = free_port()
    results = {"cues": [], "finals": [], "ended": 0}
    finished: list[dict] = []
    stop = threading.Event()
    with tempfile.TemporaryDirectory() as data:
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--data-dir", data]
                                  + (["--transcribe"] if transcribe else []) + ([] if record else ["--no-record"])
                                  + ["--processes", str(processes)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        client = None
        listener = threading.Thread(target=lambda: asyncio.run(listen(port, stop, results)))
        try:
            pid = json.loads(server.stdout.readline())["pid"]
            listener.start()
            time.sleep(1.0)
            seen: dict = {}
            cpu0, rss0 = proc_stats(pid, seen)
            own0 = seen[pid]
            peak = rss0
            client = subprocess.Popen(["node", str(PEER), "--uri", f"ws://127.0.0.1:{port}/ingest/audiohook",
                                       "--api-key", API_KEY, "--client-secret", SECRET, "--wavfile", str(wav),
                                       "--session-count", str(n), "--connection-rate", f"{spread(n, call_s):.2f}",
                                       "--session-log-level", "warn", "--custom-config", '{"agent": "bench"}'],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            t0 = time.monotonic()
            while client.poll() is None and time.monotonic() - t0 < call_s * 3 + 120:
                time.sleep(1.0)
                peak = max(peak, proc_stats(pid, seen)[1])
            deadline = time.monotonic() + 120
            while len(finished) < n and time.monotonic() < deadline:
                line = server.stdout.readline()
                if not line:
                    break
                msg = json.loads(line)
                if "finished" in msg:
                    finished.append(msg)
            cpu1, _ = proc_stats(pid, seen)
            own_s = seen[pid] - own0
        finally:
            if client is not None and client.poll() is None:
                client.kill()
            stop.set()
            if listener.is_alive():
                listener.join()
            server.stdin.close()
            try:
                server.wait(120)
            except subprocess.TimeoutExpired:
                server.kill()
    cpu_s = cpu1 - cpu0
    import numpy as np

    def pct(values, q):
        return round(float(np.percentile(values, q)), 3) if values else None

    dropped = sum(f["dropped_s"] for f in finished)
    reasons = sorted({f["reason"] for f in finished if f["interrupted"]})
    return {
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "calls": n, "processes": processes, "finished": len(finished),
        "interrupted": sum(f["interrupted"] for f in finished),
        "interrupted_why": reasons[:5],
        "dropped_audio_s": round(dropped, 3),
        "cues": len(results["cues"]), "cue_p50_s": pct(results["cues"], 50), "cue_p95_s": pct(results["cues"], 95),
        "cue_max_s": pct(results["cues"], 100),
        "finals": len(results["finals"]), "final_p50_s": pct(results["finals"], 50),
        "final_p95_s": pct(results["finals"], 95),
        "server_cpu_s": round(cpu_s, 1), "cpu_share_per_call": round(cpu_s / (n * call_s), 4),
        "server_process_cpu_s": round(own_s, 1), "worker_processes_cpu_s": round(cpu_s - own_s, 1),
        "server_rss_mb": round(peak / 2**20, 1), "idle_rss_mb": round(rss0 / 2**20, 1),
        "rss_per_call_mb": round((peak - rss0) / n / 2**20, 2),
    }


def make_call(path: Path, rounds: int) -> float:
    """The cue-latency bench's interrupting call, as 8 kHz stereo (channel 0 customer, 1 agent)."""
    import numpy as np
    import soundfile as sf
    import soxr

    from cue_latency import interrupting_call

    channels = interrupting_call(rounds)
    stereo = soxr.resample(np.stack([channels["customer"], channels["agent"]], 1), 16000, 8000, quality="HQ")
    sf.write(str(path), stereo, 8000, subtype="PCM_16")
    return len(stereo) / 8000


def passed(result: dict, transcribe: bool) -> bool:
    if transcribe:
        ok = result["final_p95_s"] is not None and result["final_p95_s"] <= TRANSCRIPT_P95_S
    else:
        ok = result["cue_p95_s"] is not None and result["cue_p95_s"] <= CUE_P95_S
    return ok and result["finished"] == result["calls"] and result["dropped_audio_s"] == 0 \
        and result["interrupted"] == 0


def climb(counts: list[int], wav: Path, call_s: float, transcribe: bool, record: bool,
          tries: int = 2, processes: int = -1) -> tuple[int, list[dict]]:
    """The largest N of `counts` (in order) that passes; an N gets `tries` chances (the machine is shared)."""
    best, trials = 0, []
    for n in counts:
        for _ in range(tries):
            result = trial(n, wav, call_s, transcribe, record, processes)
            result["passed"] = passed(result, transcribe)
            trials.append(result)
            print(json.dumps({"trial": "transcribe" if transcribe else "acoustic", **result}), file=sys.stderr,
                  flush=True)
            if result["passed"]:
                break
        if not result["passed"]:
            break
        best = n
    return best, trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--transcribe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--counts", default="10,25,50,75,100,125,150", help="acoustic trials: N calls each")
    parser.add_argument("--transcribe-counts", default="2,5,10,15", help="trials with transcription")
    parser.add_argument("--rounds", type=int, default=4, help="barge-ins per call (about 12 s each)")
    parser.add_argument("--no-record", action="store_true", help="calls are not recorded (isolates the store's cost)")
    parser.add_argument("--processes", type=int, default=-1,
                        help="[ingest] processes: -1 one per core, 0 in the server process (as before the pool)")
    args = parser.parse_args()
    if args.serve is not None:
        return serve(args.serve, args.transcribe, args.data_dir, not args.no_record, args.processes)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "call8k.wav"
        call_s = make_call(wav, args.rounds)
        out = {"benchmark": "ingest", "call_s": round(call_s, 1), "cores": os.cpu_count()}
        counts = [int(c) for c in args.counts.split(",") if c]
        t_counts = [int(c) for c in args.transcribe_counts.split(",") if c]
        out["recorded"] = not args.no_record
        best, trials = climb(counts, wav, call_s, False, not args.no_record, processes=args.processes)
        out["acoustic"] = {"max_calls": best, "trials": trials}
        best_t, trials_t = climb(t_counts, wav, call_s, True, not args.no_record, processes=args.processes)
        out["transcription"] = {"max_calls": best_t, "trials": trials_t}
        out["targets"] = {"acoustic_calls": 100, "cue_p95_s": CUE_P95_S, "transcription_calls": 10,
                          "final_p95_s": TRANSCRIPT_P95_S}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
