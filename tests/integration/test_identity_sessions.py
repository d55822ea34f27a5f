"""Built-in users and sessions: login, refresh rotation with reuse detection, logout, `me`."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from panels.platform.db import owner_engine
from tests.conftest import Caller, Services
from tests.integration.identity_helpers import PASSWORD, BuiltinUser, add_user, login

Client = AsyncTestClient[Litestar]


def without_request_id(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "requestId"}


async def test_login_gives_a_token_that_works_and_says_who_it_is(
    client: Client, admin: Caller
) -> None:
    user = await add_user(client, admin, role="builder")
    pair = await login(client, user.email, tenant=admin.tenant)
    assert pair["tokenType"] == "Bearer"
    assert pair["expiresIn"] == 900
    assert pair["refreshToken"].startswith("rt_")
    headers = {"Authorization": f"Bearer {pair['accessToken']}"}
    me = await client.get("/api/auth/me", headers=headers)
    assert me.status_code == 200, me.text
    assert me.json() == {
        "userId": str(user.id),
        "email": user.email,
        "tenantId": admin.tenant,
        "role": "builder",
        "authMethod": "builtin",
        "apiKeyId": None,
    }
    created = await client.post("/api/panels", json={"name": "Mine"}, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["userId"] == str(user.id)


async def test_refusals_look_the_same_whatever_was_wrong(client: Client, admin: Caller) -> None:
    user = await add_user(client, admin)
    attempts = [
        {"email": f"nobody-{uuid.uuid4().hex}@example.com", "password": PASSWORD},
        {"email": user.email, "password": PASSWORD + "x"},
        {"email": user.email, "password": PASSWORD, "tenant": f"t-{uuid.uuid4().hex[:12]}"},
    ]
    bodies = []
    for body in attempts:
        response = await client.post("/api/auth/login", json=body)
        assert response.status_code == 401, response.text
        bodies.append(without_request_id(response.json()))
    assert bodies[0] == bodies[1] == bodies[2]
    assert bodies[0]["message"] == "Invalid email or password"


async def test_email_matches_whatever_its_case(client: Client, admin: Caller) -> None:
    user = await add_user(client, admin)
    await login(client, user.email.upper())


async def test_without_a_tenant_the_first_tenant_by_name_that_matches_logs_in(
    client: Client, make_caller: Any
) -> None:
    email = f"twice-{uuid.uuid4().hex[:8]}@example.com"
    stem = uuid.uuid4().hex[:8]
    first = make_caller("ada", "admin", tenant_id=f"a-{stem}")
    second = make_caller("ada", "admin", tenant_id=f"b-{stem}")
    await add_user(client, second, email=email, password=PASSWORD)
    await add_user(client, first, email=email, password="another password 42")
    assert await me_of(client, await login(client, email, PASSWORD)) == f"b-{stem}"
    pair = await login(client, email, "another password 42")
    assert await me_of(client, pair) == f"a-{stem}"
    chosen = await login(client, email, PASSWORD, tenant=f"b-{stem}")
    assert await me_of(client, chosen) == f"b-{stem}"


async def me_of(client: Client, pair: dict[str, Any]) -> str:
    me = await client.get("/api/auth/me", headers=bearer(pair))
    assert me.status_code == 200, me.text
    return str(me.json()["tenantId"])


def bearer(pair: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {pair['accessToken']}"}


async def refresh(client: Client, token: str) -> Any:
    return await client.post("/api/auth/refresh", json={"refreshToken": token})


async def test_refresh_rotates_and_a_reused_token_revokes_the_family(
    client: Client, admin: Caller
) -> None:
    user = await add_user(client, admin)
    first = await login(client, user.email)
    rotated = await refresh(client, first["refreshToken"])
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refreshToken"] != first["refreshToken"]
    assert (await client.get("/api/auth/me", headers=bearer(second))).status_code == 200

    reused = await refresh(client, first["refreshToken"])  # someone kept a copy
    assert reused.status_code == 401, reused.text
    # The whole family is gone: the newest refresh token and every access token of it.
    assert (await refresh(client, second["refreshToken"])).status_code == 401
    for pair in (first, second):
        assert (await client.get("/api/auth/me", headers=bearer(pair))).status_code == 401
    # Another session of the same user is untouched.
    other = await login(client, user.email)
    assert (await client.get("/api/auth/me", headers=bearer(other))).status_code == 200


async def test_refresh_refuses_what_it_did_not_issue(client: Client) -> None:
    for token in ("rt_" + "A" * 43, "not-a-token", "pk_" + "A" * 43):
        response = await refresh(client, token)
        assert response.status_code == 401, (token, response.text)


async def test_logout_revokes_the_family_at_once(client: Client, admin: Caller) -> None:
    user = await add_user(client, admin)
    pair = await login(client, user.email)
    kept = await login(client, user.email)
    out = await client.post(
        "/api/auth/logout", json={"refreshToken": pair["refreshToken"]}, headers=bearer(pair)
    )
    assert out.status_code == 204, out.text
    assert (await client.get("/api/auth/me", headers=bearer(pair))).status_code == 401
    assert (await refresh(client, pair["refreshToken"])).status_code == 401
    assert (await client.get("/api/auth/me", headers=bearer(kept))).status_code == 200


async def test_logout_with_an_unknown_or_anothers_token_changes_nothing(
    client: Client, admin: Caller
) -> None:
    mine = await login(client, (await add_user(client, admin)).email)
    theirs = await login(client, (await add_user(client, admin)).email)
    for token in (theirs["refreshToken"], "rt_" + "B" * 43, "whatever"):
        out = await client.post(
            "/api/auth/logout", json={"refreshToken": token}, headers=bearer(mine)
        )
        assert out.status_code == 204, out.text
    assert (await client.get("/api/auth/me", headers=bearer(theirs))).status_code == 200
    assert (await refresh(client, theirs["refreshToken"])).status_code == 200
    # An external token's caller has no built-in session to end.
    out = await client.post(
        "/api/auth/logout", json={"refreshToken": mine["refreshToken"]}, headers=admin.headers
    )
    assert out.status_code == 204
    assert (await client.get("/api/auth/me", headers=bearer(mine))).status_code == 200


async def test_a_deleted_users_tokens_are_refused_at_once(client: Client, admin: Caller) -> None:
    user = await add_user(client, admin)
    pair = await login(client, user.email)
    assert (await client.get("/api/auth/me", headers=bearer(pair))).status_code == 200
    gone = await client.delete(f"/api/users/{user.id}", headers=admin.headers)
    assert gone.status_code == 204, gone.text
    assert (await client.get("/api/auth/me", headers=bearer(pair))).status_code == 401
    assert (await refresh(client, pair["refreshToken"])).status_code == 401
    refused = await client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
    assert refused.status_code == 401


async def test_a_new_password_ends_sessions_and_a_new_role_applies_at_once(
    client: Client, admin: Caller
) -> None:
    user = await add_user(client, admin, role="builder")
    pair = await login(client, user.email)
    demoted = await client.put(
        f"/api/users/{user.id}", json={"role": "user"}, headers=admin.headers
    )
    assert demoted.status_code == 200, demoted.text
    me = await client.get("/api/auth/me", headers=bearer(pair))
    assert me.json()["role"] == "user"
    refused = await client.post("/api/panels", json={"name": "x"}, headers=bearer(pair))
    assert refused.status_code == 403
    changed = await client.put(
        f"/api/users/{user.id}", json={"password": "a brand new password"}, headers=admin.headers
    )
    assert changed.status_code == 200
    assert (await client.get("/api/auth/me", headers=bearer(pair))).status_code == 401
    await login(client, user.email, "a brand new password")


async def test_a_built_in_user_is_a_user_like_any_other(
    client: Client, admin: Caller, create_panel: Any, builder: Caller, share: Any
) -> None:
    """Grants to a built-in user's email reach them (their token carries their email)."""
    user: BuiltinUser = await add_user(client, admin)
    pair = await login(client, user.email)
    panel = await create_panel(builder)
    assert (await client.get(f"/api/panels/{panel['id']}", headers=bearer(pair))).status_code == 404
    await share(builder, "panel", panel["id"], user=user.email.upper())
    assert (await client.get(f"/api/panels/{panel['id']}", headers=bearer(pair))).status_code == 200


async def test_another_tenants_user_cannot_end_a_session(
    client: Client, admin: Caller, outsider: Caller
) -> None:
    mine = await login(client, (await add_user(client, admin)).email)
    theirs = await login(client, (await add_user(client, outsider)).email)
    out = await client.post(
        "/api/auth/logout", json={"refreshToken": mine["refreshToken"]}, headers=bearer(theirs)
    )
    assert out.status_code == 204
    assert (await client.get("/api/auth/me", headers=bearer(mine))).status_code == 200
    assert (await refresh(client, mine["refreshToken"])).status_code == 200


async def test_an_expired_refresh_token_is_refused(
    client: Client, admin: Caller, services: Services
) -> None:
    pair = await login(client, (await add_user(client, admin)).email)
    engine = owner_engine(services.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE refresh_token SET expires_at = now() WHERE token_hash = :h"),
                {"h": hashlib.sha256(pair["refreshToken"].encode()).digest()},
            )
    finally:
        await engine.dispose()
    assert (await refresh(client, pair["refreshToken"])).status_code == 401
