"""Background jobs on pgqueuer: enqueued in the caller's transaction, run by workers.

- `enqueue` inserts the job through the session's own asyncpg connection, so the job and the
  rows the request wrote commit or roll back together. SQLAlchemy begins its transaction on
  the first statement: callers flush their own rows before enqueueing (else the job would be
  inserted outside any transaction and commit alone).
- A `dedupe_key` makes a second job for the same thing a no-op (`on_conflict="skip"`: a
  duplicate-key error would abort the caller's transaction); `enqueue` then returns None.
- `Worker` runs the registered `JobKind`s: each attempt under `asyncio.timeout`, a failed
  attempt retried with exponential backoff until `max_attempts`, after which the kind's
  `on_failure` records the outcome. A worker killed mid-job (`kill -9`) stops sending
  heartbeats; once `heartbeat_seconds` have passed, another worker picks the job up again.

The queue's schema is installed by the migrations (revision 20261130_0009).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import structlog
from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager, RetryRequested
from sqlalchemy.ext.asyncio import AsyncSession

from panels.platform.db import driver_connection

log = structlog.get_logger("panels.jobs")
RESTART_SECONDS = 5.0

BACKGROUND_PRIORITY = -1
"""The priority of jobs nobody waits for (index builds, recounts of totals): workers take them
after the jobs a caller may be waiting for (a sync with `?wait=true`). Measured: in a queue
holding many of them, a sync's wait of 60 s ran out before a worker took the sync."""

Attempt = Callable[[bytes, int], Awaitable[None]]
"""Runs one attempt of a job: its payload and the attempt's number (1-based)."""
Failure = Callable[[bytes, int, BaseException, bool], Awaitable[None]]
"""Told of a failed attempt: payload, attempt number, the error, and whether it was the last."""


@dataclass(frozen=True, slots=True)
class Periodic:
    """Work a worker does every `every_seconds` besides running jobs (queueing scheduled
    ones, say); every worker does it, so it must tolerate running twice at once."""

    name: str
    every_seconds: float
    run: Callable[[], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class JobKind:
    entrypoint: str
    run: Attempt
    on_failure: Failure
    timeout_seconds: float
    max_attempts: int = 3
    retry_seconds: float = 2.0

    def backoff(self, attempt: int) -> timedelta:
        """The wait before the attempt after `attempt`: retry_seconds, then times 4 each time."""
        return timedelta(seconds=self.retry_seconds * 4 ** (attempt - 1))


async def enqueue(
    session: AsyncSession,
    entrypoint: str,
    payload: bytes,
    *,
    dedupe_key: str | None = None,
    priority: int = 0,
    delay: timedelta | None = None,
) -> int | None:
    """Queue a job in the session's transaction; None when `dedupe_key` is already queued or
    running. Workers take queued jobs by `priority` (higher first), then in order, once
    `delay` has passed. The session must already be in a transaction (flush a row of your
    own first)."""
    if not session.in_transaction():
        raise RuntimeError("enqueue needs an open transaction: flush a row first")
    queries = Queries(AsyncpgDriver(await driver_connection(session)))
    [job_id] = await queries.enqueue(
        entrypoint, payload, priority, delay, dedupe_key=dedupe_key, on_conflict="skip"
    )
    return None if job_id is None else int(job_id)


def postgres_dsn(url: str) -> str:
    """A SQLAlchemy-style URL (`postgresql+asyncpg://`) as asyncpg wants it."""
    scheme, _, rest = url.partition("://")
    return f"postgresql://{rest}" if scheme.startswith("postgres") else url


class Worker:
    """Runs jobs of the given kinds until `stop()`; several workers may share one queue."""

    def __init__(
        self,
        database_url: str,
        kinds: Sequence[JobKind],
        *,
        periodic: Sequence[Periodic] = (),
        heartbeat_seconds: float = 30.0,
        concurrency: int = 4,
    ) -> None:
        self._dsn = postgres_dsn(database_url)
        self._kinds = list(kinds)
        self._periodic = list(periodic)
        self._heartbeat = timedelta(seconds=heartbeat_seconds)
        self._concurrency = concurrency
        self._manager: QueueManager | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run in the background of the current event loop (a server's in-process worker)."""
        self._task = asyncio.create_task(self.run_until_stopped())

    async def close(self, timeout_seconds: float = 20.0) -> None:
        """Stop, and wait (at most `timeout_seconds`) for the jobs in hand to finish."""
        self.stop()
        if self._task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout_seconds)

    async def run_until_stopped(self) -> None:
        """`run`, started again after a failure (the database restarting, say)."""
        while not self._stopping.is_set():
            try:
                await self.run()
            except Exception:
                log.exception("worker stopped by an error; restarting")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), RESTART_SECONDS)

    async def run(self) -> None:
        connection = await asyncpg.connect(
            self._dsn, server_settings={"application_name": "panels-worker"}
        )
        try:
            manager = QueueManager(Queries(AsyncpgDriver(connection)))
            for kind in self._kinds:
                manager.entrypoint(kind.entrypoint, accepts_context=False)(_executor(kind))
            self._manager = manager
            if self._stopping.is_set():
                return
            log.info("worker started", entrypoints=[k.entrypoint for k in self._kinds])
            loops = [asyncio.create_task(_repeat(p, self._stopping)) for p in self._periodic]
            try:
                await manager.run(
                    dequeue_timeout=timedelta(seconds=5),
                    batch_size=self._concurrency,
                    max_concurrent_tasks=2 * self._concurrency,
                    heartbeat_timeout=self._heartbeat,
                    log_aggregation_interval=timedelta(0),
                )
            finally:
                for loop in loops:
                    loop.cancel()
                await asyncio.gather(*loops, return_exceptions=True)
        finally:
            await connection.close()

    def stop(self) -> None:
        """Stop taking jobs; `run` returns once the jobs in hand have finished."""
        self._stopping.set()
        if self._manager is not None:
            self._manager.shutdown.set()


async def _repeat(periodic: Periodic, stopping: asyncio.Event) -> None:
    while not stopping.is_set():
        try:
            await periodic.run()
        except Exception:
            log.exception("periodic work failed", name=periodic.name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), periodic.every_seconds)


def _executor(kind: JobKind) -> Callable[[Job], Awaitable[None]]:
    async def execute(job: Job) -> None:
        payload = job.payload or b""
        attempt = job.attempts + 1
        try:
            async with asyncio.timeout(kind.timeout_seconds):
                await kind.run(payload, attempt)
        except Exception as exc:
            last = attempt >= kind.max_attempts
            log.warning(
                "job attempt failed",
                entrypoint=kind.entrypoint,
                job_id=int(job.id),
                attempt=attempt,
                error=type(exc).__name__,
                retrying=not last,
            )
            await kind.on_failure(payload, attempt, exc, last)
            if not last:
                raise RetryRequested(delay=kind.backoff(attempt)) from None

    return execute
