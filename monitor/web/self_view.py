"""After a call recorded on this server, the agent's overlay turns into a short self-view: the scorecard's
score out of 100, one thing that went well, one thing to try next time, and a link to their own replay.

One of each, not the whole card: it is read in the seconds before the next call. "Went well" is the
first met item in WELL_ORDER (what matters most with an upset customer first), with its evidence; "try
next" the first missed one in the same order, with a concrete tip (TIPS). The full card is in replay.
"""

from __future__ import annotations

from urllib.parse import quote

from ..library.scorecard import score_call

WELL_ORDER = ("empathize", "listen", "seek_to_solve", "respond", "verify", "execute", "open_mind", "thank",
              "document")
TIPS = {
    "empathize": "Acknowledge how they feel early – a short apology before the fix.",
    "listen": "Let them finish their turn; fewer interruptions, less of the talk time.",
    "seek_to_solve": "Offer one concrete action: “let me…”, “I can send…”.",
    "respond": "Answer promptly after the customer's first turn; no long silence.",
    "verify": "Check the fix works for them: “does that work for you?”.",
    "execute": "Give a time for what you promise: “today”, “within the hour”.",
    "open_mind": "Ask what they would like: “what would work for you?”.",
    "thank": "Thank them near the end of the call.",
    "document": "Say the agreed solution back so the record holds it.",
}


def self_view(call_id: str, events: list, config=None) -> dict:
    """`{"score", "well", "next", "replay"}` of a recorded call (its stored events); `well` and `next` are
    `{"item", "title", "text"}` or None (every item missed, or met)."""
    card = score_call(events, config)
    items = {item["item"]: item for item in card["items"]}
    ordered = [items[key] for key in WELL_ORDER if key in items]
    well = next((item for item in ordered if item["met"]), None)
    missed = next((item for item in ordered if not item["met"]), None)
    return {
        "score": card["score"],
        "well": None if well is None else {"item": well["item"], "title": well["title"],
                                           "text": str(well.get("evidence") or "")[:200]},
        "next": None if missed is None else {"item": missed["item"], "title": missed["title"],
                                             "text": TIPS.get(missed["item"], str(missed.get("evidence") or ""))},
        "replay": f"/calls/{quote(call_id, safe='')}/",
    }
