"""Fleet syncs in worker processes: `tenantdb fleet sync --processes P`, and every rollout
started through the admin API (`service/api/admin.py`).

A rollout is CPU work (the engine's introspection, diff and plan in Python, SQLite's own),
and one process is held to about one core by the GIL; in a server, that work would also
hold the event loop that answers sign-ins. With `ProcessSyncer(settings, P)` a rollout hands
chunks of tenants to P processes, each with its own runtime (backend, catalog connection,
hooks) syncing one tenant at a time (on sqld, which does the SQLite work, its share of the
job's concurrency) and writing a chunk's catalog rows in one batch; the
parent keeps the job's bookkeeping (cursor, counts, progress, saves), so resuming and
reporting work as in one process. A server's TenantService also hears what its workers did:
the catalog rows they wrote (into its cache, so a returning user's check stays on the fast
path) and their sync events (into its metrics), as if it had synced them itself.

Processes are spawned, not forked: the parent has threads (the event loop's executors) that
a fork would copy mid-lock. Each costs about half a second to start, so it pays off on large
fleets. The parent alone decides when they stop (the pool's shutdown lets each finish its
chunk): they ignore SIGINT, which Ctrl-C sends to a terminal's whole process group. One that
dies anyway stops the run (`SyncerGone`), its tenants left for a resume rather than failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import multiprocessing.util
import os
import signal
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Final

import msgspec
import structlog

from schema_registry import SyncResult
from service.catalog import TenantRecord
from service.config import Settings
from service.logs import configure_logging
from service.rollouts.model import Job
from service.rollouts.one_tenant import Done, SyncFailed, attempt, reason, sync_one, transient
from service.rollouts.syncing import SyncerGone
from service.tenants import SyncEvent, TenantService
from service.wiring import open_runtime

log = structlog.get_logger("tenantdb.fleet")

# Tenants per call to a worker: one round trip and one catalog write per chunk, not per
# tenant. A call costs the parent about 0.6 ms of CPU (the pool's threads and pipes, the
# chunk's bookkeeping), on the cores the workers need: 25 µs a tenant at chunks of 25, 6 at
# 100. Small enough that a kill loses little work (about 0.15 s a worker on a local
# fleet), progress stays smooth and a shutdown waits for little (each worker finishes the
# chunk it holds); a run's last tenants are shared out evenly (`syncing.share`).
CHUNK: Final = 100

# The worker process's runtime, opened once by `_start` and used by every `_sync` call.
_CHILD: dict[str, Any] = {}


class _Heard:
    """A worker's SyncObserver: the sync events of the chunk, sent back to the parent's."""

    def __init__(self) -> None:
        self.events: list[SyncEvent] = []

    def __call__(self, event: SyncEvent) -> None:
        # Without the steps (their SQL, the tables they make): an observer counts syncs,
        # and a chunk's events stay small to send.
        result = event.result
        slim = SyncResult(
            status=result.status,
            from_version=result.from_version,
            to_version=result.to_version,
            stamp=result.stamp,
            duration_ms=result.duration_ms,
        )
        self.events.append(msgspec.structs.replace(event, result=slim))

    def fast_path(self) -> None:
        """Never heard: a rollout checks its tenants itself, not through a sign-in."""


class _Options(msgspec.Struct, frozen=True):
    """How a worker runs: see `ProcessSyncer`'s arguments."""

    processes: int
    backup_always: bool
    nice: int
    heard: bool  # the parent hears the catalog rows and sync events (it has `tenants`)


def _start(settings: Settings, options: _Options) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us (see the docstring)
    if options.nice:
        os.nice(options.nice)
    configure_logging(settings.log_format, settings.log_level)
    loop = asyncio.new_event_loop()
    stack = contextlib.AsyncExitStack()
    # A rollout syncs each tenant once and never reuses a held stream; held ones would
    # keep a sqld connection and its namespace's files open for nothing (the sizing rule
    # budgets connections per server process, not per rollout worker).
    settings = msgspec.structs.replace(settings, sqld_held_streams=0)
    # This process's event loop serves nothing but its chunks: local SQLite work runs on it.
    backup = "always" if options.backup_always else None
    runtime = open_runtime(settings, backup=backup, inline=True)
    tenants = loop.run_until_complete(stack.enter_async_context(runtime))
    # Heard only for a parent that listens (a server's TenantService): the CLI's does not,
    # and the rows and events are 560 of the 770 bytes a tenant sent back (gathered,
    # encoded and decoded: about 2 µs a tenant between the two processes).
    heard = _Heard() if options.heard else None
    tenants.observer = heard
    _CHILD.update(loop=loop, tenants=tenants, stack=stack, heard=heard, processes=options.processes)
    # Run as the worker exits after the pool's shutdown: its connections (and sqld's HTTP
    # sessions) are closed rather than dropped.
    multiprocessing.util.Finalize(None, _stop, exitpriority=10)


def _stop() -> None:
    loop: asyncio.AbstractEventLoop | None = _CHILD.pop("loop", None)
    if loop is not None:
        loop.run_until_complete(_CHILD["stack"].aclose())
        loop.close()


class _Failed(msgspec.Struct, frozen=True):
    """A tenant's sync failed in the worker: why, and whether it is worth another try."""

    reason: str
    transient: bool


class _Chunk(msgspec.Struct, frozen=True):
    """What a worker sends back for a chunk: per tenant what it did or why it failed, the
    catalog rows it wrote, the sync events it heard. Sent as MessagePack bytes (`_CHUNK`):
    pickling these structs cost about 7 µs a tenant in the worker, and as much again in the
    parent, both on the cores the syncs need."""

    outcomes: list[Done | _Failed]
    written: list[TenantRecord]
    events: list[SyncEvent]


