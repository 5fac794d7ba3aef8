"""End-to-end cue latency of the live path, and the CPU share of one monitored call.

Runs `calmline demo` (the live path: pipeline, server, overlay stream) on a synthesized call with
several agent interruptions, in real time, and a WebSocket client measures, for each cue, the wall
time it arrives minus the wall time its audio moment was captured (call_start.started_at + cue.t).
It also times the server alone: how long a reading overlay waits for its cues while 3000 levels are
published, with and without a stuck client on the same stream (a stuck client must not hold anyone
else up: with_stuck_s should stay near alone_s).
Prints JSON. Targets: p95 <= 0.25 s; CPU under 15% of one core without transcription.
"""

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from synth import Turn, synth_call, turns_in_sequence, write_call  # noqa: E402

COMPLAINT = "My order never arrived and I have been waiting for three weeks now, this is not okay at all."
BARGE = "Let me stop you there, I can see the order on my screen right now."


def interrupting_call(rounds: int = 6):
    turns, start = [], 0.5
    for _ in range(rounds):
        complaint = Turn("customer", start, COMPLAINT)
        barge = Turn("agent", start + 2.0, BARGE)
        turns += [complaint, barge]
        start = max(complaint.end, barge.end) + 6.0  # past the 15 s cooldown, with dead air kept short
    turns += turns_in_sequence(("agent", "Thank you for waiting."), first=start)
    return synth_call(turns, bleed_db=-26)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def listen(port: int, until: float):
    lags, started = [], None
    for _ in range(100):
        try:
            ws = await connect(f"ws://127.0.0.1:{port}/ws", origin=f"http://127.0.0.1:{port}")
            break
        except OSError:
            await asyncio.sleep(0.1)
    async with ws:
        while time.time() < until:
            try:
                event = json.loads(await asyncio.wait_for(ws.recv(), timeout=1.0))
            except asyncio.TimeoutError:
                continue
            except Exception:
                break
            if event["type"] == "call_start":
                started = event["started_at"]
            elif event["type"] == "cue" and started:
                lags.append(time.time() - (started + event["t"]))
            elif event["type"] == "call_end":
                break
    return lags


def run(transcribe: bool):
    channels = interrupting_call()
    seconds = len(channels["agent"]) / 16000
    with tempfile.TemporaryDirectory() as tmp:
        path = write_call(Path(tmp) / "call.wav", channels)
        port = free_port()
        args = [sys.executable, "-m", "monitor.cli", "demo", str(path), "--port", str(port)]
        proc = subprocess.Popen(args + ([] if transcribe else ["--no-transcribe"]), cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lags = asyncio.run(listen(port, time.time() + seconds + 30))
        proc.wait(timeout=60)
    return lags, seconds


def cpu_share(transcribe: bool) -> float:
    """CPU seconds of a whole demo run (including start-up) over the call's duration."""
    channels = interrupting_call()
    seconds = len(channels["agent"]) / 16000
    with tempfile.TemporaryDirectory() as tmp:
        path = write_call(Path(tmp) / "call.wav", channels)
        args = [sys.executable, "-m", "monitor.cli", "demo", str(path), "--port", str(free_port())]
        before = os.times()
        subprocess.run(args + ([] if transcribe else ["--no-transcribe"]), cwd=ROOT,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return cpu / seconds


def stuck_client(port: int) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads, with a tiny receive buffer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}\r\n"
                 "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    assert sock.recv(4096).startswith(b"HTTP/1.1 101")
    return sock


def time_to_cues(server, n_levels: int = 3000, n_cues: int = 5) -> float:
    """Seconds from the first publish until a reading client has this run's cues (published from a thread)."""
    from websockets.sync.client import connect as sync_connect

    run, every = os.urandom(4).hex(), n_levels // n_cues
    before = server.client_count
    with sync_connect(f"ws://127.0.0.1:{server.port}/ws", origin=f"http://127.0.0.1:{server.port}") as ws:
        while server.client_count < before + 1:  # registered once its snapshot is queued
            time.sleep(0.005)

        def publish():
            for i in range(n_levels):
                server.publish({"v": 1, "type": "levels", "t": 0.2 * i, "levels": {"agent": -30.0, "customer": -42.5},
                                "talking": {"agent": True, "customer": False}})
                if i % every == every - 1:
                    server.publish({"v": 1, "type": "cue", "t": 0.2 * i, "kind": "wait_for_pause",
                                    "text": "Wait for the pause", "reason": run})
                if i % 50 == 0:
                    time.sleep(0)

        publisher = threading.Thread(target=publish)
        start = time.perf_counter()
        publisher.start()
        cues = 0
        while cues < n_cues:
            cues += json.loads(ws.recv(timeout=10)).get("reason") == run
        elapsed = time.perf_counter() - start
        publisher.join()
        return elapsed


def stuck_client_effect() -> dict:
    """Best of three cue deliveries to a reading overlay, alone and beside a stuck one."""
    from monitor.web.app import WebOptions
    from monitor.web.overlay import OverlayServer

    server = OverlayServer(WebOptions(port=0)).start()
    try:
        alone = min(time_to_cues(server) for _ in range(3))
        stuck = stuck_client(server.port)
        try:
            with_stuck = min(time_to_cues(server) for _ in range(3))
        finally:
            stuck.close()
    finally:
        server.stop()
    return {"alone_s": round(alone, 4), "with_stuck_s": round(with_stuck, 4), "ratio": round(with_stuck / alone, 2),
            "target_ratio_below": 3}


def pct(values, q):
    return round(float(np.percentile(values, q)), 3) if values else None


def main():
    out = {"benchmark": "cue_latency", "stuck_client": stuck_client_effect()}
    for transcribe in (False, True):
        lags, seconds = run(transcribe)
        out["transcribe" if transcribe else "acoustic"] = {
            "cues": len(lags), "p50_s": pct(lags, 50), "p95_s": pct(lags, 95), "max_s": pct(lags, 100)}
    out["call_s"] = round(seconds, 1)
    out["cpu_share_of_one_core"] = {"acoustic": round(cpu_share(False), 3), "transcribe": round(cpu_share(True), 3)}
    out["targets"] = {"p95_s": 0.25, "cpu_share_acoustic": 0.15}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
