"""One whole run, in order: databases, servers, seed, scenarios, results."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.runner.common import (
    API_PANELS_PER_TENANT,
    CEILING_TABLE,
    DEAD_REDIS_URL,
    HOST,
    POST_BODY,
    SCENARIO_KEYS,
    TARGETS,
    WRK_THREADS,
    log,
)
from benchmarks.runner.httpclient import Http, cache_headers
from benchmarks.runner.realtime import RealtimeSettings, measure_realtime
from benchmarks.runner.report import build_report, machine_info, ratios
from benchmarks.runner.scenarios import Bench, Scenario
from benchmarks.runner.seed import (
    Tokens,
    builder_name,
    database_execute,
    postgres_version,
    remove_seed,
    seed,
    user_name,
)
from benchmarks.runner.services import (
    Backing,
    Server,
    free_port,
    plain_url,
    redis_delete_prefix,
    redis_publish_calls,
    redis_stats,
    redis_version,
    start_backing,
)

CACHE_TTL = 3600
ORDER = [*SCENARIO_KEYS, "ceiling_json", "ceiling_select", "ceiling_insert"]


class Session:
    """What the steps of a run share: settings, the stack of clean-ups, databases, tokens."""

    def __init__(self, args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
        from panels.platform.auth import mint_token
        from panels.settings import Settings

        self.args = args
        self.stack = stack
        self.workdir = Path(tempfile.mkdtemp(prefix="pbench-"))
        stack.callback(shutil.rmtree, self.workdir, ignore_errors=True)
        self.backing: Backing = start_backing(stack, self.workdir)
        self.backing.postgres_version = asyncio.run(postgres_version(self.backing.database_url))
        self.backing.redis_version = redis_version(self.backing.redis_url)

        run_prefix = f"bench-{secrets.token_hex(3)}-"
        self.tenants = [f"{run_prefix}t{i + 1}" for i in range(args.tenants)]
        url = self.backing.database_url
        if not self.backing.embedded_postgres:
            stack.callback(lambda: asyncio.run(remove_seed(url, run_prefix)))
        if not self.backing.embedded_redis:
            stack.callback(redis_delete_prefix, self.backing.redis_url, f"panels:{run_prefix}")

        self.secret = os.environ.get("JWT_SECRET") or secrets.token_urlsafe(48)
        self.panels_bin = str(Path(sys.executable).with_name("panels"))
        settings = Settings.from_env(self.service_env("tokens", self.backing.redis_url))
        self.rate_limit = settings.rate_limit_per_minute

        def minted(tenant: str, name: str, role: str) -> str:
            ttl = timedelta(hours=6)
            return mint_token(settings.jwt, tenant=tenant, user=name, role=role, ttl=ttl)

        # Ordinary callers, as in production: users read through their grants (admins would
        # skip the permission SQL), builders create panels.
        self.tokens = Tokens(
            users={
                t: [minted(t, user_name(k), "user") for k in range(args.users)]
                for t in self.tenants
            },
            builders={
                t: [minted(t, builder_name(k), "builder") for k in range(args.users)]
                for t in self.tenants
            },
        )

    def service_env(self, name: str, redis_url: str) -> dict[str, str]:
        limit = self.args.rate_limit
        rate_limit = {} if limit is None else {"RATE_LIMIT": str(limit)}
        return {
            **{k: v for k, v in os.environ.items() if k not in ("RATE_LIMIT", "LOG_LEVEL")},
            **rate_limit,
            "DATABASE_URL": self.backing.database_url,
            "REDIS_URL": redis_url,
            "JWT_SECRET": self.secret,
            "LOG_LEVEL": self.args.log_level,
            "LOG_FORMAT": "json",
            "CACHE_TTL_SECONDS": str(CACHE_TTL),
            "PANELS_DATA_DIR": str(self.workdir / name),
            "PYTHONUNBUFFERED": "1",
        }

    def start(self, server: Server) -> Server:
        self.stack.callback(server.stop)
        server.start()
        server.wait_ready()
        log(f"{server.name} ready on {server.base_url}, workers {server.worker_pids()}")
        return server

    def service(self, name: str, redis_url: str) -> Server:
        port = free_port()
        argv = [self.panels_bin, "serve", "--workers", str(self.args.workers)]
        argv += ["--host", HOST, "--port", str(port)]
        env = self.service_env(name, redis_url)
        log_path = self.workdir / f"{name}.log"
        return self.start(Server(name, argv, env, port, log_path, self.args.workers))

    def ceiling(self, constant_file: Path) -> Server:
        """The bare Litestar app, with its scratch table (dropped again at the end)."""
        url = self.backing.database_url
        asyncio.run(
            database_execute(
                url,
                f"DROP TABLE IF EXISTS {CEILING_TABLE}",
                f"CREATE TABLE {CEILING_TABLE} (LIKE panel INCLUDING ALL)",
            )
        )
        self.stack.callback(
            lambda: asyncio.run(database_execute(url, f"DROP TABLE IF EXISTS {CEILING_TABLE}"))
        )
        port = free_port()
        argv = [sys.executable, "-m", "benchmarks.ceiling_app", "--host", HOST]
        argv += ["--port", str(port), "--workers", str(self.args.workers)]
        env = {
            **os.environ,
            "CEILING_DATABASE_URL": plain_url(url),
            "CEILING_POOL_SIZE": "10",
            "CEILING_JSON_FILE": str(constant_file),
            "PYTHONUNBUFFERED": "1",
        }
        log_path = self.workdir / "ceiling.log"
        return self.start(Server("ceiling", argv, env, port, log_path, self.args.workers))


def run(args: argparse.Namespace, command: str, wrk: str, stack: contextlib.ExitStack) -> None:
    started = time.monotonic()
    machine = machine_info(wrk)
    session = Session(args, stack)
    backing, tokens, tenants = session.backing, session.tokens, session.tenants
    wanted = set(args.scenarios)
    bench = Bench(
        wrk,
        session.workdir,
        backing,
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
    )
    checks: dict[str, Any] = {}

    # 1. The service with its cache off (Redis at a closed port: the cache fails open).
    nocache = session.service("service-cache-off", DEAD_REDIS_URL)
    seeded, rows = seed(backing.database_url, nocache.port, tokens, args.panels, args.read_ids)
    read, read_rows, list_rows = rows.read, rows.read_rows, rows.list_rows

    client = Http(nocache.port)
    first_path, first_token = read_rows[0].split("\t")
    status, _, panel_body = client.request("GET", first_path, first_token)
    if status != 200:
        raise RuntimeError(f"GET one panel answered {status}: {panel_body[:300]!r}")
    constant_file = session.workdir / "panel.json"
    constant_file.write_bytes(panel_body)
    log(f"one panel is {len(panel_body)} bytes of JSON: {panel_body.decode()}")

    checks["nocache_sample"] = cache_headers(client, read_rows)
    if checks["nocache_sample"]["MISS"] != sum(checks["nocache_sample"].values()):
        raise RuntimeError(f"cache-off server did not answer MISS: {checks['nocache_sample']}")
    client.close()

    # 2. The ceilings: a bare Litestar app under the same uvicorn settings, up for the whole
    # run so that each service scenario is measured interleaved with its ceiling.
    ceiling = session.ceiling(constant_file)
    any_token = tokens.users[tenants[0]][0]
    bare = "bare Litestar"
    ceiling_json = Scenario(
        "ceiling_json",
        "ceiling: constant JSON",
        bare,
        "get_rotating",
        [f"/ceiling/json\t{any_token}"],
        "GET",
    )
    ceiling_select = Scenario(
        "ceiling_select",
        "ceiling: asyncpg SELECT by id",
        bare,
        "get_rotating",
        [
            f"/ceiling/select/{pid}\t{row.split(chr(9))[1]}"
            for (_, pid), row in zip(read, read_rows, strict=True)
        ],
        "GET",
    )
    ceiling_insert = Scenario(
        "ceiling_insert",
        "ceiling: asyncpg INSERT RETURNING",
        bare,
        "post_create",
        [f"/ceiling/insert\t{row.split(chr(9))[1]}" for row in rows.post_rows],
        "POST",
        POST_BODY,
    )

    off = "service (cache off)"
    get_uncached = Scenario(
        "get_uncached", "GET one panel, cache off", off, "get_rotating", read_rows, "GET"
    )
    if "get_uncached" in wanted:
        bench.measure_pair(nocache, get_uncached, ceiling, ceiling_select)
    if "list_uncached" in wanted:
        list_uncached = Scenario(
            "list_uncached", "GET list limit=50, cache off", off, "get_rotating", list_rows, "GET"
        )
        if "get_uncached" in wanted:
            bench.measure(nocache, list_uncached)
        else:
            bench.measure_pair(nocache, list_uncached, ceiling, ceiling_select)
    bench.record_rss("service (cache off)", nocache)
    checks["nocache_server_errors"] = nocache.error_summary()
    nocache.stop()

    # 3. The service with Redis.
    cached = session.service("service", backing.redis_url)
    client = Http(cached.port)
    log(f"warming the cache with {len(read_rows) + len(list_rows)} GETs")
    for row in read_rows + list_rows:
        path, token = row.split("\t")
        status, _, content = client.request("GET", path, token)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {content[:300]!r}")
    checks["cached_sample_before"] = cache_headers(client, read_rows)
    if checks["cached_sample_before"]["HIT"] != sum(checks["cached_sample_before"].values()):
        raise RuntimeError(f"warm cache did not answer HIT: {checks['cached_sample_before']}")

    if "get_cached" in wanted:
        # Only the service uses Redis: the stats taken after the warm-ups and after the pair
        # count the measured cached reads alone.
        before: dict[str, int] = {}
        bench.measure_pair(
            cached,
            Scenario(
                "get_cached", "GET one panel, cached", "service", "get_rotating", read_rows, "GET"
            ),
            ceiling,
            ceiling_json,
            before_run=lambda: before.update(redis_stats(backing.redis_url)),
        )
        after = redis_stats(backing.redis_url)
        checks["cached_run_redis_hits"] = after["hits"] - before["hits"]
        checks["cached_run_redis_misses"] = after["misses"] - before["misses"]
        requests_ = bench.scenarios["get_cached"]["requests"]
        # Each cached read is one script call whose entry GET is a hit; the version GET is a
        # hit only once the panel has been written. So hits >= requests means every read found
        # its entry.
        checks["cached_run_hit_ratio"] = round(
            min(1.0, checks["cached_run_redis_hits"] / max(requests_, 1)), 4
        )
    checks["cached_sample_after"] = cache_headers(client, read_rows)
    client.close()

    if "list_cached" in wanted:
        bench.measure(
            cached,
            Scenario(
                "list_cached",
                "GET list limit=50, cached",
                "service",
                "get_rotating",
                list_rows,
                "GET",
            ),
        )
    if "post_create" in wanted:
        bench.measure_pair(
            cached,
            Scenario(
                "post_create",
                "POST panel",
                "service",
                "post_create",
                rows.post_rows,
                "POST",
                POST_BODY,
            ),
            ceiling,
            ceiling_insert,
        )
    if "put_update" in wanted:
        bench.measure(
            cached,
            Scenario("put_update", "PUT panel", "service", "put_update", rows.put_rows, "PUT"),
        )
    writes_ended = (time.monotonic(), redis_publish_calls(backing.redis_url))
    checks["cached_server_breaker_trips"] = cached.count_log_lines("redis unavailable")
    checks["cached_server_errors"] = cached.error_summary()
    bench.record_rss("service", cached)

    # 4. Realtime: WebSocket clients of the same server, after its wrk scenarios (and after
    # its memory was read, so that figure stays comparable with runs without sockets). A
    # builder creates the panel, so owns it, subscribes to it and renames it.
    realtime = None
    if args.ws_clients > 0:
        realtime = measure_realtime(
            cached,
            backing,
            tokens.builders[tenants[0]][0],
            tenants[0],
            session.workdir,
            RealtimeSettings(
                clients=args.ws_clients,
                changes=args.ws_changes,
                interval_ms=args.ws_interval_ms,
                processes=args.ws_processes,
            ),
            writes_ended,
        )
    cached.stop()
    bench.record_rss("ceiling", ceiling)
    ceiling.stop()
    servers = (nocache, cached, ceiling)
    checks["shutdown"] = {s.name: s.stop_note or "stopped on SIGTERM" for s in servers}
    checks["shutdown_log_tails"] = {s.name: s.stop_log_tail for s in servers if s.stop_log_tail}

    scenarios = {key: bench.scenarios[key] for key in ORDER if key in bench.scenarios}
    data = {
        "command": command,
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "elapsed_s": round(time.monotonic() - started, 1),
        "settings": {
            "workers": args.workers,
            "connections": args.connections,
            "duration": args.duration,
            "warmup": args.warmup,
            "wrk_threads": WRK_THREADS,
            "log_level": args.log_level,
            "cache_ttl_seconds": CACHE_TTL,
            "rate_limit": session.rate_limit,
            "users_per_tenant": args.users,
            "scenarios": args.scenarios,
            "paired": "service scenarios with a ceiling run interleaved with it, A B B A",
        },
        "machine": machine,
        "loadavg_at_end": os.getloadavg(),
        "backing": backing.__dict__
        | {
            "database_url": "(embedded)" if backing.embedded_postgres else "(DATABASE_URL)",
            "redis_url": "(embedded)" if backing.embedded_redis else "(REDIS_URL)",
        },
        "seed": {
            "tenants": args.tenants,
            "panels_total": seeded.sql_rows + args.tenants * API_PANELS_PER_TENANT,
            "via_sql": seeded.sql_rows,
            "via_api": args.tenants * API_PANELS_PER_TENANT,
            "read_ids": len(read_rows),
            "put_ids": len(rows.put_rows),
            "panel_json_bytes": len(panel_body),
        },
        "scenarios": scenarios,
        "realtime": realtime,
        "ratios": ratios(scenarios),
        "targets": TARGETS,
        "rss_mb": bench.rss,
        "checks": checks,
    }
    markdown = build_report(data)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(data, indent=2) + "\n")
    (args.out / "latest.md").write_text(markdown)
    print()
    print(markdown)
    log(f"wrote {args.out / 'latest.md'} and {args.out / 'latest.json'}")
