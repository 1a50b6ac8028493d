"""Console sign-ins: random session tokens, kept server-side under their SHA-256 only.

A session is created from a valid API key: it records who signed in (the key's principal), a CSRF token
for unsafe requests and when it expires (a fixed lifetime from signing in). The cookie carries the token;
this store holds only its hash, so a memory or core dump holds no working cookie. Sessions live in the
service's memory: a restart signs everyone out (they sign in again with their key).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from recorder.api.auth import Principal

TOKEN_BYTES = 32
MAX_SESSIONS = 10_000
"""Sessions kept at once; signing in beyond it drops the oldest (a flood of sign-ins cannot grow memory)."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Session:
    principal: Principal
    csrf: str
    created: float
    expires: float
    played: set[tuple[str, str]] = field(default_factory=set)
    """(recording, file) whose playback this session already put in the audit log."""

    def csrf_ok(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf.encode())


class SessionStore:
    def __init__(self, lifetime: float, clock: Callable[[], float] = time.time) -> None:
        self.lifetime = lifetime
        self.clock = clock
        self._sessions: dict[str, Session] = {}

    def create(self, principal: Principal) -> tuple[str, Session]:
        """A new session for `principal`: (the cookie's token, the session)."""
        self._sweep()
        now = self.clock()
        token = secrets.token_urlsafe(TOKEN_BYTES)
        session = Session(principal, secrets.token_urlsafe(TOKEN_BYTES), now, now + self.lifetime)
        while len(self._sessions) >= MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]
        self._sessions[token_hash(token)] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        """The live session of `token`; None for a missing, unknown or expired one (expired: dropped)."""
        if not token or len(token) > 200:
            return None
        key = token_hash(token)
        session = self._sessions.get(key)
        if session is None:
            return None
        if session.expires <= self.clock():
            del self._sessions[key]
            return None
        return session

    def end(self, token: str | None) -> Session | None:
        if not token or len(token) > 200:
            return None
        return self._sessions.pop(token_hash(token), None)

    def end_key(self, key_id: str) -> int:
        """End every session signed in with this key (it was revoked); returns how many."""
        gone = [k for k, s in self._sessions.items() if s.principal.key_id == key_id]
        for k in gone:
            del self._sessions[k]
        return len(gone)

    def _sweep(self) -> None:
        now = self.clock()
        for k in [k for k, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[k]

    def __len__(self) -> int:
        return len(self._sessions)
