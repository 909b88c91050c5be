"""How a rollout syncs its tenants: a `Syncer` (in this process, or worker processes) and
the retries of a transient error, shared by the plain run and the run in waves."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

import structlog

from service.catalog import TenantRecord
from service.errors import Unavailable
from service.rollouts.model import Job, TenantIssue
from service.rollouts.one_tenant import Done, attempt, reason, sync_one, transient
from service.tenants import TenantService

log = structlog.get_logger("tenantdb.fleet")

# A tenant whose sync hits a busy database (sqld answers "database is locked" at once when
# a catalog or tenant write lock is held) or an unavailable server is tried again after
# these pauses before it counts as failed. A retried sync is safe: a sync that failed
# changed nothing, and one that succeeded is found current.
RETRY_DELAYS: Final = (0.05, 0.2, 0.5)


class SyncerGone(Unavailable):
    """The syncer cannot sync any more (a worker process died): no tenant's fault, so the
    run stops (state failed, this message its error) and a resume syncs its tenants."""


class Syncer(Protocol):
    """Syncs a chunk of tenants for a job: per tenant its outcome, or the error it raised
    (the rollout records it and goes on), or `SyncerGone` for the whole run. A chunk's
    catalog rows are written (or pending a `Catalog.flush` in this process) by the time it
    returns."""

    chunk: int  # tenants per call

    def __call__(
        self, records: list[TenantRecord], job: Job
    ) -> Awaitable[list[Done | Exception]]: ...

    def calls(self, concurrency: int) -> int:
        """How many calls a run keeps in flight for a job's concurrency."""
        ...


class InProcessSyncer:
    """The default: one tenant at a time in this process (the rollout's workers give the
    concurrency), its catalog row pending the next progress save."""

    chunk = 1

    def __init__(self, tenants: TenantService) -> None:
        self.tenants = tenants

    async def __call__(self, records: list[TenantRecord], job: Job) -> list[Done | Exception]:
        return [await attempt(sync_one(self.tenants, record, job)) for record in records]

    def calls(self, concurrency: int) -> int:
        return concurrency  # a tenant per call: the calls are the tenants in flight


SyncChunk = Callable[[list[TenantRecord]], Awaitable[list[Done | Exception]]]


def share(chunk: int, left: int, calls: int) -> int:
    """How many tenants the next call takes: a syncer's `chunk`, or, once fewer are left
    than fill every call, an equal share of them, so that no worker still syncs a whole
    chunk at the end of a run while the others have nothing left."""
    return max(1, min(chunk, -(-left // calls)))


async def settle(
    sync_chunk: SyncChunk, job: Job, record: TenantRecord, result: Done | Exception
) -> Done:
    """The tenant's outcome: a transient error (a busy database, a server away) gets a few
    more tries; any other error, or the last, is the tenant's failure with its reason."""
    for delay in RETRY_DELAYS:
        if not isinstance(result, Exception) or not transient(result):
            break
        await asyncio.sleep(delay)
        result = (await sync_chunk([record]))[0]
    if not isinstance(result, Exception):
        return result
    log.warning(
        "fleet.tenant_failed",
        job_id=job.job_id,
        user_id=record.user_id,
        error_type=type(result).__name__,
        error=reason(result),
    )
    issue = TenantIssue(
        user_id=record.user_id,
        kind="failed",
        from_version=record.schema_version,
        reason=reason(result),
    )
    return "failed", issue, None
