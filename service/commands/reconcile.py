"""`tenantdb fleet reconcile`: databases the catalog lost, and rows whose database is gone.

A tenant whose row is lost is invisible to rollouts and status, and a row whose database
is gone fails every sign-in: both are listed, and nothing is ever deleted. With --apply a
lost database gets its row back when it carries tenantdb's history and its name proves
whose it is (`Backend.owner`); the rest are left for an operator with the reason.
"""

from __future__ import annotations

import argparse
import getpass
import os
from pathlib import Path
from typing import Literal

import msgspec

from schema_registry import HistoryRow, utc_now
from service.backends.base import BackendError
from service.backends.sqld import SqldBackend
from service.catalog import AuditEntry, TenantRecord
from service.commands.common import (
    FAILED,
    OK,
    add_command,
    emit,
    emit_json,
    fail,
    usage,
    with_tenants,
)
from service.config import Settings
from service.errors import ServiceError
from service.tenants import TenantService

Verdict = Literal[
    "registered", "registrable", "unknown_owner", "no_history", "owner_has_row", "unreadable"
]
# What each verdict means for the operator (text output).
_SAYS: dict[Verdict, str] = {
    "registered": "registered",
    "registrable": "would be registered (--apply)",
    "unknown_owner": "unknown owner: its name does not prove whose it is",
    "no_history": "no tenantdb history (schema_version): not registered",
    "owner_has_row": "its owner has a row for another database: not registered",
    "unreadable": "its history could not be read: not registered",
}
EPILOG = """\
Databases are listed first, then the catalog, so a tenant signing up meanwhile is not
reported. A row whose database cannot be found is kept: restore a backup
(`tenantdb db restore USER FILE`) or delete the user. sqld 0.24 cannot list namespaces
over its admin API: run this where sqld's --db-path can be read, and name it.

examples:
  tenantdb fleet reconcile                        # what does not match (nothing changes)
  tenantdb fleet reconcile --apply                # give lost databases their rows back
  tenantdb fleet reconcile --json --sqld-db-path /var/lib/sqld
"""
HELP = """\
List tenant databases that have no catalog row, and catalog rows that have no database,
deleting neither. With --apply, a database without a row is registered (its newest
history row's version, an audit entry with trigger "reconcile") when it carries
tenantdb's history and its name proves its owner. Exit 0 when databases and catalog
match (after --apply), 1 when something is listed for an operator.
"""


class Unregistered(msgspec.Struct, frozen=True, kw_only=True):
    """A database with no catalog row, whose owner is known or not."""

    location: str
    user_id: str | None
    schema_version: str | None
    verdict: Verdict
    reason: str | None = None  # why it could not be read (unreadable)


