"""`tenantdb db ...`: one tenant's database: inspect it, dry-run or run its sync, restore it.

Changes made here are recorded in the catalog's audit trail with trigger `cli` and the
operating-system user as the actor.
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec

from schema_registry import HistoryRow, RunScript, SyncError, SyncResult, step_statements
from service.catalog import TenantRecord, TenantView
from service.commands.common import (
    FAILED,
    OK,
    add_command,
    add_group,
    emit,
    emit_json,
    fail,
    usage,
    with_tenants,
)
from service.config import Settings
from service.errors import BadRequest, NotFound
from service.operations.dumps import Snapshot, TableSummary, read_snapshot
from service.rollouts.run import target_version
from service.tenants import SyncRequest, TenantService

_USER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
GROUP_EPILOG = """\
examples:
  tenantdb db inspect alice            # catalog record, history and schema summary
  tenantdb db diff alice               # what a sync would do (nothing is written)
  tenantdb db sync alice --to 1.2.0    # apply it
  tenantdb db restore alice ./data/backups/alice/20260301T120000.000000Z-1.1.0-to-1.2.0.db
"""
INSPECT_EPILOG = """\
The text fits 100 columns: index and trigger counts per table; their names, and the
views', are in --json.

examples:
  tenantdb db inspect alice
  tenantdb db inspect alice --json | jq '.schema.tables[].name'
"""
DIFF_EPILOG = """\
The dry run: the SQL a sync would run, the drift it would refuse (with the reason) and the
objects the registry does not know. Nothing is written to the tenant's database.

examples:
  tenantdb db diff alice
  tenantdb db diff alice --json
"""
SYNC_EPILOG = """\
Exit code 1 when the database has drifted: nothing was applied, and the drift is listed.

examples:
  tenantdb db sync alice                    # to the registry's current version
  tenantdb db sync alice --to 1.1.0         # to a version below the current one (never a downgrade)
  tenantdb db sync alice --dry-run          # same as `tenantdb db diff alice`
"""
RESTORE_EPILOG = """\
Replaces the tenant's database with a backup taken by tenantdb (TENANTDB_BACKUP_DIR, by
default DATA_DIR/backups/USER/) or an export, in one transaction, then re-stamps it.
Rows written since the backup are lost: on a terminal it asks first; elsewhere (a
script, a pipe) it needs --yes.

examples:
  tenantdb db restore alice ./data/backups/alice/20260301T120000.000000Z-1.1.0-to-1.2.0.db
  tenantdb db restore alice ./alice-export.db --yes    # no question (scripts)
"""


def user_id(text: str) -> str:
    """An argparse type: the user-id rule the API enforces, before it nears a path."""
    if _USER_ID.fullmatch(text) is None:
        raise argparse.ArgumentTypeError(
            f"{text!r}: a user id is 1-64 characters of A-Z, a-z, 0-9, '_' or '-'"
        )
    return text


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = add_group(
        commands, "db", "inspect, diff, sync or restore one tenant's database", GROUP_EPILOG
    )
    inspect = add_command(
        group,
        "inspect",
        "a tenant's catalog record, history rows and schema summary",
        INSPECT_EPILOG,
    )
    inspect.add_argument("user", metavar="USER", type=user_id, help="the user id")
    inspect.add_argument("--json", action="store_true", help="one JSON document on stdout")
    inspect.set_defaults(run=_inspect)

    dry_run = add_command(group, "diff", "what a sync would do: plan and drift", DIFF_EPILOG)
    dry_run.add_argument("user", metavar="USER", type=user_id, help="the user id")
    dry_run.add_argument("--to", metavar="VERSION", help="target version (default: current)")
    dry_run.add_argument("--json", action="store_true", help="the sync result as JSON")
    dry_run.set_defaults(run=_diff)

    sync = add_command(group, "sync", "bring a tenant's database to a version", SYNC_EPILOG)
    sync.add_argument("user", metavar="USER", type=user_id, help="the user id")
    sync.add_argument("--to", metavar="VERSION", help="target version (default: current)")
    sync.add_argument("--dry-run", action="store_true", help="only say what would run")
    sync.add_argument("--json", action="store_true", help="the sync result as JSON")
    sync.set_defaults(run=_sync)

    restore = add_command(
        group, "restore", "replace a tenant's database with a backup", RESTORE_EPILOG
    )
    restore.add_argument("user", metavar="USER", type=user_id, help="the user id")
    restore.add_argument("backup", metavar="BACKUP", help="the backup file")
    restore.add_argument(
        "-y", "--yes", action="store_true", help="replace the live database without asking"
    )
    restore.set_defaults(run=_restore)


def _actor() -> str | None:
    """Who runs the command, for the audit trail."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in this environment (some containers)
        return None


