"""Users (admin), the login rate limit, the audit list and which issuers are accepted."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import anyio.to_thread
import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from panels.app import create_app
from panels.platform.db import owner_engine, request_engine
from tests.conftest import Caller, CallerFactory, Services, build_settings
from tests.integration.identity_helpers import PASSWORD, add_user, bearer, login

Client = AsyncTestClient[Litestar]


async def test_users_are_managed_by_admins_only(
    client: Client, admin: Caller, builder: Caller, member: Caller
) -> None:
    body = {"email": "New.Person@Example.com", "password": PASSWORD, "role": "user"}
    for caller in (builder, member):
        refused = await client.post("/api/users", json=body, headers=caller.headers)
        assert refused.status_code == 403, refused.text
        assert (await client.get("/api/users", headers=caller.headers)).status_code == 403
    created = await client.post("/api/users", json=body, headers=admin.headers)
    assert created.status_code == 201, created.text
    user = created.json()
    assert set(user) == {"id", "email", "role", "createdAt", "updatedAt"}
    assert user["email"] == "new.person@example.com"
    assert created.headers["location"] == f"/api/users/{user['id']}"
    again = await client.post(
        "/api/users", json={**body, "email": "NEW.PERSON@example.COM"}, headers=admin.headers
    )
    assert again.status_code == 409, again.text
    listed = await client.get("/api/users", headers=admin.headers)
    assert listed.headers["x-total-count"] == "1"
    assert listed.json() == [user]
    past_the_end = await client.get("/api/users", params={"offset": 5}, headers=admin.headers)
    assert past_the_end.json() == []
    assert past_the_end.headers["x-total-count"] == "1"
    assert PASSWORD not in listed.text
    assert "argon2" not in listed.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "a@b.c", "password": "short", "role": "user"}, "body.password"),
        ({"email": "no-at-sign", "password": PASSWORD, "role": "user"}, "body.email"),
        ({"email": "a@b.c", "password": PASSWORD, "role": "owner"}, "body.role"),
        ({"email": "a@b.c", "password": "x" * 1025, "role": "user"}, "body.password"),
        ({"email": "a@b.c", "password": PASSWORD + "\x00", "role": "user"}, "body.password"),
        # 205 characters, 405 once lower-cased ("\u0130" becomes "i" and a combining dot).
        ({"email": "\u0130" * 200 + "@x.io", "password": PASSWORD, "role": "user"}, "body.email"),
    ],
)
async def test_bad_user_bodies_are_400_naming_the_field(
    client: Client, admin: Caller, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/users", json=body, headers=admin.headers)
    assert response.status_code == 400, response.text
    assert [d["field"] for d in response.json()["details"]] == [field]


async def test_users_of_another_tenant_do_not_exist(
    client: Client, admin: Caller, outsider: Caller
) -> None:
    user = await add_user(client, admin)
    for method in ("PUT", "DELETE"):
        response = await client.request(
            method, f"/api/users/{user.id}", json={"role": "admin"}, headers=outsider.headers
        )
        assert response.status_code == 404, (method, response.text)
    assert (await client.get("/api/users", headers=outsider.headers)).json() == []
    # And the tenant's own admin still sees it unchanged.
    assert (await client.get("/api/users", headers=admin.headers)).json()[0]["role"] == "user"


async def test_failed_logins_are_limited_per_email(
    services: Services, make_caller: CallerFactory
) -> None:
    settings = build_settings(services, LOGIN_FAILURES_PER_EMAIL="3")
    async with AsyncTestClient(app=create_app(settings), raise_server_exceptions=False) as client:
        admin = make_caller("ada", "admin")
        user = await add_user(client, admin)
        wrong = {"email": user.email, "password": "wrong password!"}
        statuses = [
            (await client.post("/api/auth/login", json=wrong)).status_code for _ in range(4)
        ]
        assert statuses == [401, 401, 401, 429]
        right = await client.post(
            "/api/auth/login", json={"email": user.email, "password": PASSWORD}
        )
        assert right.status_code == 429  # locked, even with the right password
        assert right.headers["retry-after"] == "900"
        other = await add_user(client, admin)
        await login(client, other.email)  # another email is not locked
        events = await client.get(
            "/api/audit", params={"action": "login_failed_locked"}, headers=admin.headers
        )
        assert [e["details"]["email"] for e in events.json()["events"]] == [user.email]


async def test_parallel_wrong_passwords_stay_within_the_limit(
    client: Client, app: Litestar, admin: Caller
) -> None:
    """Each attempt is counted before its (slow) check, so a burst in the app's own event loop
    cannot pass a limit read before any of it was counted (default: 10 per email)."""
    user = await add_user(client, admin)

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as parallel:

            async def attempt(i: int) -> int:
                body = {"email": user.email, "password": f"wrong-{i}", "tenant": admin.tenant}
                return (await parallel.post("/api/auth/login", json=body)).status_code

            return list(await asyncio.gather(*(attempt(i) for i in range(40))))

    statuses = await anyio.to_thread.run_sync(lambda: client.blocking_portal.call(burst))
    assert statuses.count(401) == 10, statuses
    assert statuses.count(429) == 30, statuses


async def test_a_right_password_in_another_tenant_does_not_clear_the_emails_failures(
    client: Client, admin: Caller, make_caller: CallerFactory
) -> None:
    """The email's counter is shared by tenants; a login someone can make in theirs (with the
    same email) gives back only its own count (default limit: 10 per email)."""
    victim = await add_user(client, admin)
    other_admin = make_caller("mallory", "admin", tenant_id=f"t-{uuid.uuid4().hex[:12]}")
    await add_user(client, other_admin, email=victim.email, password="the other tenant's one")
    statuses = []
    for round_ in range(3):
        for i in range(9):
            guess = {
                "email": victim.email,
                "password": f"guess-{round_}-{i}",
                "tenant": admin.tenant,
            }
            statuses.append((await client.post("/api/auth/login", json=guess)).status_code)
        known = {
            "email": victim.email,
            "password": "the other tenant's one",
            "tenant": other_admin.tenant,
        }
        assert (await client.post("/api/auth/login", json=known)).status_code in (200, 429)
    assert statuses.count(401) == 10, statuses
    assert statuses[10:] == [429] * (len(statuses) - 10), statuses


async def test_failed_logins_are_limited_per_client_address(
    services: Services, make_caller: CallerFactory
) -> None:
    settings = build_settings(services, LOGIN_FAILURES_PER_ADDRESS="3")
    redis = Redis.from_url(services.redis_url)
    await redis.delete("panels:login:address:testclient")
    try:
        async with AsyncTestClient(
            app=create_app(settings), raise_server_exceptions=False
        ) as client:
            user = await add_user(client, make_caller("ada", "admin"))
            for _ in range(3):
                body = {"email": f"{uuid.uuid4().hex}@example.com", "password": "guess guess"}
                assert (await client.post("/api/auth/login", json=body)).status_code == 401
            right = {"email": user.email, "password": PASSWORD}
            assert (await client.post("/api/auth/login", json=right)).status_code == 429
    finally:
        await redis.delete("panels:login:address:testclient")
        await redis.aclose()


async def test_login_fails_closed_without_redis(
    services: Services, client: Client, admin: Caller
) -> None:
    user = await add_user(client, admin)
    settings = build_settings(services, REDIS_URL="redis://127.0.0.1:1")
    async with AsyncTestClient(app=create_app(settings), raise_server_exceptions=False) as down:
        response = await down.post(
            "/api/auth/login", json={"email": user.email, "password": PASSWORD}
        )
        assert response.status_code == 429, response.text
        # Every other route fails open on Redis.
        assert (await down.get("/api/panels", headers=admin.headers)).status_code == 200


async def test_the_audit_list_names_actor_time_and_request(
    client: Client, admin: Caller, builder: Caller, member: Caller, create_panel: Any, share: Any
) -> None:
    headers = {**admin.headers, "X-Request-ID": "audit-test-1"}
    created = await client.post(
        "/api/users",
        json={"email": f"{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD, "role": "user"},
        headers=headers,
    )
    user_id = created.json()["id"]
    await client.put(f"/api/users/{user_id}", json={"role": "builder"}, headers=admin.headers)
    key = await client.post(
        "/api/api-keys", json={"name": "k", "role": "user"}, headers=builder.headers
    )
    await client.delete(f"/api/api-keys/{key.json()['id']}", headers=builder.headers)
    panel = await create_panel(builder)
    await share(builder, "panel", panel["id"], user=member.email, permission="viewer")
    grant = f"/api/acls/panel/{panel['id']}/{member.email}"
    await client.put(grant, json={"permission": "editor"}, headers=builder.headers)
    await client.delete(grant, headers=builder.headers)
    await client.delete(f"/api/users/{user_id}", headers=admin.headers)

    listed = await client.get("/api/audit", headers=admin.headers)
    assert listed.status_code == 200, listed.text
    page = listed.json()
    actions = [(e["action"], e["actorUserId"]) for e in page["events"]]
    assert actions == [
        ("user_deleted", admin.user),
        ("grant_deleted", builder.user),
        ("grant_updated", builder.user),
        ("grant_created", builder.user),
        ("api_key_revoked", builder.user),
        ("api_key_created", builder.user),
        ("user_updated", admin.user),
        ("user_created", admin.user),
    ]
    assert page["total"] == 8
    assert page["hasMore"] is False
    first = page["events"][-1]
    assert first["requestId"] == "audit-test-1"
    assert first["targetType"] == "user"
    assert first["targetId"] == str(user_id)
    assert first["createdAt"].endswith("Z")
    assert "password" not in json.dumps(page).lower().replace("passwordchanged", "")
    only = await client.get(
        "/api/audit", params={"action": "grant_updated", "limit": 1}, headers=admin.headers
    )
    assert [e["action"] for e in only.json()["events"]] == ["grant_updated"]
    paged = await client.get("/api/audit", params={"limit": 3, "offset": 3}, headers=admin.headers)
    assert paged.json()["hasMore"] is True
    assert (await client.get("/api/audit", headers=builder.headers)).status_code == 403
    for params in ({"action": "nope"}, {"limit": 101}, {"since": "yesterday"}):
        assert (
            await client.get("/api/audit", params=params, headers=admin.headers)
        ).status_code == 400


async def test_login_waits_no_longer_for_an_unknown_email(client: Client, admin: Caller) -> None:
    """Roughly the same time: both verify one Argon2id hash."""
    user = await add_user(client, admin)

    async def timed(email: str) -> float:
        started = asyncio.get_running_loop().time()
        await client.post("/api/auth/login", json={"email": email, "password": "wrong one!"})
        return asyncio.get_running_loop().time() - started

    known = min([await timed(user.email) for _ in range(3)])
    unknown = min([await timed(f"{uuid.uuid4().hex}@example.com") for _ in range(3)])
    assert unknown > known * 0.5


async def test_users_take_if_match(client: Client, admin: Caller) -> None:
    created = await client.post(
        "/api/users",
        json={"email": f"{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD, "role": "user"},
        headers=admin.headers,
    )
    url, etag = created.headers["location"], created.headers["etag"]
    stale = {**admin.headers, "If-Match": '"0123456789abcdef0123456789abcdef"'}
    assert (await client.put(url, json={"role": "builder"}, headers=stale)).status_code == 412
    assert (await client.delete(url, headers=stale)).status_code == 412
    changed = await client.put(
        url, json={"role": "builder"}, headers={**admin.headers, "If-Match": etag}
    )
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] != etag
    assert (
        await client.delete(url, headers={**admin.headers, "If-Match": etag})
    ).status_code == 412
    current = {**admin.headers, "If-Match": changed.headers["etag"]}
    assert (await client.delete(url, headers=current)).status_code == 204


async def test_login_and_refresh_are_documented_without_a_token(client: Client) -> None:
    spec = (await client.get("/schema/openapi.json")).json()
    for path in ("/api/auth/login", "/api/auth/refresh"):
        operation = spec["paths"][path]["post"]
        assert not operation.get("security"), path
        assert "Idempotency-Key" not in [p["name"] for p in operation.get("parameters", [])]
        assert {"200", "400", "401", "429"} <= operation["responses"].keys()
    logout = spec["paths"]["/api/auth/logout"]["post"]
    assert logout["security"] == [{"BearerToken": []}]


async def test_auth_mode_decides_which_issuers_are_accepted(
    services: Services, client: Client, admin: Caller
) -> None:
    user = await add_user(client, admin)
    pair = await login(client, user.email)
    key = await client.post(
        "/api/api-keys", json={"name": "k", "role": "user"}, headers=admin.headers
    )
    external_only = build_settings(services, AUTH_MODE="external")
    async with AsyncTestClient(app=create_app(external_only), raise_server_exceptions=False) as ext:
        assert (await ext.get("/api/auth/me", headers=admin.headers)).status_code == 200
        for headers in (bearer(pair["accessToken"]), bearer(key.json()["key"])):
            assert (await ext.get("/api/auth/me", headers=headers)).status_code == 401
        refused = await ext.post(
            "/api/auth/login", json={"email": user.email, "password": PASSWORD}
        )
        assert refused.status_code == 401
    builtin_only = build_settings(services, AUTH_MODE="builtin")
    async with AsyncTestClient(app=create_app(builtin_only), raise_server_exceptions=False) as own:
        assert (await own.get("/api/auth/me", headers=admin.headers)).status_code == 401
        for headers in (bearer(pair["accessToken"]), bearer(key.json()["key"])):
            assert (await own.get("/api/auth/me", headers=headers)).status_code == 200


@pytest.mark.parametrize("make_engine", [owner_engine, lambda url: request_engine(url, 1)])
async def test_a_failed_statement_does_not_carry_its_values_into_the_logs(
    services: Services, make_engine: Any
) -> None:
    """Bound values include password hashes and token digests; an error (which is logged)
    names the statement only."""
    secret = "$argon2id$v=19$m=65536,t=3,p=4$not-for-the-logs"
    engine = make_engine(services.database_url)
    try:
        async with engine.connect() as connection:
            with pytest.raises(DBAPIError) as raised:
                await connection.execute(text("SELECT CAST(:value AS integer)"), {"value": secret})
    finally:
        await engine.dispose()
    assert secret not in str(raised.value)
    assert "hidden" in str(raised.value)
