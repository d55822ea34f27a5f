"""Brute-force protection of `POST /api/auth/login`: failed attempts counted in Redis per email
and per client address within a window; past the limit, 429 until the window ends.

It fails closed: when Redis cannot count, logins are refused (429) rather than unlimited. Every
other route fails open on Redis (`platform.ratelimit`); this one guards passwords.
"""

from __future__ import annotations

import hashlib

from litestar.exceptions import TooManyRequestsException
from redis.asyncio import Redis

from panels.platform.cache import CircuitBreaker
from panels.settings import IdentitySettings


class LoginGuard:
    def __init__(self, redis: Redis, breaker: CircuitBreaker, settings: IdentitySettings) -> None:
        self._redis = redis
        self._breaker = breaker
        self._settings = settings

    def _keys(self, email: str, address: str) -> tuple[str, str]:
        # The email is hashed: Redis keys are no place for addresses people typed.
        hashed = hashlib.sha256(email.encode()).hexdigest()[:32]
        return f"panels:login:email:{hashed}", f"panels:login:address:{address}"

    def _refused(self) -> TooManyRequestsException:
        return TooManyRequestsException(
            "Too many failed logins; try again later",
            headers={"Retry-After": str(self._settings.login_window_seconds)},
        )

    async def check(self, email: str, address: str) -> None:
        """429 when either count is at its limit, or when Redis cannot tell."""
        by_email, by_address = self._keys(email, address)
        try:
            counts = await self._redis.mget(by_email, by_address)
        except Exception as exc:
            self._breaker.trip(exc)
            raise self._refused() from None
        email_count, address_count = (int(c or 0) for c in counts)
        s = self._settings
        if email_count >= s.login_failures_per_email or (
            address_count >= s.login_failures_per_address
        ):
            raise self._refused()

    async def failed(self, email: str, address: str) -> bool:
        """Count a failure; True when this one locked the email (it reached the limit)."""
        window = self._settings.login_window_seconds
        by_email, by_address = self._keys(email, address)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(by_email, 0, ex=window, nx=True)
                pipe.incr(by_email)
                pipe.set(by_address, 0, ex=window, nx=True)
                pipe.incr(by_address)
                results = await pipe.execute()
        except Exception as exc:
            self._breaker.trip(exc)
            return False
        return int(results[1]) == self._settings.login_failures_per_email

    async def succeeded(self, email: str) -> None:
        by_email, _ = self._keys(email, "")
        try:
            await self._redis.delete(by_email)
        except Exception as exc:
            self._breaker.trip(exc)
