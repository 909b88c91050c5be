"""Backups before schema changes, kept under a retention rule, and restore from one.

A backup is a consistent SQLite file made by the backend's export (SQLite's online backup
API locally, sqld's /dump on sqld), taken under the tenant's lock just before a sync that
will change the database, and named so that names sort by time:

    BACKUP_DIR/{user_id}/{UTC time}-{from version}-to-{to version}.db

`TENANTDB_BACKUP_POLICY` says when: `always`; `migration` (the default: only when a version
with a migration script lies between the tenant's recorded version and the target, since
additive steps never rewrite a row and a script may); `never`. The newest
`TENANTDB_BACKUP_KEEP` files per tenant are kept. A backup that fails stops the sync: a
change the policy calls risky does not run without its copy.

Restore writes into the live database instead of swapping files, so every connection, in
this process or another (the server while the CLI restores), sees the restored data and
none keeps writing to an unlinked file; it is one transaction, so a restore that fails
leaves the database as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sqlite3
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal, cast, get_args

import msgspec
import structlog

from schema_registry import history
from schema_registry.clock import utc_now
from schema_registry.history import HistoryRow
from schema_registry.registry import Registry
from schema_registry.sqlite_db import SqliteDatabase, connect, drive
from schema_registry.sqltext import quote
from service.auth import check_user_id
from service.backends.base import Backend
from service.backends.local import LocalBackend
from service.backends.sqld import SqldBackend
from service.backends.sqld.hrana import HranaError
from service.catalog import AuditEntry, TenantRecord
from service.config import Settings
from service.errors import BadRequest, NotFound, Unavailable
from service.tenants import TenantService

log = structlog.get_logger("tenantdb.backups")

Policy = Literal["always", "migration", "never"]
_TIME_FORMAT: Final = "%Y%m%dT%H%M%S.%fZ"  # fixed width: names sort by time
_NAME: Final = re.compile(
    r"(?P<at>\d{8}T\d{6}\.\d{6}Z)-(?P<source>none|\d+\.\d+\.\d+)-to-(?P<target>\d+\.\d+\.\d+)\.db"
)
_LOAD_BATCH: Final = 200  # dump statements per Hrana request when restoring on sqld
_OBJECTS_SQL: Final = (
    "SELECT type, name FROM sqlite_schema WHERE type IN ('trigger', 'view', 'table') "
    "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
)
_REFERENCES_SQL: Final = (
    'SELECT m.name, f."table" FROM sqlite_schema AS m, pragma_foreign_key_list(m.name) AS f '
    "WHERE m.type = 'table'"
)
# The sync that re-stamps a restored tenant must not back up the copy just restored.
_restoring: ContextVar[str | None] = ContextVar("tenantdb_restoring", default=None)


class Backup(msgspec.Struct, frozen=True, kw_only=True):
    """One backup file of a tenant."""

    path: str
    user_id: str
    created_at: str  # ISO 8601, UTC
    from_version: str | None  # None: the catalog knew no version
    to_version: str
    size_bytes: int


class BackupHook:
    """A TenantService.before_apply hook: back up when the policy asks for it."""

    def __init__(
        self, registry: Registry, backend: Backend, folder: Path, policy: Policy, keep: int
    ) -> None:
        self.registry = registry
        self.backend = backend
        self.folder = folder
        self.policy = policy
        self.keep = keep

    def wanted(self, from_version: str | None, target: str) -> bool:
        if self.policy != "migration":
            return self.policy == "always"
        return any(v.migration for v in self.registry.passed(from_version, target))

    async def __call__(self, record: TenantRecord, target: str) -> None:
        if _restoring.get() == record.user_id or not self.wanted(record.schema_version, target):
            return
        await take_backup(self.backend, self.folder, record, target, keep=self.keep)


def install_backups(tenants: TenantService, settings: Settings, policy: str | None = None) -> None:
    """Back up before applying, per `policy` (default: TENANTDB_BACKUP_POLICY).

    Replaces a backup hook installed before, so `fleet sync --backup` can force "always"
    on a runtime that installed the configured policy.
    """
    chosen = policy or settings.backup_policy
    if chosen not in get_args(Policy):
        raise ValueError(f"backup policy {chosen!r}: choose always, migration or never")
    hooks = [h for h in tenants.before_apply if not isinstance(h, BackupHook)]
    if chosen != "never":
        folder, keep = settings.backup_path, settings.backup_keep
        hook = BackupHook(tenants.registry, tenants.backend, folder, cast(Policy, chosen), keep)
        hooks.append(hook)
    tenants.before_apply[:] = hooks
    if not any(isinstance(h, _DropBackups) for h in tenants.after_delete):
        tenants.after_delete.append(_DropBackups(settings))


class _DropBackups:
    """Account deletion removes the tenant's backups too: no copy of the data outlives it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self, user_id: str) -> None:
        removed = await asyncio.to_thread(delete_backups, self.settings, user_id)
        log.info("backup.deleted", user_id=user_id, count=removed)


