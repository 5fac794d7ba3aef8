"""Ingested calls analysed in worker processes (monitor/ingest/pool.py): real server, real sockets, real
processes. A call's cues reach the overlay stream from another process; a worker killed mid-call ends
its call as interrupted with its recording kept, while a call on the other worker goes on, and a new
process takes the dead one's place."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from websockets.sync.client import connect

from monitor.config import Config, IngestConfig, PcmIngestConfig
from monitor.ingest.routes import IngestPart
from monitor.library.store import Store
from monitor.web.app import WebOptions, WebServer, build_app
from monitor.web.overlay import OverlayPart
from senders import send_pcm
from synth import barge_in_call

TOKEN = "pcm-stream-token-0123456789"
COMPLAINT = "I have been waiting three weeks for my order and nobody has called me back about it at all."


@pytest.fixture(scope="module")
def call8k(tmp_path_factory) -> Path:
    channels, _ = barge_in_call(COMPLAINT)
    stereo = np.stack([channels["customer"], channels["agent"]], 1)
    path = tmp_path_factory.mktemp("pool") / "call8k.wav"
    sf.write(str(path), soxr.resample(stereo, 16000, 8000, quality="HQ"), 8000, subtype="PCM_16")
    return path


class PoolServer:
    """The ingest routes with two worker processes and the overlay stream, every call's events on it."""

    def __init__(self, tmp: Path):
        self.store = Store(tmp / "data")
        self.overlay = OverlayPart(queue_size=4096)
        self.events: dict[str, list] = {}

        def publish_for(agent, opened):
            seen = self.events.setdefault(agent, [])

            def publish(event):  # on the pool's reader thread, as events come back from the worker
                seen.append(event)
                self.overlay.publish({**event.to_dict(), "agent": agent})
            return [publish]

        config = Config(ingest=IngestConfig(pcm=PcmIngestConfig(token=TOKEN)))
        self.part = IngestPart(config, store=self.store, publish_for=publish_for, transcribe=False, processes=2)
        options = WebOptions(port=0)
        self.server = WebServer(build_app(options, [self.overlay, self.part]), options)
        self.server.start()
        self.port = self.server.port

    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ingest/pcm"

    def run_of(self, agent: str, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for run in list(self.part.runs):
                if run.agent == agent:
                    return run
            time.sleep(0.02)
        raise AssertionError(f"no call for {agent}")

    def wait_finished(self, n: int, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while len(self.part.finished) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.part.finished) >= n, f"{len(self.part.finished)} of {n} calls finished"
        return {c.agent: c for c in self.part.finished}

    def stop(self):
        self.server.stop()
        self.store.close()


@pytest.fixture
def server(tmp_path):
    s = PoolServer(tmp_path)
    yield s
    s.stop()


def listen(port: int, into: list, stop: threading.Event) -> threading.Thread:
    """The overlay stream's events, as a browser would get them."""
    ready = threading.Event()

    def run():
        with connect(f"ws://127.0.0.1:{port}/ws", origin=f"http://127.0.0.1:{port}") as ws:
            ready.set()
            while not stop.is_set():
                try:
                    into.append(json.loads(ws.recv(timeout=0.2)))
                except TimeoutError:
                    continue

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    return thread


def test_a_call_is_analysed_in_a_worker_process_and_its_cues_reach_the_overlay(server, call8k):
    workers = {w.process.pid for w in server.part.pool.workers}
    assert len(workers) == 2 and os.getpid() not in workers
    seen, stop = [], threading.Event()
    thread = listen(server.port, seen, stop)
    try:
        assert send_pcm(server.url(), call8k, TOKEN, agent="pat")["code"] == 1000
        call = server.wait_finished(1)["pat"]
        deadline = time.monotonic() + 5
        while not any(e["type"] == "call_end" for e in seen) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(5)
    assert call.pid in workers  # analysed in a worker, not in the server process
    assert not call.interrupted and call.dropped_s == 0
    cues = [e for e in seen if e["type"] == "cue" and e["agent"] == "pat"]
    assert [c["kind"] for c in cues] == ["wait_for_pause"]
    assert [e["type"] for e in seen if e["agent"] == "pat"][0] == "call_start"
    recorded = server.store.call(call.call_id)
    assert recorded["status"] == "ended" and recorded["agent"] == "pat"


def test_a_killed_worker_ends_its_call_as_interrupted_and_the_other_call_goes_on(server, call8k):
    results: dict = {}
    senders = [threading.Thread(target=lambda a=a: results.__setitem__(a, send_pcm(server.url(), call8k, TOKEN,
                                                                                     agent=a)))
               for a in ("doomed", "spared")]
    senders[0].start()
    doomed = server.run_of("doomed")
    senders[1].start()
    spared = server.run_of("spared")
    assert doomed.pid != spared.pid  # one call on each worker
    time.sleep(4.0)  # some seconds of the call analysed and recorded
    os.kill(doomed.pid, signal.SIGKILL)
    for t in senders:
        t.join(60)

    assert results["doomed"]["code"] == 1011 and "process died" in results["doomed"]["reason"]
    assert results["spared"]["code"] == 1000
    calls = server.wait_finished(2)
    lost, kept = calls["doomed"], calls["spared"]
    assert lost.interrupted and "process died" in lost.reason and lost.call_id
    assert not kept.interrupted and kept.dropped_s == 0
    assert [c.kind for c in kept.result.events if c.type == "cue"] == ["wait_for_pause"]

    # the outputs were told, the recording kept: mended as interrupted, its audio playable
    types = [e.type for e in server.events["doomed"]]
    assert types[0] == "call_start" and types[-2:] == ["device", "call_end"]
    assert "process died" in server.events["doomed"][-2].message
    record = server.store.call(lost.call_id)
    assert record["status"] == "interrupted" and record["duration_s"] >= 2.0
    audio, rate = sf.read(str(server.store.audio_path(record)))
    assert rate == 16000 and audio.shape[1] == 2 and len(audio) >= 2 * rate
    assert server.store.events(lost.call_id)[0]["type"] == "call_start"

    # a new process took the dead one's place, and takes calls
    pool = server.part.pool
    assert pool.replaced == 1 and all(w.process.is_alive() for w in pool.workers)
    assert all(w.wait_ready(60) for w in pool.workers)
    assert doomed.pid not in {w.process.pid for w in pool.workers}
