"""Twilio Media Streams (`<Start><Stream track="both_tracks">`), server side: a state machine with no I/O.

Twilio sends JSON text messages only: `connected`, then `start` (call and stream ids, `tracks`,
`customParameters` from the TwiML `<Parameter>`s, `mediaFormat`), then `media` per 20 ms of one
track (`track` inbound/outbound, `chunk`, `timestamp` in ms since the stream started, base64 μ-law
at 8 kHz), and `stop`. Each message carries a `sequenceNumber` one above the last. `inbound` is what
the caller says (the customer), `outbound` what Twilio plays to the caller (the agent).

Each track is placed by its `timestamp`, so a track that skips (Twilio sends nothing during a
stretch of silence on some calls) is silence there, and the two tracks stay aligned. Twilio has no
error message: a fault closes the WebSocket with a close code and a one-line reason, and is logged.

The upgrade request is signed (`X-Twilio-Signature`: HMAC-SHA1 of the URL Twilio requested, keyed
with the account's auth token); `signature_ok` checks it with the `twilio` package's validator.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re

from audio.g711 import ulaw_decode

from .actions import Audio, CloseSocket, Ended, Opened

log = logging.getLogger("calmline.ingest.twilio")

RATE = 8000
PARTY_OF = {"inbound": "customer", "outbound": "agent"}
EVENTS = ("connected", "start", "media", "stop", "mark", "dtmf")
MAX_TEXT = 65535
AGENT = re.compile(r"^[\w .@'+-]{1,64}$")
SID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
POLICY = 1008     # WebSocket close codes: a rule broken,
UNSUPPORTED = 1003  # data we cannot take,
IDLE = 1001       # going away (nothing arrived for too long)


def signature_ok(auth_token: str, url: str, signature: str | None) -> bool:
    """True if `signature` (X-Twilio-Signature) signs `url` with `auth_token` (the WebSocket upgrade has no params)."""
    if not signature:
        return False
    from twilio.request_validator import RequestValidator  # imported here: it pulls in an HTTP stack

    return RequestValidator(auth_token).validate(url, {}, signature)


class TwilioStream:
    """One Media Streams WebSocket. States: CONNECTING (until `start`), STREAMING, CLOSED."""

    def __init__(self, flood_budget_s: float = 2.0, now: float = 0.0):
        self.flood_budget_s = flood_budget_s
        self.state = "CONNECTING"
        self.sequence = 0
        self.started_at = now
        self.tracks: list[str] = []
        self.chunks = {"inbound": 0, "outbound": 0}
        self.stream_sid = ""
        self.call_open = False

    def on_text(self, text: str, now: float) -> list:
        if self.state == "CLOSED":
            return []
        if len(text) > MAX_TEXT:
            return self._fail(POLICY, f"message too large ({len(text)} characters)")
        try:
            msg = json.loads(text)
        except ValueError:
            return self._fail(UNSUPPORTED, "message is not valid JSON")
        if not isinstance(msg, dict) or not isinstance(msg.get("event"), str):
            return self._fail(UNSUPPORTED, "message has no event")
        event = msg["event"]
        if event not in EVENTS:
            return self._fail(UNSUPPORTED, f"unknown event {event[:40]!r}")
        if event != "connected":
            problem = self._check_sequence(msg)
            if problem:
                return self._fail(POLICY, problem)
        return getattr(self, "_on_" + event)(msg, now)

    def on_binary(self, data: bytes, now: float) -> list:
        return self._fail(UNSUPPORTED, "binary message (Media Streams sends JSON text only)")

    def on_idle(self, seconds: float) -> list:
        if self.state == "CLOSED":
            return []
        return self._fail(IDLE, f"nothing received for {seconds:g} s", reason="stream stopped without stop")

    def on_socket_closed(self, clean: bool = True) -> list:
        if self.state == "CLOSED":
            return []
        self.state = "CLOSED"
        return [Ended("connection lost without stop", interrupted=True)] if self.call_open else []

    # ---- events ----

    def _on_connected(self, msg: dict, now: float) -> list:
        return []

    def _on_start(self, msg: dict, now: float) -> list:
        if self.state != "CONNECTING":
            return self._fail(POLICY, "a second 'start'")
        start = msg.get("start")
        if not isinstance(start, dict):
            return self._fail(UNSUPPORTED, "'start' has no start object")
        fmt = start.get("mediaFormat") or {}
        if (fmt.get("encoding"), fmt.get("sampleRate"), fmt.get("channels")) != ("audio/x-mulaw", RATE, 1):
            return self._fail(UNSUPPORTED, f"media format {json.dumps(fmt)[:120]} is not audio/x-mulaw at 8000 Hz mono")
        tracks = start.get("tracks")
        if not isinstance(tracks, list) or not tracks or any(t not in PARTY_OF for t in tracks):
            return self._fail(UNSUPPORTED, f"tracks {json.dumps(tracks)[:80]} are not inbound/outbound")
        if set(tracks) != set(PARTY_OF):
            log.warning("twilio: stream has only the %s track; the other party is silent "
                        "(use <Stream track=\"both_tracks\">)", tracks[0])
        params = start.get("customParameters") or {}
        agent = params.get("agent", "") if isinstance(params, dict) else ""
        if agent and (not isinstance(agent, str) or not AGENT.match(agent)):
            return self._fail(POLICY, "customParameters.agent is not a name (letters, digits, space . @ ' + - _; 1-64)")
        call_sid = start.get("callSid") or msg.get("streamSid") or ""
        if not isinstance(call_sid, str) or not SID.match(call_sid):
            return self._fail(UNSUPPORTED, "'start' has no callSid")
        self.stream_sid = str(start.get("streamSid") or msg.get("streamSid") or "")
        self.tracks = tracks
        self.state = "STREAMING"
        self.started_at = now
        self.call_open = True
        log.info("twilio: start, call %s, stream %s, agent %r, tracks %s", call_sid, self.stream_sid, agent, tracks)
        return [Opened(call_sid, agent, ["customer", "agent"], RATE, "twilio",
                       details={"stream": self.stream_sid, "tracks": tracks})]

    def _on_media(self, msg: dict, now: float) -> list:
        if self.state != "STREAMING":
            return self._fail(POLICY, "'media' before 'start'")
        media = msg.get("media")
        if not isinstance(media, dict):
            return self._fail(UNSUPPORTED, "'media' has no media object")
        track = media.get("track")
        if track not in self.tracks:
            return self._fail(UNSUPPORTED, f"media for track {str(track)[:20]!r}, not one of {self.tracks}")
        try:
            timestamp = int(media.get("timestamp"))
            chunk = int(media.get("chunk"))
            payload = base64.b64decode(media.get("payload") or "", validate=True)
        except (TypeError, ValueError, binascii.Error):
            return self._fail(UNSUPPORTED, "media timestamp, chunk or payload is malformed")
        if timestamp < 0:
            return self._fail(UNSUPPORTED, "media timestamp is negative")
        if chunk != self.chunks[track] + 1:
            log.warning("twilio %s: %s chunk %d after %d (lost chunks become silence)",
                        self.stream_sid, track, chunk, self.chunks[track])
        self.chunks[track] = chunk
        start = timestamp * RATE // 1000
        ahead = (start + len(payload)) / RATE - (now - self.started_at)
        if ahead > self.flood_budget_s:
            return self._fail(POLICY, f"audio arrives faster than real time ({timestamp / 1000:.1f} s of audio "
                                      f"in {now - self.started_at:.1f} s)")
        if not payload:
            return []
        return [Audio(start, ulaw_decode(payload).reshape(-1, 1), [PARTY_OF[track]])]

    def _on_stop(self, msg: dict, now: float) -> list:
        if self.state != "STREAMING":
            return self._fail(POLICY, "'stop' before 'start'")
        log.info("twilio %s: stop", self.stream_sid)
        self.state = "CLOSED"
        return [Ended("stopped by Twilio"), CloseSocket(1000, "stopped")]

    def _on_mark(self, msg: dict, now: float) -> list:
        return []

    def _on_dtmf(self, msg: dict, now: float) -> list:
        return []  # the digits are the customer's business: never logged

    # ---- helpers ----

    def _check_sequence(self, msg: dict) -> str:
        try:
            number = int(msg.get("sequenceNumber"))
        except (TypeError, ValueError):
            return "sequenceNumber is missing or not a number"
        if self.sequence and number != self.sequence + 1:
            return f"sequenceNumber {number} after {self.sequence}"
        self.sequence = number
        return ""

    def _fail(self, code: int, info: str, reason: str | None = None) -> list:
        log.warning("twilio %s: %s", self.stream_sid or "(no stream yet)", info)
        was_open = self.call_open and self.state != "CLOSED"
        self.state = "CLOSED"
        actions = [Ended(reason or f"error: {info}", interrupted=True)] if was_open else []
        return actions + [CloseSocket(code, info[:120])]
