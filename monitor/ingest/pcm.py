"""A plain stereo PCM stream (FreeSWITCH mod_audio_fork, jambonz `listen`), server side, no I/O.

The first message is JSON text naming the call:
`{"call_id": "...", "agent": "...", "sample_rate": 8000 | 16000, "agent_channel": 0 | 1}`;
then binary messages of interleaved little-endian 16-bit stereo samples (the agent on
`agent_channel`, the customer on the other). The stream ends when the socket closes; there is no
in-band end message, so a clean close ends the call normally and silence on an open socket ends it
as interrupted (the route's idle timeout). Audio time is the number of samples received.

jambonz's first frame (its call attributes, `callSid`, `sampleRate`, `mixType`, with the listen verb's
`metadata` merged in) is read the same way. The client authenticates with `Authorization: Bearer TOKEN`,
or Basic auth whose password is the token (what mod_audio_fork's and jambonz's `wsAuth` send);
`token_ok` checks either.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import re

from audio.g711 import pcm16_decode

from .actions import Audio, CloseSocket, Ended, Opened

log = logging.getLogger("calmline.ingest.pcm")

RATES = (8000, 16000)
FRAME_BYTES = 4  # one stereo sample: two little-endian int16
AGENT = re.compile(r"^[\w .@'+-]{1,64}$")
CALL_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
POLICY, UNSUPPORTED, IDLE = 1008, 1003, 1001


def token_ok(token: str, authorization: str | None) -> bool:
    """True if the Authorization header carries `token` as a Bearer token or as a Basic password."""
    if not token or not authorization:
        return False
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic":
        try:
            value = base64.b64decode(value, validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return False
    elif scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.encode(), token.encode())


class PcmStream:
    """One stereo PCM WebSocket. States: WAITING (for the header), STREAMING, CLOSED."""

    def __init__(self, flood_budget_s: float = 2.0, now: float = 0.0):
        self.flood_budget_s = flood_budget_s
        self.state = "WAITING"
        self.started_at = now
        self.rate = 0
        self.channels: list[str] = []
        self.position = 0
        self.call_id = ""
        self.call_open = False

    def on_text(self, text: str, now: float) -> list:
        if self.state == "CLOSED":
            return []
        if self.state == "STREAMING":
            log.info("pcm %s: ignoring a text message during the stream", self.call_id)
            return []
        try:
            header = json.loads(text) if len(text) <= 8192 else None
        except ValueError:
            header = None
        if not isinstance(header, dict):
            return self._fail(UNSUPPORTED, "the first message is not a JSON object")
        # jambonz sends its own call attributes (callSid, sampleRate, mixType) with the `metadata` merged in
        call_id, agent = header.get("call_id", header.get("callSid")), header.get("agent", "")
        rate, agent_channel = header.get("sample_rate", header.get("sampleRate")), header.get("agent_channel", 0)
        if header.get("mixType", "stereo") != "stereo":
            return self._fail(UNSUPPORTED, f"mixType {str(header['mixType'])[:20]} is not stereo")
        if not isinstance(call_id, str) or not CALL_ID.match(call_id):
            return self._fail(UNSUPPORTED, "call_id is missing or not an id (letters, digits, _ . : -; 1-64)")
        if agent and (not isinstance(agent, str) or not AGENT.match(agent)):
            return self._fail(POLICY, "agent is not a name (letters, digits, space . @ ' + - _; 1-64)")
        if rate not in RATES or isinstance(rate, bool):
            return self._fail(UNSUPPORTED, f"sample_rate {str(rate)[:20]} is not 8000 or 16000")
        if agent_channel not in (0, 1) or isinstance(agent_channel, bool):
            return self._fail(UNSUPPORTED, f"agent_channel {str(agent_channel)[:20]} is not 0 or 1")
        self.call_id, self.rate = call_id, rate
        self.channels = ["agent", "customer"] if agent_channel == 0 else ["customer", "agent"]
        self.state = "STREAMING"
        self.started_at = now
        self.call_open = True
        log.info("pcm %s: start, agent %r, %d Hz, agent on channel %d", call_id, agent, rate, agent_channel)
        return [Opened(call_id, agent, list(self.channels), rate, "pcm")]

    def on_binary(self, data: bytes, now: float) -> list:
        if self.state == "CLOSED":
            return []
        if self.state == "WAITING":
            return self._fail(POLICY, "audio before the JSON header")
        if len(data) % FRAME_BYTES:
            return self._fail(UNSUPPORTED, f"audio frame of {len(data)} bytes is not whole stereo 16-bit samples")
        block = pcm16_decode(data).reshape(-1, 2)
        start = self.position
        self.position += len(block)
        ahead = self.position / self.rate - (now - self.started_at)
        if ahead > self.flood_budget_s:
            return self._fail(POLICY, f"audio arrives faster than real time ({self.position / self.rate:.1f} s "
                                      f"of audio in {now - self.started_at:.1f} s)")
        return [Audio(start, block, self.channels)] if len(block) else []

    def on_idle(self, seconds: float) -> list:
        if self.state == "CLOSED":
            return []
        return self._fail(IDLE, f"nothing received for {seconds:g} s", reason="stream stopped without closing")

    def on_socket_closed(self, clean: bool = True) -> list:
        """The sender closed the stream: that is how these streams end (a dropped connection is not `clean`)."""
        if self.state == "CLOSED":
            return []
        was_open = self.call_open
        self.state = "CLOSED"
        if not was_open:
            return []
        return [Ended("stream closed by the sender")] if clean else [Ended("connection lost", interrupted=True)]

    def _fail(self, code: int, info: str, reason: str | None = None) -> list:
        log.warning("pcm %s: %s", self.call_id or "(no header yet)", info)
        was_open = self.call_open and self.state != "CLOSED"
        self.state = "CLOSED"
        actions = [Ended(reason or f"error: {info}", interrupted=True)] if was_open else []
        return actions + [CloseSocket(code, info[:120])]
