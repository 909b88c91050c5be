"""`tenantdb dump (USER | --all) OUT_DIR`: schema dumps that diff cleanly in git.

The layout and the statuses are described in service/dump.py.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import msgspec
import structlog

from service.commands.common import (
    FAILED,
    OK,
    add_command,
    emit,
    emit_json,
    usage,
    with_tenants,
)
from service.commands.db import user_id
from service.config import Settings
from service.operations.dumps import DumpReport, dump_tenant
from service.tenants import TenantService

log = structlog.get_logger("tenantdb.commands.dump")

PAGE = 500  # catalog rows read at a time with --all
EPILOG = """\
Writes OUT_DIR/USER/ for each user (for one user too): one {table}.sql per table with its
indexes and triggers, _views.sql, _index.md (tables, column and row counts, indexes, and
status new/updated/orphaned against the previous dump there) and _table_list.txt.
Deterministic: re-dumping an unchanged database changes no file; the file of a dropped
table is kept and flagged `orphaned` in _index.md. With --all, one tenant's failure does
not stop the others (exit code 1 at the end).

examples:
  tenantdb dump alice ./schemas                 # ./schemas/alice/
  tenantdb dump --all ./schemas && git -C ./schemas diff --stat
  tenantdb dump --all ./schemas --json          # one JSON line per tenant
"""


class DumpFailure(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    error: str


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        commands,
        "dump",
        "write tenants' schemas as one SQL file per table",
        EPILOG,
        description="Write the schema of one tenant (or all) as one SQL file per table, an "
        "index and a table list, deterministically.",
    )
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("user", nargs="?", metavar="USER", type=user_id, help="the user id")
    who.add_argument("--all", action="store_true", help="every tenant in the catalog")
    parser.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="where the dumps go")
    parser.add_argument("--json", action="store_true", help="one JSON line per tenant")
    parser.set_defaults(run=_dump)


def _dump(args: argparse.Namespace, settings: Settings) -> int:
    out_dir: Path = args.out_dir

    async def one(tenants: TenantService) -> int:
        _show(args, await dump_tenant(tenants, args.user, out_dir / args.user))
        return OK

    if (problem := _unwritable(out_dir)) is not None:
        return usage(f"cannot write to {out_dir}: {problem}")

    async def every(tenants: TenantService) -> int:
        failed = 0
        after: str | None = None
        while page := await tenants.catalog.tenants(after=after, limit=PAGE):
            for record in page:
                try:
                    user = user_id(record.user_id)
                    report = await dump_tenant(tenants, user, out_dir / user)
                except Exception as exc:  # one tenant's failure never stops the others
                    failed += 1
                    log.warning("dump.failed", user_id=record.user_id, error=str(exc))
                    _show(args, DumpFailure(user_id=record.user_id, error=str(exc)))
                    continue
                _show(args, report)
            after = page[-1].user_id
        return FAILED if failed else OK

    return with_tenants(settings, every if args.all else one)


def _unwritable(folder: Path) -> str | None:
    """Why `folder` cannot be made or written to, checked without making it."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def _show(args: argparse.Namespace, result: DumpReport | DumpFailure) -> None:
    if args.json:
        emit_json(result)
    elif isinstance(result, DumpFailure):
        emit(f"{result.user_id}: FAILED: {result.error}")
    else:
        emit(render(result))


def render(report: DumpReport) -> str:
    changes = [
        f"{len(names)} {label}"
        for names, label in (
            (report.new, "new"),
            (report.updated, "updated"),
            (report.orphaned, "orphaned"),
        )
        if names
    ]
    written = f"{len(report.written)} file(s) written" if report.written else "no file changed"
    detail = ", ".join([*changes, written])
    return f"{report.user_id}: {report.tables} tables -> {report.folder} ({detail})"
