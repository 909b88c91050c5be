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
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal, cast, get_args

import msgspec
import structlog

from schema_registry import HistoryRow, Registry, SqliteDatabase, drive, newest_history
from service.auth import check_user_id
from service.backends.base import Backend, DatabaseMissing
from service.catalog import AuditEntry, TenantRecord
from service.config import Settings
from service.errors import BadRequest, NotFound, Unavailable
from service.status import status_of
from service.tenants import SyncRequest, TenantService

log = structlog.get_logger("tenantdb.backups")

Policy = Literal["always", "migration", "never"]
_TIME_FORMAT: Final = "%Y%m%dT%H%M%S.%fZ"  # fixed width: names sort by time
_NAME: Final = re.compile(
    r"(?P<at>\d{8}T\d{6}\.\d{6}Z)-(?P<source>none|\d+\.\d+\.\d+)-to-(?P<target>\d+\.\d+\.\d+)\.db"
)


class Backup(msgspec.Struct, frozen=True, kw_only=True):
    """One backup file of a tenant."""

    path: str
    user_id: str
    created_at: str  # ISO 8601, UTC
    from_version: str | None  # None: the catalog knew no version
    to_version: str
    size_bytes: int


class Backups:
    """The tenant service's safeguard: a backup before a sync changes a database, when the
    policy asks for one, and none left once the account is deleted."""

    def __init__(self, settings: Settings, registry: Registry, backend: Backend, policy: Policy):
        self.registry = registry
        self.backend = backend
        self.folder = settings.backup_path
        self.keep = settings.backup_keep
        self.policy = policy
        self.settings = settings

    def wanted(self, from_version: str | None, target: str) -> bool:
        if self.policy != "migration":
            return self.policy == "always"
        return any(v.migration for v in self.registry.passed(from_version, target))

    async def before_change(self, record: TenantRecord, target: str) -> str | None:
        backup = await take_backup(self.backend, self.folder, record, target, keep=self.keep)
        return None if backup is None else backup.path

    async def forget(self, user_id: str) -> None:
        """Account deletion removes the tenant's backups too: no copy of the data outlives it."""
        removed = await asyncio.to_thread(delete_backups, self.settings, user_id)
        log.info("backup.deleted", user_id=user_id, count=removed)


def backup_policy(settings: Settings, override: str | None = None) -> Policy:
    """TENANTDB_BACKUP_POLICY, or `override` (`fleet sync --backup` forces "always")."""
    chosen = override or settings.backup_policy
    if chosen not in get_args(Policy):
        raise ValueError(f"backup policy {chosen!r}: choose always, migration or never")
    return cast(Policy, chosen)


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
    except DatabaseMissing as exc:
        # Asked again of the backend: sqld may answer 404 for a database that exists when
        # it has many loaded, and that must not skip a backup.
        if await backend.exists(record.location):
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


async def restore_backup(
    tenants: TenantService, user_id: str, backup: Path, *, actor: str | None = None
) -> None:
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
        await tenants.backend.restore(record.location, backup)
    # The engine re-reads the restored schema, re-arms the fast path and the service
    # records the stamp; no backup is taken of the copy just restored.
    request = SyncRequest(user_id=user_id, trigger="restore", target=head.version, backup="never")
    outcome = await tenants.sync(request)
    await tenants.catalog.record_audit(
        AuditEntry(
            user_id=user_id,
            trigger="restore",
            actor=actor,
            from_version=record.schema_version,
            to_version=head.version,
            status="restored",
        )
    )
    log.info(
        "backup.restored",
        user_id=user_id,
        path=str(backup),
        from_version=record.schema_version,
        to_version=head.version,
        status=status_of(
            outcome.record.status, outcome.record.schema_version, tenants.registry.current.version
        ),
    )


def inspect_backup(path: Path) -> HistoryRow:
    """The newest schema_version row of a backup, once the file is known to be sound."""
    if not path.is_file():
        raise BadRequest(f"{path}: no such file")
    try:
        conn = sqlite3.connect(_read_only(path), uri=True)
        try:
            problems = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
            head = drive(newest_history(SqliteDatabase(conn)))
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