_CHUNK: Final = msgspec.msgpack.Decoder(_Chunk)
_encode: Final = msgspec.msgpack.Encoder().encode


def _sync(records: list[TenantRecord], job: Job) -> bytes:
    """Sync a chunk in the worker. Exceptions stay here (not every one of them could be
    sent): the parent gets each failure's reason and whether it is transient. The rows are
    written in one batch before it returns."""
    loop: asyncio.AbstractEventLoop = _CHILD["loop"]
    tenants: TenantService = _CHILD["tenants"]
    heard: _Heard | None = _CHILD["heard"]
    if heard is not None:
        heard.events = []

    async def chunk() -> list[Done | Exception]:
        tenants.catalog.learn(records)  # read by the parent just now: not read again here
        if tenants.backend.kind == "sqld":
            # Network-bound (sqld does the SQLite work): the job's concurrency, shared by
            # the workers, keeps that many tenants in flight, as one process on the
            # event loop did. A local sync is CPU-bound: one at a time per process.
            room = asyncio.Semaphore(math.ceil(job.concurrency / _CHILD["processes"]))

            async def one(record: TenantRecord) -> Done | Exception:
                async with room:
                    return await attempt(sync_one(tenants, record, job))

            results = list(await asyncio.gather(*(one(record) for record in records)))
        else:
            results = [await attempt(sync_one(tenants, record, job)) for record in records]
        try:
            await tenants.catalog.flush()
        except Exception as exc:  # synced but not recorded: a retry finds them current
            return [exc] * len(records)
        return results

    results = loop.run_until_complete(chunk())
    outcomes = [
        _Failed(reason(r), transient(r)) if isinstance(r, Exception) else r for r in results
    ]
    if heard is None:
        return _encode(_Chunk(outcomes, [], []))
    written = [
        row
        for record, result in zip(records, results, strict=True)
        if not isinstance(result, Exception)
        and (row := tenants.catalog.cached(record.user_id)) is not None
        and row != record
    ]
    return _encode(_Chunk(outcomes, written, heard.events))


def _ready(pause: float) -> int:
    """Used by `warm`: a pause long enough for each worker to take one call."""
    time.sleep(pause)
    return os.getpid()


class ProcessSyncer:
    """A `Syncer` spreading tenants over worker processes (use as `async with`).

    `nice` lowers the workers' CPU priority (the admin API's rollouts: the server's own
    processes come first when the cores are busy); `tenants`, the parent's, hears what the
    workers did (their catalog rows into its cache, their sync events into its observer).
    """

    def __init__(
        self,
        settings: Settings,
        processes: int,
        *,
        backup_always: bool = False,
        chunk: int = CHUNK,
        nice: int = 0,
        tenants: TenantService | None = None,
    ):
        self.processes = processes
        self.chunk = chunk
        self.tenants = tenants
        self.pool = ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=(settings, _Options(processes, backup_always, nice, tenants is not None)),
        )
        self._started: asyncio.Future[None] | None = None

    async def __call__(self, records: list[TenantRecord], job: Job) -> list[Done | Exception]:
        await self.warm()
        loop = asyncio.get_running_loop()
        try:
            sent = await loop.run_in_executor(self.pool, _sync, records, job)
        except BrokenProcessPool as exc:
            raise _gone(exc) from exc
        done = _CHUNK.decode(sent)
        if self.tenants is not None:
            self.tenants.catalog.refresh(done.written)
            if (observer := self.tenants.observer) is not None:
                for event in done.events:
                    observer(event)
        return [
            SyncFailed(r.reason, r.transient) if isinstance(r, _Failed) else r
            for r in done.outcomes
        ]

    def calls(self, concurrency: int) -> int:
        """With every worker busy (concurrency at least the processes), a chunk more per
        worker waits in the pool's queue: a worker handing back a chunk takes the next at
        once instead of idling while the parent books the last and sends another (50 µs a
        tenant, 2% of a local fleet sync). No more run at once: a worker takes one call
        at a time, and on sqld each chunk keeps its share of the concurrency."""
        return concurrency + self.processes if concurrency >= self.processes else concurrency

    async def warm(self) -> None:
        """Start every worker (and its runtime), once, before the first tenants go to them:
        the first call starts them, the others wait for it."""
        if self._started is None:
            self._started = asyncio.ensure_future(self._start_workers())
        try:
            await asyncio.shield(self._started)  # one caller cancelled stops none of them
        except BrokenProcessPool as exc:  # a worker could not open its runtime
            raise _gone(exc) from exc

    async def _start_workers(self) -> None:
        # Starting a process is a fork and exec, and the pool starts one as a call is
        # submitted: these first calls are submitted from a thread, off the event loop,
        # and every later one finds its workers there.
        calls = await asyncio.to_thread(self._spawn)
        pids = await asyncio.gather(*(asyncio.wrap_future(call) for call in calls))
        log.info("fleet.workers_started", processes=self.processes, pids=sorted(set(pids)))

    def _spawn(self) -> list[Future[int]]:
        return [self.pool.submit(_ready, 0.2) for _ in range(self.processes)]

    async def close(self) -> None:
        """Stop the workers, each after the chunk it holds (queued chunks are dropped). In a
        thread: it waits for them to exit."""
        if self._started is not None:
            with contextlib.suppress(Exception):  # what went wrong was told to the run
                await self._started
        await asyncio.to_thread(self.pool.shutdown, wait=True, cancel_futures=True)

    async def __aenter__(self) -> ProcessSyncer:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()


def _gone(exc: BrokenProcessPool) -> SyncerGone:
    return SyncerGone(
        f"a rollout worker process ended abruptly ({exc}); its tenants are not counted: "
        "resume the job once the cause is fixed (the workers' log lines say what it was)"
    )
