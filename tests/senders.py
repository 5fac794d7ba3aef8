"""Telephony senders for tests and benchmarks: replay a stereo WAV as Twilio or a PCM stream would.

Written from the published message formats (Twilio Media Streams' `connected`/`start`/`media`/`stop`
with base64 μ-law and per-track timestamps; a JSON header then interleaved 16-bit frames, as
FreeSWITCH mod_audio_fork and jambonz send), paced in real time by default. The WAV's channel 0 is
the customer and channel 1 the agent, as the AudioHook peer reads it (external, internal).

    python tests/senders.py twilio ws://127.0.0.1:8765/ingest/twilio call8k.wav --token TOKEN --agent dana
    python tests/senders.py pcm ws://127.0.0.1:8765/ingest/pcm call8k.wav --token TOKEN --agent dana
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audio.g711 import ulaw_encode  # noqa: E402

CHUNK_MS = 20


@dataclass
class Replay:
    """How to replay: `speed` 1 is real time, 0 as fast as the socket takes it; `skip` drops (start_s, end_s)
    stretches as a sender with nothing to send would (Twilio) or as a lost stretch of audio."""

    speed: float = 1.0
    skip: list[tuple[float, float]] = field(default_factory=list)
    chunk_ms: int = CHUNK_MS

    def skipped(self, t: float) -> bool:
        return any(a <= t < b for a, b in self.skip)

    def wait_until(self, t0: float, audio_s: float) -> None:
        if self.speed > 0:
            delay = t0 + audio_s / self.speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)


def read_stereo(path: str | Path, rate: int) -> np.ndarray:
    """(frames, 2) int16 at `rate`: channel 0 customer, channel 1 agent."""
    data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    if data.shape[1] != 2:
        raise SystemExit(f"{path}: needs 2 channels (customer, agent), has {data.shape[1]}")
    if file_rate != rate:
        data = soxr.resample(data, file_rate, rate)
    return np.round(np.clip(data, -1, 1) * 32767).astype(np.int16)


def twilio_signature(auth_token: str, url: str) -> str:
    """X-Twilio-Signature of a WebSocket upgrade: HMAC-SHA1 of the URL (no parameters), base64."""
    import hashlib
    import hmac

    return base64.b64encode(hmac.new(auth_token.encode(), url.encode(), hashlib.sha1).digest()).decode()


def send_twilio(url: str, wav: str | Path, auth_token: str, agent: str = "", replay: Replay | None = None,
                call_sid: str | None = None, signed_url: str | None = None) -> dict:
    """Stream `wav` as Twilio Media Streams with both tracks; returns what happened (close code, reason)."""
    replay = replay or Replay()
    audio = read_stereo(wav, 8000)
    call_sid = call_sid or "CA" + uuid.uuid4().hex
    stream_sid = "MZ" + uuid.uuid4().hex
    headers = {"X-Twilio-Signature": twilio_signature(auth_token, signed_url or url)}
    step = 8 * replay.chunk_ms
    with connect(url, additional_headers=headers, compression=None, open_timeout=10) as ws:
        seq = 0

        def send(event: str, body: dict | None = None) -> None:
            nonlocal seq
            msg: dict = {"event": event}
            if event == "connected":
                msg.update(protocol="Call", version="1.0.0")
            else:
                seq += 1
                msg.update(sequenceNumber=str(seq), streamSid=stream_sid)
                msg[event] = body
            ws.send(json.dumps(msg))

        try:
            return _twilio_call(send, audio, replay, step, stream_sid, call_sid, agent, ws)
        except ConnectionClosed:
            return {"code": ws.close_code, "reason": ws.close_reason}


def _twilio_call(send, audio, replay: Replay, step: int, stream_sid: str, call_sid: str, agent: str, ws) -> dict:
    """The messages of one call: connected, start, media for both tracks every chunk, stop."""
    send("connected")
    send("start", {"accountSid": "AC" + "0" * 32, "streamSid": stream_sid, "callSid": call_sid,
                   "tracks": ["inbound", "outbound"], "customParameters": {"agent": agent} if agent else {},
                   "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}})
    chunks = {"inbound": 0, "outbound": 0}
    t0 = time.monotonic()
    for i in range(0, len(audio), step):
        ms = i // 8
        replay.wait_until(t0, ms / 1000)
        if replay.skipped(ms / 1000):
            continue
        for track, column in (("inbound", 0), ("outbound", 1)):
            chunks[track] += 1
            send("media", {"track": track, "chunk": str(chunks[track]), "timestamp": str(ms),
                           "payload": base64.b64encode(ulaw_encode(audio[i:i + step, column])).decode()})
    send("stop", {"accountSid": "AC" + "0" * 32, "callSid": call_sid})
    return _wait_close(ws)


def send_pcm(url: str, wav: str | Path, token: str, agent: str = "", rate: int = 8000, agent_channel: int = 1,
             replay: Replay | None = None, call_id: str | None = None, basic_user: str | None = None) -> dict:
    """Stream `wav` as a stereo PCM stream (JSON header, then 16-bit frames); returns the close code and reason."""
    replay = replay or Replay()
    audio = read_stereo(wav, rate)
    if agent_channel == 0:
        audio = audio[:, ::-1]
    if basic_user is not None:
        auth = "Basic " + base64.b64encode(f"{basic_user}:{token}".encode()).decode()
    else:
        auth = f"Bearer {token}"
    step = rate * replay.chunk_ms // 1000
    with connect(url, additional_headers={"Authorization": auth}, compression=None, open_timeout=10) as ws:
        ws.send(json.dumps({"call_id": call_id or uuid.uuid4().hex, "agent": agent, "sample_rate": rate,
                            "agent_channel": agent_channel}))
        t0 = time.monotonic()
        try:
            for i in range(0, len(audio), step):
                replay.wait_until(t0, i / rate)
                ws.send(np.ascontiguousarray(audio[i:i + step]).astype("<i2").tobytes())
            ws.close()
        except ConnectionClosed:  # the server ended the stream (a flood, say): its close says why
            pass
        return {"code": ws.close_code, "reason": ws.close_reason}


def _wait_close(ws, timeout: float = 10.0) -> dict:
    """After `stop`, the server closes; read until it does."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ws.recv(timeout=max(0.01, deadline - time.monotonic()))
    except Exception:
        pass
    return {"code": ws.close_code, "reason": ws.close_reason}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("protocol", choices=["twilio", "pcm"])
    parser.add_argument("url")
    parser.add_argument("wav")
    parser.add_argument("--token", required=True, help="Twilio auth token, or the PCM stream's token")
    parser.add_argument("--agent", default="")
    parser.add_argument("--speed", type=float, default=1.0, help="1 = real time, 0 = as fast as possible")
    parser.add_argument("--rate", type=int, default=8000, help="PCM only: 8000 or 16000")
    args = parser.parse_args(argv)
    replay = Replay(speed=args.speed)
    if args.protocol == "twilio":
        result = send_twilio(args.url, args.wav, args.token, args.agent, replay)
    else:
        result = send_pcm(args.url, args.wav, args.token, args.agent, args.rate, replay=replay)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
