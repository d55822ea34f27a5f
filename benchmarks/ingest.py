"""Ingest of 1,000,000 records, twice: through `POST …/records` or a `database` sync.

    uv run python -m benchmarks.ingest [--via records|database] [--records 1000000] [--workers 1]

Starts PostgreSQL and Redis (embedded in a temporary folder, or DATABASE_URL / REDIS_URL) and
a real `panels serve` process, creates a panel with a `custom` source, then pushes synthetic
patient records in NDJSON bodies just under 16 MiB, one request after another: first into an
empty source (every record inserted), then the same bodies again (every record unchanged, so
nothing is rewritten). Prints records/s of each pass (request time only; the bodies are built
before each request) and the server's peak RSS growth over its RSS before the first push,
sampled every 50 ms from /proc over all its worker processes. The CPU seconds of the service,
of PostgreSQL and of everything else on the machine during each pass tell a slow pass on a
busy machine from a slow service.

`--via database` measures a `database` source instead: the embedded PostgreSQL also listens on
127.0.0.1 (a source URL may not name a unix socket), a table of synthetic patients is made with
`generate_series` in a database of its own on that server, the service runs with
`ALLOW_PRIVATE_SOURCES=true`, and each pass is one sync (`?wait=true`, then `GET
/api/sync-jobs/{jobId}` until it has finished), timed from request to finish.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import http.client
import json
import os
import random
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks.runner.common import HOST, log
from benchmarks.runner.measure import CpuMeter, rss_mb
from benchmarks.runner.services import Server, free_port, plain_url, start_backing

MAX_BODY = 16 * 1024 * 1024
SOURCE_DATABASE = "bench_source"
SOURCE_QUERY = (
    'SELECT id, name, born, ward, risk_score AS "riskScore", admitted, hr, spo2 FROM patients'
)
SYNC_POLL_SECONDS = 0.2
WARDS = [f"W{n}" for n in range(1, 13)]
NAMES = ["Ada", "Bo", "Cy", "Di", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lia"]


def patient(n: int, rng: random.Random) -> bytes:
    record = {
        "id": f"MRN{n:08d}",
        "name": f"{rng.choice(NAMES)} {rng.choice(NAMES)}son",
        "born": f"{rng.randint(1930, 2020)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "ward": rng.choice(WARDS),
        "riskScore": round(rng.random() * 100, 2),
        "admitted": rng.random() < 0.3,
        "vitals": {"hr": rng.randint(50, 130), "spo2": rng.randint(85, 100)},
    }
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def bodies(records: int, seed: int) -> Iterator[tuple[bytes, int]]:
    """NDJSON bodies just under the route's limit, with their record counts; deterministic."""
    rng = random.Random(seed)
    lines: list[bytes] = []
    size = 0
    for n in range(records):
        line = patient(n, rng)
        if size + len(line) > MAX_BODY:
            yield b"".join(lines), len(lines)
            lines, size = [], 0
        lines.append(line)
        size += len(line)
    if lines:
        yield b"".join(lines), len(lines)


class RssSampler:
    """The peak of the summed VmRSS of the server's workers, sampled in a thread."""

    def __init__(self, server: Server, interval: float = 0.05) -> None:
        self.server = server
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def current(self) -> float:
        return sum(rss_mb(pid) or 0.0 for pid in self.server.worker_pids())

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def call(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    token: str,
    body: bytes,
    media_type: str = "application/json",
) -> dict[str, Any]:
    conn.request(
        method,
        path,
        body=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": media_type},
    )
    response = conn.getresponse()
    content = response.read()
    if response.status not in (200, 201, 202):
        raise RuntimeError(f"{method} {path}: {response.status} {content[:300]!r}")
    result: dict[str, Any] = json.loads(content)
    return result


def push_all(
    conn: http.client.HTTPConnection, url: str, token: str, records: int
) -> tuple[float, dict[str, int]]:
    """Seconds spent in requests, and the summed counts."""
    elapsed = 0.0
    totals: dict[str, int] = {}
    for body, count in bodies(records, seed=7):
        started = time.perf_counter()
        counts = call(conn, "POST", url, token, body, "application/x-ndjson")
        elapsed += time.perf_counter() - started
        assert counts["recordsProcessed"] == count, counts
        for name, value in counts.items():
            totals[name] = totals.get(name, 0) + value
    return elapsed, totals


async def make_source_table(database_url: str, records: int) -> str:
    """A database of its own with `patients` (as the owner, so `generate_series` is quick);
    the URL a `database` source names it by."""
    import asyncpg

    admin = await asyncpg.connect(plain_url(database_url))
    try:
        await admin.execute(f"CREATE DATABASE {SOURCE_DATABASE}")
    finally:
        await admin.close()
    source_url = plain_url(database_url).rsplit("/", 1)[0] + f"/{SOURCE_DATABASE}"
    owner = await asyncpg.connect(source_url)
    try:
        await owner.execute(
            """CREATE TABLE patients AS SELECT
                 'MRN' || lpad(n::text, 8, '0') AS id,
                 (ARRAY['Ada','Bo','Cy','Di','Eli','Fay'])[1 + n % 6] || ' '
                   || (ARRAY['Gus','Hana','Ivo','Jun','Kai','Lia'])[1 + n / 6 % 6] || 'son' AS name,
                 DATE '1930-01-01' + (n::bigint * 7919 % 32000)::int AS born,
                 'W' || (1 + n % 12) AS ward,
                 round((n * 37 % 10000) / 100.0, 2)::float8 AS risk_score,
                 n % 10 < 3 AS admitted,
                 50 + n % 81 AS hr,
                 85 + n % 16 AS spo2
               FROM generate_series(0, $1::int - 1) AS n""",
            records,
        )
        await owner.execute("ANALYZE patients")
    finally:
        await owner.close()
    return source_url


