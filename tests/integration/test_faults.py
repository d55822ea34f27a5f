"""Faults the service must survive: a commit that fails, keys served by a JWKS endpoint."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import event
from sqlalchemy.orm import Session

from panels.app import create_app
from panels.panel.entities import Panel
from tests.conftest import Caller, Services, build_settings

Client = AsyncTestClient[Litestar]


@pytest.fixture
def failing_commit() -> Iterator[None]:
    """Make the commit of any transaction holding a panel named "explode" fail."""

    def mark(session: Session, _context: Any) -> None:
        if any(isinstance(o, Panel) and o.name == "explode" for o in session.new):
            session.info["explode"] = True

    def explode(session: Session) -> None:
        if session.info.pop("explode", False):
            raise RuntimeError("injected commit failure")

    event.listen(Session, "after_flush", mark)
    event.listen(Session, "before_commit", explode)
    yield
    event.remove(Session, "after_flush", mark)
    event.remove(Session, "before_commit", explode)


async def test_a_failed_commit_is_a_500_and_writes_nothing(
    client: Client, builder: Caller, failing_commit: None
) -> None:
    response = await client.post("/api/panels", json={"name": "explode"}, headers=builder.headers)
    assert response.status_code == 500
    body = response.json()
    assert body["statusCode"] == 500
    assert body["requestId"] == response.headers["x-request-id"]
    assert "location" not in response.headers
    assert "injected" not in response.text
    listed = await client.get("/api/panels", headers=builder.headers)
    assert listed.json() == []
    changes = await client.get("/api/changes/panels", headers=builder.headers)
    assert changes.json()["total"] == 0


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[tuple[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json", key
    server.shutdown()


async def test_asymmetric_tokens_verified_through_jwks(
    services: Services, jwks_server: tuple[str, Any]
) -> None:
    url, key = jwks_server
    settings = build_settings(
        services, JWT_JWKS_URL=url, JWT_ALGORITHMS="RS256", JWT_ISSUER="https://idp.test"
    )
    claims = {
        "sub": "u-rsa",
        "tenant_id": "t-jwks",
        "exp": int(time.time()) + 60,
        "iss": "https://idp.test",
        "roles": ["builder"],
    }
    good = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
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
