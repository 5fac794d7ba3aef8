"""HTTP Message Signatures (RFC 9421 style, hmac-sha256) on an AudioHook WebSocket upgrade.

Genesys signs the upgrade request with the client secret of its API key. The signature base is
built exactly as the reference AudioHook implementation builds it: one line per covered component
(`"name": value`), then `"@signature-params": <the Signature-Input member, re-serialised>`, joined
by newlines. The derived components it uses are `@request-target` (path and query as the client
addressed them) and `@authority` (the host, without a default port). The structured fields are
parsed and re-serialised by `http_sf` (RFC 9651); only the glue is here.

A signature must cover every REQUIRED component, be within its lifetime, not be older than
`max_age_s`, and use a nonce not seen before (a captured upgrade cannot be replayed).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Mapping

import http_sf
from http_sf.innerlist import ser_innerlist

REQUIRED = ("@request-target", "@authority", "audiohook-organization-id", "audiohook-session-id",
            "audiohook-correlation-id", "x-api-key")
"""What Genesys signs, and what a signature must cover here to be accepted."""
DERIVED = ("@request-target", "@authority")
CLOCK_SKEW_S = 3
"""Clock difference between Genesys and this server that is tolerated (as the reference server)."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one upgrade request: ok, or why not (one line for the log and the 401)."""

    ok: bool
    reason: str = ""


def decode_secret(secret: str) -> bytes:
    """A client secret as configured (base64) to the HMAC key bytes; ValueError if it is not base64."""
    try:
        return base64.b64decode(secret.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None


def canonical(value: str) -> str:
    """A header value as it is signed: trimmed, obsolete line folding replaced by a space."""
    return re.sub(r"[ \t]*\r\n[ \t]+", " ", value.strip())


def authority(host: str, scheme: str) -> str:
    """`@authority`: the Host, lower-cased, without the scheme's default port."""
    host = host.strip().lower()
    default = {"ws": "80", "http": "80", "wss": "443", "https": "443"}.get(scheme)
    if default and host.endswith(":" + default) and not host.endswith("]"):
        host = host[: -len(default) - 1]
    return host


class NonceCache:
    """Nonces seen within the signature lifetime; bounded, thread-safe, oldest forgotten first."""

    def __init__(self, keep_s: float, limit: int = 100_000):
        self.keep_s, self.limit = keep_s, limit
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def fresh(self, nonce: str, now: float) -> bool:
        """True the first time `nonce` is offered within `keep_s`; records it."""
        with self._lock:
            while self._seen and (next(iter(self._seen.values())) < now - self.keep_s or len(self._seen) > self.limit):
                self._seen.popitem(last=False)
            if nonce in self._seen:
                return False
            self._seen[nonce] = now
            return True


def verify(headers: Mapping[str, str], derived: Mapping[str, str], keys: Mapping[str, bytes],
           now: float | None = None, max_age_s: float = 10.0, nonces: NonceCache | None = None,
           required: tuple[str, ...] = REQUIRED) -> Verdict:
    """Check the `signature-input` / `signature` pair of an upgrade request.

    `headers` maps lower-case names to values (repeated fields already joined with ", "), `derived`
    gives `@request-target` and `@authority`, `keys` maps a keyid (the API key) to its secret bytes.
    """
    now = time.time() if now is None else now
    raw_input, raw_sig = headers.get("signature-input"), headers.get("signature")
    if not raw_input or not raw_sig:
        return Verdict(False, "the request is not signed (no Signature-Input / Signature header)")
    try:
        inputs = http_sf.parse(raw_input.encode("latin-1"), tltype="dictionary")
        signatures = http_sf.parse(raw_sig.encode("latin-1"), tltype="dictionary")
    except (http_sf.StructuredFieldError, ValueError, UnicodeEncodeError) as exc:
        return Verdict(False, f"malformed signature header ({exc})")
    if not inputs:
        return Verdict(False, "empty Signature-Input header")
    label, member = next(iter(inputs.items()))
    if label not in signatures:
        return Verdict(False, f"no signature labelled {label!r}")
    value = signatures[label]
    if not isinstance(value, tuple) or not isinstance(value[0], bytes):
        return Verdict(False, "the signature is not a byte sequence")
    if not isinstance(member, tuple) or not isinstance(member[0], list):
        return Verdict(False, "the Signature-Input member is not an inner list")
    components, params = member

    keyid, alg, created, expires, nonce = (params.get(k) for k in ("keyid", "alg", "created", "expires", "nonce"))
    unknown = set(params) - {"keyid", "alg", "created", "expires", "nonce"}
    if unknown:
        return Verdict(False, f"unknown signature parameter {sorted(unknown)[0]!r}")
    if alg is not None and alg != "hmac-sha256":
        return Verdict(False, f"signature algorithm {alg!r} is not hmac-sha256")
    if not isinstance(keyid, str) or keyid not in keys:
        return Verdict(False, "the signature's keyid is not the API key")
    for name, stamp in (("created", created), ("expires", expires)):
        if stamp is not None and (not isinstance(stamp, int) or isinstance(stamp, bool) or stamp < 0):
            return Verdict(False, f"signature parameter {name!r} is not a time")
    if created is None:
        return Verdict(False, "the signature has no 'created' time")
    if created > now + CLOCK_SKEW_S:
        return Verdict(False, "the signature was created in the future (check the clocks)")
    if expires is not None and expires < now - CLOCK_SKEW_S:
        return Verdict(False, "the signature has expired")
    if created + max_age_s < now - CLOCK_SKEW_S:
        return Verdict(False, f"the signature is older than {max_age_s:g} s")

    lines, seen = [], set()
    for item in components:
        name, item_params = item if isinstance(item, tuple) else (item, {})
        if not isinstance(name, str):
            return Verdict(False, "a covered component is not a string")
        if item_params:
            return Verdict(False, f"component parameters are not supported ({name!r})")
        if name in seen:
            return Verdict(False, f"component {name!r} is covered twice")
        seen.add(name)
        if name.startswith("@"):
            if name not in DERIVED:
                return Verdict(False, f"derived component {name!r} is not supported")
            field_value = derived.get(name)
        elif name in ("signature", "signature-input"):
            return Verdict(False, f"component {name!r} may not be covered")
        else:
            field_value = headers.get(name)
            field_value = canonical(field_value) if field_value is not None else None
        if field_value is None:
            return Verdict(False, f"covered component {name!r} is not in the request")
        lines.append(f'"{name}": {field_value}')
    missing = [name for name in required if name not in seen]
    if missing:
        return Verdict(False, f"the signature does not cover {', '.join(missing)}")
    lines.append(f'"@signature-params": {ser_innerlist(member)}')
    expected = hmac.new(keys[keyid], "\n".join(lines).encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, value[0]):
        return Verdict(False, "the signature does not match")
    if nonces is not None and nonce is not None and not nonces.fresh(str(nonce), now):
        return Verdict(False, "the signature's nonce was used before (a replayed request)")
    return Verdict(True)
