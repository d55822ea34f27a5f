"""A bare Litestar app that does the least work each service scenario could do: the ceilings.

Served exactly like the service (uvicorn with uvloop and httptools, the same worker count,
host and keep-alive, no access log), so the ratio service/ceiling shows what the service's own
layers (auth, middleware, ORM, cache, change log, logging) cost on top of the unavoidable part:

- `GET /ceiling/json`: a constant JSON document of a panel's size and shape (the runner hands
  it a real response body of the service, `CEILING_JSON_FILE`).
- `GET /ceiling/select/{id}`: one asyncpg `SELECT … FROM panel WHERE id = $1`, encoded to the
  panel's JSON shape.
- `POST /ceiling/insert`: decode the JSON body, one asyncpg `INSERT … RETURNING` into the scratch
  table `bench_ceiling_insert` (same columns and indexes as `panel`), encode the row, 201.

The asyncpg pool is created per worker in the lifespan, with the service's pool size
(`CEILING_POOL_SIZE`, default 10). Connections are made as the URL's own user.

Run it with `python -m benchmarks.ceiling_app --port 8001 --workers 2` and
`CEILING_DATABASE_URL` set (the runner does this).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import msgspec
from litestar import Litestar, MediaType, Request, Response, get, post

INSERT_TABLE = "bench_ceiling_insert"
_COLUMNS = (
    "id, tenant_id, user_id, name, description, cohort_rule::text, metadata::text, "
    "created_at, updated_at"
)
_SELECT = f"SELECT {_COLUMNS} FROM panel WHERE id = $1"
_INSERT = (
    f"INSERT INTO {INSERT_TABLE} (tenant_id, user_id, name, description, cohort_rule, metadata) "
    f"VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb) RETURNING {_COLUMNS}"
)
_DEFAULT_RULE = b'{"logic":"AND","conditions":[]}'
_NOT_FOUND = b'{"statusCode":404,"error":"Not Found","message":"Panel not found"}'


class PanelOut(msgspec.Struct, rename="camel"):
    """The service's panel shape; the jsonb columns pass through as raw JSON text."""

    id: int
    name: str
    description: str | None
    tenant_id: str
    user_id: str
    cohort_rule: msgspec.Raw
    metadata: msgspec.Raw
    created_at: str
    updated_at: str


def _timestamp(value: datetime) -> str:
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _encode(row: asyncpg.Record) -> bytes:
    return msgspec.json.encode(
        PanelOut(
            id=row[0],
            tenant_id=row[1],
            user_id=row[2],
            name=row[3],
            description=row[4],
            cohort_rule=msgspec.Raw(row[5].encode()),
            metadata=msgspec.Raw(row[6].encode()),
            created_at=_timestamp(row[7]),
            updated_at=_timestamp(row[8]),
        )
    )


def _constant_body() -> bytes:
    path = os.environ.get("CEILING_JSON_FILE")
    if path:
        return Path(path).read_bytes()
    now = _timestamp(datetime.now(UTC))
    return msgspec.json.encode(
        PanelOut(
            id=1,
            name="Discharge planning ward 7",
            description="Patients due for discharge within 48 hours",
            tenant_id="bench-tenant",
            user_id="bench-user",
            cohort_rule=msgspec.Raw(
                b'{"logic":"AND","conditions":[{"field":"age","operator":"gte","value":65}]}'
            ),
            metadata=msgspec.Raw(b'{"team":"ward-7"}'),
            created_at=now,
            updated_at=now,
        )
    )


def create_app() -> Litestar:
    database_url = os.environ["CEILING_DATABASE_URL"]
    pool_size = int(os.environ.get("CEILING_POOL_SIZE", "10"))
    constant = _constant_body()
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        state["pool"] = await asyncpg.create_pool(
            database_url, min_size=pool_size, max_size=pool_size
        )
        try:
            yield
        finally:
            await state["pool"].close()

    @get("/health", media_type=MediaType.JSON)
    async def health() -> bytes:
        return b'{"status":"ok"}'

    @get("/ceiling/json", media_type=MediaType.JSON)
    async def constant_json() -> bytes:
        return constant

    @get("/ceiling/select/{panel_id:int}", media_type=MediaType.JSON)
    async def select_one(panel_id: int) -> Response[bytes]:
        row = await state["pool"].fetchrow(_SELECT, panel_id)
        if row is None:
            return Response(_NOT_FOUND, status_code=404, media_type=MediaType.JSON)
        return Response(_encode(row), media_type=MediaType.JSON)

    @post("/ceiling/insert", media_type=MediaType.JSON)
    async def insert_one(request: Request[Any, Any, Any]) -> Response[bytes]:
        data = msgspec.json.decode(await request.body())
        rule = data.get("cohortRule")
        row = await state["pool"].fetchrow(
            _INSERT,
            "bench-ceiling",
            "bench-user",
            data.get("name", "New Panel"),
            data.get("description"),
            msgspec.json.encode(rule).decode() if rule is not None else _DEFAULT_RULE.decode(),
            msgspec.json.encode(data.get("metadata") or {}).decode(),
        )
        return Response(_encode(row), status_code=201, media_type=MediaType.JSON)

    return Litestar(
        route_handlers=[health, constant_json, select_one, insert_one],
        lifespan=[lifespan],
        openapi_config=None,
        logging_config=None,
        debug=False,
    )


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    # The same uvicorn settings as `panels serve` (services/panels/cli.py).
    uvicorn.run(
        "benchmarks.ceiling_app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=20,
        timeout_keep_alive=30,
    )


if __name__ == "__main__":
    main()
