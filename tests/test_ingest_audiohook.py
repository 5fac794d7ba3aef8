"""AudioHook Monitor v2 server state machine (monitor/ingest/audiohook.py): messages in, actions out.

Every bad input the issue lists gets a `disconnect` (reason error) naming it, and ends the call
as interrupted; good sessions open, pong, pause, resume and close as the reference client expects.
"""

import json
import uuid

import numpy as np
import pytest

from audio.g711 import ulaw_encode
from monitor.ingest.actions import Audio, CloseSocket, Ended, Opened, Send
from monitor.ingest.audiohook import RATE, AudioHookLimits, AudioHookSession, duration_samples
from monitor.ingest.timeline import CallTimeline

STEREO_PCMU = {"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000}
STEREO_L16 = {"type": "audio", "format": "L16", "channels": ["internal", "external"], "rate": 8000}
MONO = [{"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000},
        {"type": "audio", "format": "PCMU", "channels": ["internal"], "rate": 8000}]


class Client:
    """Builds client messages as the reference client does (seq, serverseq, position)."""

    def __init__(self, session=None, limits=None):
        self.id = str(uuid.uuid4())
        self.session = session or AudioHookSession(self.id, limits)
        self.seq = 0
        self.serverseq = 0
        self.samples = 0
        self.now = 0.0
        self.sent: list[dict] = []

    def text(self, kind, params=None, position=None, **override):
        self.seq += 1
        msg = {"version": "2", "type": kind, "id": self.id, "seq": self.seq, "serverseq": self.serverseq,
               "position": f"PT{(self.samples if position is None else position) / RATE:g}S",
               "parameters": params or {}}
        msg.update(override)
        return self._take(self.session.on_text(json.dumps(msg), self.now))

    def raw(self, text):
        return self._take(self.session.on_text(text, self.now))

    def audio(self, data: bytes):
        actions = self._take(self.session.on_binary(data, self.now))
        self.samples += len(data) // 2
        return actions

    def open(self, media=None, agent="dana", **params):
        body = {"organizationId": str(uuid.uuid4()), "conversationId": str(uuid.uuid4()),
                "participant": {"id": str(uuid.uuid4()), "ani": "", "aniName": "", "dnis": ""},
                "media": [STEREO_PCMU, *MONO] if media is None else media}
        if agent is not None:
            body["customConfig"] = {"agent": agent}
        body.update(params)
        return self.text("open", body)

    def _take(self, actions):
        for a in actions:
            if isinstance(a, Send):
                assert a.message["seq"] == self.serverseq + 1
                self.serverseq = a.message["seq"]
                assert a.message["clientseq"] <= self.seq  # the last seq the server accepted
                self.sent.append(a.message)
        return actions


def sent(actions, kind=None):
    msgs = [a.message for a in actions if isinstance(a, Send)]
    return [m for m in msgs if kind is None or m["type"] == kind]


def disconnect_info(actions):
    (msg,) = sent(actions, "disconnect")
    assert msg["parameters"]["reason"] == "error"
    return msg["parameters"]["info"]


def stereo_pcmu(seconds, customer=0.3, agent=0.1):
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    frames = np.stack([customer * np.sin(2 * np.pi * 300 * t), agent * np.sin(2 * np.pi * 500 * t)], 1)
    return ulaw_encode(frames.reshape(-1))


def test_open_picks_stereo_pcmu_and_names_the_parties():
    c = Client()
    actions = c.open()
    (opened,) = sent(actions, "opened")
    assert opened["parameters"]["media"] == [STEREO_PCMU] and opened["parameters"]["startPaused"] is False
    assert opened["id"] == c.id and opened["seq"] == 1 and opened["clientseq"] == 1
    (call,) = [a for a in actions if isinstance(a, Opened)]
    assert call.agent == "dana" and call.channels == ["customer", "agent"]
    assert call.call_id == c.id and call.source == "audiohook"


def test_open_picks_stereo_l16_in_its_channel_order():
    c = Client()
    actions = c.open(media=[*MONO, STEREO_L16])
    assert sent(actions, "opened")[0]["parameters"]["media"] == [STEREO_L16]
    (call,) = [a for a in actions if isinstance(a, Opened)]
    assert call.channels == ["agent", "customer"]
    block = np.array([[1000, -2000], [3000, -4000]], "<i2")  # internal, external interleaved, little-endian
    (audio,) = [a for a in c.audio(block.tobytes()) if isinstance(a, Audio)]
    assert audio.samples[:, 0].tolist() == pytest.approx([1000 / 32768, 3000 / 32768])
    assert audio.samples[:, 1].tolist() == pytest.approx([-2000 / 32768, -4000 / 32768])


def test_audio_decodes_in_channel_order_and_ping_pongs():
    c = Client()
    c.open()
    data = stereo_pcmu(0.2)
    (audio,) = c.audio(data)
    assert audio.start == 0 and audio.samples.shape == (1600, 2)
    assert np.sqrt(np.mean(audio.samples[:, 0] ** 2)) > 2 * np.sqrt(np.mean(audio.samples[:, 1] ** 2))
    c.now = 0.2
    (audio2,) = c.audio(data)
    assert audio2.start == 1600
    pong = sent(c.text("ping", {"rtt": "PT0.01S"}), "pong")
    assert pong and pong[0]["parameters"] == {}


def test_close_replies_closed_and_ends_the_call():
    c = Client()
    c.open()
    actions = c.text("close", {"reason": "end"})
    assert sent(actions, "closed")
    (end,) = [a for a in actions if isinstance(a, Ended)]
    assert not end.interrupted and not end.may_continue
    assert c.session.state == "CLOSED"


def test_close_for_reconnect_may_continue():
    c = Client()
    c.open()
    (end,) = [a for a in c.text("close", {"reason": "reconnect"}) if isinstance(a, Ended)]
    assert end.interrupted and end.may_continue


def test_pause_and_discard_are_gaps_in_audio_time():
    c = Client()
    c.open()
    c.audio(stereo_pcmu(1.0))
    c.now = 1.0
    c.text("paused")
    assert c.session.state == "PAUSED"
    # 2 s of hold later the client resumes: its position moved on without audio
    c.now = 3.0
    c.samples += 2 * RATE
    c.text("resumed", {"start": "PT3S", "discarded": "PT2S"})
    assert c.session.state == "ACTIVE"
    (audio,) = c.audio(stereo_pcmu(0.5))
    assert audio.start == 3 * RATE  # after the gap, not right after the first second
    c.now = 4.5
    c.text("discarded", {"start": "PT3.5S", "discarded": "PT1S"}, position=int(4.5 * RATE))
    c.samples = int(4.5 * RATE)
    (audio,) = c.audio(stereo_pcmu(0.2))
    assert audio.start == int(4.5 * RATE)


def test_timeline_turns_gaps_into_silence_at_16k():
    """Through the timeline, a call with a 2 s hold is 2 s longer, the audio after it in its place."""
    c = Client()
    (call,) = [a for a in c.open() if isinstance(a, Opened)]
    timeline = CallTimeline(RATE)
    frames = []
    for a in c.audio(stereo_pcmu(1.0)):
        frames += timeline.add_block(a.start, a.samples, call.channels)
    c.now, c.samples = 3.0, 3 * RATE
    c.text("resumed", {"start": "PT3S", "discarded": "PT2S"})
    for a in c.audio(stereo_pcmu(1.0, customer=0.0, agent=0.5)):
        frames += timeline.add_block(a.start, a.samples, call.channels)
    frames += timeline.finish()
    agent = np.concatenate([f.samples for f in frames if f.channel == "agent"])
    customer = np.concatenate([f.samples for f in frames if f.channel == "customer"])
    assert len(agent) == len(customer) == 4 * 16000
    rms = lambda x: float(np.sqrt(np.mean(x ** 2)))  # noqa: E731
    assert rms(customer[2000:14000]) > 0.15 and rms(customer[18000:46000]) < 1e-3   # hold is silent
    assert rms(agent[50000:62000]) > 0.3                                             # loud agent at 3-4 s


def test_wrong_seq_is_an_error():
    c = Client()
    c.open()
    c.seq += 1  # skip one
    info = disconnect_info(actions := c.text("ping"))
    assert "invalid seq" in info
    (end,) = [a for a in actions if isinstance(a, Ended)]
    assert end.interrupted and not end.may_continue


def test_serverseq_ahead_of_server_is_an_error():
    c = Client()
    c.open()
    assert "serverseq" in disconnect_info(c.text("ping", serverseq=99))


def test_unknown_message_type():
    c = Client()
    c.open()
    assert "'dance' is not a supported client message" in disconnect_info(c.text("dance"))


def test_not_json_and_not_a_message():
    assert "not valid JSON" in disconnect_info(Client().raw("{nope"))
    assert "not a well-formed" in disconnect_info(Client().raw(json.dumps({"version": "1"})))
    assert "too large" in disconnect_info(Client().raw("x" * 70000))


def test_audio_before_open():
    c = Client()
    actions = c.audio(stereo_pcmu(0.2))
    assert disconnect_info(actions) == "audio before 'open'"
    assert not [a for a in actions if isinstance(a, Ended)]  # there was no call to end


def test_frame_that_is_not_whole_samples():
    c = Client()
    c.open()
    assert "not whole PCMU samples" in disconnect_info(c.audio(b"\xff" * 1601))
    c = Client()
    c.open(media=[STEREO_L16])
    assert "not whole L16 samples" in disconnect_info(c.audio(b"\x00" * 6))


def test_offer_without_stereo_8k():
    c = Client()
    info = disconnect_info(c.open(media=MONO))
    assert "no stereo" in info and "PCMU/8000/external" in info
    c = Client()
    info = disconnect_info(c.open(media=[{**STEREO_PCMU, "rate": 16000}, {**STEREO_PCMU, "format": "opus"}]))
    assert "offered: PCMU/16000/external+internal, opus/8000" in info


def test_flooding_faster_than_real_time():
    c = Client(limits=AudioHookLimits(flood_budget_s=2.0))
    c.open()
    actions = []
    for _ in range(20):  # 4 s of audio at once, no time passing
        actions += c.audio(stereo_pcmu(0.2))
    assert "faster than real time" in disconnect_info(actions)
    assert c.session.state == "DISCONNECTING"
    assert c.audio(stereo_pcmu(0.2)) == []  # the rest is dropped, once told
    # the client then closes, as the reference client does on 'disconnect'
    assert sent(c.text("close", {"reason": "disconnect"}), "closed")


def test_position_far_ahead_is_flooding_too():
    c = Client()
    c.open()
    assert "faster than real time" in disconnect_info(c.text("ping", position=3600 * RATE))


def test_stream_that_stops_without_close():
    c = Client()
    c.open()
    c.audio(stereo_pcmu(0.2))
    actions = c.session.on_idle(10.0)
    assert "nothing received for 10 s" in disconnect_info(actions)
    (end,) = [a for a in actions if isinstance(a, Ended)]
    assert end.interrupted and not end.may_continue
    assert isinstance(actions[-1], CloseSocket)


def test_connection_lost_may_continue():
    c = Client()
    c.open()
    (end,) = c.session.on_socket_closed()
    assert end.interrupted and end.may_continue


def test_continued_sessions_are_reported():
    old = str(uuid.uuid4())
    c = Client()
    actions = c.open(continuedSessions=[{"id": old, "clientseq": 7, "serverseq": 3}])
    (call,) = [a for a in actions if isinstance(a, Opened)]
    assert call.continues == [old]


def test_connection_probe_opens_without_a_call():
    c = Client()
    actions = c.open(conversationId="00000000-0000-0000-0000-000000000000")
    assert sent(actions, "opened") and not [a for a in actions if isinstance(a, Opened)]
    assert c.audio(stereo_pcmu(0.2)) == []
    assert [a for a in c.text("close", {"reason": "end"}) if isinstance(a, Ended)] == []


def test_bad_agent_name_and_bad_open():
    assert "customConfig.agent" in disconnect_info(Client().open(agent="<script>"))
    assert "conversationId is not a UUID" in disconnect_info(Client().open(conversationId="x"))


def test_session_id_mismatch():
    c = Client()
    assert "not this session's" in disconnect_info(c.text("ping", id=str(uuid.uuid4())))


def test_duration_parsing():
    assert duration_samples("PT1.5S") == 12000 and duration_samples("PT.25S") == 2000
    assert duration_samples("1.5") is None and duration_samples(None) is None
