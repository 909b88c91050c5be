"""Fleet rollback: every tenant a job changed put back from the backup it took first.

A tenant is restored only while its database still holds what the job left: its newest
history row is the one the job's sync wrote (version, content hash and schema cookie as
recorded in `rollout_tenants`). One changed since (a later rollout, a repair) is skipped
and listed: restoring it would undo changes the job did not make. Each restore goes
through `restore_backup` (one transaction, re-stamped, an audit entry with trigger
"restore"), so the service serves the database at once, out of date.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec

from schema_registry import utc_now
from service.errors import NotFound
from service.operations.backups import restore_backup
from service.rollouts.model import TenantChange
from service.rollouts.one_tenant import reason
from service.tenants import TenantService


class Restored(msgspec.Struct, frozen=True, kw_only=True, tag_field="event", tag="tenant"):
    """One tenant of the job: restored, or why not."""

    user_id: str
    status: Literal["restored", "skipped", "failed"]
    version: str | None  # what it is at now
    backup: str | None
    reason: str | None = None


class RestoreSummary(msgspec.Struct, frozen=True, kw_only=True, tag_field="event", tag="summary"):
    job_id: str
    changed: int  # tenants the job changed
    restored: int
    skipped: int
    failed: int
    already: int  # restored by an earlier `fleet restore` of this job

    @property
    def ok(self) -> bool:
        return not self.skipped and not self.failed


async def planned(tenants: TenantService, job_id: str) -> list[TenantChange]:
    """The tenants the job changed (NotFound for an unknown job)."""
    store = tenants.catalog.rollouts
    if await store.get(job_id) is None:
        raise NotFound(f"no rollout job {job_id} (`tenantdb fleet status` shows the last)")
    return [c for c in await store.changes(job_id) if c.outcome == "upgraded"]


async def restore_job(
    tenants: TenantService,
    job_id: str,
    *,
    actor: str | None = None,
    on_tenant: Callable[[Restored], None] | None = None,
) -> RestoreSummary:
    """Restore every tenant the job changed from the backup it took before changing it."""
    changes = await planned(tenants, job_id)
    results: list[Restored] = []
    already = 0
    for change in changes:
        if change.restored_at is not None:
            already += 1
            continue
        result = await _restore_one(tenants, job_id, change, actor)
        results.append(result)
        if on_tenant is not None:
            on_tenant(result)
    return RestoreSummary(
        job_id=job_id,
        changed=len(changes),
        restored=sum(r.status == "restored" for r in results),
        skipped=sum(r.status == "skipped" for r in results),
        failed=sum(r.status == "failed" for r in results),
        already=already,
    )


async def _restore_one(
    tenants: TenantService, job_id: str, change: TenantChange, actor: str | None
) -> Restored:
    user = change.user_id

    def answer(
        status: Literal["restored", "skipped", "failed"], why: str | None, at: str | None
    ) -> Restored:
        return Restored(user_id=user, status=status, version=at, backup=change.backup, reason=why)

    try:
        history = await tenants.history(user)
    except Exception as exc:  # gone, unreadable: listed, the others go on
        return answer("skipped", f"its database could not be read: {reason(exc)}", None)
    newest = history[-1] if history else None
    now = newest.version if newest else None
    left = (change.to_version, change.content_hash, change.schema_cookie)
    if newest is None or (newest.version, newest.content_hash, newest.schema_cookie) != left:
        return answer(
            "skipped",
            f"changed since the job left it at {change.to_version} (now at {now}, another "
            "history row): restore it by hand with `tenantdb db restore` if you mean to",
            now,
        )
    if change.backup is None or not await asyncio.to_thread(Path(change.backup).is_file):
        why = "the job took no backup of it" if change.backup is None else "its backup is gone"
        return answer("skipped", f"{why}: nothing to restore from", now)
    try:
        await restore_backup(tenants, user, Path(change.backup), actor=actor)
    except Exception as exc:  # one failure is reported; the rest are restored
        return answer("failed", reason(exc), now)
    await tenants.catalog.rollouts.mark_restored(job_id, user, utc_now())
    record = await tenants.catalog.get(user, fresh=True)
    return answer("restored", None, record.schema_version if record else None)