async def take_backup(
    backend: Backend, folder: Path, record: TenantRecord, target: str, *, keep: int
) -> Backup | None:
    """Export the tenant's database into its backup folder, then keep the newest `keep`.

    None when there is no database to copy (a missing file is provisioned again by the sync).
    """
    user_id = check_user_id(record.user_id)
    at = datetime.now(UTC).strftime(_TIME_FORMAT)
    user_dir = folder / user_id
    final = user_dir / f"{at}-{record.schema_version or 'none'}-to-{target}.db"
    partial = user_dir / f".{final.name}.partial"  # not a backup until renamed
    try:
        await asyncio.to_thread(user_dir.mkdir, parents=True, exist_ok=True)
        await backend.export(record.location, partial)
        await asyncio.to_thread(os.replace, partial, final)
    except NotFound as exc:
        if not await _gone(backend, record.location):
            raise Unavailable(
                f"the database of {user_id} could not be read for its backup ({exc.message}), "
                "so nothing was applied: try again in a moment"
            ) from exc
        log.info("backup.skipped", user_id=user_id, to_version=target, reason="no database")
        return None
    except Exception as exc:
        log.exception("backup.failed", user_id=user_id, to_version=target, error=str(exc))
        raise Unavailable(
            f"the backup of {user_id} before {target} failed ({exc}), so nothing was applied: "
            f"check {folder} (space, permissions) or set TENANTDB_BACKUP_POLICY=never"
        ) from exc
    finally:
        await asyncio.to_thread(_discard, partial)
    pruned = await asyncio.to_thread(_prune, user_dir, keep)
    backup = _describe(user_id, final)
    log.info(
        "backup.created",
        user_id=user_id,
        from_version=backup.from_version,
        to_version=target,
        path=backup.path,
        size_bytes=backup.size_bytes,
        pruned=pruned,
    )
    return backup


async def _gone(backend: Backend, location: str) -> bool:
    """Whether there is really no database: sqld may answer 404 for one that exists when it
    has many loaded (see service/backends/sqld.py), and that must not skip a backup."""
    if isinstance(backend, SqldBackend):
        return not await backend.namespace_exists(*backend.split(location))
    return not await asyncio.to_thread(os.path.exists, location)


def list_backups(settings: Settings, user_id: str) -> list[Backup]:
    """A tenant's backups, newest first."""
    user_dir = settings.backup_path / check_user_id(user_id)
    if not user_dir.is_dir():
        return []
    return [_describe(user_id, path) for path in _backup_files(user_dir)]


def delete_backups(settings: Settings, user_id: str) -> int:
    """Remove every backup of a tenant (account deletion); returns how many there were."""
    user_dir = settings.backup_path / check_user_id(user_id)
    count = len(_backup_files(user_dir)) if user_dir.is_dir() else 0
    shutil.rmtree(user_dir, ignore_errors=True)
    return count