# inspect -------------------------------------------------------------------------------


class Inspection(msgspec.Struct, frozen=True, kw_only=True):
    record: TenantView
    current_version: str
    history: tuple[HistoryRow, ...]
    tables: tuple[TableSummary, ...]
    views: tuple[str, ...]


def _inspect(args: argparse.Namespace, settings: Settings) -> int:
    async def work(tenants: TenantService) -> Inspection:
        record = await tenants.catalog.get(args.user, fresh=True)
        if record is None:
            raise NotFound(f"no database for user {args.user}")
        snapshot = await read_snapshot(tenants, args.user)
        return _inspection(record, tenants.registry.current.version, snapshot)

    inspection = with_tenants(settings, work)
    if args.json:
        emit_json(inspection)
    else:
        emit(render_inspection(inspection))
    return OK


def _inspection(record: TenantRecord, current: str, snapshot: Snapshot) -> Inspection:
    return Inspection(
        record=TenantView.of(record, current),
        current_version=current,
        history=snapshot.history,
        tables=tuple(snapshot.tables()),
        views=tuple(sorted(v.name for v in snapshot.schema.views)),
    )


def render_inspection(inspection: Inspection) -> str:
    """The text view, within 100 columns but for the location: per table its counts (the
    names of its indexes and triggers are in --json, where a long list cannot wrap)."""
    record = inspection.record
    at = record.schema_version or "no version"
    state = "up to date" if record.schema_version == inspection.current_version else "behind"
    lines = [
        f"tenant {record.user_id}",
        f"  location        {record.location}",
        f"  created at      {record.created_at}",
        f"  schema version  {at} (registry: {inspection.current_version}, {state})",
        f"  status          {record.status}, {record.drift_count} drift item(s), "
        f"last sync {record.last_sync_at or 'never'}",
        f"history: {len(inspection.history)} row(s)",
    ]
    lines += [
        f"  {row.version}  applied {row.applied_at}  {row.trigger or '-'}  "
        f"{row.changes_applied} change(s)"
        for row in inspection.history
    ]
    lines.append(f"tables: {len(inspection.tables)}")
    lines += _table_lines(inspection.tables)
    lines.append(f"views: {len(inspection.views)}")
    return "\n".join(lines)


NAME_WIDTH = 50  # a longer table name is cut with "..." (in full in --json)


def _table_lines(tables: tuple[TableSummary, ...]) -> list[str]:
    rows = [("name", "columns", "rows", "indexes", "triggers")]
    rows += [
        (
            _cut(t.name, NAME_WIDTH),
            str(t.columns),
            "?" if t.rows is None else f"{t.rows:,}",
            str(len(t.indexes)),
            str(len(t.triggers)),
        )
        for t in tables
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return [
        "  "
        + "  ".join(
            [row[0].ljust(widths[0])]
            + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)]
        ).rstrip()
        for row in rows
    ]


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


# diff and sync -------------------------------------------------------------------------


def _run_sync(
    settings: Settings, user: str, *, target: str | None, apply: bool
) -> SyncResult | None:
    async def work(tenants: TenantService) -> SyncResult | None:
        target_version(tenants.registry, target)  # an unknown version is bad usage
        request = SyncRequest(
            user_id=user, trigger="cli", actor=_actor(), target=target, apply=apply
        )
        outcome = await tenants.sync(request)
        return outcome.result

    return with_tenants(settings, work)


def _diff(args: argparse.Namespace, settings: Settings) -> int:
    return _sync_and_show(args, settings, apply=False)


def _sync(args: argparse.Namespace, settings: Settings) -> int:
    return _sync_and_show(args, settings, apply=not args.dry_run)


def _sync_and_show(args: argparse.Namespace, settings: Settings, *, apply: bool) -> int:
    """`db sync` (apply) or its dry run `db diff`, shown; the exit code."""
    try:
        result = _run_sync(settings, args.user, target=args.to, apply=apply)
    except BadRequest as exc:
        return usage(exc.message)
    except SyncError as exc:
        return fail(f"{args.user}: {exc}")
    _show(args, result, render_applied if apply else render_dry_run)
    if not apply:
        return OK
    return OK if result is None or result.up_to_date else FAILED


