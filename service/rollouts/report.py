"""What `tenantdb fleet status` reports: tenants by version, out of date, drifted and why.

From the catalog (each tenant's version and the status its last sync recorded), with a
read-only dry run of each tenant the catalog calls drifted for the reasons; or, verified,
from a dry run of every database. The dry runs go to the backend directly, so the catalog
is not written: a status report changes nothing.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import msgspec

from schema_registry import SyncContext
from service.catalog import TenantRecord
from service.drift import DriftItem
from service.rollouts.model import Job
from service.rollouts.one_tenant import reason
from service.rollouts.run import PAGE_SIZE
from service.tenants import TenantService


class DriftedTenant(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    schema_version: str | None
    drift: tuple[DriftItem, ...] = ()
    error: str | None = None  # the dry run could not read the database


class LastRollout(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    state: str
    target: str
    dry_run: bool
    done: int
    total: int
    updated_at: str


class FleetStatus(msgspec.Struct, frozen=True, kw_only=True):
    current_version: str
    source: str  # "catalog", or "databases" with --verify
    tenants: int
    by_version: dict[str, int]
    out_of_date: int  # not at the current version (drifted ones included)
    drifted: int
    drifted_tenants: list[DriftedTenant]
    unreadable: int = 0  # --verify: databases the dry run could not read
    last_rollout: LastRollout | None = None


async def fleet_status(
    tenants: TenantService, *, verify: bool = False, concurrency: int = 8, limit: int = 100
) -> FleetStatus:
    """The report, listing at most `limit` drifted tenants; `verify` reads every database."""
    if verify:
        report = await _verified(tenants, concurrency, limit)
    else:
        report = await _from_catalog(tenants, limit)
    jobs = await tenants.catalog.rollouts.jobs(limit=1)
    return msgspec.structs.replace(report, last_rollout=_brief(jobs[0]) if jobs else None)


async def _from_catalog(tenants: TenantService, limit: int) -> FleetStatus:
    total, by_version, drifted = await tenants.catalog.summary()
    current = tenants.registry.current.version
    records = await tenants.catalog.tenants(status="drifted", limit=limit)
    listed = [await _drift_of(tenants, record) for record in records]
    return FleetStatus(
        current_version=current,
        source="catalog",
        tenants=total,
        by_version=dict(sorted(by_version.items())),
        out_of_date=total - by_version.get(current, 0),
        drifted=drifted,
        drifted_tenants=listed,
    )


async def _drift_of(tenants: TenantService, record: TenantRecord) -> DriftedTenant:
    """A read-only dry run of one database (the backend directly: the catalog is not touched)."""
    try:
        result, _ = await tenants.backend.sync(
            record.location,
            tenants.registry,
            apply=False,
            known=record.stamp,
            context=SyncContext(trigger="cli"),
        )
    except Exception as exc:  # one unreadable database is reported, not fatal
        return DriftedTenant(
            user_id=record.user_id, schema_version=record.schema_version, error=reason(exc)
        )
    return DriftedTenant(
        user_id=record.user_id,
        schema_version=result.from_version,
        drift=tuple(DriftItem.of(r) for r in result.drift) if not result.up_to_date else (),
    )


async def _verified(tenants: TenantService, concurrency: int, limit: int) -> FleetStatus:
    gate = asyncio.Semaphore(concurrency)

    async def one(record: TenantRecord) -> DriftedTenant:
        async with gate:
            return await _drift_of(tenants, record)

    by_version: Counter[str] = Counter()
    drifted: list[DriftedTenant] = []
    unreadable = 0
    after: str | None = None
    while page := await tenants.catalog.tenants(after=after, limit=PAGE_SIZE):
        for seen in await asyncio.gather(*(one(r) for r in page)):
            by_version[seen.schema_version or "none"] += 1
            unreadable += seen.error is not None
            if seen.drift or seen.error:
                drifted.append(seen)
        after = page[-1].user_id
    current = tenants.registry.current.version
    total = sum(by_version.values())
    return FleetStatus(
        current_version=current,
        source="databases",
        tenants=total,
        by_version=dict(sorted(by_version.items())),
        out_of_date=total - by_version.get(current, 0),
        drifted=sum(1 for d in drifted if d.drift),
        drifted_tenants=drifted[:limit],
        unreadable=unreadable,
    )


def _brief(job: Job) -> LastRollout:
    return LastRollout(
        job_id=job.job_id,
        state=job.state,
        target=job.target,
        dry_run=job.dry_run,
        done=job.counts.done,
        total=job.total,
        updated_at=job.updated_at,
    )
