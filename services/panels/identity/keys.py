"""The secrets this service hands out, and what it keeps of them.

Refresh tokens (`rt_…`) and API keys (`pk_…`) are 256 random bits; only their SHA-256 is stored
and looked up. A hash of a high-entropy secret needs no salt or slow hash: guessing the secret is
as hard as guessing the 256 bits, and the lookup by hash reveals nothing about any stored key.
Passwords, which people choose, are hashed with Argon2id instead (`passwords`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from panels.platform.auth import API_KEY_PREFIX
from panels.settings import Settings

REFRESH_TOKEN_PREFIX = "rt_"
SHOWN_PREFIX_CHARS = 11
"""How much of an API key its listing shows (`pk_` and 8 characters): enough to tell keys apart."""
_SHAPE = re.compile(r"(rt|pk)_[A-Za-z0-9_-]{43}", re.ASCII)


__all__ = ["API_KEY_PREFIX", "REFRESH_TOKEN_PREFIX", "access_token_key", "digest", "new_secret"]


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def well_formed(secret: str, prefix: str) -> bool:
    """Only a secret of the shape this service issues is looked up at all."""
    return secret.startswith(prefix) and _SHAPE.fullmatch(secret) is not None


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def same_digest(stored: bytes, presented: bytes) -> bool:
    return hmac.compare_digest(stored, presented)


def access_token_key(settings: Settings) -> bytes:
    """The key of the access tokens this service signs: derived from the at-rest secret key
    (or the JWT secret when there is none), never the external issuers' key itself."""
    root = settings.secret_keys[0] if settings.secret_keys else settings.jwt.secret
    return hmac.new(root.encode(), b"panels built-in access tokens", hashlib.sha256).digest()
