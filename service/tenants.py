"""The tenant service: what the API's handlers call.

A returning, up-to-date user costs one hop to a worker thread that reads the file's
schema cookie and compares it with the stamp mirrored in the catalog. Anything else takes
the per-user lock and runs the full sync, so 50 simultaneous first sign-ins of one user
provision one database once.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Literal, Protocol

import msgspec
import structlog

from schema_registry import (
    HistoryRow,
    NewerDatabaseError,
    Registry,
    Stamp,
    StatementFailed,
    SyncContext,
    SyncResult,
    utc_now,
)
from service.backends.base import Backend, BackendError, DatabaseDamaged, DatabaseMissing
from service.catalog import AuditEntry, Catalog, TenantRecord
from service.errors import Forbidden, NotFound, Unavailable
from service.status import Stored, stored_after

BackupChoice = Literal["policy", "always", "never"]
# Who asked for a sync: recorded in the audit trail and the tenant's history rows.
# "recovered" marks a change a killed rollout applied without its catalog write.
Trigger = Literal["sign-in", "manual", "cli", "fleet", "admin", "restore", "recovered"]

log = structlog.get_logger("tenantdb.tenants")


class SyncRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One sync of one existing tenant (or, with `create`, a sign-in's): who asks, how
    far, and what it may do."""

    user_id: str
    trigger: Trigger
    actor: str | None = None
    email: str | None = None  # a sign-in's: recorded on the tenant's row
    target: str | None = None  # None: the registry's current version
    apply: bool = True  # False: a dry run; nothing is written, to the database or catalog
    create: bool = False  # provision the database when there is none (sign-in)
    # A fleet rollout's: it has just read the tenant's row in a page, and flushes the
    # catalog with its progress, so the row is not read again under the lock (the
    # database's own history, read in the sync's transaction, is the authority) and the
    # catalog write waits for `Catalog.flush`.
    batched: bool = False
    # "policy": TENANTDB_BACKUP_POLICY decides; "always": a copy before any change (a
    # rollout in waves); "never": a restore re-stamping the copy it has just put back.
    backup: BackupChoice = "policy"


class SyncEvent(msgspec.Struct, frozen=True, kw_only=True):
    """What the observer (metrics) hears after every full sync."""

    user_id: str
    trigger: Trigger
    actor: str | None
    created: bool
    result: SyncResult


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant after an initialize or sync: its record and what the sync did."""

    record: TenantRecord
    result: SyncResult | None  # None: the fast path found it current
    created: bool = False
    backup: str | None = None  # the copy taken before this sync changed the database

    @property
    def synced(self) -> bool:
        return self.result is None or self.result.up_to_date


def _refused(request: SyncRequest, record: TenantRecord, exc: Exception) -> AuditEntry | None:
    """The audit entry of a sync SQLite refused a statement of (rolled back): which version,
    which statement, and SQLite's reason; None for other failures."""
    if not isinstance(exc, StatementFailed):
        return None
    return AuditEntry(
        user_id=record.user_id,
        trigger=request.trigger,
        actor=request.actor,
        from_version=record.schema_version,
        to_version=exc.version,
        status=f"failed: {exc.sqlite_message}",
        statements=(exc.statement,),
    )


def _recovered(record: TenantRecord, result: SyncResult) -> AuditEntry:
    """The audit entry of a change found applied without one (see `_catalog_behind`); the
    tenant's own history rows say when and by which trigger, its SQL is not known here."""
    return AuditEntry(
        user_id=record.user_id,
        trigger="recovered",
        from_version=record.schema_version,
        to_version=result.to_version,
        status="applied",
    )


class Safeguard(Protocol):
    """What runs before a sync changes an existing database, and after an account is
    deleted (backups: service/operations/backups.py)."""

    def wanted(self, from_version: str | None, target: str) -> bool:
        """Whether the policy asks for a copy before a sync from `from_version` to
        `target` changes the database."""
        ...

    async def before_change(self, record: TenantRecord, target: str) -> str | None:
        """Copy the database; the copy's path (None: there was no database to copy)."""
        ...

    async def forget(self, user_id: str) -> None: ...


class SyncObserver(Protocol):
    """Hears every full sync and every sign-in the fast path answered, on the event loop
    (metrics)."""

    def __call__(self, event: SyncEvent) -> None: ...

    def fast_path(self) -> None: ...


async def remove_export(path: Path) -> None:
    """Remove an export file and its temporary folder."""
    await asyncio.to_thread(shutil.rmtree, path.parent, ignore_errors=True)