def _backup_files(user_dir: Path) -> list[Path]:
    """Newest first: the names start with a fixed-width UTC time."""
    names = sorted((p.name for p in user_dir.iterdir() if _NAME.fullmatch(p.name)), reverse=True)
    return [user_dir / name for name in names]


def _discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def _prune(user_dir: Path, keep: int) -> int:
    old = _backup_files(user_dir)[keep:]
    for path in old:
        path.unlink(missing_ok=True)
    return len(old)


def _describe(user_id: str, path: Path) -> Backup:
    match = _NAME.fullmatch(path.name)
    if match is None:
        raise ValueError(f"{path.name} is not a backup file name")
    at = datetime.strptime(match["at"], _TIME_FORMAT).replace(tzinfo=UTC)
    return Backup(
        path=str(path),
        user_id=user_id,
        created_at=at.isoformat().replace("+00:00", "Z"),
        from_version=None if match["source"] == "none" else match["source"],
        to_version=match["target"],
        size_bytes=path.stat().st_size,
    )


# Restore --------------------------------------------------------------------------------


async def restore_backup(tenants: TenantService, user_id: str, backup: Path) -> None:
    """Replace the tenant's database with `backup` (a backup or an export), then re-stamp it.

    Raises BadRequest, before touching anything, for a file that is not a sound SQLite
    database with a schema_version row at a version the registry has.
    """
    head = await asyncio.to_thread(inspect_backup, backup)
    if tenants.registry.get(head.version) is None:
        raise BadRequest(
            f"{backup} is at version {head.version}, which the registry "
            f"({tenants.registry.path}) does not have: restore it with the registry it came from"
        )
    # TenantService's per-user lock: no sync of this tenant in this process meanwhile.
    async with tenants.locked(user_id):
        record = await tenants.catalog.get(user_id, fresh=True)
        if record is None:
            raise NotFound(
                f"no tenant {user_id} in the catalog: provision it first (sign in once, or "
                "POST /api/user/initialize), then restore"
            )
        await _replace(tenants.backend, record.location, backup)
    # The engine re-reads the restored schema, re-arms the fast path and the service
    # records the stamp, and the status against the registry's current version.
    token = _restoring.set(user_id)
    try:
        outcome = await tenants.sync_tenant(user_id, target=head.version, trigger="restore")
    finally:
        _restoring.reset(token)
    await tenants.catalog.record_audit(
        AuditEntry(
            at=utc_now(),
            user_id=user_id,
            trigger="restore",
            actor=None,
            from_version=record.schema_version,
            to_version=head.version,
            status="restored",
            changes_applied=0,
            statements=(),
        )
    )
    log.info(
        "backup.restored",
        user_id=user_id,
        path=str(backup),
        from_version=record.schema_version,
        to_version=head.version,
        status=outcome.record.status,
    )


def inspect_backup(path: Path) -> HistoryRow:
    """The newest schema_version row of a backup, once the file is known to be sound."""
    if not path.is_file():
        raise BadRequest(f"{path}: no such file")
    try:
        conn = sqlite3.connect(_read_only(path), uri=True)
        try:
            problems = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
            head = drive(history.newest(SqliteDatabase(conn)))
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BadRequest(
            f"{path} is not a SQLite database ({exc}): give a file from the backup folder "
            "or an export"
        ) from None
    if problems != ["ok"]:
        raise BadRequest(f"{path} fails SQLite's integrity check ({problems[0]}): use another")
    if head is None:
        raise BadRequest(
            f"{path} has no schema_version rows, so it is not a tenantdb database: give a file "
            "from the backup folder or an export"
        )
    return head


def _read_only(path: Path) -> str:
    return path.resolve().as_uri() + "?mode=ro"


async def _replace(backend: Backend, location: str, backup: Path) -> None:
    if isinstance(backend, LocalBackend):
        await asyncio.to_thread(_restore_file, location, backup)
    elif isinstance(backend, SqldBackend):
        await _restore_namespace(backend, location, backup)
    else:
        raise TypeError(f"restore does not know the {backend.kind} backend")


