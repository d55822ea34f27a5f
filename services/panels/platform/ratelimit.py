"""Per-user rate limiting kept in Redis, failing open when Redis is away."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar import Request
from litestar.middleware.rate_limit import get_remote_address
from litestar.stores.base import Store

from panels.platform.auth import Principal
from panels.platform.cache import CircuitBreaker


def rate_limit_identity(request: Request[Any, Any, Any]) -> str:
    """One budget per user of a tenant (authentication runs before this)."""
    principal = request.scope.get("user")
    if isinstance(principal, Principal):
        return f"{principal.tenant_id}:{principal.user_id}"
    return f"ip:{get_remote_address(request)}"


class FailOpenStore(Store):
    """A store whose errors never fail a request: the limit is simply not applied."""

    def __init__(self, inner: Store, breaker: CircuitBreaker) -> None:
        self._inner = inner
        self._breaker = breaker

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        if self._breaker.is_open:
            return None
        try:
            return await self._inner.get(key, renew_for)
        except Exception as exc:  # unlimited rather than failed while Redis is away
            self._breaker.trip(exc)
            return None

    async def set(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        if self._breaker.is_open:
            return
        try:
            await self._inner.set(key, value, expires_in)
        except Exception as exc:  # unlimited rather than failed while Redis is away
            self._breaker.trip(exc)

    async def delete(self, key: str) -> None:
        await self._inner.delete(key)

    async def delete_all(self) -> None:
        await self._inner.delete_all()

    async def exists(self, key: str) -> bool:
        return await self._inner.exists(key)

    async def expires_in(self, key: str) -> int | None:
        return await self._inner.expires_in(key)
