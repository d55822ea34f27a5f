"""The wrk scenarios: what each sends, how it is measured (alone or A B B A with its ceiling)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.runner.common import NPROC, log
from benchmarks.runner.measure import CpuMeter, rss_mb
from benchmarks.runner.services import Backing, Server
from benchmarks.runner.wrk import merge_figures, run_wrk


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


def cpu_meter(server: Server, backing: Backing) -> CpuMeter:
    """A meter over the server's process tree, PostgreSQL's and Redis's (when embedded)."""
    meter = CpuMeter()
    assert server.proc is not None
    meter.roots["server"] = server.proc.pid
    if backing.postgres_pid:
        meter.roots["postgres"] = backing.postgres_pid
    if backing.redis_pid:
        meter.roots["redis"] = backing.redis_pid
    return meter


class Bench:
    """Measures scenarios with wrk and keeps their results (and the workers' memory)."""

    def __init__(
        self,
        wrk: str,
        workdir: Path,
        backing: Backing,
        *,
        duration: int,
        warmup: int,
        connections: int,
    ) -> None:
        self.wrk = wrk
        self.workdir = workdir
        self.backing = backing
        self.duration = duration
        self.warmup = warmup
        self.connections = connections
        self.scenarios: dict[str, dict[str, Any]] = {}
        self.rss: dict[str, dict[str, float | None]] = {}

    def warm(self, server: Server, scenario: Scenario) -> None:
        if self.warmup > 0:
            run_wrk(
                self.wrk,
                server.base_url,
                scenario.script,
                scenario.rows,
                self.workdir,
                duration=self.warmup,
                connections=self.connections,
                body=scenario.body,
            )

    def slice_(self, server: Server, scenario: Scenario, seconds: int) -> dict[str, Any]:
        return run_wrk(
            self.wrk,
            server.base_url,
            scenario.script,
            scenario.rows,
            self.workdir,
            duration=seconds,
            connections=self.connections,
            body=scenario.body,
            meter=cpu_meter(server, self.backing),
        )

    def record(self, scenario: Scenario, parts: list[dict[str, Any]]) -> None:
        result = summarise(scenario, merge_figures(parts))
        self.scenarios[scenario.key] = result
        log(
            f"  {scenario.title}: {result['requests_per_s']:,.0f} req/s, "
            f"p50 {result['latency_ms']['p50']} ms, p99 {result['latency_ms']['p99']} ms, "
            f"errors {result['errors_total']}, other load {result['other_load_pct']}%"
        )
        if result["errors_total"]:
            log(f"  WARNING: {scenario.title} had errors: {result['errors']}")

    def measure(self, server: Server, scenario: Scenario) -> None:
        self.warm(server, scenario)
        log(f"measuring {scenario.title} ({self.duration}s)")
        self.record(scenario, [self.slice_(server, scenario, self.duration)])

    def measure_pair(
        self,
        server: Server,
        scenario: Scenario,
        ceiling_server: Server,
        ceiling: Scenario,
        before_run: Callable[[], Any] | None = None,
    ) -> None:
        """Service and ceiling in A B B A order, half the duration per slice.

        Both see the same background load on average (the machine is shared), so their
        ratio is fair even when other work comes and goes during the run.
        """
        self.warm(server, scenario)
        self.warm(ceiling_server, ceiling)
        if before_run is not None:
            before_run()
        first = self.duration // 2
        if first < 1:
            log(f"measuring {scenario.title} then {ceiling.title} ({self.duration}s each)")
            self.record(scenario, [self.slice_(server, scenario, self.duration)])
            self.record(ceiling, [self.slice_(ceiling_server, ceiling, self.duration)])
            return
        second = self.duration - first
        log(f"measuring {scenario.title} / {ceiling.title}, A B B A: {first}+{second}s each")
        a1 = self.slice_(server, scenario, first)
        b1 = self.slice_(ceiling_server, ceiling, first)
        b2 = self.slice_(ceiling_server, ceiling, second)
        a2 = self.slice_(server, scenario, second)
        self.record(scenario, [a1, a2])
        self.record(ceiling, [b1, b2])

    def record_rss(self, name: str, server: Server) -> None:
        self.rss[name] = {str(pid): rss_mb(pid) for pid in server.worker_pids()}
        log(f"{name} worker RSS: {self.rss[name]}")
