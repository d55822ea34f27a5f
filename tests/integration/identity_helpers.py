"""Built-in users and logins for the identity tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import Caller

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class BuiltinUser:
    id: int
    email: str
    tenant: str


async def add_user(
    client: AsyncTestClient[Litestar],
    admin: Caller,
    *,
    email: str | None = None,
    password: str = PASSWORD,
    role: str = "user",
) -> BuiltinUser:
    email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
    response = await client.post(
        "/api/users",
        json={"email": email, "password": password, "role": role},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    return BuiltinUser(response.json()["id"], email.lower(), admin.tenant)


async def login(
    client: AsyncTestClient[Litestar],
    email: str,
    password: str = PASSWORD,
    tenant: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"email": email, "password": password}
    if tenant is not None:
        body["tenant"] = tenant
    response = await client.post("/api/auth/login", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
