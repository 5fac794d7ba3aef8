"""Stereo PCM stream state machine (monitor/ingest/pcm.py) and its token check."""

import base64
import json

import numpy as np

from monitor.ingest.actions import Audio, CloseSocket, Ended, Opened
from monitor.ingest.pcm import PcmStream, token_ok

TOKEN = "pcm-token-0123456789abcdef"


def header(**fields):
    body = {"call_id": "fs-uuid-1", "agent": "dana", "sample_rate": 8000, "agent_channel": 0}
    body.update(fields)
    return json.dumps(body)


def closed_with(actions, code):
    assert isinstance(actions[-1], CloseSocket) and actions[-1].code == code
    return actions[-1].reason


def test_header_then_stereo_frames():
    s = PcmStream()
    (opened,) = s.on_text(header(agent_channel=1), 0.0)
    assert isinstance(opened, Opened) and opened.channels == ["customer", "agent"] and opened.rate == 8000
    frames = np.array([[100, -200], [300, -400]], "<i2").tobytes()
    (audio,) = s.on_binary(frames, 0.0)
    assert isinstance(audio, Audio) and audio.start == 0 and audio.parties == ["customer", "agent"]
    assert audio.samples.shape == (2, 2) and audio.samples[1, 1] == -400 / 32768
    (audio,) = s.on_binary(frames, 0.0)
    assert audio.start == 2
    (end,) = s.on_socket_closed(clean=True)
    assert isinstance(end, Ended) and not end.interrupted


def test_16k_stream():
    s = PcmStream()
    (opened,) = s.on_text(header(sample_rate=16000), 0.0)
    assert opened.rate == 16000 and opened.channels == ["agent", "customer"]


def test_audio_before_header():
    assert "audio before the JSON header" in closed_with(PcmStream().on_binary(b"\x00" * 4, 0.0), 1008)


def test_bad_headers():
    assert "not a JSON object" in closed_with(PcmStream().on_text("[1]", 0.0), 1003)
    assert "sample_rate 44100" in closed_with(PcmStream().on_text(header(sample_rate=44100), 0.0), 1003)
    assert "agent_channel 2" in closed_with(PcmStream().on_text(header(agent_channel=2), 0.0), 1003)
    assert "call_id" in closed_with(PcmStream().on_text(header(call_id="../x y"), 0.0), 1003)
    assert "agent is not a name" in closed_with(PcmStream().on_text(header(agent="<i>"), 0.0), 1008)


def test_frame_that_is_not_whole_samples():
    s = PcmStream()
    s.on_text(header(), 0.0)
    actions = s.on_binary(b"\x00" * 6, 0.0)
    assert "not whole stereo 16-bit samples" in closed_with(actions, 1003)
    assert isinstance(actions[0], Ended) and actions[0].interrupted


def test_flooding_and_idle_and_drop():
    s = PcmStream(flood_budget_s=2.0)
    s.on_text(header(), 0.0)
    actions = s.on_binary(b"\x00" * 4 * 8000 * 3, 0.5)   # 3 s of audio half a second in
    assert "faster than real time" in closed_with(actions, 1008)
    s = PcmStream()
    s.on_text(header(), 0.0)
    actions = s.on_idle(10)
    assert actions[0].interrupted and "stopped without closing" in actions[0].reason
    s = PcmStream()
    s.on_text(header(), 0.0)
    (end,) = s.on_socket_closed(clean=False)
    assert end.interrupted


def test_token_bearer_or_basic_password():
    assert token_ok(TOKEN, f"Bearer {TOKEN}")
    assert token_ok(TOKEN, "Basic " + base64.b64encode(f"freeswitch:{TOKEN}".encode()).decode())
    assert not token_ok(TOKEN, "Bearer wrong")
    assert not token_ok(TOKEN, "Basic " + base64.b64encode(f"{TOKEN}:x".encode()).decode())
    assert not token_ok(TOKEN, None) and not token_ok("", "Bearer ")
    assert not token_ok(TOKEN, "Digest " + TOKEN)


def test_jambonz_first_frame_with_metadata_merged():
    s = PcmStream()
    frame = {"callSid": "b2c3-jambonz", "from": "+15551234", "sampleRate": 8000, "mixType": "stereo",
             "agent": "dana", "agent_channel": 1}
    (opened,) = s.on_text(json.dumps(frame), 0.0)
    assert (opened.call_id, opened.agent, opened.channels) == ("b2c3-jambonz", "dana", ["customer", "agent"])
    assert "mixType mono" in closed_with(PcmStream().on_text(json.dumps({**frame, "mixType": "mono"}), 0.0), 1003)