def sync_once(
    conn: http.client.HTTPConnection, url: str, token: str
) -> tuple[float, dict[str, int]]:
    """Seconds from the request until the job has finished, and its counts."""
    started = time.perf_counter()
    answer = call(conn, "POST", f"{url}?wait=true", token, b"")
    while "jobId" in answer and answer["status"] not in ("success", "error"):
        time.sleep(SYNC_POLL_SECONDS)
        answer = call(conn, "GET", f"/api/sync-jobs/{answer['jobId']}", token, b"")
    elapsed = time.perf_counter() - started
    if answer["status"] != "success":
        raise RuntimeError(f"sync failed: {answer}")
    names = ("recordsProcessed", "recordsInserted", "recordsUpdated", "recordsDeleted")
    return elapsed, {name: answer[name] for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--via", choices=("records", "database"), default="records")
    args = parser.parse_args()
    by_sync = args.via == "database"

    from panels.platform.auth import mint_token
    from panels.settings import Settings

    with contextlib.ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="pbench-ingest-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        backing = start_backing(stack, workdir, tcp=by_sync)
        secret = secrets.token_urlsafe(48)
        env = {
            **os.environ,
            "DATABASE_URL": backing.database_url,
            "REDIS_URL": backing.redis_url,
            "JWT_SECRET": secret,
            "RATE_LIMIT": "0",
            "LOG_LEVEL": "warning",
            "LOG_FORMAT": "json",
            "PANELS_DATA_DIR": str(workdir / "service"),
            "PYTHONUNBUFFERED": "1",
        }
        source_config: dict[str, Any] = {}
        if by_sync:
            log(f"creating {args.records:,} rows in {SOURCE_DATABASE}.patients")
            source_url = asyncio.run(make_source_table(backing.database_url, args.records))
            source_config = {"url": source_url, "query": SOURCE_QUERY}
            env["ALLOW_PRIVATE_SOURCES"] = "true"
        port = free_port()
        panels_bin = str(Path(sys.executable).with_name("panels"))
        argv = [panels_bin, "serve", "--workers", str(args.workers)]
        argv += ["--host", HOST, "--port", str(port)]
        server = Server("service", argv, env, port, workdir / "service.log", args.workers)
        stack.callback(server.stop)
        server.start()
        server.wait_ready()
        settings = Settings.from_env(env)
        token = mint_token(
            settings.jwt,
            tenant="bench-ingest",
            user="bench",
            role="builder",
            ttl=timedelta(hours=2),
        )
        conn = http.client.HTTPConnection(HOST, port, timeout=600)
        panel = call(conn, "POST", "/api/panels", token, b'{"name":"Ingest"}')
        source_body = {"type": args.via if by_sync else "custom", "config": source_config}
        source = call(
            conn,
            "POST",
            f"/api/panels/{panel['id']}/datasources",
            token,
            json.dumps(source_body).encode(),
        )
        source_path = f"/api/panels/{panel['id']}/datasources/{source['id']}"
        run_pass: Callable[[], tuple[float, dict[str, int]]]
        if by_sync:
            labels = ("first sync", "unchanged re-sync")
            run_pass = functools.partial(sync_once, conn, f"{source_path}/sync", token)
            unit = "one `database` sync"
        else:
            labels = ("first load", "unchanged re-push")
            run_pass = functools.partial(
                push_all, conn, f"{source_path}/records", token, args.records
            )
            unit = "16 MiB NDJSON requests"
        meter = CpuMeter()
        assert server.proc is not None
        meter.roots["service"] = server.proc.pid
        if backing.postgres_pid is not None:
            meter.roots["postgres"] = backing.postgres_pid
        with RssSampler(server) as sampler:
            time.sleep(0.2)
            baseline = sampler.current()
            log(f"server RSS before the first pass: {baseline:.1f} MB")
            results = []
            for label in labels:
                start = meter.snapshot()
                seconds, totals = run_pass()
                cpu = meter.since(start)
                rate = totals["recordsProcessed"] / seconds
                results.append((label, seconds, rate, cpu))
                log(f"{label}: {rate:,.0f} records/s ({seconds:.1f} s) {totals} CPU s {cpu}")
        growth = sampler.peak - baseline
        print()
        print(
            f"| pass ({args.records:,} records, {unit}) | seconds | records/s"
            " | CPU s: service | CPU s: PostgreSQL | CPU s: other work on the machine |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for label, seconds, rate, cpu in results:
            print(
                f"| {label} | {seconds:.1f} | {rate:,.0f} | {cpu['service']:.1f}"
                f" | {cpu.get('postgres', 0.0):.1f} | {cpu['others']:.1f} |"
            )
        print(f"\nserver peak RSS growth: {growth:.1f} MB (from {baseline:.1f} MB)")
        print("targets: >= 50,000 records/s, RSS growth < 150 MB")


if __name__ == "__main__":
    main()
