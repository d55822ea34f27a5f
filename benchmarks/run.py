"""One command that benchmarks the Panels service against bare-Litestar ceilings.

    uv run python -m benchmarks.run [--workers 2] [--connections 64] [--duration 10] ...

It starts real PostgreSQL and Redis (embedded unless DATABASE_URL / REDIS_URL are set), seeds
tenants and panels, serves the API with `panels serve --workers N`, drives it with wrk, serves
the ceilings (benchmarks/ceiling_app.py) the same way, measures change delivery to WebSocket
clients, and writes benchmarks/results/latest.md and latest.json. Everything it starts is
stopped again, also on Ctrl-C or an error. The work is done by the package benchmarks/runner/;
see benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

from benchmarks.runner.common import (
    API_PANELS_PER_TENANT,
    BENCH_DIR,
    GRANTS_PER_PANEL,
    SCENARIO_KEYS,
    WRK_THREADS,
    log,
)
from benchmarks.runner.session import run
from benchmarks.runner.wrk import ensure_wrk


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
        "--users",
        type=int,
        default=100,
        help="ordinary users (role user) and builders per tenant the requests rotate over "
        "(default 100 of each)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="the service's LOG_LEVEL (default info, production's: one JSON access log line "
        "per request)",
    )
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=None,
        help="the service's RATE_LIMIT per user and minute (default: production's default; "
        "0 turns it off)",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIO_KEYS),
        help="comma-separated service scenarios to run (default all: "
        f"{','.join(SCENARIO_KEYS)}); each brings its ceiling",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=BENCH_DIR / "results",
        help="results folder (default benchmarks/results)",
    )
    parser.add_argument(
        "--ws-clients",
        type=int,
        default=1000,
        help="WebSocket clients of the realtime scenario (default 1000; 0 skips it)",
    )
    parser.add_argument(
        "--ws-changes",
        type=int,
        default=20,
        help="changes the realtime scenario makes (default 20)",
    )
    parser.add_argument(
        "--ws-interval-ms",
        type=int,
        default=200,
        help="milliseconds between those changes (default 200)",
    )
    parser.add_argument(
        "--ws-processes",
        type=int,
        default=4,
        help="client processes the WebSocket clients are spread over (default 4)",
    )
    args = parser.parse_args(argv)
    args.scenarios = [key for key in args.scenarios.split(",") if key]
    unknown = sorted(set(args.scenarios) - set(SCENARIO_KEYS))
    if unknown or not args.scenarios:
        parser.error(f"--scenarios: unknown {', '.join(unknown)}; choose from {SCENARIO_KEYS}")
    if args.users < GRANTS_PER_PANEL:
        parser.error(f"--users must be at least {GRANTS_PER_PANEL}")
    if args.connections < WRK_THREADS:
        parser.error(f"--connections must be at least {WRK_THREADS}")
    if args.tenants < 1 or args.panels < args.tenants * (API_PANELS_PER_TENANT + 10):
        parser.error("--panels must allow at least 14 panels per tenant")
    if args.ws_clients < 0 or args.ws_changes < 1 or args.ws_processes < 1:
        parser.error("--ws-clients must be >= 0, --ws-changes and --ws-processes >= 1")
    if args.ws_interval_ms < 0:
        parser.error("--ws-interval-ms must be >= 0")
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


if __name__ == "__main__":
    sys.exit(main())