class KeyedLocks:
    """One asyncio.Lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class TenantService:
    """Sign-in, sync, delete and export of tenants: what the API, the CLI and rollouts call.

    Its collaborators are given when it is built: `safeguard` (backups) before a sync
    changes a database and after an account is deleted, `observer` (metrics) after every
    full sync.
    """

    def __init__(
        self,
        *,
        registry: Registry,
        catalog: Catalog,
        backend: Backend,
        auto_sync: bool,
        environment: str,
        safeguard: Safeguard | None = None,
        observer: SyncObserver | None = None,
    ) -> None:
        self.registry = registry
        self.catalog = catalog
        self.backend = backend
        self.auto_sync = auto_sync
        self.environment = environment
        self.safeguard = safeguard
        self.observer = observer
        self._locks = KeyedLocks()

    def locked(self, user_id: str) -> AbstractAsyncContextManager[None]:
        """Hold the tenant's lock: what sign-in, sync and delete take (restore too)."""
        return self._locks.hold(user_id)

    async def initialize(
        self, user_id: str, email: str | None, *, actor: str | None = None
    ) -> Outcome:
        record = await self.catalog.get(user_id)
        if record is not None and (email is None or email == record.email):
            try:
                stamp = await self.backend.check(record.location, self.registry, record.stamp)
            except BackendError:  # e.g. a delete racing this sign-in: decided under the lock
                stamp = None
            if stamp is not None:
                if stamp != record.stamp:
                    record = await self._remember(record, stamp=stamp)
                if self.observer is not None:
                    self.observer.fast_path()
                return Outcome(record=record, result=None)
        request = SyncRequest(
            user_id=user_id,
            trigger="sign-in",
            actor=actor,
            email=email,
            apply=self.auto_sync,
            create=True,
        )
        return await self._sync(request, reread=record is not None)

    async def sync_schema(self, user_id: str, *, admin: bool, actor: str | None = None) -> Outcome:
        if not self.auto_sync and not admin:
            raise Forbidden(
                "sync_mode is verify: only a token with the admin role may apply schema changes"
            )
        if await self.catalog.get(user_id) is None:
            raise NotFound(f"no database for user {user_id}: call POST /api/user/initialize first")
        request = SyncRequest(user_id=user_id, trigger="manual", actor=actor)
        return await self._sync(request, reread=True)

    async def sync(self, request: SyncRequest) -> Outcome:
        """Sync one existing tenant as `request` says: CLI, fleet, admin and restore use."""
        if await self.catalog.get(request.user_id) is None:
            raise NotFound(f"no database for user {request.user_id}")
        return await self._sync(request, reread=not request.batched)

    async def delete(self, user_id: str) -> None:
        """Remove the user's database and catalog row (account deletion)."""
        async with self._locks.hold(user_id):
            record = await self.catalog.get(user_id, fresh=True)
            if record is None:
                raise NotFound(f"no database for user {user_id}")
            await self.backend.delete(record.location)
            await self.catalog.delete(user_id)
            if self.safeguard is not None:
                await self.safeguard.forget(user_id)
        log.info("tenant.deleted", user_id=user_id)

    async def export(self, user_id: str) -> Path:
        """A consistent SQLite file of the user's database in a new temporary folder.

        The caller removes it with `remove_export` once it has been sent.
        """
        async with self._locks.hold(user_id):  # a delete waits for the copy, or goes first
            record = await self.catalog.get(user_id, fresh=True)
            if record is None:
                raise NotFound(f"no database for user {user_id}: nothing to export")
            folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="tenantdb-export-"))
            dest = folder / f"{user_id}.db"
            try:
                await self.backend.export(record.location, dest)
            except BaseException:
                await remove_export(dest)
                raise
        log.info("tenant.exported", user_id=user_id)
        return dest

    async def is_up_to_date(self, user_id: str) -> bool:
        record = await self.catalog.get(user_id)
        if record is None:
            return False
        return await self.backend.check(record.location, self.registry, record.stamp) is not None

    async def history(self, user_id: str) -> list[HistoryRow]:
        async with self._locks.hold(user_id):  # not while a delete removes the file
            record = await self.catalog.get(user_id, fresh=True)
            rows = None if record is None else await self.backend.history(record.location)
        if rows is None:
            raise NotFound(f"no database for user {user_id}: call POST /api/user/initialize first")
        return rows

    async def _sync(self, request: SyncRequest, *, reread: bool) -> Outcome:
        """The sync under the user's lock. The result is mirrored into the catalog unless
        it is a dry run (a sign-in in verify mode is mirrored, so the fleet's status learns
        of drift; an operator's dry run is not). `reread`: read the tenant's row again
        under the lock."""
        user_id, apply, defer = request.user_id, request.apply, request.batched
        target = request.target or self.registry.current.version
        async with self._locks.hold(user_id):
            # Under the lock, a request that went first has put its row in the cache; a
            # caller that has just found no row in the store need not read it again.
            record = (
                await self.catalog.get(user_id, fresh=True)
                if reread
                else self.catalog.cached(user_id)
            )
            if record is None and not request.create:  # deleted while this request waited
                raise NotFound(f"no database for user {user_id}")
            location = record.location if record else self.backend.location(user_id)
            if record is None:
                record = TenantRecord(
                    user_id=user_id, email=request.email, location=location, created_at=utc_now()
                )
            backup = None
            try:
                if apply and request.backup != "never" and record.stamp is not None:
                    always = request.backup == "always"
                    backup = await self._safeguard(record, target, always=always)
                result, created = await self.backend.sync(
                    location,
                    self.registry,
                    apply=apply,
                    known=record.stamp,
                    context=SyncContext(trigger=request.trigger, environment=self.environment),
                    # Only a user with no catalog row is new: a known tenant's database that
                    # is gone had data, and is never provisioned again in silence.
                    create=request.create and record.stamp is None,
                    target=request.target,
                )
            except Exception as exc:  # any engine, SQLite or server error: record it, re-raise
                # A downgrade refused, or a backup that could not be taken: the database
                # was not touched and is as healthy as it was.
                healthy = isinstance(exc, NewerDatabaseError | Unavailable)
                if apply and record.stamp is not None and not healthy:  # a known tenant failed
                    status: Stored = "damaged" if isinstance(exc, DatabaseDamaged) else "failed"
                    failed = msgspec.structs.replace(record, status=status, last_sync_at=utc_now())
                    await self.catalog.put(
                        failed, audit=_refused(request, record, exc), defer=defer
                    )
                if isinstance(exc, DatabaseMissing) and record.stamp is not None:
                    raise DatabaseMissing(
                        f"the database of {user_id} is gone although the catalog lists it "
                        "(a moved or deleted data directory?): restore a backup "
                        f"(`tenantdb db restore {user_id} FILE`), or delete the user "
                        f"(DELETE /api/user/{user_id} as an admin) to start over"
                    ) from exc
                raise
            if request.email is not None and request.email != record.email:
                record = msgspec.structs.replace(record, email=request.email)
            audit = None
            statements = result.statements  # made from the steps on each read: read once
            if apply and statements and result.up_to_date:
                audit = AuditEntry(
                    user_id=user_id,
                    trigger=request.trigger,
                    actor=request.actor,
                    from_version=result.from_version,
                    to_version=result.to_version,
                    status=result.status,
                    changes_applied=len(result.changes),
                    statements=statements,
                )
            elif defer and apply and await self._catalog_behind(record, result):
                audit = _recovered(record, result)
            if apply or request.create:
                record = await self._remember(record, result=result, audit=audit, defer=defer)
        self._log(user_id, result, created, applied=bool(statements) and result.up_to_date)
        if self.observer is not None:
            self.observer(
                SyncEvent(
                    user_id=user_id,
                    trigger=request.trigger,
                    actor=request.actor,
                    created=created,
                    result=result,
                )
            )
        return Outcome(record=record, result=result, created=created, backup=backup)

    async def _safeguard(self, record: TenantRecord, target: str, *, always: bool) -> str | None:
        """Back up before a sync that will change the database, when the policy (or the
        request, `always`) asks: the catalog says it is at another version, or (a repair at
        the same version) a dry run finds statements to run. The copy's path, if one was
        taken."""
        guard = self.safeguard
        if guard is None or not (always or guard.wanted(record.schema_version, target)):
            return None
        if record.schema_version == target and not await self._will_repair(record, target):
            return None
        return await guard.before_change(record, target)

    async def _will_repair(self, record: TenantRecord, target: str) -> bool:
        """Whether a sync of a tenant at `target` would run statements (a dropped table
        made again, say), as opposed to finding it current or only re-arming the fast path."""
        if await self.backend.check(record.location, self.registry, record.stamp) is not None:
            return False
        result, _ = await self.backend.sync(
            record.location,
            self.registry,
            apply=False,
            known=record.stamp,
            context=SyncContext(environment=self.environment),
            target=target,
        )
        return bool(result.statements)

    async def _catalog_behind(self, record: TenantRecord, result: SyncResult) -> bool:
        """The database is at a version its catalog row never recorded: a rollout applied
        it and was killed before its deferred catalog write (re-read to be sure)."""
        if result.status != "up_to_date" or record.schema_version in (None, result.to_version):
            return False
        stored = await self.catalog.get(record.user_id, fresh=True)
        return stored is not None and stored.schema_version == record.schema_version

    async def _remember(
        self,
        record: TenantRecord,
        *,
        result: SyncResult | None = None,
        stamp: Stamp | None = None,
        audit: AuditEntry | None = None,
        defer: bool = False,
    ) -> TenantRecord:
        """Mirror where the database now is into the catalog."""
        changes: dict[str, object] = {"last_sync_at": utc_now()}
        if result is not None:
            stamp = result.stamp
            changes["status"] = stored_after(result)
            changes["drift_count"] = len(result.drift)
        elif stamp is not None:  # the fast path found it at this stamp, unchanged
            changes["status"] = "synced"
            changes["drift_count"] = 0
        if stamp is not None:
            changes.update(
                schema_version=stamp.version,
                content_hash=stamp.content_hash,
                schema_cookie=stamp.cookie,
            )
        updated = msgspec.structs.replace(record, **changes)
        await self.catalog.put(updated, audit=audit, defer=defer)
        return updated

    def _log(self, user_id: str, result: SyncResult, created: bool, *, applied: bool) -> None:
        log.info(
            "schema.sync_applied" if applied else "schema.sync_checked",
            user_id=user_id,
            status=result.status,
            created=created,
            from_version=result.from_version,
            to_version=result.to_version,
            changes_applied=len(result.changes) if result.up_to_date else 0,
            drift_count=len(result.drift),
            duration_ms=result.duration_ms,
        )
