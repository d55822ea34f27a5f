"""Health, readiness, metrics, docs, rate limiting and CORS."""

from __future__ import annotations

import asyncio

from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY

from panels.app import create_app
from tests.conftest import Caller, CallerFactory, Services, build_settings

Client = AsyncTestClient[Litestar]


async def test_health_and_its_alias(client: Client) -> None:
    for path in ("/health", "/liveness"):
        response = await client.get(path)
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ok"
        assert body["version"]
        assert body["uptime"] >= 0
        assert body["timestamp"].endswith("Z")


async def test_ready_checks_database_and_redis(client: Client) -> None:
    for path in ("/ready", "/healthz"):
        response = await client.get(path)
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ok"
        for check in ("database", "redis"):
            assert body["checks"][check]["status"] == "ok"
            assert body["checks"][check]["latencyMs"] >= 0


async def test_ready_is_503_without_the_database(services: Services) -> None:
    app = create_app(build_settings(services, DATABASE_URL="postgresql://nobody@127.0.0.1:1/none"))
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        response = await client.get("/ready")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "error"
        assert body["checks"]["database"]["status"] == "error"
        assert "127.0.0.1" not in response.text  # no driver detail leaks
        assert (await client.get("/health")).status_code == 200


async def test_metrics_are_prometheus_text(client: Client, builder: Caller) -> None:
    labels = {"method": "GET", "path": "/api/panels", "status_code": "200", "app_name": "panels"}
    before = REGISTRY.get_sample_value("panels_requests_total", labels) or 0
    await client.get("/api/panels", headers=builder.headers)
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert "panels_requests_total" in response.text
    # The request is counted under its route template and status, not only declared.
    assert REGISTRY.get_sample_value("panels_requests_total", labels) == before + 1
    lines = response.text.splitlines()
    counted = [line for line in lines if line.startswith("panels_requests_total{")]
    assert any('path="/api/panels"' in line for line in counted)


async def test_rate_limit_per_user(services: Services, make_caller: CallerFactory) -> None:
    app = create_app(build_settings(services, RATE_LIMIT="3"))
    alice, bob = make_caller("alice", "builder"), make_caller("bob", "builder")
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        statuses = [
            (await client.get("/api/panels", headers=alice.headers)).status_code for _ in range(4)
        ]
        assert statuses == [200, 200, 200, 429]
        limited = await client.get("/api/panels", headers=alice.headers)
        assert limited.json()["statusCode"] == 429
        assert limited.headers["ratelimit-limit"] == "3"
        assert limited.headers["ratelimit-remaining"] == "0"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.headers["retry-after"] == limited.headers["ratelimit-reset"]
        allowed = await client.get("/api/panels", headers=bob.headers)
        assert allowed.status_code == 200
        assert allowed.headers["ratelimit-policy"] == "3; w=60"
        assert allowed.headers["ratelimit-remaining"] == "2"
        assert (await client.get("/health")).status_code == 200


async def test_rate_limit_counts_every_route_and_refusal(
    services: Services, make_caller: CallerFactory
) -> None:
    """Routes whose count rides on the cache read, routes counted on their own, and requests
    refused before they reach the cache all spend the same budget."""
    app = create_app(build_settings(services, RATE_LIMIT="4"))
    carol = make_caller("carol", "builder")
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        created = await client.post("/api/panels", json={"name": "p"}, headers=carol.headers)
        assert created.status_code == 201
        assert created.headers["ratelimit-remaining"] == "3"
        refused = await client.get("/api/panels?limit=0", headers=carol.headers)
        assert refused.status_code == 400
        read = await client.get(created.headers["location"], headers=carol.headers)
        assert read.status_code == 200
        assert read.headers["ratelimit-remaining"] == "1"
        assert (await client.get("/api/panels", headers=carol.headers)).status_code == 200
        for method, path in [("GET", "/api/panels"), ("POST", "/api/panels")]:
            limited = await client.request(method, path, json={}, headers=carol.headers)
            assert limited.status_code == 429
            assert limited.json()["statusCode"] == 429
            assert int(limited.headers["retry-after"]) >= 1


async def test_rate_limit_is_one_budget_across_workers(
    services: Services, make_caller: CallerFactory
) -> None:
    """Two app instances on one Redis (two workers, or two replicas): a user's requests count
    against one budget whichever serves them, also when they arrive at once."""
    first = create_app(build_settings(services, RATE_LIMIT="10"))
    second = create_app(build_settings(services, RATE_LIMIT="10"))
    alice = make_caller("alice", "builder")
    async with (
        AsyncTestClient(app=first, raise_server_exceptions=False) as one,
        AsyncTestClient(app=second, raise_server_exceptions=False) as two,
    ):
        responses = await asyncio.gather(
            *(client.get("/api/panels", headers=alice.headers) for client in [one, two] * 8)
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] * 10 + [429] * 6
        limited = next(r for r in responses if r.status_code == 429)
        assert limited.json()["statusCode"] == 429
        assert "retry-after" in limited.headers


async def test_cors_only_for_configured_origins(services: Services, builder: Caller) -> None:
    app = create_app(build_settings(services, CORS_ORIGINS="https://app.example.com"))
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        preflight = await client.options(
            "/api/panels",
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type,idempotency-key",
            },
        )
        assert preflight.status_code in (200, 204)
        assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
        response = await client.get(
            "/api/panels", headers={**builder.headers, "Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in response.headers
    async with AsyncTestClient(
        app=create_app(build_settings(services)), raise_server_exceptions=False
    ) as client:
        response = await client.get(
            "/api/panels", headers={**builder.headers, "Origin": "https://app.example.com"}
        )
        assert "access-control-allow-origin" not in response.headers
