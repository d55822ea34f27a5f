"""The identity provider's signing keys (JWKS), fetched and refreshed with bounded effort."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from http.client import HTTPException
from typing import Any

import anyio.to_thread
import jwt
import structlog
from litestar.exceptions import NotAuthorizedException

log = structlog.get_logger("panels.auth")
JWKS_REFETCH_SECONDS = 60.0
"""An unknown `kid` refetches the key set at most this often, whoever sends it."""
JWKS_MAX_AGE_SECONDS = 300.0
"""Known keys are refreshed this often, so that a key the provider dropped stops working."""
_JWKS_MAX_BYTES = 1024 * 1024
_JWKS_TIMEOUT_SECONDS = 5.0
# Building a key from the provider's document can raise more than PyJWTError.
_KEY_ERRORS = (jwt.PyJWTError, ValueError, TypeError)


class KeyNotLoaded(Exception):
    """Verifying the token needs a key-set fetch (I/O) that the caller cannot wait for."""


class KeySet:
    """The identity provider's signing keys, fetched from `JWT_JWKS_URL`.

    The algorithm of a token is the one its key declares (`alg`, else implied by `kty`/`crv`),
    never the token header's; symmetric (`oct`/HS*) keys are refused. An unknown `kid` triggers
    at most one fetch per `refetch_seconds`, shared by every request waiting on it, so tokens
    with made-up key ids cannot make the service hammer the provider.
    """

    def __init__(
        self,
        url: str,
        allowed_algorithms: tuple[str, ...],
        refetch_seconds: float = JWKS_REFETCH_SECONDS,
        max_age_seconds: float = JWKS_MAX_AGE_SECONDS,
    ) -> None:
        self._url = url
        self._allowed = frozenset(allowed_algorithms)
        self._refetch_seconds = refetch_seconds
        self._max_age_seconds = max_age_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -float("inf")
        self._lock = asyncio.Lock()

    def known_key(self, kid: str) -> jwt.PyJWK:
        """The key of `kid` without I/O; `KeyNotLoaded` when only a fetch could tell."""
        key = self._keys.get(kid)
        age = time.monotonic() - self._fetched_at
        if key is not None and age < self._max_age_seconds:
            return key
        if key is None and age < self._refetch_seconds:
            raise NotAuthorizedException("Invalid token: unknown signing key")
        raise KeyNotLoaded

    async def key(self, kid: str) -> jwt.PyJWK:
        try:
            return self.known_key(kid)
        except KeyNotLoaded:
            pass
        async with self._lock:
            try:  # another request may have fetched while this one waited
                return self.known_key(kid)
            except KeyNotLoaded:
                await self._refresh()
            key = self._keys.get(kid)
            if key is None:
                raise NotAuthorizedException("Invalid token: unknown signing key")
            return key

    async def _refresh(self) -> None:
        # A failure counts as a fetch too, so an unreachable provider is not retried per
        # request; the keys already known keep working until the next attempt.
        try:
            document = await anyio.to_thread.run_sync(self._download)
            self._keys = self._usable_keys(document)
        except (OSError, ValueError, HTTPException, jwt.PyJWTError) as exc:
            log.warning("jwks fetch failed", url=self._url, error=str(exc))
        finally:
            self._fetched_at = time.monotonic()

    def _download(self) -> Any:
        # The URL is configuration (checked to be http(s) by the settings), not client input.
        request = urllib.request.Request(self._url, headers={"Accept": "application/json"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=_JWKS_TIMEOUT_SECONDS) as response:  # noqa: S310
            raw = response.read(_JWKS_MAX_BYTES + 1)
        if len(raw) > _JWKS_MAX_BYTES:
            raise ValueError("key set larger than 1 MiB")
        return json.loads(raw)

    def _usable_keys(self, document: Any) -> dict[str, jwt.PyJWK]:
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise ValueError("no `keys` array")
        keys: dict[str, jwt.PyJWK] = {}
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
                continue
            if entry.get("use", "sig") != "sig" or entry.get("kty") == "oct":
                continue
            try:
                key = jwt.PyJWK(entry)
            except _KEY_ERRORS:
                continue  # a key type this service cannot use; the others still work
            if key.algorithm_name in self._allowed:
                keys[entry["kid"]] = key
        return keys
