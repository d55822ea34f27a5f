"""Argon2id password hashes, computed off the event loop.

A login for an email with no user verifies the password against a dummy hash, so an unknown
email takes as long as a wrong password.

Each hash takes 64 MiB for its duration: at most `MAX_CONCURRENT_HASHES` run at once per worker
(process), the others wait their turn, so a burst of logins cannot take the worker's memory.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from functools import cache
from typing import TypeVar

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024
MAX_CONCURRENT_HASHES = 4
T = TypeVar("T")
_HASHER = PasswordHasher()  # Argon2id, RFC 9106's low-memory profile: 64 MiB per hash
# One semaphore per event loop (a worker has one; tests open several in turn).
_SLOTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


async def hash_password(password: str) -> str:
    return await _in_a_slot(_HASHER.hash, password)


async def password_matches(password_hash: str, password: str) -> bool:
    return await _in_a_slot(_matches, password_hash, password)


async def spend_as_long_as_a_check(password: str) -> None:
    await _in_a_slot(_matches, _dummy_hash(), password)


async def _in_a_slot(work: Callable[..., T], *args: str) -> T:
    loop = asyncio.get_running_loop()
    slots = _SLOTS.get(loop)
    if slots is None:
        slots = _SLOTS[loop] = asyncio.Semaphore(MAX_CONCURRENT_HASHES)
    async with slots:
        return await anyio.to_thread.run_sync(work, *args)


def _matches(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    return _HASHER.hash("no user has this password, it only costs the same time")
