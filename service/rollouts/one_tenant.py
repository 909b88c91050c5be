"""One tenant in a fleet rollout: sync it, sort the outcome, say whether an error is worth
another try. Used by the rollout in its own process and by its worker processes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from service.backends.base import TRANSIENT, BackendError
from service.catalog import TenantRecord
from service.drift import DriftItem
from service.errors import ServiceError, Unavailable
from service.rollouts.model import Job, TenantChange, TenantIssue
from service.status import RolloutOutcome, newer
from service.tenants import Outcome, SyncRequest, TenantService

T = TypeVar("T")
# What a rollout did to one tenant: the outcome, the issue (failed, drifted), and for an
# upgraded one the change it made (stamp left, backup taken) for `fleet restore --job`.
Done = tuple[RolloutOutcome, TenantIssue | None, TenantChange | None]


class SyncFailed(Exception):
    """A tenant's sync failed elsewhere (a worker process): its reason, and whether the
    error was transient (worth another try)."""

    def __init__(self, reason: str, transient: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


async def sync_one(tenants: TenantService, record: TenantRecord, job: Job) -> Done:
    """Sync one tenant for a job: a header read when the catalog says it is current;
    nothing for one already past the target (a rollout brings tenants up to it, never
    down). The backup the sync takes (every time for a job with `backup`) is remembered."""
    if await _still_current(tenants, record, job) or newer(record.schema_version, job.target):
        return "current", None, None
    request = SyncRequest(
        user_id=record.user_id,
        trigger="fleet",
        actor=job.actor,
        target=job.target,
        apply=not job.dry_run,
        batched=True,
        # A job in waves keeps a copy of every tenant it changes, for `fleet restore --job`.
        backup="always" if job.backup else "policy",
    )
    outcome = await tenants.sync(request)
    kind, issue = _classify(record, outcome, dry_run=job.dry_run)
    if kind != "upgraded" or outcome.result is None:
        return kind, issue, None
    left = outcome.record
    change = TenantChange(
        user_id=record.user_id,
        outcome=kind,
        from_version=outcome.result.from_version,
        to_version=left.schema_version,
        content_hash=left.content_hash,
        schema_cookie=left.schema_cookie,
        backup=outcome.backup,
    )
    return kind, issue, change


async def _still_current(tenants: TenantService, record: TenantRecord, job: Job) -> bool:
    """The catalog says synced at the current version, the target, and the file's header
    agrees."""
    known, registry = record.stamp, tenants.registry
    target = registry.current
    if job.target != target.version or record.status != "synced" or known is None:
        return False
    if known.version != target.version or not target.accepts(known.content_hash):
        return False  # behind the target by the catalog: the sync reads the rest
    return await tenants.backend.check(record.location, registry, known) == known


def _classify(
    record: TenantRecord, outcome: Outcome, *, dry_run: bool
) -> tuple[RolloutOutcome, TenantIssue | None]:
    result = outcome.result
    if result is None or result.status == "up_to_date":
        return "current", None
    if result.status == "applied":
        return "upgraded", None
    # A dry run cannot tell drift a pending migration script resolves from drift it does
    # not (the engine would have to run the script), so it reports both, and says so.
    if result.status == "drifted" or (dry_run and result.drift):
        drift = tuple(DriftItem.of(r) for r in result.drift)
        reason = "; ".join(f"{d.description}: {d.reason}" for d in drift) or "drifted"
        if result.status != "drifted":
            reason += " (dry run: a pending migration script may resolve this)"
        issue = TenantIssue(
            user_id=record.user_id,
            kind="drifted",
            from_version=result.from_version,
            reason=reason,
            drift=drift,
        )
        return "drifted", issue
    if dry_run:
        return "would_apply", None
    issue = TenantIssue(
        user_id=record.user_id,
        kind="failed",
        from_version=result.from_version,
        reason=f"still {result.status} after the sync",
    )
    return "failed", issue


async def attempt(call: Awaitable[T]) -> T | Exception:
    """The call's result, or the exception it raised (one tenant's failure is data)."""
    try:
        return await call
    except Exception as exc:  # recorded against the tenant by the rollout
        return exc


def transient(exc: Exception) -> bool:
    """Worth another try: a busy database or an unavailable server (or backup folder)."""
    if isinstance(exc, SyncFailed):
        return exc.transient
    return isinstance(exc, (*TRANSIENT, Unavailable))


def reason(exc: BaseException) -> str:
    """What an operator reads: a service error's message, else the type and message."""
    if isinstance(exc, SyncFailed):
        return exc.reason
    if isinstance(exc, ServiceError | BackendError):
        return exc.message
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    text = str(exc) or "no message"
    return f"{type(exc).__name__}: {text}"
