"""Tokens verified through a JWKS endpoint: a real HTTP server started here, its hits counted."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from litestar import Litestar
from litestar.exceptions import NotAuthorizedException
from litestar.testing import AsyncTestClient

from panels.app import create_app
from panels.platform.auth import TokenVerifier
from panels.platform.jwks import KeySet
from panels.settings import Settings, SettingsError
from tests.conftest import Services, build_settings

Client = AsyncTestClient[Litestar]
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(private_key: Any, kid: str, **extra: str) -> dict[str, Any]:
    if isinstance(private_key, rsa.RSAPrivateKey):
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    else:
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "use": "sig", **extra}


@dataclass
class Provider:
    """An identity provider's key-set endpoint: what it serves, and how often it was asked."""

    url: str = ""
    keys: list[dict[str, Any]] = field(default_factory=list)
    hits: int = 0


@pytest.fixture
def provider() -> Iterator[Provider]:
    served = Provider(keys=[public_jwk(RSA_KEY, "k1", alg="RS256")])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.hits += 1
            body = json.dumps({"keys": served.keys}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    served.url = f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"
    yield served
    server.shutdown()


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "u-jwks", "tenant_id": "t-jwks", "exp": int(time.time()) + 60, **extra}


def build_settings_without_services(**environ: str) -> Settings:
    """Settings for a verifier alone: no database or Redis is reached."""
    fake = Services("postgresql://unused/db", "redis://unused", embedded=None)  # type: ignore[arg-type]
    return build_settings(fake, **environ)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_unknown_key_ids_fetch_the_key_set_once_per_interval(
    services: Services, provider: Provider
) -> None:
    settings = build_settings(services, JWT_JWKS_URL=provider.url)
    unknown = [
        jwt.encode(claims(), RSA_KEY, algorithm="RS256", headers={"kid": uuid.uuid4().hex})
        for _ in range(30)
    ]
    async with AsyncTestClient(app=create_app(settings), raise_server_exceptions=False) as client:
        concurrent = await asyncio.gather(
            *(client.get("/api/panels", headers=bearer(t)) for t in unknown[:15])
        )
        one_by_one = [await client.get("/api/panels", headers=bearer(t)) for t in unknown[15:]]
        assert {r.status_code for r in concurrent + one_by_one} == {401}
        good = jwt.encode(claims(), RSA_KEY, algorithm="RS256", headers={"kid": "k1"})
        assert (await client.get("/api/panels", headers=bearer(good))).status_code == 200
    assert provider.hits == 1


async def test_a_new_key_is_fetched_after_the_interval(provider: Provider) -> None:
    settings = build_settings_without_services(JWT_JWKS_URL=provider.url)
    key_set = KeySet(provider.url, settings.jwt.algorithms, refetch_seconds=0.2)
    verifier = TokenVerifier(settings.jwt, key_set)
    rotated = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(claims(), rotated, algorithm="ES256", headers={"kid": "k2"})
    with pytest.raises(NotAuthorizedException):
        await verifier.verify(token)
    provider.keys.append(public_jwk(rotated, "k2"))  # no `alg`: ES256 follows from the curve
    with pytest.raises(NotAuthorizedException):
        await verifier.verify(token)  # within the interval: refused without asking again
    assert provider.hits == 1
    await asyncio.sleep(0.25)
    assert (await verifier.verify(token)).user_id == "u-jwks"
    assert provider.hits == 2


async def test_the_key_decides_the_algorithm(services: Services, provider: Provider) -> None:
    public_pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = build_settings(services, JWT_JWKS_URL=provider.url)
    tokens = {
        # HS256 with the key's id: the service used to try the RSA key as an HMAC secret (500).
        "hs256 with kid": jwt.encode(claims(), "x" * 40, algorithm="HS256", headers={"kid": "k1"}),
        # The classic confusion: the public key, which anyone can fetch, as the HMAC secret.
        "public key as hmac secret": _hmac_signed(public_pem, kid="k1"),
        # A valid RSA signature, but with another algorithm than the key's `alg`.
        "rs512 on an rs256 key": jwt.encode(
            claims(), RSA_KEY, algorithm="RS512", headers={"kid": "k1"}
        ),
        "no kid": jwt.encode(claims(), RSA_KEY, algorithm="RS256"),
        "kid not a string": _hmac_signed(b"any", kid=7),
    }
    async with AsyncTestClient(app=create_app(settings), raise_server_exceptions=False) as client:
        for name, token in tokens.items():
            response = await client.get("/api/panels", headers=bearer(token))
            assert response.status_code == 401, name
            assert response.json()["statusCode"] == 401


def _hmac_signed(secret: bytes, kid: Any) -> str:
    """An HS256 token built by hand: PyJWT refuses to sign some of these headers."""

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = b64(json.dumps(claims()).encode())
    signature = b64(hmac.new(secret, header + b"." + payload, hashlib.sha256).digest())
    return (header + b"." + payload + b"." + signature).decode()


async def test_symmetric_keys_in_the_key_set_are_never_used(provider: Provider) -> None:
    provider.keys = [{"kty": "oct", "kid": "s1", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}]
    settings = build_settings_without_services(JWT_JWKS_URL=provider.url)
    verifier = TokenVerifier(settings.jwt)
    token = jwt.encode(
        claims(), b"secret-secret-secret-secret", algorithm="HS256", headers={"kid": "s1"}
    )
    with pytest.raises(NotAuthorizedException):
        await verifier.verify(token)


def test_jwks_settings_refuse_hmac_algorithms() -> None:
    algorithms = build_settings_without_services(JWT_JWKS_URL="https://idp.test/jwks").jwt
    assert algorithms.algorithms
    assert not any(a.startswith("HS") for a in algorithms.algorithms)
    with pytest.raises(SettingsError, match=r"^JWT_ALGORITHMS: HS256 cannot be used"):
        build_settings_without_services(
            JWT_JWKS_URL="https://idp.test/jwks", JWT_ALGORITHMS="RS256,HS256"
        )
    assert build_settings_without_services().jwt.algorithms == ("HS256",)


async def test_asymmetric_tokens_verified_through_jwks(
    services: Services, provider: Provider
) -> None:
    settings = build_settings(
        services, JWT_JWKS_URL=provider.url, JWT_ALGORITHMS="RS256", JWT_ISSUER="https://idp.test"
    )
    claims = {
        "sub": "u-rsa",
        "tenant_id": "t-jwks",
        "exp": int(time.time()) + 60,
        "iss": "https://idp.test",
        "roles": ["builder"],
    }
    good = jwt.encode(claims, RSA_KEY, algorithm="RS256", headers={"kid": "k1"})
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": "k1"})
    hs256 = jwt.encode(claims, "x" * 40, algorithm="HS256")
    async with AsyncTestClient(app=create_app(settings), raise_server_exceptions=False) as client:
        created = await client.post(
            "/api/panels", json={}, headers={"Authorization": f"Bearer {good}"}
        )
        assert created.status_code == 201
        assert created.json()["userId"] == "u-rsa"
        for token in (forged, hs256):
            response = await client.get("/api/panels", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401
