"""Real PostgreSQL and Redis for every test: embedded ones unless DATABASE_URL/REDIS_URL are set.

The schema comes from the real migrations. Each test works in tenants of its own (random ids),
so tests never see each other's rows and no table is truncated between them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from panels.app import create_app
from panels.platform.auth import Role, mint_token
from panels.platform.db import migration_config
from panels.platform.embedded import EmbeddedServices, start_postgres, start_redis
from panels.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
TEST_SECRET = "panels-test-secret-that-is-long-enough-0123456789"


@dataclass(frozen=True)
class Services:
    database_url: str
    redis_url: str
    embedded: EmbeddedServices


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    from advanced_alchemy.alembic.commands import AlembicCommands

    embedded = EmbeddedServices()
    data_dir = ROOT / ".panels" / "test"
    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    database_name = f"panels_test_{os.getpid()}"
    if not database_url:
        embedded.postgres = start_postgres(data_dir)
        database_url = embedded.database_url(database_name)
    if not redis_url:
        embedded.redis = start_redis(data_dir)
        redis_url = embedded.redis_url
    AlembicCommands(sqlalchemy_config=migration_config(database_url)).upgrade("head")
    yield Services(database_url, redis_url, embedded)
    if embedded.postgres is not None:
        embedded.drop_database(database_name)


def build_settings(services: Services, **overrides: str) -> Settings:
    environ = {
        "PANELS_ENV": "test",
        "DATABASE_URL": services.database_url,
        "REDIS_URL": services.redis_url,
        "JWT_SECRET": TEST_SECRET,
        "RATE_LIMIT": "0",
        # Every test client has the same address: the per-address login limit is tested alone.
        "LOGIN_FAILURES_PER_ADDRESS": "1000000",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "warning",
        "PANELS_DATA_DIR": str(ROOT / ".panels" / "test"),
        # Tests that run syncs start their workers themselves, so others see jobs as queued.
        "IN_PROCESS_WORKER": "false",
    }
    environ.update(overrides)
    return Settings.from_env(environ)


@pytest.fixture(scope="session")
def settings(services: Services) -> Settings:
    return build_settings(services)


@pytest.fixture(scope="session")
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture(scope="session")
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as test_client:
        yield test_client


@dataclass(frozen=True)
class Caller:
    tenant: str
    user: str
    role: Role
    token: str
    email: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


CallerFactory = Callable[..., Caller]


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_caller(settings: Settings, tenant: str) -> CallerFactory:
    """Callers of this test's tenant: an ordinary user unless a role is named."""

    def make(
        user: str = "alice", role: Role = "user", tenant_id: str | None = None, **claims: Any
    ) -> Caller:
        tenant_id = tenant_id or tenant
        email = claims.pop("email", f"{user}@example.com")
        token = mint_token(settings.jwt, tenant=tenant_id, user=user, email=email, role=role)
        return Caller(tenant=tenant_id, user=user, role=role, token=token, email=email)

    return make


@pytest.fixture
def admin(make_caller: CallerFactory) -> Caller:
    """A tenant admin, who passes every permission check: only for tests of admin rights."""
    return make_caller("alice", "admin")


@pytest.fixture
def builder(make_caller: CallerFactory) -> Caller:
    """The default caller: an ordinary builder, who owns the panels and views it creates."""
    return make_caller("bob", "builder")


@pytest.fixture
def member(make_caller: CallerFactory) -> Caller:
    """A plain user of the tenant: reads only what is shared with it or published."""
    return make_caller("carol", "user")


@pytest.fixture
def outsider(make_caller: CallerFactory) -> Caller:
    """An admin of another tenant."""
    return make_caller("mallory", "admin", tenant_id=f"t-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def create_panel(client: AsyncTestClient[Litestar], builder: Caller) -> Callable[..., Any]:
    """Create a panel, as the builder unless another caller is given."""

    async def create(caller: Caller | None = None, **body: Any) -> dict[str, Any]:
        caller = caller or builder
        response = await client.post(
            "/api/panels", json=body or {"name": "Ward 7"}, headers=caller.headers
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    return create


@pytest.fixture
def share(client: AsyncTestClient[Litestar]) -> Callable[..., Any]:
    """Grant access to a panel or view: to everyone in the tenant unless a user is named."""

    async def grant(
        owner: Caller,
        resource_type: str,
        resource_id: int,
        user: str = "_all",
        permission: str = "viewer",
    ) -> None:
        base = f"/api/acls/{resource_type}/{resource_id}"
        if user == "_all":
            response = await client.post(
                f"{base}/share-public", json={"permission": permission}, headers=owner.headers
            )
        else:
            response = await client.post(
                base, json={"userEmail": user, "permission": permission}, headers=owner.headers
            )
        assert response.status_code in (200, 201), response.text

    return grant


@pytest.fixture
def add_source_and_column(client: AsyncTestClient[Litestar]) -> Callable[..., Any]:
    """Give a panel a `custom` data source and a number column `Age`, as its owner."""

    async def add(owner: Caller, panel_id: int) -> None:
        base = f"/api/panels/{panel_id}"
        source = await client.post(
            f"{base}/datasources", json={"type": "custom", "config": {}}, headers=owner.headers
        )
        column = await client.post(
            f"{base}/columns/base", json={"name": "Age", "type": "number"}, headers=owner.headers
        )
        assert source.status_code == column.status_code == 201, (source.text, column.text)

    return add
