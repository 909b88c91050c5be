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
from service.rollouts.model import Job, WaveCounts
from service.rollouts.one_tenant import reason
from service.rollouts.run import PAGE_SIZE
from service.rollouts.waves import saved_wave_counts
from service.status import newer
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
    error: str | None = None  # why it stopped (halted: and how to resume)
    max_failure_rate: float | None = None
    waves: tuple[WaveCounts, ...] = ()  # a job in waves: each wave's counts


class FleetStatus(msgspec.Struct, frozen=True, kw_only=True):
    current_version: str
    source: str  # "catalog", or "databases" with --verify
    tenants: int
    by_version: dict[str, int]
    out_of_date: int  # behind the current version (drifted ones included)
    ahead: int = 0  # at a version newer than this service's registry (a rollback)
    damaged: int = 0  # database files that are not sound SQLite (left as they are)
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
    store = tenants.catalog.rollouts
    jobs = await store.jobs(limit=1)
    damaged = await tenants.catalog.count("damaged")
    last = None
    if jobs:
        plan = await store.plan(jobs[0].job_id)
        waves = await saved_wave_counts(store, jobs[0], plan)
        last = msgspec.structs.replace(
            _brief(jobs[0]), waves=waves, max_failure_rate=plan.max_failure_rate
        )
    return msgspec.structs.replace(report, last_rollout=last, damaged=damaged)


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
        out_of_date=_behind(by_version, current, total),
        ahead=_ahead(by_version, current),
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
        out_of_date=_behind(by_version, current, total),
        ahead=_ahead(by_version, current),
        drifted=sum(1 for d in drifted if d.drift),
        drifted_tenants=drifted[:limit],
        unreadable=unreadable,
    )


def _ahead(by_version: dict[str, int], current: str) -> int:
    """Tenants at a version newer than `current` (a newer release's)."""
    return sum(count for version, count in by_version.items() if newer(version, current))


def _behind(by_version: dict[str, int], current: str, total: int) -> int:
    return total - by_version.get(current, 0) - _ahead(by_version, current)


def _brief(job: Job) -> LastRollout:
    return LastRollout(
        job_id=job.job_id,
        state=job.state,
        target=job.target,
        dry_run=job.dry_run,
        done=job.counts.done,
        total=job.total,
        updated_at=job.updated_at,
        error=job.error,
    )
