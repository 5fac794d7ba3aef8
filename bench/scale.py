"""Past one server: the same N calls on one `calmline server`, then split across two sharing PostgreSQL (the call
library), one audio directory and Redis (the floor); prints JSON.

Every call is the reference AudioHook client (one node process per call, each its own agent, started spread
over a third of the call) streaming the cue-latency bench's interrupting call in real time, acoustic analysis
only, recorded. Every agent's overlay is open (a supervisor's `/ws?agent=NAME`) on the LAST server, so with two
servers half the calls reach their overlay through Redis. A cue's latency is its arrival on the overlay minus
the moment its condition was met in audio time (call_start.started_at + cue.t), as bench/ingest.py counts it.

Per scenario: calls finished (call_end on the overlay), cues, cue latency p50/p95/max (and p95 of the calls
on another server), and per server its CPU (cores used on average over the calls) and peak RSS. With
`--counts 8,16,24` it tries each N (stopping once p95 passes four times the limit) and reports the largest N
each scenario held within cue p95 0.25 s.

Both servers run on this machine: two processes share its cores (see docs/scale.md for what that means).

    python bench/scale.py [--counts 8,16] [--rounds 4]
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
PASSWORD = "bench-password-long-enough"
PCM_TOKEN = "bench-pcm-token-0123456789"
CUE_P95_S = 0.25


def start_server(tmp: Path, redis_url: str, store_url: str) -> tuple[subprocess.Popen, int, list]:
    from conftest import free_port

    port = free_port()
    lines: list[str] = []
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "--config", str(tmp / "config.toml"), "server",
                             "--port", str(port), "--data-dir", str(tmp / "shared"), "--redis", redis_url,
                             "--store-url", store_url], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    started = threading.Event()

    def drain():
        for text in proc.stderr:
            lines.append(text)
            if "server at http" in text:
                started.set()
        started.set()

    threading.Thread(target=drain, daemon=True).start()
    started.wait(60)
    if proc.poll() is not None:
        raise SystemExit(f"server did not start: {''.join(lines)[-2000:]}")
    return proc, port, lines


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_total(pid: int) -> float:
    """A client's CPU seconds so far (0 once it is gone: read before the clients are reaped)."""
    try:
        return cpu_s(pid)
    except (OSError, IndexError):
        return 0.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def login(port: int) -> str:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/login", f"username=sup&password={PASSWORD}",
                 {"Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    response.read()
    return response.getheader("Set-Cookie").split(";")[0]


async def watch(port: int, cookie: str, agents: list[str], results: dict, stop: threading.Event) -> None:
    """Every agent's overlay stream: cue latencies and which calls ended, until `stop`."""
    import websockets

    async def one(agent: str):
        url = f"ws://127.0.0.1:{port}/ws?agent={agent}"
        async with websockets.connect(url, origin=f"http://127.0.0.1:{port}", additional_headers={"Cookie": cookie},
                                      max_size=None) as ws:
            started_at = None
            while not stop.is_set():
                try:
                    text = await asyncio.wait_for(ws.recv(), 0.5)
                except asyncio.TimeoutError:
                    continue
                now = time.time()
                msg = json.loads(text)
                kind = msg.get("type")
                if kind == "call_start":
                    started_at = msg.get("started_at")
                elif kind == "cue" and started_at:
                    results["cues"].append((agent, now - (started_at + msg["t"])))
                elif kind == "call_end":
                    results["ended"].add(agent)

    await asyncio.gather(*(one(agent) for agent in agents), return_exceptions=True)


def send_pcm_calls(jobs: list[tuple[str, str]], wav: str, spread_s: float) -> None:
    """In a process of its own: one PCM stream per (url, agent), on threads, started `spread_s` apart."""
    from senders import send_pcm

    threads = []
    for url, agent in jobs:
        thread = threading.Thread(target=send_pcm, args=(url, wav, PCM_TOKEN, agent))
        thread.start()
        threads.append(thread)
        time.sleep(spread_s)
    for thread in threads:
        thread.join()


def trial(tmp: Path, pg_url: str, redis_url: str, wav: Path, call_s: float, n: int, servers: int,
          client: str = "audiohook") -> dict:
    import numpy as np

    import redis

    stream = redis.Redis.from_url(redis_url)
    stream.delete("calmline:events")
    procs = [start_server(tmp, redis_url, pg_url) for _ in range(servers)]
    watcher_port = procs[-1][1]
    agents = [f"agent{i:02d}" for i in range(n)]
    results = {"cues": [], "ended": set()}
    stop = threading.Event()
    listener = threading.Thread(target=lambda: asyncio.run(watch(watcher_port, login(watcher_port), agents,
                                                                 results, stop)))
    clients = []
    client_cpu: dict[int, float] = {}
    try:
        listener.start()
        time.sleep(2.0)
        cpu0 = [cpu_s(p.pid) for p, _, _ in procs]
        peak = [rss_mb(p.pid) for p, _, _ in procs]
        t0 = time.monotonic()
        spread = call_s / 3 / max(1, n)
        if client == "pcm":  # one light sender process for every call
            import multiprocessing

            jobs = [(f"ws://127.0.0.1:{procs[i % servers][1]}/ingest/pcm", agent) for i, agent in enumerate(agents)]
            sender = multiprocessing.get_context("spawn").Process(target=send_pcm_calls, args=(jobs, str(wav), spread))
            sender.start()
            sender.poll = lambda s=sender: None if s.is_alive() else s.exitcode  # as the node clients answer
            sender.kill = sender.terminate
            clients.append(sender)
        for i, agent in enumerate(agents if client == "audiohook" else []):
            port = procs[i % servers][1]
            clients.append(subprocess.Popen(
                ["node", str(PEER), "--uri", f"ws://127.0.0.1:{port}/ingest/audiohook", "--api-key", API_KEY,
                 "--client-secret", SECRET, "--wavfile", str(wav), "--session-count", "1",
                 "--session-log-level", "warn", "--custom-config", json.dumps({"agent": agent})],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(spread)
        deadline = time.monotonic() + call_s * 3 + 60
        while (any(c.poll() is None for c in clients) or len(results["ended"]) < n) and time.monotonic() < deadline:
            time.sleep(0.5)
            peak = [max(a, rss_mb(p.pid)) for a, (p, _, _) in zip(peak, procs)]
            for c in clients:  # sampled while they run: a finished client's /proc entry goes when it is reaped
                client_cpu[c.pid] = max(client_cpu.get(c.pid, 0.0), _cpu_total(c.pid))
        wall = time.monotonic() - t0
        cpu = [cpu_s(p.pid) - c0 for c0, (p, _, _) in zip(cpu0, procs)]
        senders_cpu = sum(client_cpu.values())
        entries = stream.xlen("calmline:events")
        stream_bytes = stream.memory_usage("calmline:events") or 0
    finally:
        stop.set()
        listener.join(timeout=10)
        for sender in clients:
            if sender.poll() is None:
                sender.kill()
        for proc, _, _ in procs:
            proc.terminate()
        for proc, _, _ in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()

    def pct(values, q):
        return round(float(np.percentile(values, q)), 3) if values else None

    lat = [d for _, d in results["cues"]]
    remote = [d for agent, d in results["cues"] if servers > 1 and agents.index(agent) % servers != servers - 1]
    return {
        "servers": servers, "calls": n, "client": client, "finished": len(results["ended"]), "cues": len(lat),
        "cue_p50_s": pct(lat, 50), "cue_p95_s": pct(lat, 95), "cue_max_s": pct(lat, 100),
        "cue_p95_other_server_s": pct(remote, 95),
        "cpu_cores_per_server": [round(c / wall, 2) for c in cpu],
        "cpu_share_per_call": round(sum(cpu) / (n * call_s), 4),
        "rss_mb_per_server": [round(r, 1) for r in peak],
        "client_cpu_cores": round(senders_cpu / wall, 2),
        "stream_entries_per_call_s": round(entries / (n * call_s), 2),
        "stream_bytes_per_entry": round(stream_bytes / entries) if entries else None,
        "load_average": [round(x, 1) for x in os.getloadavg()],
    }


def held(result: dict) -> bool:
    return result["finished"] == result["calls"] and result["cue_p95_s"] is not None \
        and result["cue_p95_s"] <= CUE_P95_S


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="8,16", help="calls per trial, climbed in order (comma-separated)")
    parser.add_argument("--rounds", type=int, default=4, help="interruption rounds in the call (its length)")
    parser.add_argument("--servers", default="1,2", help="scenarios to run: 1 (one server), 2 (two), or both")
    parser.add_argument("--client", choices=["audiohook", "pcm"], default="audiohook",
                        help="the reference AudioHook client (a node process per call) or PCM streams (one "
                             "Python process for all: lighter on a small machine)")
    args = parser.parse_args()
    counts = [int(x) for x in args.counts.split(",")]

    from floor_server import start_redis
    from ingest import make_call
    from pg import start_postgres

    from conftest import free_port
    from monitor.web.auth import hash_password

    out = {"cpus": os.cpu_count(), "counts": counts, "cue_p95_limit_s": CUE_P95_S, "scenarios": {}}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        wav = tmp / "call8k.wav"
        call_s = make_call(wav, args.rounds)
        out["call_s"] = round(call_s, 1)
        (tmp / "config.toml").write_text(
            f'[transcription]\nenabled = false\n[ingest]\nprocesses = 0\n'
            f'[ingest.pcm]\ntoken = "{PCM_TOKEN}"\n[ingest.audiohook.api_keys]\n"{API_KEY}" = "{SECRET}"\n'
            f'[hub]\nmax_calls_per_agent = 8\n[hub.supervisors]\nsup = "{hash_password(PASSWORD)}"\n')
        pg = start_postgres()
        redis_port = free_port()
        redis = start_redis(redis_port)
        try:
            for servers, name in ((1, "one_server"), (2, "two_servers")):
                if str(servers) not in args.servers.split(","):
                    continue
                trials = []
                for n in counts:
                    result = trial(tmp, pg.url, f"redis://127.0.0.1:{redis_port}/0", wav, call_s, n, servers,
                                   args.client)
                    print(json.dumps(result), file=sys.stderr, flush=True)
                    trials.append(result)
                    if result["cue_p95_s"] is None or result["cue_p95_s"] > 4 * CUE_P95_S:
                        break  # far past the limit: more calls only take longer to say so
                out["scenarios"][name] = {"trials": trials,
                                          "max_calls_held": max([t["calls"] for t in trials if held(t)], default=0)}
        finally:
            redis.terminate()
            pg.close()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
