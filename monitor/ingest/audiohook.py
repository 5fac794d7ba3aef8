"""Genesys AudioHook Monitor, protocol v2, server side: a state machine with no I/O.

The route feeds it each text and binary WebSocket message with the wall-clock time, and it answers
with actions: messages to send back, the call opening, audio at a position, the call ending, the
socket to close. Message shapes, states and error handling follow the reference implementation
the test peer is built from (purecloudlabs/audiohook-reference-implementation, `serversessionimpl`
and `protocol/validators`):

- every client message carries `seq` (one more than the last), `serverseq` (the last server seq it
  saw, never more than we sent), the session `id`, and `position` (its audio position);
- `open` offers media; the first stereo PCMU or L16 offer at 8 kHz is chosen and echoed in
  `opened`. Channel `external` is the customer, `internal` the agent. Frames interleave the channels;
  L16 samples are little-endian, as the reference reads them (an Int16Array over the frame's bytes);
- `ping` gets `pong`; `paused`/`resumed`/`discarded` report audio the client did not send;
  `close` gets `closed`; a fault gets `disconnect` with reason `error` and a one-line `info`.

Audio time follows `position`: audio the client did not send (paused, discarded, lost before a
reconnect) is a gap at its place in the call, never a shift of what follows.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

from audio.g711 import pcm16_decode, ulaw_decode

from .actions import Audio, CloseSocket, Ended, Opened, Send

log = logging.getLogger("calmline.ingest.audiohook")

RATE = 8000
PARTY_OF = {"external": "customer", "internal": "agent"}
"""AudioHook's channel names to calmline's parties."""
FORMATS = ("PCMU", "L16")
BYTES_PER_SAMPLE = {"PCMU": 1, "L16": 2}
CLIENT_TYPES = ("open", "close", "discarded", "error", "ping", "update", "paused", "resumed")
MAX_TEXT = 65535
NULL_UUID = "00000000-0000-0000-0000-000000000000"
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
DURATION = re.compile(r"^PT(\d*\.?\d+)S$")
AGENT = re.compile(r"^[\w .@'+-]{1,64}$")
"""A name an agent can have: letters, digits and a few separators, at most 64 characters."""


@dataclass
class AudioHookLimits:
    """How much a client may get away with before it is disconnected."""

    flood_budget_s: float = 2.0
    """Audio (position) may run at most this far ahead of the wall clock since `open`."""


def duration_samples(value: str) -> int | None:
    """An AudioHook duration ("PT1.25S") in samples at 8 kHz; None if it is not one."""
    match = DURATION.match(value) if isinstance(value, str) else None
    return round(float(match.group(1)) * RATE) if match else None


def _duration(samples: int) -> str:
    return f"PT{samples / RATE:g}S"


class AudioHookSession:
    """One AudioHook WebSocket connection. States: PREPARING (until `open`), ACTIVE, PAUSED,
    DISCONNECTING (we sent `disconnect`, waiting for the client's `close`), CLOSED."""

    def __init__(self, session_id: str, limits: AudioHookLimits | None = None, now: float = 0.0):
        self.id = session_id.lower()
        self.limits = limits or AudioHookLimits()
        self.state = "PREPARING"
        self.seq = 0          # last server seq sent
        self.clientseq = 0    # last client seq seen
        self.position = 0     # samples of audio time this session has covered (sent or skipped)
        self.received = 0     # samples actually received
        self.media: dict | None = None
        self.channels: list[str] = []
        self.opened_at = now
        self.call_open = False
        self.ended = False

    # ---- input ----

    def on_text(self, text: str, now: float) -> list:
        if self.state == "CLOSED":
            return []
        if len(text) > MAX_TEXT:
            return self._fail(f"text message too large ({len(text)} > {MAX_TEXT} characters)")
        try:
            msg = json.loads(text)
        except ValueError:
            return self._fail("text message is not valid JSON")
        problem = _base_problem(msg)
        if problem:
            return self._fail(f"not a well-formed AudioHook client message: {problem}")
        if msg["seq"] != self.clientseq + 1:
            return self._fail(f"invalid seq {msg['seq']} (expected {self.clientseq + 1})")
        self.clientseq = msg["seq"]
        if msg["serverseq"] > self.seq:
            return self._fail(f"invalid serverseq {msg['serverseq']} (the server has sent {self.seq})")
        if msg["id"].lower() != self.id:
            return self._fail(f"session id {msg['id']} is not this session's ({self.id})")
        kind = msg["type"]
        if kind not in CLIENT_TYPES:
            return self._fail(f"'{kind}' is not a supported client message")
        if self.state == "DISCONNECTING" and kind not in ("close", "ping", "error"):
            return []
        params = msg["parameters"]
        actions = [] if kind in ("open", "close") else self._follow(duration_samples(msg["position"]), now)
        if actions and isinstance(actions[-1], CloseSocket):
            return actions
        return actions + getattr(self, "_on_" + kind)(params, now)

    def on_binary(self, data: bytes, now: float) -> list:
        if self.state in ("DISCONNECTING", "CLOSED"):
            return []
        if self.state == "PREPARING":
            return self._fail("audio before 'open'")
        if self.state != "ACTIVE" or self.media is None:
            return self._fail(f"audio while {self.state.lower()}")
        fmt, width = self.media["format"], len(self.channels)
        frame_bytes = BYTES_PER_SAMPLE[fmt] * width
        if len(data) % frame_bytes:
            return self._fail(f"audio frame of {len(data)} bytes is not whole {fmt} samples "
                              f"({frame_bytes} bytes per sample for {width} channels)")
        if not self.call_open:  # a connection probe's audio goes nowhere
            return []
        samples = ulaw_decode(data) if fmt == "PCMU" else pcm16_decode(data)
        block = samples.reshape(-1, width)
        start = self.position
        self.position += len(block)
        self.received += len(block)
        flood = self._flood(now)
        if flood:
            return flood
        return [Audio(start, block, self.channels)] if len(block) else []

    def on_idle(self, seconds: float) -> list:
        """Nothing arrived for `seconds` (not even a ping): the call ends as interrupted."""
        if self.state in ("CLOSED",):
            return []
        actions = []
        if self.state != "DISCONNECTING":
            actions = self._disconnect("error", f"nothing received for {seconds:g} s")
        return actions + self._end("stream stopped without close", interrupted=True) + [CloseSocket(1001, "idle")]

    def on_socket_closed(self, clean: bool = True) -> list:
        """The connection dropped. Without a `close` the call is interrupted (a continuation may resume it)."""
        if self.state == "CLOSED":
            return []
        self.state = "CLOSED"
        return self._end("connection lost without close", interrupted=True, may_continue=True)

    # ---- messages ----

    def _on_open(self, params: dict, now: float) -> list:
        if self.state != "PREPARING":
            log.warning("audiohook %s: ignoring a second 'open' in state %s", self.id, self.state)
            return []
        problem = _open_problem(params)
        if problem:
            return self._fail(f"invalid 'open': {problem}")
        probe = params["conversationId"] == NULL_UUID
        offered = params["media"]
        chosen = next((m for m in offered if len(m["channels"]) == 2 and set(m["channels"]) == set(PARTY_OF)
                       and m["format"] in FORMATS and m["rate"] == RATE), None)
        reply: dict = {"media": [chosen] if chosen else [], "startPaused": False}
        if params.get("supportedLanguages"):
            reply["supportedLanguages"] = ["en-US"]
        if probe:  # Genesys's connection probe: answer, start no call
            self.state = "ACTIVE"
            self.media, self.channels = chosen, [PARTY_OF[c] for c in chosen["channels"]] if chosen else []
            log.info("audiohook %s: connection probe", self.id)
            return [self._message("opened", reply)]
        if chosen is None:
            kinds = ", ".join(f"{m['format']}/{m['rate']}/{'+'.join(m['channels'])}" for m in offered) or "nothing"
            return self._fail(f"no stereo (external+internal) PCMU or L16 at 8000 Hz was offered (offered: {kinds})")
        custom = params.get("customConfig") or {}
        agent = custom.get("agent", "")
        if agent and (not isinstance(agent, str) or not AGENT.match(agent)):
            return self._fail("customConfig.agent is not a name (letters, digits, space . @ ' + - _; 1-64)")
        self.media = chosen
        self.channels = [PARTY_OF[c] for c in chosen["channels"]]
        self.state = "ACTIVE"
        self.opened_at = now
        self.call_open = True
        continues = [s["id"].lower() for s in params.get("continuedSessions") or []]
        log.info("audiohook %s: open, conversation %s, agent %r, %s %s%s", self.id, params["conversationId"],
                 agent, chosen["format"], "+".join(chosen["channels"]),
                 f", continuing {', '.join(continues)}" if continues else "")
        return [self._message("opened", reply),
                Opened(self.id, agent, list(self.channels), RATE, "audiohook", continues,
                       {"conversation": params["conversationId"], "media": chosen})]

    def _on_close(self, params: dict, now: float) -> list:
        reason = params.get("reason", "end")
        log.info("audiohook %s: close (%s)", self.id, reason)
        interrupted = reason not in ("end", "disconnect")
        actions = self._end(f"closed by the client ({reason})", interrupted=interrupted,
                            may_continue=reason == "reconnect")
        self.state = "CLOSED"
        return actions + [self._message("closed", {})]

    def _on_ping(self, params: dict, now: float) -> list:
        return [self._message("pong", {})]

    def _on_update(self, params: dict, now: float) -> list:
        log.info("audiohook %s: update %s", self.id, json.dumps(params)[:200])
        return []

    def _on_error(self, params: dict, now: float) -> list:
        log.warning("audiohook %s: client error %s: %s", self.id, params.get("code"), str(params.get("message"))[:200])
        return []

    def _on_paused(self, params: dict, now: float) -> list:
        if self.state == "ACTIVE":
            self.state = "PAUSED"
            log.info("audiohook %s: paused at %.2f s", self.id, self.position / RATE)
        return []

    def _on_resumed(self, params: dict, now: float) -> list:
        start, discarded = duration_samples(params.get("start")), duration_samples(params.get("discarded"))
        if start is None or discarded is None:
            return self._fail("invalid 'resumed': start and discarded must be durations")
        if self.state == "PAUSED":
            self.state = "ACTIVE"
        return self._follow(start, now)

    def _on_discarded(self, params: dict, now: float) -> list:
        start, discarded = duration_samples(params.get("start")), duration_samples(params.get("discarded"))
        if start is None or discarded is None:
            return self._fail("invalid 'discarded': start and discarded must be durations")
        log.info("audiohook %s: %.2f s discarded at %.2f s", self.id, discarded / RATE, start / RATE)
        return self._follow(start + discarded, now)

    # ---- helpers ----

    def _follow(self, position: int | None, now: float) -> list:
        """The client says its audio is at `position`: what we did not receive up to there is a gap."""
        if position is None or position <= self.position:
            return []
        if self.state == "PREPARING" or not self.call_open:
            self.position = position
            return []
        self.position = position
        return self._flood(now)

    def _flood(self, now: float) -> list:
        ahead = self.position / RATE - (now - self.opened_at)
        if ahead > self.limits.flood_budget_s:
            return self._fail(f"audio arrives faster than real time ({self.position / RATE:.1f} s of audio "
                              f"in {now - self.opened_at:.1f} s)")
        return []

    def _message(self, kind: str, params: dict) -> Send:
        self.seq += 1
        return Send({"version": "2", "type": kind, "id": self.id, "seq": self.seq,
                     "clientseq": self.clientseq, "parameters": params})

    def _disconnect(self, reason: str, info: str) -> list:
        self.state = "DISCONNECTING"
        return [self._message("disconnect", {"reason": reason, "info": info})]

    def _fail(self, info: str) -> list:
        """A client fault: log it, tell the client (`disconnect`, reason error), end the call as interrupted."""
        if self.state in ("DISCONNECTING", "CLOSED"):
            log.warning("audiohook %s: %s (already closing)", self.id, info)
            return []
        log.warning("audiohook %s: %s", self.id, info)
        return self._disconnect("error", info) + self._end(f"error: {info}", interrupted=True)

    def _end(self, reason: str, interrupted: bool, may_continue: bool = False) -> list:
        if self.ended or not self.call_open:
            return []
        self.ended = True
        return [Ended(reason, interrupted, may_continue)]


def _base_problem(msg) -> str:
    """Why `msg` is not an AudioHook v2 client message ("" if it is)."""
    if not isinstance(msg, dict):
        return "not a JSON object"
    if msg.get("version") != "2":
        return "version is not \"2\""
    if not isinstance(msg.get("id"), str) or not UUID.match(msg["id"]):
        return "id is not a UUID"
    if not isinstance(msg.get("type"), str):
        return "type is not a string"
    for key in ("seq", "serverseq"):
        value = msg.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return f"{key} is not a sequence number"
    if duration_samples(msg.get("position")) is None:
        return "position is not a duration"
    if not isinstance(msg.get("parameters"), dict):
        return "parameters is not an object"
    return ""


def _open_problem(params: dict) -> str:
    for key in ("organizationId", "conversationId"):
        if not isinstance(params.get(key), str) or not UUID.match(params[key]):
            return f"{key} is not a UUID"
    if not isinstance(params.get("participant"), dict):
        return "participant is not an object"
    media = params.get("media")
    if not isinstance(media, list):
        return "media is not a list"
    for m in media:
        if not isinstance(m, dict) or m.get("type") != "audio" or not isinstance(m.get("format"), str) \
                or not isinstance(m.get("rate"), int) or not isinstance(m.get("channels"), list) \
                or not 1 <= len(m["channels"]) <= 2 or any(c not in PARTY_OF for c in m["channels"]):
            return f"media entry {json.dumps(m)[:120]} is not an audio offer"
    continued = params.get("continuedSessions")
    if continued is not None and (not isinstance(continued, list) or not all(
            isinstance(s, dict) and isinstance(s.get("id"), str) and UUID.match(s["id"]) for s in continued)):
        return "continuedSessions is not a list of sessions"
    if "customConfig" in params and not isinstance(params["customConfig"], dict):
        return "customConfig is not an object"
    return ""
