"""The rows benchmark through HTTP: a view of the 1,000,000-key panel read by 50 users at once.

    uv run python -m benchmarks.rows_http                    # 1,000,000 keys
    uv run python -m benchmarks.rows_http --records 20000 --duration 5   # a quick check

Loads the panel of `benchmarks/rows.py` (`rows_data.make_panel`), then serves it with
`panels serve` as production would (rate limit on, LOG_LEVEL=info, JSON logs, the index job
run by a `panels worker` of its own, started only once the view exists). As the panel's
builder it creates, through the API, the panel's 9 columns, grants every reader, and a view
with one filter (Ward = W3) and one sort (Risk desc). Then it measures:

(c) the view's first pages before the index exists (the first one computes the count);
(a) 50 users (wrk, one connection each) reading the view's first 20 pages, cache on;
(d) the view's CSV export through HTTP: rows/s and the growth of the serving worker's RSS;
(b) the view's pages as in (a), with the cache off (the service pointed at an unreachable
    Redis, as `benchmarks/run.py`'s cache-off scenarios do), last.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shlex
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from benchmarks.rows_data import TENANT, make_panel
from benchmarks.runner.common import DEAD_REDIS_URL, HOST, log
from benchmarks.runner.measure import rss_mb
from benchmarks.runner.services import Server, free_port, start_backing
from benchmarks.runner.wrk import ensure_wrk, run_wrk

USERS = 50
PAGES = 20
PAGE_SIZE = 50
BUILDER = "bench"  # the panel's owner in rows_data.make_panel
COLUMNS: list[dict[str, Any]] = [
    {"name": "Name", "type": "text", "sourceField": "name", "source": 0},
    {"name": "Born", "type": "date", "sourceField": "born", "source": 0},
    {"name": "Ward", "type": "text", "sourceField": "ward", "source": 0},
    {"name": "Risk", "type": "number", "sourceField": "riskScore", "source": 0},
    {"name": "Admitted", "type": "boolean", "sourceField": "admitted", "source": 0},
    {"name": "HR", "type": "number", "sourceField": "vitals.hr", "source": 1},
    {"name": "Doubled", "type": "number", "formula": "Risk * 2"},
    {"name": "Load", "type": "number", "formula": "Doubled + COALESCE(HR, 0)"},
    {"name": "Band", "type": "text", "formula": 'IF(Load > 150, "high", "low")'},
]


def postgres_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


class Stack:
    """The servers and the work directory, stopped and removed whatever happens."""

    def __init__(self, workdir: Path, backing: Any, secret: str, args: argparse.Namespace):
        self.workdir = workdir
        self.backing = backing
        self.secret = secret
        self.args = args
        self.panels_bin = str(Path(sys.executable).with_name("panels"))

    def env(self, name: str, redis_url: str, in_process_worker: bool) -> dict[str, str]:
        return {
            **{k: v for k, v in os.environ.items() if k not in ("RATE_LIMIT", "LOG_LEVEL")},
            "DATABASE_URL": self.backing.database_url,
            "REDIS_URL": redis_url,
            "JWT_SECRET": self.secret,
            "LOG_LEVEL": "info",
            "LOG_FORMAT": "json",
            "IN_PROCESS_WORKER": "true" if in_process_worker else "false",
            "PANELS_DATA_DIR": str(self.workdir / name),
            "PYTHONUNBUFFERED": "1",
        }

    def serve(self, stack: contextlib.ExitStack, name: str, redis_url: str) -> Server:
        port = free_port()
        argv = [self.panels_bin, "serve", "--workers", str(self.args.workers)]
        argv += ["--host", HOST, "--port", str(port)]
        env = self.env(name, redis_url, in_process_worker=False)
        server = Server(name, argv, env, port, self.workdir / f"{name}.log", self.args.workers)
        stack.callback(server.stop)
        server.start()
        server.wait_ready()
        return server

    def worker(self, stack: contextlib.ExitStack) -> Server:
        env = self.env("worker", self.backing.redis_url, in_process_worker=True)
        server = Server("worker", [self.panels_bin, "worker"], env, 0, self.workdir / "w.log", 1)
        stack.callback(server.stop)
        server.start()
        return server


def tokens(secret: str) -> tuple[str, list[tuple[str, str]]]:
    """The builder's token, and (email, token) of each reader (role `user`): the 50 readers
    of the load, one reading alone and one exporting (each has its own rate limit)."""
    from panels.platform.auth import mint_token
    from panels.settings import Settings

    settings = Settings.from_env({"JWT_SECRET": secret})
    ttl = timedelta(hours=2)
    builder = mint_token(settings.jwt, tenant=TENANT, user=BUILDER, role="builder", ttl=ttl)
    readers = []
    for index in range(USERS + 2):  # the 50 of the load, one alone, one exporting
        email = f"reader{index}@bench.example"
        token = mint_token(
            settings.jwt, tenant=TENANT, user=f"reader{index}", email=email, role="user", ttl=ttl
        )
        readers.append((email, token))
    return builder, readers


def call(client: httpx.Client, token: str, method: str, url: str, body: Any = None) -> Any:
    response = client.request(method, url, json=body, headers={"authorization": f"Bearer {token}"})
    if response.status_code >= 300:
        raise RuntimeError(f"{method} {url}: {response.status_code} {response.text[:500]}")
    return response.json() if response.content else None


def make_view(base_url: str, builder: str, readers: list[tuple[str, str]], panel: Any) -> int:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        ids = []
        for column in COLUMNS:
            body = {k: v for k, v in column.items() if k != "source"}
            if "formula" in column:
                url = f"/api/panels/{panel.panel_id}/columns/calculated"
            else:
                url = f"/api/panels/{panel.panel_id}/columns/base"
                body["dataSourceId"] = panel.source_ids[column["source"]]
            ids.append(str(call(client, builder, "POST", url, body)["id"]))
        for email, _ in readers:
            grant = {"userEmail": email, "permission": "viewer"}
            call(client, builder, "POST", f"/api/acls/panel/{panel.panel_id}", grant)
        view = {"panelId": panel.panel_id, "name": "Ward W3 by risk", "visibleColumns": ids}
        view_id = int(call(client, builder, "POST", "/api/views", view)["id"])
        sorts = {"sorts": [{"columnName": "Risk", "direction": "desc"}]}
        call(client, builder, "PUT", f"/api/views/{view_id}/sorts", sorts)
        filters = {"filters": [{"columnName": "Ward", "operator": "eq", "value": "W3"}]}
        call(client, builder, "PUT", f"/api/views/{view_id}/filters", filters)
        call(client, builder, "POST", f"/api/views/{view_id}/publish")
        return view_id


def read_pages(
    base_url: str, token: str, view_id: int, pages: range
) -> list[tuple[str, float, str]]:
    """(which page, ms, x-cache) of each of these pages of the view, read one after another."""
    timings = []
    with httpx.Client(base_url=base_url, timeout=120) as client:
        for page in pages:
            started = time.perf_counter()
            response = client.get(
                f"/api/views/{view_id}/rows",
                params={"limit": PAGE_SIZE, "offset": page * PAGE_SIZE},
                headers={"authorization": f"Bearer {token}"},
            )
            elapsed = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            timings.append((f"page {page + 1}", elapsed, response.headers.get("x-cache", "")))
    return timings


async def wait_for_index(dsn: str, panel_id: int, within_s: float = 600) -> float:
    """Seconds until the panel has a valid view index (built by the worker)."""
    started = time.perf_counter()
    connection = await asyncpg.connect(dsn)
    try:
        while time.perf_counter() - started < within_s:
            ready = await connection.fetchval(
                "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname LIKE $1 AND i.indisvalid",
                f"ix_panel_row_{panel_id}_%",
            )
            if ready:
                return time.perf_counter() - started
            await asyncio.sleep(0.2)
    finally:
        await connection.close()
    raise RuntimeError("the view's index was not built in time")


def read_load(
    wrk: str,
    server: Server,
    readers: list[tuple[str, str]],
    view_id: int,
    args: Any,
) -> dict[str, Any]:
    rows = [
        f"/api/views/{view_id}/rows?limit={PAGE_SIZE}&offset={page * PAGE_SIZE}\t{token}"
        for page in range(PAGES)
        for _, token in readers[:USERS]
    ]
    # Spread users over pages: consecutive requests are other users on other pages.
    rows = rows[::7] + [row for index, row in enumerate(rows) if index % 7]
    return run_wrk(
        wrk,
        server.base_url,
        "get_rotating",
        rows,
        server.log_path.parent,
        duration=args.duration,
        connections=USERS,
    )


def export(server: Server, token: str, view_id: int) -> dict[str, Any]:
    """Stream the view's CSV, sampling the serving workers' RSS every 20 ms."""
    pids = server.worker_pids()
    before = {pid: rss_mb(pid) or 0.0 for pid in pids}
    peak = dict(before)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid in pids:
                peak[pid] = max(peak[pid], rss_mb(pid) or 0.0)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines = 0
    size = 0
    started = time.perf_counter()
    with (
        httpx.Client(base_url=server.base_url, timeout=600) as client,
        client.stream(
            "GET",
            f"/api/views/{view_id}/rows.csv",
            headers={"authorization": f"Bearer {token}"},
        ) as response,
    ):
        response.raise_for_status()
        for chunk in response.iter_bytes():
            lines += chunk.count(b"\n")
            size += len(chunk)
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    growth = max(peak[pid] - before[pid] for pid in pids)
    rows = lines - 1  # the header
    return {
        "rows": rows,
        "seconds": elapsed,
        "rows_per_s": rows / elapsed,
        "rss_mb": growth,
        "bytes": size,
    }


def summary(figures: dict[str, Any]) -> str:
    seconds = figures["duration_us"] / 1e6
    latency = figures["latency_us"]
    errors = sum(figures["errors"].values())
    return (
        f"{figures['requests'] / seconds:,.0f} req/s, p50 {latency['p50'] / 1000:.1f} ms, "
        f"p99 {latency['p99'] / 1000:.1f} ms, {figures['requests']:,} requests, "
        f"errors {errors} ({figures['errors']})"
    )


def run(args: argparse.Namespace, workdir: Path) -> None:
    wrk = ensure_wrk()
    with contextlib.ExitStack() as stack:
        backing = start_backing(stack, workdir)
        from benchmarks.rows_data import database

        url = stack.enter_context(database(workdir, backing.database_url))
        dsn = postgres_dsn(url)

        async def load() -> Any:
            owner = await asyncpg.connect(dsn, server_settings={"app.maintenance": "on"})
            try:
                panel = await make_panel(owner, args.records)
                await owner.execute(
                    "INSERT INTO resource_grant (tenant_id, resource_type, resource_id, "
                    "user_email, permission) VALUES ($1, 'panel', $2, $3, 'owner')",
                    TENANT,
                    panel.panel_id,
                    BUILDER,
                )
                return panel
            finally:
                await owner.close()

        started = time.perf_counter()
        panel = asyncio.run(load())
        log(f"loaded {args.records:,} keys in {time.perf_counter() - started:.1f} s")
        secret = secrets.token_urlsafe(48)
        servers = Stack(workdir, backing, secret, args)
        builder, readers = tokens(secret)
        cached = servers.serve(stack, "service", backing.redis_url)
        view_id = make_view(cached.base_url, builder, readers, panel)
        log(f"view {view_id} made; reading it before its index exists")
        before_index = read_pages(cached.base_url, readers[0][1], view_id, range(4))
        for what, ms, cache in before_index:
            log(f"(c) before the index: {what} {ms:.0f} ms ({cache})")
        servers.worker(stack)
        built = asyncio.run(wait_for_index(dsn, panel.panel_id))
        log(f"index ready {built:.1f} s after the worker started")
        results: dict[str, Any] = {"before_index": before_index, "index_wait_s": built}
        # Pages not read yet, with the count cached: each miss runs the page's query only.
        indexed = read_pages(cached.base_url, readers[0][1], view_id, range(4, PAGES))
        for what, ms, cache in indexed:
            log(f"with the index, count cached: {what} {ms:.0f} ms ({cache})")
        results["indexed_misses"] = indexed
        results["cache_on"] = read_load(wrk, cached, readers, view_id, args)
        log(f"(a) cache on: {summary(results['cache_on'])}")
        # The same pages read one after another by a reader of their own (the 50 may have
        # spent much of their rate limit): a cached page's latency without the queue.
        hits = read_pages(cached.base_url, readers[USERS][1], view_id, range(PAGES))
        results["cache_hits_alone"] = hits
        log(f"(a) cached pages, one reader alone: {sorted(round(ms, 1) for _, ms, _ in hits)}")
        # Before the cache-off run: its requests cut off by wrk's timeout leave their
        # statements running in PostgreSQL for a while.
        results["export"] = export(cached, readers[USERS + 1][1], view_id)
        log(f"(d) export: {results['export']}")
        uncached = servers.serve(stack, "service-cache-off", DEAD_REDIS_URL)
        results["cache_off"] = read_load(wrk, uncached, readers, view_id, args)
        log(f"(b) cache off: {summary(results['cache_off'])}")
        results["load_average"] = os.getloadavg()
        log(f"load average {results['load_average']}")
        for key in ("cache_on", "cache_off"):
            results[key].pop("wrk_output", None)
        print(json.dumps(results, indent=1, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=2, help="panels serve --workers")
    args = parser.parse_args()
    log(shlex.join(["uv", "run", "python", "-m", "benchmarks.rows_http", *sys.argv[1:]]))
    workdir = Path(tempfile.mkdtemp(prefix="pbench-rows-http-"))
    try:
        run(args, workdir)
    finally:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
