"""Who may use the server: supervisors' and agents' password hashes, their signed session cookies, the login throttle,
and the checks that refuse weak agent tokens and malformed hashes at start.

Sessions are signed cookies (itsdangerous, keyed by a secret kept in the data directory with mode 0600), so
a restarted server keeps its supervisors signed in and several servers sharing the data directory's secret
accept each other's sessions. A cookie names the user, a random session id and a fingerprint of the user's
password hash: removing a supervisor from the config or changing their password ends their sessions. Logout
revokes the session id on this server (kept, with its expiry, in a small file beside the secret).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer

from ..errors import UsageError

log = logging.getLogger("calmline.auth")

MIN_SECRET_CHARS = 16
"""Shortest agent token and supervisor password accepted."""
COOKIE = "calmline_session"
DEVICE_COOKIE = "calmline_device"
"""Set on a successful login: this browser has signed in as that user before, so the login throttle gives
it a budget of its own that other addresses' failures cannot use up."""
DEVICE_TTL_S = 90 * 86400.0
SECRET_FILE = "session.key"
REVOKED_FILE = "revoked-sessions.json"


# ---- passwords ----

_SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    """A salted scrypt hash as one string: `scrypt$n$r$p$salt$hash` (base64), for [hub.supervisors]."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt)}${b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    """True when `password` matches a `hash_password` string; compared in constant time, False on any bad input."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt" or int(n) > 2 ** 20 or int(r) > 32 or int(p) > 16:
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt, validate=True), n=int(n), r=int(r),
                                p=int(p), dklen=len(expected), maxmem=64 * 1024 * 1024)
    except (ValueError, TypeError, AttributeError):
        return False
    return hmac.compare_digest(actual, expected)


DUMMY_HASH = hash_password(secrets.token_hex(8))
"""Checked against for unknown users, so a wrong username costs as long as a wrong password."""


def check_credentials(tokens: dict, supervisors: dict, section: str = "hub", agents: dict | None = None) -> None:
    """UsageError naming the key for an agent token shorter than MIN_SECRET_CHARS (or empty), a supervisor or
    agent entry that is not a `calmline hash-password` hash, or a name that is both a supervisor and an agent
    (one sign-in form, one role per name): checked at start, before anyone can use them."""
    for agent, token in tokens.items():
        if not isinstance(token, str) or len(token) < MIN_SECRET_CHARS:
            raise UsageError(f"[{section}.tokens] {agent}: a token must be at least {MIN_SECRET_CHARS} characters")
    seen: dict[str, str] = {}
    for agent, token in tokens.items():  # the token alone says who a monitor is: one token, one agent
        if token in seen:
            raise UsageError(f"[{section}.tokens] {agent}: the same token as {seen[token]}'s (give each agent its own)")
        seen[token] = agent
    for table, accounts in (("supervisors", supervisors), ("agents", agents or {})):
        for user, stored in accounts.items():
            parts = stored.split("$") if isinstance(stored, str) else []
            if len(parts) != 6 or parts[0] != "scrypt" or not all(p.isdigit() for p in parts[1:4]):
                raise UsageError(f"[{section}.{table}] {user}: not a password hash "
                                 f"(make one with `calmline hash-password`)")
    for user in sorted(set(supervisors) & set(agents or {})):
        raise UsageError(f"[{section}.agents] {user}: also in [{section}.supervisors]; a name signs in as one role "
                         f"(give the supervisor another name)")


# ---- sessions ----

SUPERVISOR, AGENT = "supervisor", "agent"


@dataclass(frozen=True)
class Session:
    user: str
    sid: str
    expires: float
    """Unix time."""
    role: str = SUPERVISOR
    """`supervisor` (the floor, every call) or `agent` (their own overlay and calls)."""