def _restore_file(location: str, backup: Path) -> None:
    """SQLite's backup API into the live file: every page in one write transaction.

    Connections elsewhere see the old database or the restored one, and SQLite sets the
    schema cookie to one past the old one, so no stamp recorded before can match it.
    """
    os.makedirs(os.path.dirname(location), exist_ok=True)
    source = sqlite3.connect(_read_only(backup), uri=True)
    try:
        target = connect(location)  # a new file gets WAL, like every tenant file
        try:
            source.backup(target)  # pages=-1: one step, one transaction
        finally:
            target.close()
    finally:
        source.close()


async def _restore_namespace(sqld: SqldBackend, location: str, backup: Path) -> None:
    """Drop every object and load the backup's SQL, in one transaction on the namespace."""
    statements = await asyncio.to_thread(_dump, backup)
    shard, namespace = sqld.split(location)
    await sqld.create_namespace(shard, namespace)  # made again when it was lost
    try:
        async with sqld.database(location).transaction() as tx:
            # Checked at COMMIT, so tables may go and come back in any order.
            await tx.execute("PRAGMA defer_foreign_keys = ON")
            objects = await tx.fetch(_OBJECTS_SQL)
            references = await tx.fetch(_REFERENCES_SQL)
            work = drop_statements(
                [(str(k), str(n)) for k, n in objects], [(str(c), str(p)) for c, p in references]
            )
            work += statements
            for start in range(0, len(work), _LOAD_BATCH):
                await tx.fetch_many([(sql, ()) for sql in work[start : start + _LOAD_BATCH]])
            await tx.commit()
    except HranaError as exc:
        raise Unavailable(f"sqld refused the restore ({exc}); the database is unchanged") from exc


def drop_statements(objects: list[tuple[str, str]], references: list[tuple[str, str]]) -> list[str]:
    """DROPs for (type, name) objects in an order SQLite accepts with foreign keys on.

    With them on (sqld's connections), DROP TABLE first deletes the rows, and that
    delete's ON DELETE actions are compiled against every table referencing this one and
    the tables those reference: so triggers go first, then views, then tables children
    before parents. `references` are (child, parent) pairs.
    """
    names = {kind: sorted(n for k, n in objects if k == kind) for kind in ("trigger", "view")}
    tables = {name.lower(): name for kind, name in objects if kind == "table"}
    children: dict[str, set[str]] = {key: set() for key in tables}
    for child, parent in references:
        if parent.lower() in children and child.lower() != parent.lower():
            children[parent.lower()].add(child.lower())
    order: list[str] = []
    left = set(tables)
    while left:
        # A cycle has no leaf: drop it in name order and let SQLite say if it cannot.
        batch = sorted(key for key in left if not children[key] & left) or sorted(left)
        order += [tables[key] for key in batch]
        left -= set(batch)
    return [
        *(f"DROP TRIGGER IF EXISTS {quote(name)}" for name in names["trigger"]),
        *(f"DROP VIEW IF EXISTS {quote(name)}" for name in names["view"]),
        *(f"DROP TABLE IF EXISTS {quote(name)}" for name in order),
    ]


def _dump(backup: Path) -> list[str]:
    """The backup as SQL: Python's iterdump without its BEGIN and COMMIT, every table created
    before any row goes in.

    iterdump fills each table right after creating it, in name order; with foreign keys on,
    a row whose parent table does not exist yet fails ("no such table"), while a row whose
    parent row comes later only counts against the deferred check at COMMIT.
    """
    conn = sqlite3.connect(_read_only(backup), uri=True)
    try:
        dump = [s.removesuffix(";") for s in conn.iterdump()]
    finally:
        conn.close()
    body = [s for s in dump if s not in ("BEGIN TRANSACTION", "COMMIT")]
    return sorted(body, key=lambda sql: not sql[:12].upper().startswith("CREATE TABLE"))
