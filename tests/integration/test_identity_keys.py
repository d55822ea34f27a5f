"""API keys: shown once, stored hashed, role capped by the creator's, expiry, revocation at once
on every worker, batched `lastUsedAt`, and a deleted creator's keys refused."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from panels.app import create_app
from panels.identity.verification import Credentials
from panels.platform.auth import Principal
from panels.platform.db import owner_engine
from panels.settings import Settings
from tests.conftest import Caller, CallerFactory, Services
from tests.integration.databases import queries_sent
from tests.integration.identity_helpers import add_user, bearer, login

Client = AsyncTestClient[Litestar]


async def new_key(client: Client, caller: Caller | dict[str, str], **body: Any) -> dict[str, Any]:
    headers = caller.headers if isinstance(caller, Caller) else caller
    response = await client.post(
        "/api/api-keys", json={"name": "etl", "role": "user", **body}, headers=headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_a_key_is_shown_once_and_authenticates_both_ways(
    client: Client, services: Services, builder: Caller
) -> None:
    created = await new_key(client, builder, role="builder")
    key = created["key"]
    assert key.startswith("pk_")
    assert created["prefix"] == key[:11]
    assert created["lastUsedAt"] is None
    # The creation body is the key as listed, plus the key itself.
    before_use = await client.get("/api/api-keys", headers=builder.headers)
    assert before_use.json() == [{k: v for k, v in created.items() if k != "key"}]
    for headers in (bearer(key), {"X-API-Key": key}):
        me = await client.get("/api/auth/me", headers=headers)
        assert me.status_code == 200, me.text
        assert me.json() == {
            "userId": f"apikey:{created['id']}",
            "email": None,
            "tenantId": builder.tenant,
            "role": "builder",
            "authMethod": "apiKey",
            "apiKeyId": str(created["id"]),
        }
    made = await client.post("/api/panels", json={"name": "by a key"}, headers=bearer(key))
    assert made.status_code == 201
    listed = await client.get("/api/api-keys", headers=builder.headers)
    assert listed.headers["x-total-count"] == "1"
    assert "key" not in listed.json()[0]
    assert key not in listed.text
    # Only the hash is stored.
    engine = owner_engine(services.database_url)
    try:
        async with engine.connect() as connection:
            stored = (
                await connection.execute(
                    text("SELECT key_hash FROM api_key WHERE id = :id"), {"id": created["id"]}
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    assert bytes(stored) == hashlib.sha256(key.encode()).digest()


async def test_a_keys_role_cannot_exceed_its_creators(
    client: Client, builder: Caller, member: Caller, admin: Caller
) -> None:
    for caller, role in ((member, "builder"), (member, "admin"), (builder, "admin")):
        response = await client.post(
            "/api/api-keys", json={"name": "x", "role": role}, headers=caller.headers
        )
        assert response.status_code == 403, (caller.role, role, response.text)
    await new_key(client, admin, role="admin")
    key = (await new_key(client, builder, role="builder"))["key"]
    refused = await client.post(
        "/api/api-keys", json={"name": "y", "role": "user"}, headers=bearer(key)
    )
    assert refused.status_code == 403


async def test_a_revoked_key_stops_at_once_and_leaves_the_list(
    client: Client, builder: Caller
) -> None:
    created = await new_key(client, builder)
    assert (await client.get("/api/auth/me", headers=bearer(created["key"]))).status_code == 200
    gone = await client.delete(f"/api/api-keys/{created['id']}", headers=builder.headers)
    assert gone.status_code == 204, gone.text
    refused = await client.get("/api/auth/me", headers=bearer(created["key"]))
    assert refused.status_code == 401
    assert (await client.get("/api/api-keys", headers=builder.headers)).json() == []
    again = await client.delete(f"/api/api-keys/{created['id']}", headers=builder.headers)
    assert again.status_code == 404


async def test_only_the_creator_or_an_admin_sees_and_revokes_a_key(
    client: Client, builder: Caller, member: Caller, admin: Caller
) -> None:
    created = await new_key(client, builder)
    assert (await client.get("/api/api-keys", headers=member.headers)).json() == []
    refused = await client.delete(f"/api/api-keys/{created['id']}", headers=member.headers)
    assert refused.status_code == 404
    listed = await client.get("/api/api-keys", headers=admin.headers)
    assert [k["id"] for k in listed.json()] == [created["id"]]
    assert (
        await client.delete(f"/api/api-keys/{created['id']}", headers=admin.headers)
    ).status_code == 204


async def test_an_expired_key_is_refused(client: Client, builder: Caller) -> None:
    expiry = datetime.now(UTC) + timedelta(seconds=2)
    created = await new_key(client, builder, expiresAt=expiry.isoformat())
    assert created["expiresAt"] is not None
    # Verified, and so remembered by this worker, while it is valid.
    assert (await client.get("/api/auth/me", headers=bearer(created["key"]))).status_code == 200
    await asyncio.sleep((expiry - datetime.now(UTC)).total_seconds() + 0.1)
    refused = await client.get("/api/auth/me", headers=bearer(created["key"]))
    assert refused.status_code == 401
    assert refused.json()["message"] == "API key expired"
    assert (await client.get("/api/api-keys", headers=builder.headers)).json() == []


async def test_an_expiry_in_the_past_is_refused(client: Client, builder: Caller) -> None:
    for value, status in (("2020-01-01T00:00:00Z", 400), ("soon", 400), ("٢٠٢٠-01-01", 400)):
        response = await client.post(
            "/api/api-keys",
            json={"name": "x", "role": "user", "expiresAt": value},
            headers=builder.headers,
        )
        assert response.status_code == status, (value, response.text)
        assert response.json()["details"][0]["field"] == "body.expiresAt"


async def test_a_deleted_users_keys_are_refused(client: Client, admin: Caller) -> None:
    user = await add_user(client, admin, role="builder")
    pair = await login(client, user.email)
    key = (await new_key(client, bearer(pair["accessToken"]), role="builder"))["key"]
    assert (await client.get("/api/auth/me", headers=bearer(key))).status_code == 200
    assert (await client.delete(f"/api/users/{user.id}", headers=admin.headers)).status_code == 204
    assert (await client.get("/api/auth/me", headers=bearer(key))).status_code == 401


async def test_malformed_keys_are_401(client: Client) -> None:
    for headers in (
        {"X-API-Key": "pk_short"},
        {"X-API-Key": "not-a-key"},
        {"X-API-Key": "pk_" + "A" * 43},
        bearer("pk_" + "A" * 42 + "!"),
    ):
        response = await client.get("/api/auth/me", headers=headers)
        assert response.status_code == 401, (headers, response.text)


async def test_a_refused_key_is_refused_again_without_asking_the_database(
    client: Client, app: Litestar, builder: Caller
) -> None:
    """A client that keeps sending a revoked key costs one lookup, not one per request; a key
    the database knows is still looked up and accepted."""
    created = await new_key(client, builder)
    gone = await client.delete(f"/api/api-keys/{created['id']}", headers=builder.headers)
    assert gone.status_code == 204, gone.text
    engine = app.state.runtime.db.get_engine()
    with queries_sent(engine) as queries:
        for _ in range(5):
            refused = await client.get("/api/auth/me", headers=bearer(created["key"]))
            assert refused.status_code == 401
    assert sum("api_key_by_hash" in q for q in queries) == 1, queries
    other = await new_key(client, builder)
    assert (await client.get("/api/auth/me", headers=bearer(other["key"]))).status_code == 200


async def test_last_used_is_written_in_batches(client: Client, builder: Caller) -> None:
    created = await new_key(client, builder)
    for _ in range(3):
        assert (await client.get("/api/panels", headers=bearer(created["key"]))).status_code == 200
    listed = await client.get("/api/api-keys", headers=builder.headers)
    assert listed.json()[0]["lastUsedAt"] is None  # not a write per request
    await flush_on_app(client)
    listed = await client.get("/api/api-keys", headers=builder.headers)
    assert listed.json()[0]["lastUsedAt"] is not None


async def flush_on_app(client: Client) -> None:
    """Write what the app noted, on the app's own event loop (the test client's)."""
    await anyio.to_thread.run_sync(client.blocking_portal.call, app_credentials(client).flush)


def app_credentials(client: Client) -> Credentials:
    credentials = client.app.state.runtime.credentials
    assert isinstance(credentials, Credentials)
    return credentials


@pytest.fixture
async def second_worker(settings: Settings) -> AsyncIterator[Client]:
    """Another app on the same database and Redis: another worker, with caches of its own."""
    async with AsyncTestClient(app=create_app(settings), raise_server_exceptions=False) as other:
        yield other


async def test_revocations_reach_another_worker_within_a_second(
    client: Client, second_worker: Client, admin: Caller, builder: Caller
) -> None:
    key = await new_key(client, builder)
    user = await add_user(client, admin)
    pair = await login(client, user.email)
    session = bearer(pair["accessToken"])
    for headers in (bearer(key["key"]), session):  # verified, and so cached, by the other worker
        seen = await second_worker.get("/api/auth/me", headers=headers)
        assert seen.status_code == 200, seen.text
    assert (
        await client.delete(f"/api/api-keys/{key['id']}", headers=builder.headers)
    ).status_code == 204
    out = await client.post(
        "/api/auth/logout", json={"refreshToken": pair["refreshToken"]}, headers=session
    )
    assert out.status_code == 204
    await asyncio.sleep(1.05)
    for headers in (bearer(key["key"]), session):
        assert (await second_worker.get("/api/auth/me", headers=headers)).status_code == 401


async def test_a_key_takes_if_match_with_the_etag_of_its_creation(
    client: Client, builder: Caller
) -> None:
    created = await client.post(
        "/api/api-keys", json={"name": "etl", "role": "user"}, headers=builder.headers
    )
    url, etag = created.headers["location"], created.headers["etag"]
    stale = {**builder.headers, "If-Match": '"0123456789abcdef0123456789abcdef"'}
    assert (await client.delete(url, headers=stale)).status_code == 412
    assert (
        await client.delete(url, headers={**builder.headers, "If-Match": etag})
    ).status_code == 204


async def test_demoting_a_user_lowers_their_keys(client: Client, admin: Caller) -> None:
    user = await add_user(client, admin, role="builder")
    pair = await login(client, user.email)
    key = (await new_key(client, bearer(pair["accessToken"]), role="builder"))["key"]
    assert (await client.get("/api/auth/me", headers=bearer(key))).json()["role"] == "builder"
    demoted = await client.put(
        f"/api/users/{user.id}", json={"role": "user"}, headers=admin.headers
    )
    assert demoted.status_code == 200, demoted.text
    assert (await client.get("/api/auth/me", headers=bearer(key))).json()["role"] == "user"
    refused = await client.post("/api/panels", json={"name": "x"}, headers=bearer(key))
    assert refused.status_code == 403


async def test_an_admins_key_cannot_manage_users(client: Client, admin: Caller) -> None:
    """A user made with a key (or a password changed with one) would outlive the key."""
    key = {"X-API-Key": (await new_key(client, admin, role="admin"))["key"]}
    user = await add_user(client, admin)
    body = {
        "email": "made-by-a-key@example.com",
        "password": "a long enough password",
        "role": "admin",
    }
    created = await client.post("/api/users", json=body, headers=key)
    assert created.status_code == 403, created.text
    changed = await client.put(
        f"/api/users/{user.id}", json={"password": "a new long password"}, headers=key
    )
    assert changed.status_code == 403, changed.text
    deleted = await client.delete(f"/api/users/{user.id}", headers=key)
    assert deleted.status_code == 403, deleted.text
    assert (await client.get("/api/users", headers=key)).status_code == 200
    await login(client, user.email)  # unchanged


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
async def test_a_moment_past_the_years_limits_in_utc_is_a_400(
    client: Client, admin: Caller, moment: str
) -> None:
    body = {"name": "k", "role": "user", "expiresAt": moment}
    created = await client.post("/api/api-keys", json=body, headers=admin.headers)
    assert created.status_code == 400, created.text
    assert [d["field"] for d in created.json()["details"]] == ["body.expiresAt"]
    listed = await client.get("/api/audit", params={"since": moment}, headers=admin.headers)
    assert listed.status_code == 400, listed.text
    assert [d["field"] for d in listed.json()["details"]] == ["query.since"]


async def test_a_key_may_expire_on_the_last_day_of_year_9999(client: Client, admin: Caller) -> None:
    key = await new_key(client, admin, expiresAt="9999-12-31")
    assert key["expiresAt"].startswith("9999-12-31T00:00:00")
    me = await client.get("/api/auth/me", headers={"X-API-Key": key["key"]})
    assert me.status_code == 200, me.text


async def test_an_overlong_email_claim_is_taken_as_none(
    client: Client, admin: Caller, make_caller: CallerFactory
) -> None:
    """It is no email the service stores; kept, it failed the tenant's batched write."""
    key = await new_key(client, admin)
    assert (await client.get("/api/auth/me", headers={"X-API-Key": key["key"]})).status_code == 200
    long_email = make_caller("zed", "user", email="z" * 400 + "@example.com")
    me = await client.get("/api/auth/me", headers=long_email.headers)
    assert me.status_code == 200, me.text
    assert me.json()["email"] is None
    await flush_on_app(client)
    [listed] = (await client.get("/api/api-keys", headers=admin.headers)).json()
    assert listed["lastUsedAt"] is not None