class Sessions:
    """Issues and reads signed session cookies (see the module docstring)."""

    def __init__(self, supervisors: dict[str, str], ttl_s: float = 12 * 3600.0, secure: bool = False,
                 data_dir: Path | None = None, agents: dict[str, str] | None = None):
        self.supervisors = supervisors
        self.agents = agents or {}
        self.ttl_s = ttl_s
        self.secure = secure
        self.data_dir = Path(data_dir) if data_dir else None
        secret = self._secret()
        self._signer = URLSafeTimedSerializer(secret, salt="calmline-session")
        self._devices = URLSafeTimedSerializer(secret, salt="calmline-device")
        self._revoked: dict[str, float] = self._load_revoked()

    def role_of(self, user: str) -> str | None:
        """The role `user` signs in as, or None for no account (check_credentials keeps the tables apart)."""
        return SUPERVISOR if user in self.supervisors else AGENT if user in self.agents else None

    def stored_hash(self, user: str) -> str | None:
        return self.supervisors.get(user) or self.agents.get(user)

    def issue(self, user: str) -> tuple[str, Session]:
        """A new session for `user` (in the role their account has): the cookie value and the session."""
        sid = secrets.token_urlsafe(16)
        role = self.role_of(user) or SUPERVISOR
        value = self._signer.dumps({"u": user, "s": sid, "h": self._fingerprint(user), "r": role})
        return value, Session(user, sid, time.time() + self.ttl_s, role)

    def read(self, cookie: str | None) -> Session | None:
        """The session of a cookie value, or None: unsigned, expired, revoked, or its user is gone or changed
        password."""
        if not cookie or len(cookie) > 1024:
            return None
        try:
            data, signed_at = self._signer.loads(cookie, max_age=self.ttl_s, return_timestamp=True)
        except (BadSignature, ValueError, TypeError):
            return None
        if not isinstance(data, dict):
            return None
        user, sid, role = data.get("u"), data.get("s"), data.get("r", SUPERVISOR)  # older cookies: supervisors'
        if not isinstance(user, str) or not isinstance(sid, str) or role != self.role_of(user):
            return None  # no such account, or it moved to the other table: sign in again
        if not hmac.compare_digest(str(data.get("h", "")), self._fingerprint(user)) or sid in self._revoked:
            return None
        return Session(user, sid, signed_at.timestamp() + self.ttl_s, role)

    def issue_device(self, user: str) -> str:
        """A device cookie value for a browser that just signed in as `user`."""
        return self._devices.dumps({"u": user})

    def device_user(self, value: str | None) -> str | None:
        """The user a device cookie was issued to, or None."""
        if not value or len(value) > 512:
            return None
        try:
            data = self._devices.loads(value, max_age=DEVICE_TTL_S)
        except (BadSignature, ValueError, TypeError):
            return None
        user = data.get("u") if isinstance(data, dict) else None
        return user if isinstance(user, str) else None

    def device_cookie_header(self, value: str) -> str:
        return (f"{DEVICE_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/login; Max-Age={int(DEVICE_TTL_S)}"
                f"{'; Secure' if self.secure else ''}")

    def revoke(self, session: Session) -> None:
        """Logout: this session id is refused from now on (until it would have expired anyway)."""
        now = time.time()
        self._revoked = {sid: until for sid, until in self._revoked.items() if until > now}
        self._revoked[session.sid] = session.expires
        self._save_revoked()

    def cookie_header(self, value: str, max_age: int | None = None) -> str:
        """The Set-Cookie value: HttpOnly, SameSite=Strict, Path=/, Secure under TLS."""
        age = int(self.ttl_s) if max_age is None else max_age
        return (f"{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={age}"
                f"{'; Secure' if self.secure else ''}")

    def _fingerprint(self, user: str) -> str:
        return hashlib.sha256((self.stored_hash(user) or "").encode()).hexdigest()[:16]

    def _secret(self) -> bytes:
        """The signing key: `session.key` in the data directory (made on first use, 0600); without a data
        directory, a random key for this process only."""
        if self.data_dir is None:
            return secrets.token_bytes(32)
        path = self.data_dir / SECRET_FILE
        try:
            return bytes.fromhex(path.read_text().strip())
        except FileNotFoundError:
            pass
        except ValueError:
            raise UsageError(f"{path}: not a session key (delete it to make a new one)") from None
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_bytes(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another server made it first
            return bytes.fromhex(path.read_text().strip())
        with os.fdopen(fd, "w") as fh:
            fh.write(key.hex() + "\n")
        return key

    def _load_revoked(self) -> dict[str, float]:
        if self.data_dir is None:
            return {}
        try:
            data = json.loads((self.data_dir / REVOKED_FILE).read_text())
        except (OSError, ValueError):
            return {}
        now = time.time()
        return {sid: until for sid, until in data.items() if isinstance(until, (int, float)) and until > now} \
            if isinstance(data, dict) else {}

    def _save_revoked(self) -> None:
        if self.data_dir is None:
            return
        path = self.data_dir / REVOKED_FILE
        temp = path.with_suffix(".tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(self._revoked, fh)
            os.replace(temp, path)
        except OSError as error:
            log.warning("cannot save revoked sessions to %s: %s", path, error)


# ---- the login throttle ----

@dataclass
class Ticket:
    """One password check reserved by `LoginThrottle.reserve`, settled once its result is known."""

    account: str
    address: str
    at: float


class LoginThrottle:
    """Limits password checks, counted when reserved (before the slow scrypt check), so parallel requests
    cannot slip past it:

    - per (account, address): at most `per_pair` failed or pending checks a minute;
    - per address: at most `per_address` failed or pending checks a minute, whatever the account;
    - per account: at most `per_account` checks a minute from all addresses, of which the last `reserve`
      are kept for addresses with no failure in the window, so failures from some addresses cannot lock
      the real supervisor out from another;
    - a browser that signed in as that account before (its device cookie) has `per_device` checks a minute
      of its own, beside the account's: an attack from many addresses, which can use up even the
      reserve, cannot lock out a supervisor's usual browser.
    A success clears that pair's failures only. Keys are bounded (the oldest forgotten)."""

    WINDOW_S = 60.0
    MAX_KEYS = 10000

    def __init__(self, per_pair: int = 5, per_address: int = 30, per_account: int = 20, reserve: int = 5,
                 per_device: int = 5):
        self.per_pair, self.per_address, self.per_account, self.reserve = per_pair, per_address, per_account, reserve
        self.per_device = per_device
        self._device: OrderedDict[str, deque[float]] = OrderedDict()
        self._pair: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._address: OrderedDict[str, deque[float]] = OrderedDict()
        self._account: OrderedDict[str, deque[float]] = OrderedDict()

    def reserve_check(self, account: str, address: str, known_device: bool = False) -> Ticket | None:
        """A ticket for one password check now, or None when a limit is reached (answer 429).
        `known_device`: the request carries a valid device cookie of this account."""
        now = time.monotonic()
        if known_device:
            checks = self._recent(self._device, account, now)
            if len(checks) >= self.per_device:
                return None
            checks.append(now)
            return Ticket(account, address, now)
        pair = self._recent(self._pair, (account, address), now)
        by_address = self._recent(self._address, address, now)
        checks = self._recent(self._account, account, now)
        if len(pair) >= self.per_pair or len(by_address) >= self.per_address:
            return None
        limit = self.per_account if not by_address else self.per_account - self.reserve
        if len(checks) >= limit:
            return None
        pair.append(now)
        by_address.append(now)
        checks.append(now)
        return Ticket(account, address, now)

    def settle(self, ticket: Ticket, ok: bool) -> None:
        """After the check: a success clears that pair's failures (a typo before the right password); a failure
        stays counted. The address keeps its count: signing in to one account must not reopen the others."""
        if ok:
            self._pair.pop((ticket.account, ticket.address), None)

    def _recent(self, table: OrderedDict, key, now: float) -> deque[float]:
        times = table.get(key)
        if times is None:
            times = table[key] = deque()
            if len(table) > self.MAX_KEYS:
                table.popitem(last=False)
        else:
            table.move_to_end(key)
        while times and times[0] <= now - self.WINDOW_S:
            times.popleft()
        return times
