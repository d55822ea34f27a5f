from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
import pytest
from litestar.exceptions import NotAuthorizedException

from panels.platform.auth import TokenVerifier, mint_token
from panels.settings import Settings

SECRET = "unit-secret-that-is-long-enough-for-hs256-0123"


def verifier(**environ: str) -> tuple[TokenVerifier, Settings]:
    s = Settings.from_env(
        {"PANELS_DATA_DIR": "/tmp/panels-unit-auth", "JWT_SECRET": SECRET, **environ}
    )
    return TokenVerifier(s.jwt), s


def verify(v: TokenVerifier, claims: dict[str, Any]) -> Any:
    return asyncio.run(v.verify(jwt.encode(claims, SECRET, algorithm="HS256")))


def now_claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "u1", "tenant_id": "acme", "exp": int(time.time()) + 60, **extra}


def test_default_claims() -> None:
    v, _ = verifier()
    p = verify(v, now_claims(email="A@Example.com", roles=["user", "builder"]))
    assert (p.user_id, p.tenant_id, p.role, p.email) == ("u1", "acme", "builder", "a@example.com")
    assert verify(v, now_claims()).role == "user"
    assert verify(v, now_claims(roles="admin")).role == "admin"
    assert verify(v, now_claims(roles=["superuser"])).role == "user"


def test_numeric_tenant_claims_become_strings() -> None:
    v, _ = verifier()
    assert verify(v, now_claims(tenant_id=7)).tenant_id == "7"
    with pytest.raises(NotAuthorizedException):
        verify(v, now_claims(sub=42))  # RFC 7519: `sub` is a string


def test_stytch_preset() -> None:
    v, s = verifier(JWT_CLAIMS="stytch")
    claims = {
        "sub": "member-1",
        "exp": int(time.time()) + 60,
        "https://stytch.com/organization": {"slug": "acme-health", "organization_id": "org-1"},
        "https://stytch.com/session": {"roles": ["stytch_member", "Panels Builder"]},
    }
    p = verify(v, claims)
    assert (p.tenant_id, p.role) == ("acme-health", "builder")
    claims["https://stytch.com/session"] = {"roles": ["Org Admin"]}
    assert verify(v, claims).role == "admin"
    minted = asyncio.run(
        v.verify(mint_token(s.jwt, tenant="acme-health", user="m", role="builder"))
    )
    assert (minted.tenant_id, minted.role) == ("acme-health", "builder")


def test_dotted_custom_claims() -> None:
    v, s = verifier(JWT_TENANT_CLAIM="org.slug", JWT_ROLES_CLAIM="app.roles")
    p = verify(
        v,
        {
            "sub": "u",
            "exp": int(time.time()) + 60,
            "org": {"slug": "o1"},
            "app": {"roles": ["admin"]},
        },
    )
    assert (p.tenant_id, p.role) == ("o1", "admin")
    minted = asyncio.run(v.verify(mint_token(s.jwt, tenant="o2", user="u", role="admin")))
    assert (minted.tenant_id, minted.role) == ("o2", "admin")


def test_issuer_audience_and_exp_rules() -> None:
    v, _ = verifier(JWT_ISSUER="https://idp.example", JWT_AUDIENCE="panels")
    good = now_claims(iss="https://idp.example", aud="panels")
    assert verify(v, good).user_id == "u1"
    for bad in (
        now_claims(iss="https://evil", aud="panels"),
        now_claims(iss="https://idp.example", aud="x"),
        now_claims(),
    ):
        with pytest.raises(NotAuthorizedException):
            verify(v, bad)
    relaxed, _ = verifier(JWT_REQUIRE_EXP="false")
    assert verify(relaxed, {"sub": "u", "tenant_id": "t"}).tenant_id == "t"
    strict, _ = verifier()
    with pytest.raises(NotAuthorizedException):
        verify(strict, {"sub": "u", "tenant_id": "t"})


def test_leeway_accepts_slightly_expired_tokens() -> None:
    v, _ = verifier()
    assert verify(v, now_claims(exp=int(time.time()) - 10)).user_id == "u1"
    with pytest.raises(NotAuthorizedException, match="expired"):
        verify(v, now_claims(exp=int(time.time()) - 120))
