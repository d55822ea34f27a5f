"""What one round trip saves against three on a read without a session.

    uv run python -m benchmarks.read_round_trips [--reads 3000] [--rounds 2]

Against an embedded PostgreSQL under .panels/bench-reads (or DATABASE_URL, as its superuser):
a scratch table with the panel table's row-level security policy, read one row by id at a
time, sequentially, on one pooled connection of the request engine, alternately with
`read_in_tenant` (BEGIN with the settings, the prepared SELECT, COMMIT) and `read_at_once`
(the settings and a COPY of the row as JSON in one simple query). Prints, per read, the
client's CPU (`time.process_time`), the PostgreSQL backend's CPU (from /proc) and wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

import asyncpg

from panels.platform.db import APP_ROLE, request_engine
from panels.platform.embedded import start_postgres
from panels.platform.reads import read_at_once, read_in_tenant

TABLE = "bench_round_trips"
SELECT = f"SELECT id, name, meta FROM {TABLE} WHERE id = $1"
SELECT_AT_ONCE = f"SELECT json_build_array(id, name, meta)::text FROM {TABLE} WHERE id = {{}}"
SETUP = f"""
DROP TABLE IF EXISTS {TABLE};
CREATE TABLE {TABLE} (id bigint PRIMARY KEY, tenant_id text, name text, meta jsonb);
INSERT INTO {TABLE} SELECT n, 'bench', 'panel ' || n, '{{"team": "ward-7"}}'
  FROM generate_series(1, 1000) n;
ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {TABLE} FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON {TABLE}
  USING (tenant_id = current_setting('app.tenant_id', true));
GRANT SELECT ON {TABLE} TO {APP_ROLE};
"""


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(url: str, reads: int, rounds: int) -> None:
    plain = url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(plain)
    if not await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", APP_ROLE):
        await connection.execute(f"CREATE ROLE {APP_ROLE}")
    await connection.execute(SETUP)
    await connection.close()
    engine = request_engine(url, 1)
    backend: int = await read_in_tenant(
        engine, "bench", lambda c: c.fetchval("SELECT pg_backend_pid()")
    )
    try:
        for round_ in range(rounds):
            for name in ("read_in_tenant", "read_at_once"):
                cpu, pg, wall = time.process_time(), process_cpu(backend), time.perf_counter()
                for i in range(reads):
                    key = i % 1000 + 1
                    if name == "read_in_tenant":
                        row = await read_in_tenant(
                            engine, "bench", lambda c, k=key: c.fetchrow(SELECT, k)
                        )
                    else:
                        row = await read_at_once(engine, "bench", SELECT_AT_ONCE.format(key))
                    assert row
                cpu = time.process_time() - cpu
                pg = process_cpu(backend) - pg
                wall = time.perf_counter() - wall
                print(
                    f"round {round_} {name}: client CPU {1e6 * cpu / reads:.0f} µs/read, "
                    f"PostgreSQL backend CPU {1e6 * pg / reads:.0f} µs/read, "
                    f"wall {1e6 * wall / reads:.0f} µs/read"
                )
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL")
    if not url:  # stopped again when the process exits
        url = start_postgres(
            Path(__file__).resolve().parents[1] / ".panels" / "bench-reads"
        ).get_uri()
    asyncio.run(
        measure(url.replace("postgresql://", "postgresql+asyncpg://", 1), args.reads, args.rounds)
    )


if __name__ == "__main__":
    main()
