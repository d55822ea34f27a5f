"""`panels serve | worker | db … | token | users create | openapi`."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
from datetime import timedelta
from typing import Any

import click
import msgspec

from panels.settings import Settings, SettingsError, load_settings

_TTL = re.compile(r"^(\d+)([smhd])$")
_TTL_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        click.echo(f"panels: configuration error: {exc}", err=True)
        sys.exit(2)


def _with_services(settings: Settings) -> tuple[Settings, Any]:
    """Start embedded PostgreSQL/Redis for what is not configured; export their URLs."""
    from panels.platform.embedded import EmbeddedServices, start_postgres, start_redis

    embedded = EmbeddedServices()
    database_url, redis_url = settings.database_url, settings.redis_url
    if database_url is None:
        click.echo(f"Starting embedded PostgreSQL in {settings.data_dir / 'pgdata'}")
        embedded.postgres = start_postgres(settings.data_dir)
        database_url = embedded.database_url()
    if redis_url is None:
        click.echo(f"Starting embedded Redis in {settings.data_dir / 'redis'}")
        embedded.redis = start_redis(settings.data_dir)
        redis_url = embedded.redis_url
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_URL"] = redis_url
    return settings.with_services(database_url, redis_url), embedded


def _alembic(settings: Settings) -> Any:
    from advanced_alchemy.alembic.commands import AlembicCommands

    from panels.platform.db import migration_config

    assert settings.database_url is not None
    return AlembicCommands(sqlalchemy_config=migration_config(settings.database_url))


@click.group()
def main() -> None:
    """Panels service commands."""


@main.command()
@click.option("--host", default=None, help="Listen address (default HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Listen port (default PORT or 3001).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option("--reload", is_flag=True, help="Restart on code changes (development).")
def serve(host: str | None, port: int | None, workers: int, reload: bool) -> None:
    """Apply migrations and serve the API (embedded PostgreSQL/Redis when no URLs are set)."""
    import uvicorn

    from panels.app import create_app
    from panels.platform.observability import configure_logging

    base = _settings()
    try:
        base.check_ready_to_serve()
    except SettingsError as exc:
        click.echo(f"panels: configuration error: {exc}", err=True)
        sys.exit(2)
    settings, embedded = _with_services(base)
    # The server re-raises SIGTERM once it has drained; exiting through SystemExit instead of
    # dying on the signal lets the embedded PostgreSQL and Redis stop with the process.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    configure_logging(settings)
    _alembic(settings).upgrade("head")
    # Built once here so that a broken app stops the process instead of every worker
    # failing to start while the server waits for them.
    create_app(settings)
    if workers > 1:
        metrics_dir = settings.data_dir / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    host = host or settings.host
    port = port or settings.port
    url = f"http://{host}:{port}"
    click.echo(f"Panels on {url}  docs: {url}/docs  health: {url}/health")
    if not settings.is_production:
        click.echo(
            "A token for trying it: uv run panels token --tenant demo --user alice --role admin"
        )
    uvicorn.run(
        "panels.app:create_served_app",
        factory=True,
        host=host,
        port=port,
        workers=None if reload else workers,
        reload=reload,
        reload_dirs=["services"] if reload else None,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=20,
        timeout_keep_alive=30,
        ws="panels.platform.websocket_server:PerMessageDeflateProtocol",
    )
    del embedded  # the embedded servers stop only after the server has shut down


@main.command()
def worker() -> None:
    """Run syncs (and other background jobs) without serving the API.

    `panels serve` runs a worker in each server process unless IN_PROCESS_WORKER=false; run
    this alone to scale syncs apart from requests. Stops on SIGTERM or SIGINT once the jobs in
    hand are done.
    """
    import asyncio

    from panels.app import create_app
    from panels.sync.worker import sync_worker

    settings, embedded = _with_services(_settings())
    runtime = create_app(settings).state.runtime
    jobs = sync_worker(runtime)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, jobs.stop)
        try:
            await jobs.run_until_stopped()
        finally:
            await runtime.redis.aclose()
            await runtime.hot_redis.aclose()

    click.echo("Panels worker: running syncs")
    asyncio.run(run())
    del embedded


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


@main.group()
def db() -> None:
    """Database migrations."""


@db.command()
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Apply migrations up to REVISION."""
    settings, _embedded = _with_services(_settings())
    _alembic(settings).upgrade(revision)


@db.command()
@click.argument("revision", default="-1")
def downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (default: one step)."""
    settings, _embedded = _with_services(_settings())
    _alembic(settings).downgrade(revision)


@db.command()
def current() -> None:
    """Print the database's current revision."""
    settings, _embedded = _with_services(_settings())
    _alembic(settings).current(verbose=True)


@db.command()
@click.option("-m", "--message", required=True)
def revision(message: str) -> None:
    """Create an empty, date-prefixed revision file to fill in."""
    from datetime import UTC, datetime

    settings, _embedded = _with_services(_settings())
    stamp = datetime.now(UTC).strftime("%Y%m%d_%H%M")
    _alembic(settings).revision(message=message, rev_id=stamp)