async def test_a_tenant_whose_batched_write_fails_loses_only_its_own(
    client: Client, admin: Caller
) -> None:
    key = await new_key(client, admin)
    assert (await client.get("/api/auth/me", headers={"X-API-Key": key["key"]})).status_code == 200
    for tenant in ("0-first", "1-second", "z-last"):
        # No claim makes such a principal any more; one made by hand stands for any write
        # that fails.
        unwritable = Principal(user_id="u", email="z" * 400, tenant_id=tenant, role="user")
        app_credentials(client).seen(unwritable)
    await flush_on_app(client)
    [listed] = (await client.get("/api/api-keys", headers=admin.headers)).json()
    assert listed["lastUsedAt"] is not None


async def test_an_external_subject_equal_to_a_built_in_id_does_not_own_its_keys(
    client: Client, admin: Caller, make_caller: CallerFactory
) -> None:
    """Key ownership is per way of signing in: `sub` "7" is not built-in user 7 for keys."""
    user = await add_user(client, admin, role="builder")
    signed_in = bearer((await login(client, user.email, tenant=admin.tenant))["accessToken"])
    key = await new_key(client, signed_in)
    external = make_caller(str(user.id), "builder")
    assert (await client.get("/api/api-keys", headers=external.headers)).json() == []
    revoked = await client.delete(f"/api/api-keys/{key['id']}", headers=external.headers)
    assert revoked.status_code == 404, revoked.text
    [own] = (await client.get("/api/api-keys", headers=signed_in)).json()
    assert own["id"] == key["id"]
    # And the other way round: the external subject's keys are not the built-in user's.
    theirs = await new_key(client, external)
    assert [k["id"] for k in (await client.get("/api/api-keys", headers=signed_in)).json()] == [
        key["id"]
    ]
    # Deleting the built-in user revokes its keys only.
    assert (await client.delete(f"/api/users/{user.id}", headers=admin.headers)).status_code == 204
    listed = (await client.get("/api/api-keys", headers=external.headers)).json()
    assert [k["id"] for k in listed] == [theirs["id"]]
