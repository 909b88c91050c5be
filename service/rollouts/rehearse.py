"""Rehearsal: the upgrade of each chosen tenant run on a copy, never on the live database.

Each copy is the backend's export (SQLite's online backup locally, sqld's dump on sqld)
in a scratch folder, upgraded by the engine's `sync` as `fleet sync` upgrades the live one
(additive steps, migration scripts, foreign key check, history row), then deleted. What
SQLite refuses is reported with the statement and the kind of constraint, so a data
problem (duplicates under a new UNIQUE, NULLs under a new NOT NULL, orphans) is found
before any tenant is touched. sqld rolls back a write transaction after 5 s, so on sqld a
copy whose upgrade takes over `NEAR_LIMIT_S` is flagged: its live upgrade may not commit.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, Literal

import msgspec

from schema_registry import (
    Registry,
    SqliteDatabase,
    StatementFailed,
    SyncContext,
    SyncError,
    SyncResult,
    drive,
    sync,
)
from service.catalog import TenantRecord
from service.drift import DriftItem
from service.rollouts.one_tenant import reason
from service.rollouts.waves import order_key
from service.tenants import TenantService

NEAR_LIMIT_S: Final = 2.5  # half of sqld's 5 s write-transaction limit
_PAGE: Final = 500
_CONSTRAINTS: Final = (
    ("UNIQUE constraint failed", "UNIQUE"),
    ("NOT NULL constraint failed", "NOT NULL"),
    ("CHECK constraint failed", "CHECK"),
    ("FOREIGN KEY constraint failed", "foreign key"),
)


class Rehearsed(msgspec.Struct, frozen=True, kw_only=True, tag_field="event", tag="tenant"):
    """One tenant's rehearsal: ok, or what failed and why."""

    user_id: str
    status: Literal["ok", "failed"]
    from_version: str | None
    to_version: str
    statement: str | None = None  # the statement SQLite refused
    constraint: str | None = (
        None  # UNIQUE, NOT NULL, CHECK, foreign key, foreign key orphans, drift
    )
    message: str | None = None
    drift: tuple[DriftItem, ...] = ()
    duration_ms: float = 0.0
    size_before: int = 0
    size_after: int = 0
    near_limit: bool = False  # sqld: the upgrade ran near its 5 s transaction limit


class RehearsalSummary(msgspec.Struct, frozen=True, kw_only=True, tag_field="event", tag="summary"):
    target: str
    tenants: int
    passed: int
    failed: int
    near_limit: int
    failed_tenants: tuple[str, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.failed


async def chosen(tenants: TenantService, sample: int | None) -> list[TenantRecord]:
    """Every tenant (`sample` None), or `sample` of them spread over the fleet (by hash)."""
    records: list[TenantRecord] = []
    after: str | None = None
    while page := await tenants.catalog.tenants(after=after, limit=_PAGE):
        records += page
        after = page[-1].user_id
    if sample is None:
        return records
    return sorted(records, key=lambda r: order_key(r.user_id, {}))[:sample]


async def rehearse(
    tenants: TenantService,
    *,
    target: str,
    sample: int | None,
    concurrency: int = 4,
    on_tenant: Callable[[Rehearsed], None] | None = None,
) -> RehearsalSummary:
    """Rehearse the upgrade to `target` on copies of the chosen tenants' databases."""
    started = time.monotonic()
    gate = asyncio.Semaphore(concurrency)
    scratch = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="tenantdb-rehearse-"))

    async def one(record: TenantRecord) -> Rehearsed:
        async with gate:
            result = await _rehearse_one(tenants, record, target, scratch)
        if on_tenant is not None:
            on_tenant(result)
        return result

    try:
        results = await asyncio.gather(*(one(r) for r in await chosen(tenants, sample)))
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, ignore_errors=True)
    failed = tuple(r.user_id for r in results if r.status == "failed")
    return RehearsalSummary(
        target=target,
        tenants=len(results),
        passed=len(results) - len(failed),
        failed=len(failed),
        near_limit=sum(r.near_limit for r in results),
        failed_tenants=failed,
        seconds=round(time.monotonic() - started, 3),
    )


async def _rehearse_one(
    tenants: TenantService, record: TenantRecord, target: str, scratch: Path
) -> Rehearsed:
    copy = scratch / f"{record.user_id}.db"
    base = Rehearsed(
        user_id=record.user_id, status="ok", from_version=record.schema_version, to_version=target
    )
    try:
        await tenants.backend.export(record.location, copy)
        result, seconds, size_before, size_after = await asyncio.to_thread(
            _upgrade, copy, tenants.registry, target
        )
    except Exception as exc:  # one tenant's failure is its report; the others go on
        return msgspec.structs.replace(base, status="failed", **_explain(exc))
    finally:
        await asyncio.to_thread(_remove, copy)
    done = msgspec.structs.replace(
        base,
        duration_ms=round(seconds * 1000, 3),
        size_before=size_before,
        size_after=size_after,
        near_limit=tenants.backend.kind == "sqld" and seconds > NEAR_LIMIT_S,
    )
    if isinstance(result, Exception):
        return msgspec.structs.replace(done, status="failed", **_explain(result))
    done = msgspec.structs.replace(done, from_version=result.from_version)
    if result.up_to_date:
        return done
    drift = tuple(DriftItem.of(r) for r in result.drift)
    message = "; ".join(f"{d.description}: {d.reason}" for d in drift) or result.status
    return msgspec.structs.replace(
        done, status="failed", constraint="drift", message=message, drift=drift
    )


def _upgrade(
    path: Path, registry: Registry, target: str
) -> tuple[SyncResult | Exception, float, int, int]:
    """The engine's sync on the copy, as a fleet sync runs it on the live database: its
    result (or what it raised), seconds, and the file's size before and after."""
    before = path.stat().st_size
    db = SqliteDatabase.open(path)
    begun = time.perf_counter()
    try:
        ctx = SyncContext(trigger="fleet")
        result: SyncResult | Exception = drive(sync(db, registry, target=target, context=ctx))
    except Exception as exc:  # the rehearsal's finding, reported with its timing
        result = exc
    finally:
        seconds = time.perf_counter() - begun
        db.close()
    return result, seconds, before, path.stat().st_size


def _remove(copy: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{copy}{suffix}").unlink(missing_ok=True)


def _explain(exc: Exception) -> dict[str, str | None]:
    """The statement, the kind of constraint and the message of a failed upgrade."""
    if isinstance(exc, StatementFailed):
        kind = next((k for text, k in _CONSTRAINTS if text in exc.sqlite_message), None)
        return {"statement": exc.statement, "constraint": kind, "message": exc.sqlite_message}
    if isinstance(exc, SyncError) and "point at missing" in str(exc):
        return {"constraint": "foreign key orphans", "message": str(exc)}
    return {"message": reason(exc)}