@main.command()
@click.option("--tenant", required=True)
@click.option("--user", required=True)
@click.option("--email", default=None)
@click.option(
    "--role", type=click.Choice(["admin", "builder", "user"]), default="user", show_default=True
)
@click.option("--ttl", default="1h", show_default=True, help="Lifetime: 30m, 1h, 7d…")
def token(tenant: str, user: str, email: str | None, role: str, ttl: str) -> None:
    """Print a signed token for the configured secret (development and tests)."""
    from panels.platform.auth import mint_token

    match = _TTL.match(ttl)
    if match is None:
        raise click.BadParameter("use a number and s, m, h or d, such as 1h", param_hint="--ttl")
    lifetime = timedelta(**{_TTL_UNITS[match.group(2)]: int(match.group(1))})
    settings = _settings()
    click.echo(
        mint_token(settings.jwt, tenant=tenant, user=user, email=email, role=role, ttl=lifetime)  # type: ignore[arg-type]
    )


@main.group()
def users() -> None:
    """Built-in users (log in with `POST /api/auth/login`)."""


@users.command("create")
@click.option("--tenant", required=True)
@click.option("--email", required=True)
@click.option(
    "--role", type=click.Choice(["admin", "builder", "user"]), default="user", show_default=True
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_user(tenant: str, email: str, role: str, password_stdin: bool) -> None:
    """Create a user (the first admin of a tenant, say); asks for the password."""
    import asyncio

    from panels.identity.commands import UserNotCreated, check_new_user
    from panels.identity.commands import create_user as create

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        check_new_user(tenant, email, password)
    except UserNotCreated as exc:
        raise click.ClickException(str(exc)) from None
    settings, _embedded = _with_services(_settings())
    _alembic(settings).upgrade("head")
    assert settings.database_url is not None
    try:
        user_id = asyncio.run(create(settings.database_url, tenant, email, password, role))
    except UserNotCreated as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"User {user_id} ({email.lower()}, {role}) created in tenant {tenant}.")


@main.command()
@click.option("--url", default=None, help="The running service (default: HOST and PORT).")
def seed(url: str | None) -> None:
    """Make the demo tenant's panel of 10,000 synthetic patients through the running service."""
    import asyncio

    import httpx
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table

    from panels.platform.auth import mint_token
    from panels.seed import DEMO_TENANT, PATIENTS, SeedError, build_demo, first_rows

    settings = _settings()
    if settings.jwt.jwks_url:
        raise click.ClickException("seed signs its own token: unset JWT_JWKS_URL or use JWT_SECRET")
    listens_everywhere = settings.host in ("0.0.0.0", "::")  # noqa: S104  # not a bind
    host = "127.0.0.1" if listens_everywhere else settings.host
    base_url = url or f"http://{host}:{settings.port}"
    token = mint_token(
        settings.jwt, tenant=DEMO_TENANT, user="demo-admin", role="admin", ttl=timedelta(days=1)
    )
    console = Console()

    async def run() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=90) as client:
            try:
                await client.get("/health")
            except httpx.TransportError:
                raise click.ClickException(
                    f"no service at {base_url}: start it with `uv run panels serve`"
                ) from None
            columns = [TextColumn("{task.description:<32}"), BarColumn(), MofNCompleteColumn()]
            with Progress(*columns, console=console) as bar:
                tasks: dict[str, Any] = {}

                def progress(step: str, done: int) -> None:
                    if step not in tasks:
                        tasks[step] = bar.add_task(step, total=PATIENTS)
                    bar.update(tasks[step], completed=done)

                demo = await build_demo(client, progress)
            console.print(
                f"Demo panel {demo.panel_id} in tenant '{DEMO_TENANT}': "
                f"{demo.records_synced:,} patients synced, {demo.scores_pushed:,} risk scores "
                f'pushed; published view {demo.view_id} "High risk first".'
            )
            page = await first_rows(client, demo.view_id)
            if page["rows"]:
                columns = page["columns"]
                title = f"First rows of {page['total']:,}"
                table = Table("id", *[column["name"] for column in columns], title=title)
                for row in page["rows"]:
                    values = [row["values"][str(column["id"])] for column in columns]
                    table.add_row(row["id"], *["" if v is None else str(v) for v in values])
                console.print(table)
        console.print(f"Panel:  {base_url}/api/panels/{demo.panel_id}")
        console.print(f"Docs:   {base_url}/docs")
        console.print(f"Token (admin of '{DEMO_TENANT}', 24 h):")
        click.echo(token)  # unwrapped, so it can be copied whole

    try:
        asyncio.run(run())
    except SeedError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
def openapi() -> None:
    """Print the OpenAPI document (no database needed)."""
    from panels.app import create_app

    settings = _settings().with_services("postgresql://localhost/unused", "redis://localhost:6379")
    app = create_app(settings)
    document = msgspec.json.encode(app.openapi_schema.to_schema())
    click.echo(msgspec.json.format(document, indent=2).decode())
