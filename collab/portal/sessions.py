"""Signed-in sessions, kept by the server, and the sign-in rate limit.

The cookie (signed, HttpOnly, SameSite=Strict) carries only a random session id; the session itself
lives here, so signing out, the idle time-out and a revoked password end it on the server, and a
copied cookie is worth nothing afterwards. One portal process holds its sessions: a restart signs
every charity out, which is safe.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import anyio

# Several people at one charity may be signed in at once; beyond this, the longest idle is signed out.
MAX_PER_CHARITY = 5


@dataclass
class Session:
    sid: str
    charity_id: str
    password_issued_at: dt.datetime
    csrf: str
    last_seen: float
    checks: dict[str, Path] = field(default_factory=dict)
    # Held while a check of this session runs: a second (a double click, another tab) waits, then replaces the first.
    # Run together, each deleted the other's file while it was being checked, and all but the last were 500 pages.
    checking: anyio.Lock = field(default_factory=anyio.Lock)


class SessionTable:
    def __init__(self, idle_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, charity_id: str, password_issued_at: dt.datetime) -> tuple[Session, list[Session]]:
        """A new session, and the charity's oldest ones it ends to keep at most ``MAX_PER_CHARITY``."""
        session = Session(
            sid=secrets.token_urlsafe(32),
            charity_id=charity_id,
            password_issued_at=password_issued_at,
            csrf=secrets.token_urlsafe(32),
            last_seen=time.monotonic(),
        )
        with self._lock:
            self._sessions[session.sid] = session
            own = sorted((s for s in self._sessions.values() if s.charity_id == charity_id), key=lambda s: s.last_seen)
            ended = own[: max(0, len(own) - MAX_PER_CHARITY)]
            for old in ended:
                del self._sessions[old.sid]
        return session, ended

    def touch(self, sid: str) -> Session | None:
        """The live session with this id, its idle clock restarted; None if unknown or idle too long."""
        with self._lock:
            session = self._sessions.get(sid)
            if session is None or time.monotonic() - session.last_seen > self.idle_seconds:
                return None
            session.last_seen = time.monotonic()
            return session

    def end(self, sid: str) -> Session | None:
        with self._lock:
            return self._sessions.pop(sid, None)

    def idle(self) -> list[Session]:
        """Remove and return the sessions idle longer than the time-out (their files are to be deleted)."""
        now = time.monotonic()
        with self._lock:
            gone = [s for s in self._sessions.values() if now - s.last_seen > self.idle_seconds]
            for session in gone:
                del self._sessions[session.sid]
        return gone

    def all(self) -> list[Session]:
        with self._lock:
            return list(self._sessions.values())


class SignInLimiter:
    """At most ``attempts`` failed sign-ins per charity from one client address in ``window_seconds``; more from an
    address across charities (``per_address``: guessing across charities; several charities may share an office's
    address) and for a charity from every address (``per_charity``: guessing one password from many addresses).

    Counting a charity's failures from every address together let anyone who knew a charity's id lock it out for
    good, with five wrong passwords every quarter of an hour: the legitimate user, from their own address, is
    refused only when many addresses guess at once."""

    def __init__(
        self, attempts: int = 5, window_seconds: float = 900.0, per_address: int = 30, per_charity: int = 100
    ) -> None:
        self.attempts = attempts
        self.per_address = per_address
        self.per_charity = per_charity
        self.window_seconds = window_seconds
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def keys(client: str, charity_id: str | None) -> tuple[str, ...]:
        """What a sign-in from ``client`` as ``charity_id`` (None if not a charity id at all) counts against."""
        address = f"ip:{client}"
        if charity_id is None:
            return (address,)
        return (address, SignInLimiter.pair_key(client, charity_id), f"charity:{charity_id}")

    @staticmethod
    def pair_key(client: str, charity_id: str) -> str:
        """The key of one address's failures for one charity: what a good password from there resets."""
        return f"pair:{charity_id}@{client}"

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and now - failures[0] > self.window_seconds:
            failures.popleft()
        return failures

    def blocked(self, *keys: str) -> bool:
        with self._lock:
            return self._blocked(keys, time.monotonic())

    def _blocked(self, keys: tuple[str, ...], now: float) -> bool:
        return any(len(self._recent(key, now)) >= self._limit(key) for key in keys)

    def _limit(self, key: str) -> int:
        kind = key.split(":", 1)[0]
        return {"ip": self.per_address, "pair": self.attempts, "charity": self.per_charity}[kind]

    def attempt(self, *keys: str) -> float | None:
        """Count a sign-in against ``keys`` as failed before its password is checked, unless they are blocked
        already (None); the count is taken back if the password is right (``withdraw``). Sign-ins made at once are
        then all counted, though their passwords are checked side by side: counted after each check, every one of a
        burst passed the limit before the first failure was recorded."""
        now = time.monotonic()
        with self._lock:
            if self._blocked(keys, now):
                return None
            for key in keys:
                self._recent(key, now).append(now)
            # Keys whose failures have all aged out are forgotten, so made-up ids cannot grow the table.
            for stale in [key for key, failures in self._failures.items() if not self._recent(key, now)]:
                del self._failures[stale]
            return now

    def withdraw(self, counted: float, *keys: str) -> None:
        """Take back the failure ``attempt`` counted at ``counted``: the password was right."""
        with self._lock:
            for key in keys:
                if counted in (failures := self._failures.get(key, deque())):
                    failures.remove(counted)

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
