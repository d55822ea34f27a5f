"""Brute-force protection of `POST /api/auth/login`: attempts counted in Redis per email and per
client address within a window; past the limit, 429 until the window ends.

Each attempt is counted before its password is checked, in one atomic script over both keys
(`_COUNT`): the check is slow (Argon2), and counting only afterwards let a burst of parallel
guesses all pass a check that read the counts before any of them was counted. An attempt that
turns out right gives back its own count (`_REFUND`) and never clears the others': the email's
counter is shared by every tenant with a user of that email, so a right password in one of them
must not wipe out someone's guesses at another.

It fails closed: when Redis cannot count, logins are refused (429) rather than unlimited. Every
other route fails open on Redis (`platform.ratelimit`); this one guards passwords.
"""

from __future__ import annotations

import hashlib

from litestar.exceptions import TooManyRequestsException
from redis.asyncio import Redis

from panels.platform.cache import CircuitBreaker
from panels.settings import IdentitySettings

# KEYS: the email's and the address's counters; ARGV[1]: the window in seconds. INCR both, and
# give a counter without expiry (a new window) the window's; returns both counts.
_COUNT = """
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('INCR', key)
  if redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, ARGV[1]) end
end
return counts
"""
# Gives back one count on each key still there (one whose window ended stays gone, rather than
# coming back at -1 with no expiry).
_REFUND = """
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then redis.call('DECR', key) end
end
return 0
"""


class LoginAttempt:
    """One counted attempt: `failed()` or `succeeded()` once its password is checked."""

    def __init__(self, guard: LoginGuard, keys: list[str], email_count: int) -> None:
        self._guard = guard
        self._keys = keys
        self._email_count = email_count

    def failed(self) -> bool:
        """True when this failure is the one that locked the email (it reached the limit)."""
        return self._email_count == self._guard.settings.login_failures_per_email

    async def succeeded(self) -> None:
        await self._guard.refund(self._keys)


class LoginGuard:
    def __init__(self, redis: Redis, breaker: CircuitBreaker, settings: IdentitySettings) -> None:
        self._redis = redis
        self._breaker = breaker
        self.settings = settings

    def _keys(self, email: str, address: str) -> list[str]:
        # The email is hashed: Redis keys are no place for addresses people typed.
        hashed = hashlib.sha256(email.encode()).hexdigest()[:32]
        return [f"panels:login:email:{hashed}", f"panels:login:address:{address}"]

    def _refused(self) -> TooManyRequestsException:
        return TooManyRequestsException(
            "Too many failed logins; try again later",
            headers={"Retry-After": str(self.settings.login_window_seconds)},
        )

    async def attempt(self, email: str, address: str) -> LoginAttempt:
        """Count an attempt; 429 when either count is past its limit, or when Redis cannot
        count."""
        keys = self._keys(email, address)
        try:
            counts = await self._redis.eval(_COUNT, 2, *keys, self.settings.login_window_seconds)
        except Exception as exc:
            self._breaker.trip(exc)
            raise self._refused() from None
        email_count, address_count = (int(c) for c in counts)
        s = self.settings
        if email_count > s.login_failures_per_email or (
            address_count > s.login_failures_per_address
        ):
            raise self._refused()
        return LoginAttempt(self, keys, email_count)

    async def refund(self, keys: list[str]) -> None:
        try:
            await self._redis.eval(_REFUND, len(keys), *keys)
        except Exception as exc:
            self._breaker.trip(exc)
