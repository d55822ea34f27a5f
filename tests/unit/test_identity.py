"""Identity's parsers of client text, and its access tokens, without a server."""

from __future__ import annotations

import asyncio
import contextlib
import time

import jwt
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar.datastructures import Headers
from litestar.exceptions import NotAuthorizedException

from panels.identity.keys import (
    API_KEY_PREFIX,
    REFRESH_TOKEN_PREFIX,
    access_token_key,
    new_secret,
    well_formed,
)
from panels.identity.schemas import ApiKeyCreate, LoginRequest, RefreshRequest, UserCreate
from panels.platform.auth import TokenVerifier, mint_builtin_token, presented_credential
from panels.settings import Settings, SettingsError

SECRET = "unit-secret-that-is-long-enough-for-hs256-0123"


def settings(**environ: str) -> Settings:
    return Settings.from_env(
        {"PANELS_DATA_DIR": "/tmp/panels-unit-identity", "JWT_SECRET": SECRET, **environ}
    )


@given(st.text(max_size=80))
def test_only_issued_shapes_are_well_formed(text: str) -> None:
    for prefix in (API_KEY_PREFIX, REFRESH_TOKEN_PREFIX):
        if well_formed(text, prefix):
            assert text.startswith(prefix)
            assert len(text) == 46
            assert text.isascii()


def test_issued_secrets_are_well_formed_and_distinct() -> None:
    keys = {new_secret(API_KEY_PREFIX) for _ in range(100)}
    assert len(keys) == 100
    assert all(well_formed(k, API_KEY_PREFIX) for k in keys)
    assert not any(well_formed(k, REFRESH_TOKEN_PREFIX) for k in keys)


@given(st.dictionaries(st.sampled_from(["authorization", "x-api-key"]), st.text(max_size=9000)))
def test_any_credential_header_is_a_credential_or_a_401(headers: dict[str, str]) -> None:
    try:
        token = presented_credential(Headers(headers))
    except NotAuthorizedException:
        return
    assert 0 < len(token) <= 8192


@pytest.mark.parametrize("shape", [LoginRequest, RefreshRequest, UserCreate, ApiKeyCreate])
@given(
    body=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=40),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
        ),
        max_leaves=12,
    )
)
def test_bodies_are_parsed_or_refused_cleanly(shape: type, body: object) -> None:
    raw = msgspec.json.encode(body)
    with contextlib.suppress(msgspec.ValidationError, msgspec.DecodeError):
        msgspec.json.decode(raw, type=shape)


def test_built_in_tokens_verify_with_the_service_key_only() -> None:
    s = settings()
    key = access_token_key(s)
    token = mint_builtin_token(
        s.jwt,
        key,
        tenant="acme",
        user="7",
        email="a@x.io",
        role="builder",
        session_id="f1",
        ttl_seconds=60,
    )
    principal = asyncio.run(TokenVerifier(s.jwt, builtin_key=key).verify(token))
    assert (principal.user_id, principal.role, principal.auth_method, principal.session_id) == (
        "7",
        "builder",
        "builtin",
        "f1",
    )
    # Signed with the external secret instead: refused, even with the same header and claims.
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": "panels"})
    with pytest.raises(NotAuthorizedException):
        asyncio.run(TokenVerifier(s.jwt, builtin_key=key).verify(forged))
    # Without built-in login (AUTH_MODE=external) the service's own tokens are not accepted.
    with pytest.raises(NotAuthorizedException):
        asyncio.run(TokenVerifier(s.jwt).verify(token))


def test_auth_mode_external_or_builtin_refuses_the_other_issuer() -> None:
    s = settings(AUTH_MODE="builtin")
    external = jwt.encode(
        {"sub": "u", "tenant_id": "t", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256"
    )
    only_builtin = TokenVerifier(
        s.jwt, builtin_key=access_token_key(s), accept_external=s.identity.accepts_external
    )
    with pytest.raises(NotAuthorizedException):
        asyncio.run(only_builtin.verify(external))
    assert settings().identity.mode == "both"
    assert settings(AUTH_MODE="external").identity.accepts_builtin is False


@pytest.mark.parametrize(
    ("raw", "seconds"), [("900", 900), ("15m", 900), ("2h", 7200), ("1d", 86_400)]
)
def test_token_lifetimes(raw: str, seconds: int) -> None:
    assert settings(ACCESS_TOKEN_TTL=raw).identity.access_token_ttl_seconds == seconds
    assert settings(REFRESH_TOKEN_TTL="30d").identity.refresh_token_ttl_seconds == 2_592_000


@pytest.mark.parametrize("raw", ["15x", "-5", "m", "1.5h", "٣m", "0", "30d"])
def test_bad_token_lifetimes_name_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match="ACCESS_TOKEN_TTL"):
        settings(ACCESS_TOKEN_TTL=raw)
