"""Twilio Media Streams state machine (monitor/ingest/twilio.py) and the upgrade signature."""

import base64
import json

import numpy as np
from twilio.request_validator import RequestValidator

from audio.g711 import ulaw_encode
from monitor.ingest.actions import CloseSocket, Ended, Opened
from monitor.ingest.timeline import CallTimeline
from monitor.ingest.twilio import RATE, TwilioStream, signature_ok

TOKEN = "0123456789abcdef0123456789abcdef"


class Twilio:
    """Builds messages as Twilio documents them."""

    def __init__(self, budget=2.0):
        self.stream = TwilioStream(flood_budget_s=budget)
        self.seq = 0
        self.chunk = {"inbound": 0, "outbound": 0}
        self.now = 0.0

    def send(self, event, body=None, **extra):
        msg = {"event": event}
        if event != "connected":
            self.seq += 1
            msg["sequenceNumber"] = str(self.seq)
            msg["streamSid"] = "MZ0123"
        if body is not None:
            msg[event] = body
        msg.update(extra)
        return self.stream.on_text(json.dumps(msg), self.now)

    def start(self, tracks=("inbound", "outbound"), agent="dana", fmt=None):
        self.send("connected", protocol="Call", version="1.0.0")
        return self.send("start", {"accountSid": "AC1", "streamSid": "MZ0123", "callSid": "CA42",
                                   "tracks": list(tracks), "customParameters": {"agent": agent},
                                   "mediaFormat": fmt or {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                                          "channels": 1}})

    def media(self, track, timestamp_ms, samples):
        self.chunk[track] += 1
        return self.send("media", {"track": track, "chunk": str(self.chunk[track]), "timestamp": str(timestamp_ms),
                                   "payload": base64.b64encode(ulaw_encode(samples)).decode()})


def closed_with(actions, code):
    close = actions[-1]
    assert isinstance(close, CloseSocket) and close.code == code
    return close.reason


def tone(ms, amp, freq=400):
    t = np.arange(ms * RATE // 1000) / RATE
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_start_names_the_call_and_agent():
    tw = Twilio()
    (opened,) = tw.start()
    assert isinstance(opened, Opened)
    assert (opened.call_id, opened.agent, opened.source, opened.rate) == ("CA42", "dana", "twilio", 8000)


def test_tracks_are_parties_aligned_by_timestamp():
    tw = Twilio()
    tw.start()
    timeline = CallTimeline(RATE, max_skew_s=2.0, slack=80)
    frames = []
    for ts in range(0, 1000, 20):          # the customer talks for the first second
        tw.now = ts / 1000
        for a in tw.media("inbound", ts, tone(20, 0.4)):
            frames += timeline.add_block(a.start, a.samples, a.parties)
        for a in tw.media("outbound", ts, tone(20, 0.0)):
            frames += timeline.add_block(a.start, a.samples, a.parties)
    # Twilio sent nothing for 1 s (both tracks), then the agent talks: the gap is silence, not a shift
    for ts in range(2000, 2500, 20):
        tw.now = ts / 1000
        for a in tw.media("outbound", ts, tone(20, 0.4, 600)):
            assert a.parties == ["agent"] and a.start == ts * 8
            frames += timeline.add_block(a.start, a.samples, a.parties)
        for a in tw.media("inbound", ts, tone(20, 0.0)):
            frames += timeline.add_block(a.start, a.samples, a.parties)
    end = tw.send("stop", {"accountSid": "AC1", "callSid": "CA42"})
    assert isinstance(end[0], Ended) and not end[0].interrupted
    frames += timeline.finish()
    agent = np.concatenate([f.samples for f in frames if f.channel == "agent"])
    customer = np.concatenate([f.samples for f in frames if f.channel == "customer"])
    assert len(agent) == len(customer) == int(2.5 * 16000)
    rms = lambda x: float(np.sqrt(np.mean(x ** 2)))  # noqa: E731
    assert rms(customer[1000:15000]) > 0.2 and rms(agent[1000:15000]) < 0.01
    assert rms(agent[16500:31500]) < 1e-3 and rms(customer[16500:31500]) < 1e-3
    assert rms(agent[33000:39000]) > 0.2


def test_late_and_overlapping_media_is_dropped_not_shifted():
    timeline = CallTimeline(RATE, slack=0)
    list(timeline.add("customer", 0, np.ones(160, np.float32)))
    list(timeline.add("customer", 80, np.ones(160, np.float32)))   # half overlaps
    assert timeline.end["customer"] == 240 and timeline.stats.dropped_samples == 80


def test_media_before_start():
    tw = Twilio()
    tw.send("connected")
    assert "'media' before 'start'" in closed_with(tw.media("inbound", 0, tone(20, 0.1)), 1008)


def test_unknown_event_and_bad_json():
    tw = Twilio()
    tw.start()
    actions = tw.send("dance")
    assert "unknown event 'dance'" in closed_with(actions, 1003)
    assert isinstance(actions[0], Ended) and actions[0].interrupted
    assert "not valid JSON" in closed_with(Twilio().stream.on_text("{", 0.0), 1003)
    assert "binary" in closed_with(Twilio().stream.on_binary(b"\x00", 0.0), 1003)


def test_format_that_was_not_offered():
    tw = Twilio()
    fmt = {"encoding": "audio/L16", "sampleRate": 16000, "channels": 1}
    assert "is not audio/x-mulaw" in closed_with(tw.start(fmt=fmt), 1003)


def test_bad_payload_and_unknown_track():
    tw = Twilio()
    tw.start()
    tw.seq += 1
    msg = {"event": "media", "sequenceNumber": str(tw.seq), "media": {"track": "inbound", "chunk": "1",
                                                                      "timestamp": "0", "payload": "@@@"}}
    assert "malformed" in closed_with(tw.stream.on_text(json.dumps(msg), 0.0), 1003)
    tw = Twilio()
    tw.start(tracks=("inbound",))
    assert "not one of ['inbound']" in closed_with(tw.media("outbound", 0, tone(20, 0.1)), 1003)


def test_sequence_must_increase_by_one():
    tw = Twilio()
    tw.start()
    tw.seq += 3
    assert "sequenceNumber" in closed_with(tw.media("inbound", 0, tone(20, 0.1)), 1008)


def test_flooding_faster_than_real_time():
    tw = Twilio(budget=2.0)
    tw.start()
    actions = []
    for ts in range(0, 4000, 20):   # 4 s of audio with no time passing
        actions = tw.media("inbound", ts, tone(20, 0.1))
        if actions and isinstance(actions[-1], CloseSocket):
            break
    assert "faster than real time" in closed_with(actions, 1008)


def test_stream_that_stops_without_stop():
    tw = Twilio()
    tw.start()
    actions = tw.stream.on_idle(10)
    assert actions[0].interrupted and "stopped without stop" in actions[0].reason
    closed_with(actions, 1001)
    tw = Twilio()
    tw.start()
    (end,) = tw.stream.on_socket_closed()
    assert end.interrupted


def test_bad_agent_name():
    assert "customParameters.agent" in closed_with(Twilio().start(agent="<b>"), 1008)


def test_signature_over_the_requested_url():
    url = "wss://calls.example.com/ingest/twilio"
    good = RequestValidator(TOKEN).compute_signature(url, {})
    assert signature_ok(TOKEN, url, good)
    assert signature_ok(TOKEN, "wss://calls.example.com:443/ingest/twilio", good)  # with or without the port
    assert not signature_ok(TOKEN, "wss://evil.example.com/ingest/twilio", good)
    assert not signature_ok("another-token-of-32-characters!!", url, good)
    assert not signature_ok(TOKEN, url, None)
