"""The one JSON encoder for everything calmline sends over HTTP or a WebSocket.

Compact, and never NaN or infinity: a browser's JSON.parse refuses them, so they go out as null
(monitor.events.finite). Anything with `to_dict()` (an Event) is encoded as that dict.
"""

from __future__ import annotations

import json

from starlette.responses import Response

from ..events import finite


def dumps(value) -> str:
    """`value` as compact JSON text; NaN and infinities become null."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except ValueError:  # a non-finite float somewhere: only then pay for the copy
        return json.dumps(finite(value), separators=(",", ":"), allow_nan=False)


def dumpb(value) -> bytes:
    """`dumps` as UTF-8 bytes, for HTTP bodies."""
    return dumps(value).encode()


class JSONResponse(Response):
    """A JSON HTTP response through the one encoder (Starlette's own would allow NaN)."""

    media_type = "application/json"

    def render(self, content) -> bytes:
        return dumpb(content)
