"""What a protocol state machine asks its route to do: send, open the call, place audio, end, close.

Every protocol (AudioHook, Twilio, PCM) answers each incoming message with a list of these, so the
route that runs a call is the same for all of them and the protocols are tested without a socket.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Send:
    """A message to send to the client as JSON text."""

    message: dict


@dataclass
class Opened:
    """The call starts (or, with `continues`, an earlier session's call goes on)."""

    call_id: str
    agent: str
    channels: list[str]      # the parties, in the order of the audio's channels
    rate: int
    source: str              # "audiohook", "twilio", "pcm"
    continues: list[str] = field(default_factory=list)  # ids of the sessions this one continues
    details: dict = field(default_factory=dict)         # protocol facts worth logging (conversation id, ...)


@dataclass
class Audio:
    """Samples (frames, len(parties)) float32 at the call's rate, `start` samples into this session."""

    start: int
    samples: np.ndarray
    parties: list[str]


@dataclass
class Ended:
    """The call is over for this connection: `reason` is the client's, or why the server ended it."""

    reason: str
    interrupted: bool = False
    may_continue: bool = False
    """The client may reconnect (AudioHook `continuedSessions`): hold the call a while before finishing it."""


@dataclass
class CloseSocket:
    """Close the WebSocket (after sending what came before)."""

    code: int = 1000
    reason: str = ""
