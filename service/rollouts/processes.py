"""Fleet syncs in worker processes, for the local backend.

A local rollout is CPU-bound (SQLite work plus the engine's Python), and one process is held
to about one core by the GIL. With `ProcessSyncer(settings, P)` a rollout hands chunks
of tenants to P processes, each with its own runtime (backend, catalog connection, hooks)
syncing one tenant at a time and writing a chunk's catalog rows in one batch; the parent
keeps the job's bookkeeping (cursor, counts, progress, saves), so resuming and reporting
work as in one process. Processes are spawned,
not forked: the parent has threads (the event loop's executors) that a fork would copy
mid-lock. Each costs about half a second to start, so it pays off on large fleets.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Final

from service.catalog import TenantRecord
from service.config import Settings
from service.logs import configure_logging
from service.rollouts.model import Job
from service.rollouts.one_tenant import Done, SyncFailed, attempt, reason, sync_one, transient
from service.tenants import TenantService
from service.wiring import open_runtime

# Tenants per call to a worker: one round trip and one catalog write per chunk, not per
# tenant. Small enough that a kill loses little work and progress stays smooth.
CHUNK: Final = 25

# The worker process's runtime, opened once by `_start` and used by every `_sync` call.
_CHILD: dict[str, Any] = {}


def _start(settings: Settings, backup_always: bool) -> None:
    configure_logging(settings.log_format, settings.log_level)
    loop = asyncio.new_event_loop()
    stack = contextlib.AsyncExitStack()
    runtime = open_runtime(settings, backup="always" if backup_always else None)
    tenants = loop.run_until_complete(stack.enter_async_context(runtime))
    _CHILD.update(loop=loop, tenants=tenants, stack=stack)


def _sync(records: list[TenantRecord], job: Job) -> list[tuple[Any, ...]]:
    """Per tenant (True, kind, issue, change) or (False, reason, transient): exceptions stay in
    the worker, since not every one of them survives pickling back to the parent. The
    chunk's catalog rows are written in one batch before it returns."""
    loop: asyncio.AbstractEventLoop = _CHILD["loop"]
    tenants: TenantService = _CHILD["tenants"]

    async def chunk() -> list[Done | Exception]:
        tenants.catalog.learn(records)  # read by the parent just now: not read again here
        results = [await attempt(sync_one(tenants, record, job)) for record in records]
        try:
            await tenants.catalog.flush()
        except Exception as exc:  # synced but not recorded: a retry finds them current
            return [exc] * len(records)
        return results

    return [
        (False, reason(r), transient(r)) if isinstance(r, Exception) else (True, *r)
        for r in loop.run_until_complete(chunk())
    ]


def _ready(pause: float) -> int:
    """Used by `warm`: a pause long enough for each worker to take one call."""
    time.sleep(pause)
    return os.getpid()


class ProcessSyncer:
    """A `Syncer` spreading tenants over worker processes (use as a context manager)."""

    def __init__(
        self,
        settings: Settings,
        processes: int,
        *,
        backup_always: bool = False,
        chunk: int = CHUNK,
    ):
        self.processes = processes
        self.chunk = chunk
        self.pool = ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=(settings, backup_always),
        )

    async def __call__(self, records: list[TenantRecord], job: Job) -> list[Done | Exception]:
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(self.pool, _sync, records, job)
        return [
            (result[1], result[2], result[3]) if result[0] else SyncFailed(result[1], result[2])
            for result in results
        ]

    async def warm(self) -> None:
        """Start every worker (and its runtime) now rather than on the first tenants."""
        loop = asyncio.get_running_loop()
        calls = [loop.run_in_executor(self.pool, _ready, 0.2) for _ in range(self.processes)]
        await asyncio.gather(*calls)

    def __enter__(self) -> ProcessSyncer:
        return self

    def __exit__(self, *_: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