def _show(
    args: argparse.Namespace,
    result: SyncResult | None,
    render: Callable[[str, SyncResult | None], str],
) -> None:
    if args.json:
        emit_json({"user_id": args.user, "result": result_json(result)})
    else:
        emit(render(args.user, result))


def result_json(result: SyncResult | None) -> dict[str, object] | None:
    """A sync result for `--json`: its typed steps, and beside them the descriptions of
    its changes (`applied`) and every statement, as the text output shows them."""
    if result is None:
        return None
    body: dict[str, object] = msgspec.to_builtins(result)
    body["applied"] = [change.describe() for change in result.changes]
    body["statements"] = list(result.statements)
    return body


def render_dry_run(user: str, result: SyncResult | None) -> str:
    if result is None or result.status == "up_to_date":
        at = f" at {result.to_version}" if result else ""
        return f"{user}: up to date{at}; nothing to do"
    lines = [
        f"{user}: {result.status}, {result.from_version or 'no version'} -> "
        f"{result.to_version} (dry run: nothing was applied)",
        f"-- {len(result.statements)} statement(s) to run, {len(result.drift)} drift item(s)",
    ]
    for step in result.steps:  # each change with the SQL it runs
        lines.append(f"-- {step.describe()}")
        lines += [sql.rstrip().rstrip(";") + ";" for sql in step_statements(step)]
    lines += _notes(result)
    return "\n".join(lines)


def render_applied(user: str, result: SyncResult | None) -> str:
    if result is None or result.status == "up_to_date":
        at = f" at {result.to_version}" if result else ""
        return f"{user}: up to date{at}; nothing to do"
    if not result.up_to_date:
        lines = [
            f"{user}: {result.status}; nothing was applied "
            f"({len(result.drift)} drift item(s) block {result.to_version})"
        ]
        return "\n".join(lines + _notes(result))
    lines = [
        f"{user}: applied {_applied(result)}, "
        f"{result.from_version or 'no version'} -> {result.to_version}"
    ]
    lines += [f"  - {step.describe()}" for step in result.steps]
    return "\n".join(lines + _notes(result))


def _applied(result: SyncResult) -> str:
    """What a sync ran: its additive changes and each migration script (a RunScript step,
    which `changes` leaves out), so a script-only upgrade is not "0 change(s)"."""
    scripts = [step for step in result.steps if isinstance(step, RunScript)]
    parts = [f"{len(result.changes)} change(s)"] if result.changes or not scripts else []
    parts += [step.describe() for step in scripts]
    return " and ".join(parts)


def _notes(result: SyncResult) -> list[str]:
    lines = [f"-- DRIFT: {r.change.describe()} ({r.reason})" for r in result.drift]
    lines += [f"-- extra: {extra.describe()}" for extra in result.extras]
    lines += [f"-- warning: {warning}" for warning in result.warnings]
    return lines


# restore -------------------------------------------------------------------------------


def _confirm_restore(user: str, backup: str) -> int | None:
    """Ask before replacing a live database; None to go on, else the exit code.

    On a terminal the person answers; off one (a script, a pipe) nobody can, so --yes is
    required rather than assumed.
    """
    if not sys.stdin.isatty():
        return usage(f"db restore replaces {user}'s live database: pass --yes to confirm")
    sys.stderr.write(
        f"Replace {user}'s live database with {backup}? Rows written since that backup "
        "are lost. [y/N] "
    )
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        answer = ""
    if answer.strip().lower() in ("y", "yes"):
        return None
    return fail(f"{user}: not restored")


def _restore(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: backups are their own feature, and this module loads without them.
    from service.operations.backups import restore_backup  # noqa: PLC0415

    if not args.yes and (refused := _confirm_restore(args.user, args.backup)) is not None:
        return refused

    async def work(tenants: TenantService) -> TenantView | None:
        await restore_backup(tenants, args.user, Path(args.backup))
        record = await tenants.catalog.get(args.user, fresh=True)
        return None if record is None else TenantView.of(record, tenants.registry.current.version)

    try:
        record = with_tenants(settings, work)
    except FileNotFoundError as exc:
        return fail(f"{args.user}: no such backup file: {exc.filename or args.backup}")
    where = f"; now at {record.schema_version}, {record.status}" if record else ""
    emit(f"{args.user}: restored from {args.backup}{where}")
    return OK
