"""The ingest routes inside `calmline server`: a call streamed in is recorded under its agent and is on the floor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from websockets.sync.client import connect

from monitor.config import Config, IngestConfig, PcmIngestConfig
from monitor.ingest.outputs import ingest_part
from monitor.library.store import Store
from monitor.web.app import WebOptions, WebServer, build_app
from monitor.web.floor_part import FloorPart, FloorPartOptions

sys.path.insert(0, str(Path(__file__).parent))
from conftest import ROOT, free_port  # noqa: E402
from test_ingest_e2e import API_KEY, PEER, SECRET, call8k, needs_node  # noqa: E402,F401

PCM_TOKEN = "pcm-stream-token-0123456789"


def test_an_ingested_call_is_on_the_floor_under_its_agent(tmp_path):
    store = Store(tmp_path / "data")
    floor = FloorPart(FloorPartOptions())
    config = Config(ingest=IngestConfig(pcm=PcmIngestConfig(token=PCM_TOKEN)))
    parts = [floor]
    ingest = ingest_part(config, store, parts)
    ingest.transcribe = False
    options = WebOptions(port=0)
    server = WebServer(build_app(options, [floor, ingest]), options)
    server.start()
    try:
        url = f"ws://127.0.0.1:{server.port}/ingest/pcm"
        with connect(url, additional_headers={"Authorization": f"Bearer {PCM_TOKEN}"}) as ws:
            ws.send(json.dumps({"call_id": "fs-1", "agent": "dana", "sample_rate": 8000, "agent_channel": 0}))
            t = np.arange(8000) / 8000
            loud = (0.3 * 32767 * np.sin(2 * np.pi * 220 * t)).astype("<i2")
            ws.send(np.stack([loud, np.zeros_like(loud)], 1).tobytes())  # one second of the agent
        deadline = time.monotonic() + 30
        while not ingest.finished and time.monotonic() < deadline:
            time.sleep(0.05)
        (call,) = ingest.finished
        time.sleep(0.2)  # the floor applies the last events on the server's loop
        states = list(floor.floor.calls.values())
        assert [(s.call_id, s.agent) for s in states] == [(call.call_id, "dana")]
    finally:
        server.stop()
    (recorded,) = store.calls()
    assert recorded["agent"] == "dana" and recorded["source"] == "pcm:fs-1"


@pytest.mark.slow
@needs_node
def test_calmline_server_takes_a_call_from_the_reference_client(tmp_path, call8k):
    port = free_port()
    (tmp_path / "config.toml").write_text(f"""
[transcription]
enabled = false
[ingest.audiohook.api_keys]
"{API_KEY}" = "{SECRET}"
""")
    env = {**os.environ, "CALMLINE_DATA_DIR": str(tmp_path / "data")}
    server = subprocess.Popen([sys.executable, "-m", "monitor.cli", "--config", str(tmp_path / "config.toml"),
                               "server", "--port", str(port)], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert "server at" in server.stderr.readline() + server.stderr.readline()
        done = subprocess.run(["node", str(PEER), "--uri", f"ws://127.0.0.1:{port}/ingest/audiohook",
                               "--api-key", API_KEY, "--client-secret", SECRET, "--wavfile", str(call8k),
                               "--max-stream-duration", "3", "--custom-config", '{"agent": "dana"}'],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        assert "Session open!" in done.stdout and "Session closed" in done.stdout
    finally:
        server.terminate()
        assert server.wait(30) == 0
    listed = subprocess.run([sys.executable, "-m", "monitor.cli", "calls", "--json"], cwd=ROOT, env=env,
                            capture_output=True, text=True, check=True).stdout
    (call,) = json.loads(listed)
    assert call["agent"] == "dana" and call["status"] == "ended" and call["source"].startswith("audiohook:")
    assert call["duration_s"] == pytest.approx(3.0, abs=0.3)
