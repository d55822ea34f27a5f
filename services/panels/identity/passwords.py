"""Argon2id password hashes, computed off the event loop.

A login for an email with no user verifies the password against a dummy hash, so an unknown
email takes as long as a wrong password.
"""

from __future__ import annotations

from functools import cache

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024
_HASHER = PasswordHasher()  # Argon2id, RFC 9106's low-memory profile


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(_HASHER.hash, password)


async def password_matches(password_hash: str, password: str) -> bool:
    return await anyio.to_thread.run_sync(_matches, password_hash, password)


async def spend_as_long_as_a_check(password: str) -> None:
    await anyio.to_thread.run_sync(_matches, _dummy_hash(), password)


def _matches(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    return _HASHER.hash("no user has this password, it only costs the same time")