class RowWithoutDatabase(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    location: str
    schema_version: str | None


class Reconciliation(msgspec.Struct, frozen=True, kw_only=True):
    backend: str
    databases: int
    rows: int
    applied: bool
    unregistered: list[Unregistered]
    rows_without_database: list[RowWithoutDatabase]

    @property
    def settled(self) -> bool:
        """Nothing is left for an operator."""
        done = all(u.verdict == "registered" for u in self.unregistered)
        return done and not self.rows_without_database


def register(fleet: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        fleet,
        "reconcile",
        "databases without catalog rows, and rows without databases (deletes neither)",
        EPILOG,
        HELP,
    )
    parser.add_argument("--apply", action="store_true", help="register the databases it can")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument(
        "--sqld-db-path",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="sqld's --db-path, once per shard in TENANTDB_SQLD_URL order (sqld 0.24)",
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.sqld_db_path and settings.backend != "sqld":
        return usage("--sqld-db-path is for the sqld backend")

    async def work(tenants: TenantService) -> Reconciliation:
        if isinstance(tenants.backend, SqldBackend):
            tenants.backend.db_paths = tuple(args.sqld_db_path)
        return await reconcile(tenants, apply=args.apply, actor=_actor())

    try:
        report = with_tenants(settings, work)
    except (BackendError, ServiceError) as exc:
        return fail(exc.message)
    if args.json:
        emit_json(msgspec.structs.asdict(report) | {"settled": report.settled})
    else:
        emit(_text(report))
    return OK if report.settled else FAILED


async def reconcile(tenants: TenantService, *, apply: bool, actor: str | None) -> Reconciliation:
    """Compare the backend's databases with the catalog's rows; with `apply`, register the
    databases whose owner and history are known."""
    backend, catalog = tenants.backend, tenants.catalog
    found = {_key(tenants, loc): loc async for loc in backend.databases()}
    rows: dict[str, TenantRecord] = {}
    after = None
    while page := await catalog.tenants(after=after, limit=1000):
        rows.update((_key(tenants, r.location), r) for r in page)
        after = page[-1].user_id
    unregistered = [
        await _unregistered(tenants, found[key], apply=apply, actor=actor)
        for key in sorted(found.keys() - rows.keys())
    ]
    gone = []
    for key in sorted(rows.keys() - found.keys(), key=lambda k: rows[k].user_id):
        record = rows[key]
        if not await backend.exists(record.location):  # asked again: listing is no proof
            gone.append(
                RowWithoutDatabase(
                    user_id=record.user_id,
                    location=record.location,
                    schema_version=record.schema_version,
                )
            )
    return Reconciliation(
        backend=backend.kind,
        databases=len(found),
        rows=len(rows),
        applied=apply,
        unregistered=unregistered,
        rows_without_database=gone,
    )


def _key(tenants: TenantService, location: str) -> str:
    """A location as the backend lists it: a local catalog made before locations were
    relative to the data directory holds absolute paths."""
    data = str(getattr(tenants.backend, "data_dir", ""))
    if tenants.backend.kind == "local" and data and os.path.isabs(location):
        return os.path.relpath(location, data)
    return location


async def _unregistered(
    tenants: TenantService, location: str, *, apply: bool, actor: str | None
) -> Unregistered:
    user_id = tenants.backend.owner(location)
    try:
        history = await tenants.backend.history(location) or []
    except BackendError as exc:  # damaged, busy past the budget: the operator looks at it
        return Unregistered(
            location=location,
            user_id=user_id,
            schema_version=None,
            verdict="unreadable",
            reason=exc.message,
        )
    version = history[-1].version if history else None

    def verdict(v: Verdict) -> Unregistered:
        return Unregistered(location=location, user_id=user_id, schema_version=version, verdict=v)

    if not history:
        return verdict("no_history")
    if user_id is None:
        return verdict("unknown_owner")
    if not apply:
        row = await tenants.catalog.get(user_id, fresh=True)
        return verdict("registrable" if row is None else "owner_has_row")
    async with tenants.locked(user_id):
        if await tenants.catalog.get(user_id, fresh=True) is not None:
            return verdict("owner_has_row")  # never replaced: it may be the live one
        row, entry = _row(user_id, location, history), _entry(user_id, history, actor)
        await tenants.catalog.put(row, audit=entry)
    return verdict("registered")


def _row(user_id: str, location: str, history: list[HistoryRow]) -> TenantRecord:
    """The row a sync would have left: its newest history row's stamp, synced."""
    head = history[-1]
    return TenantRecord(
        user_id=user_id,
        email=None,
        location=location,
        created_at=history[0].applied_at,
        schema_version=head.version,
        content_hash=head.content_hash,
        schema_cookie=head.schema_cookie,
        last_sync_at=utc_now(),
        status="synced",
    )


def _entry(user_id: str, history: list[HistoryRow], actor: str | None) -> AuditEntry:
    return AuditEntry(
        user_id=user_id,
        trigger="reconcile",
        actor=actor,
        from_version=None,
        to_version=history[-1].version,
        status="registered",
    )


def _actor() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in this environment (some containers)
        return None


def _text(report: Reconciliation) -> str:
    lines = [
        f"{report.databases:,} database(s), {report.rows:,} catalog row(s) ({report.backend})",
        f"databases without a catalog row: {len(report.unregistered):,}",
    ]
    for item in report.unregistered:
        who = item.user_id or "?"
        at = f"at {item.schema_version}" if item.schema_version else "no version"
        lines.append(f"  {who:<24} {item.location}  {at}: {_SAYS[item.verdict]}")
    lines.append(f"catalog rows without a database: {len(report.rows_without_database):,}")
    for row in report.rows_without_database:
        lines.append(f"  {row.user_id:<24} {row.location}  (kept)")
    if report.rows_without_database:
        lines.append(
            "  restore each from a backup (`tenantdb db restore USER FILE`), or delete the "
            "user (DELETE /api/user/USER as an admin)"
        )
    if report.settled:
        lines.append("catalog and databases match")
    return "\n".join(lines)
