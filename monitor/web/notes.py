"""A supervisor's word to the agent: a short text or a preset coaching card, sent from the floor's live view
of a call to that agent's overlay (monitor.web.floor_room.Floor.say) and recorded with the call.

Checked here, before anyone sees it: a card must be one of CARDS; a text is cut of control characters and
surrounding space, and may hold 1 to NOTE_CHARS characters (pages show it as text, never as markup). Each
supervisor may send NOTE_BURST notes at once, then one every 1 / NOTE_RATE_PER_S seconds: a word to the
agent, not a chat that would pull their attention off the customer.

A call recorded on this server (an ingested call) gets the note in its stored events, after the recorder's
own (its sequence numbers start at NOTE_SEQ), so replay and report see it like any other event.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from dataclasses import dataclass

from ..events import Note
from .ratelimit import TokenBucket

log = logging.getLogger("calmline.notes")

NOTE_CHARS = 200
NOTE_RATE_PER_S = 0.2
NOTE_BURST = 3
NOTES_KEPT = 10
"""Notes of a call kept for an overlay that (re)connects mid-call."""
NOTE_SEQ = 2_000_000_000
"""Stored notes' sequence numbers start here (within a 32-bit INTEGER): far above a recorder's own."""
CARDS = {
    "acknowledge": "Acknowledge how they feel before you solve",
    "slow_down": "Slow down and lower your voice",
    "listen": "Let them finish – then summarise what you heard",
    "own_it": "Own it: say what you will do, and when",
    "well_done": "Nice recovery – keep going like this",
}
"""Preset coaching cards: key -> the words the agent sees."""


@dataclass
class NoteRequest:
    """A supervisor's `say` message, checked: the card's key ("" for free text) and the words to show."""

    call_id: str
    text: str
    card: str = ""


def check_say(msg: dict) -> NoteRequest | str:
    """The request of a floor `say` message, or why it is refused (one line)."""
    call_id, card, text = msg.get("call_id"), msg.get("card"), msg.get("text")
    if not isinstance(call_id, str) or not call_id:
        return "say needs a call_id"
    if card not in (None, ""):
        if not isinstance(card, str) or card not in CARDS:
            return f"unknown card (one of {', '.join(CARDS)})"
        return NoteRequest(call_id, CARDS[card], card)
    if not isinstance(text, str):
        return "say needs a text or a card"
    text = " ".join("".join(" " if unicodedata.category(c).startswith("C") else c for c in text).split())
    if not text:
        return "the message is empty"
    if len(text) > NOTE_CHARS:
        return f"the message is longer than {NOTE_CHARS} characters"
    return NoteRequest(call_id, text)


class NoteLimiter:
    """Each supervisor's note budget (NOTE_BURST at once, then NOTE_RATE_PER_S), by username."""

    def __init__(self, rate: float = NOTE_RATE_PER_S, burst: int = NOTE_BURST):
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, user: str) -> float:
        """0 when `user` may send now; otherwise the seconds to wait."""
        bucket = self._buckets.get(user)
        if bucket is None:
            if len(self._buckets) > 10000:
                self._buckets.clear()
            bucket = self._buckets[user] = TokenBucket(self.rate, self.burst)
        return 0.0 if bucket.take() else max(0.1, bucket.wait_s())


def note_event(note_id: int, t: float, sender: str, request: NoteRequest) -> dict:
    """The note's JSON form (monitor.events.Note), as overlays, the floor and the store get it."""
    return Note(t=t, id=note_id, sender=sender, text=request.text, card=request.card).to_dict()


def record_note(store, call_id: str, note: dict) -> bool:
    """Add the note to the call's stored events when this store (SQLite or PostgreSQL, monitor.library) records
    that call; False when it does not. Blocking: run it off the event loop, under the library's lock."""
    try:
        if not store._query("SELECT 1 FROM calls WHERE id = ?", (call_id,)):
            return False
        seq = store._query("SELECT COALESCE(MAX(seq) + 1, ?) FROM events WHERE call_id = ? AND seq >= ?",
                           (NOTE_SEQ, call_id, NOTE_SEQ))[0][0]
        store._write("INSERT INTO events VALUES (?, ?, ?, ?, ?)",
                     (call_id, seq, note["t"], "note", json.dumps(note, separators=(",", ":"))))
        return True
    except Exception as error:  # noqa: BLE001 - a busy or full store loses the note's record, not the note
        log.warning("note for call %s not recorded: %s", call_id, error)
        return False
