"""Idempotency-Key on POST: replay, conflict, scoping, failures and concurrency."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from panels.app import create_app
from tests.conftest import Caller, CallerFactory, Services, build_settings

Client = AsyncTestClient[Litestar]


def keyed(caller: Caller, key: str) -> dict[str, str]:
    return {**caller.headers, "Idempotency-Key": key}


async def count_panels(client: Client, caller: Caller) -> int:
    response = await client.get("/api/panels", headers=caller.headers)
    return int(response.headers["x-total-count"])


async def test_repeat_returns_the_first_response(client: Client, builder: Caller) -> None:
    key = str(uuid.uuid4())
    first = await client.post("/api/panels", json={"name": "once"}, headers=keyed(builder, key))
    second = await client.post("/api/panels", json={"name": "once"}, headers=keyed(builder, key))
    assert first.status_code == second.status_code == 201
    assert second.content == first.content
    assert second.headers["location"] == first.headers["location"]
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await count_panels(client, builder) == 1
    records = (await client.get("/api/changes/panels", headers=builder.headers)).json()
    assert records["total"] == 1


async def test_same_key_other_body_is_409(client: Client, builder: Caller) -> None:
    key = str(uuid.uuid4())
    assert (
        await client.post("/api/panels", json={"name": "a"}, headers=keyed(builder, key))
    ).status_code == 201
    response = await client.post("/api/panels", json={"name": "b"}, headers=keyed(builder, key))
    assert response.status_code == 409
    assert response.json()["statusCode"] == 409
    assert await count_panels(client, builder) == 1


async def test_keys_belong_to_one_user(client: Client, make_caller: CallerFactory) -> None:
    alice, bob = make_caller("alice", "builder"), make_caller("bob", "builder")
    key = "shared-key"
    a = await client.post("/api/panels", json={"name": "x"}, headers=keyed(alice, key))
    b = await client.post("/api/panels", json={"name": "x"}, headers=keyed(bob, key))
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]
    assert "idempotent-replayed" not in b.headers


async def test_failures_are_not_remembered(client: Client, builder: Caller) -> None:
    key = str(uuid.uuid4())
    assert (
        await client.post("/api/panels", json={"name": ""}, headers=keyed(builder, key))
    ).status_code == 400
    retried = await client.post("/api/panels", json={"name": "fixed"}, headers=keyed(builder, key))
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers


async def test_malformed_keys_are_400(client: Client, builder: Caller) -> None:
    for key in ("x" * 256, "has space", "tab\tkey"):
        response = await client.post("/api/panels", json={}, headers=keyed(builder, key))
        assert response.status_code == 400, key
        assert response.json()["details"][0]["field"] == "header.Idempotency-Key"
    assert await count_panels(client, builder) == 0


async def test_concurrent_requests_with_one_key_act_once(
    client: Client, services: Services, builder: Caller
) -> None:
    key = str(uuid.uuid4())
    # The test client runs its app on a loop of its own, one request at a time; an app
    # started on this loop behind an ASGI transport serves these five truly at once.
    app = create_app(build_settings(services))
    async with (
        app.lifespan(),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://panels"
        ) as concurrent,
    ):
        responses = await asyncio.gather(
            *(
                concurrent.post("/api/panels", json={"name": "race"}, headers=keyed(builder, key))
                for _ in range(5)
            )
        )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert await count_panels(client, builder) == 1
    records = (await client.get("/api/changes/panels", headers=builder.headers)).json()
    assert records["total"] == 1


async def test_a_compressed_first_response_replays_readably(
    client: Client, builder: Caller
) -> None:
    key = str(uuid.uuid4())
    body = {"name": "big", "description": "d" * 1900, "metadata": {"k": "v" * 500}}
    gzip_ok = {**keyed(builder, key), "Accept-Encoding": "gzip"}
    first = await client.post("/api/panels", json=body, headers=gzip_ok)
    assert first.headers.get("content-encoding") == "gzip"
    plain = {**keyed(builder, key), "Accept-Encoding": "identity"}
    replay = await client.post("/api/panels", json=body, headers=plain)
    assert replay.headers["idempotent-replayed"] == "true"
    assert "content-encoding" not in replay.headers
    assert replay.json() == first.json()
