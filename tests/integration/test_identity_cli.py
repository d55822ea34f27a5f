"""`panels users create`: the first admin of a tenant, who can then log in."""

from __future__ import annotations

import uuid

import anyio.to_thread
from click.testing import CliRunner, Result
from litestar import Litestar
from litestar.testing import AsyncTestClient

from panels.cli import main
from tests.conftest import ROOT, TEST_SECRET, Services
from tests.integration.identity_helpers import PASSWORD, bearer, login


async def run_cli(services: Services, *args: str, password: str) -> Result:
    environ = {
        "DATABASE_URL": services.database_url,
        "REDIS_URL": services.redis_url,
        "JWT_SECRET": TEST_SECRET,
        "PANELS_ENV": "test",
        "PANELS_DATA_DIR": str(ROOT / ".panels" / "test"),
    }
    return await anyio.to_thread.run_sync(
        lambda: CliRunner().invoke(
            main, ["users", "create", *args], input=password + "\n", env=environ
        )
    )


async def test_the_first_admin_is_made_from_the_command_line(
    services: Services, client: AsyncTestClient[Litestar]
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:12]}"
    email = f"Boss-{uuid.uuid4().hex[:6]}@Example.com"
    args = ("--tenant", tenant, "--email", email, "--role", "admin", "--password-stdin")
    made = await run_cli(services, *args, password=PASSWORD)
    assert made.exit_code == 0, made.output
    assert f"created in tenant {tenant}" in made.output
    pair = await login(client, email)
    me = (await client.get("/api/auth/me", headers=bearer(pair["accessToken"]))).json()
    assert (me["tenantId"], me["role"], me["email"]) == (tenant, "admin", email.lower())
    events = await client.get("/api/audit", headers=bearer(pair["accessToken"]))
    [created] = events.json()["events"]
    assert (created["action"], created["actorUserId"]) == ("user_created", None)

    again = await run_cli(services, *args, password=PASSWORD)
    assert again.exit_code == 1
    assert "already has a user" in again.output
    short = await run_cli(
        services,
        "--tenant",
        tenant,
        "--email",
        "x@example.com",
        "--password-stdin",
        password="short",
    )
    assert short.exit_code == 1
    assert "12" in short.output


async def test_an_email_too_long_once_lower_cased_is_refused(services: Services) -> None:
    tenant = f"t-{uuid.uuid4().hex[:12]}"
    email = "\u0130" * 200 + "@example.com"  # 212 characters, 412 once lower-cased
    args = ("--tenant", tenant, "--email", email, "--password-stdin")
    refused = await run_cli(services, *args, password=PASSWORD)
    assert refused.exit_code == 1, refused.output
    assert "320" in refused.output
