"""`tenantdb fleet status` and `tenantdb fleet sync`: every tenant at once."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TextIO

from service.commands.common import (
    FAILED,
    OK,
    USAGE,
    add_command,
    add_group,
    emit,
    emit_json,
    fail,
    usage,
    with_tenants,
)
from service.config import Settings
from service.drift import DriftItem
from service.errors import BadRequest, Conflict
from service.logs import configure_logging
from service.rollouts.model import Progress, RolloutSummary, TenantIssue
from service.rollouts.processes import ProcessSyncer
from service.rollouts.report import FleetStatus, fleet_status
from service.rollouts.run import rollout, target_version
from service.tenants import TenantService

EPILOG = """\
examples:
  tenantdb fleet status                      # tenants by version, out of date, drifted (why)
  tenantdb fleet status --verify --json      # read every database, not just the catalog
  tenantdb fleet sync --dry-run              # what a rollout to the current version would do
  tenantdb fleet sync --to 1.1.0 --concurrency 16
  tenantdb fleet sync --processes 2          # local backend: use two cores
  tenantdb fleet sync --backup               # a backup of each database before it changes
  tenantdb fleet sync --resume 3f9c2a7d41b0e6c8   # finish an interrupted rollout
"""
STATUS_EPILOG = """\
examples:
  tenantdb fleet status                      # from the catalog, drifted tenants' reasons
  tenantdb fleet status --json | jq .drifted_tenants
  tenantdb fleet status --verify --concurrency 16
"""
SYNC_EPILOG = """\
examples:
  tenantdb fleet sync --dry-run              # what a rollout to the current version would do
  tenantdb fleet sync --to 1.1.0 --concurrency 16
  tenantdb fleet sync --processes 2          # local backend: use two cores
  tenantdb fleet sync --backup               # a backup of each database before it changes
  tenantdb fleet sync --resume 3f9c2a7d41b0e6c8   # finish an interrupted rollout
"""
STATUS_HELP = """\
Tenants by version, how many are out of date or drifted, and the drifted ones with reasons.

Reads the catalog (each tenant's version and the status its last sync recorded). For
each tenant the catalog says drifted, a dry run against its database gives the reasons
(nothing is written). With --verify, every database gets that dry run and the counts
come from the databases themselves; a tenant then counts as drifted when it holds
differences tenantdb will not fix by itself, including ones a pending migration script
is meant to resolve. Exit 0 when the report was made, whatever it says.
"""
SYNC_HELP = """\
Bring every tenant to VERSION (default: the registry's current version).

Tenants are synced in user id order, N at a time, each the way a manual sync is (per-user
lock, before-apply hooks, audit trail with trigger "fleet"). A tenant that fails or has
drifted is reported with its reason and the others go on. On a terminal a progress line
is drawn on stderr (per-tenant info logs are muted; --verbose keeps them); otherwise, or
with --json, progress comes as JSON lines on stdout, then the summary as one JSON line.

On the local backend, --processes P syncs in P worker processes (chunks of 25 tenants,
one at a time each; about half a second to start them), for when one process's core is
the limit.

Re-running is safe: tenants already at the version cost a header read and are counted
as already current. Each run is a job whose progress is kept in the catalog; after a
kill, --resume JOB continues it after the last tenant below which all were done (one run
holds a job at a time: a job another live process runs is refused, exit 1).
Exit 0 when every tenant is at the version (or would be, with --dry-run), 1 when some
tenant failed or drifted (or the rollout stopped).
"""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = add_group(commands, "fleet", "roll schema versions out to every tenant", EPILOG)
    status = add_command(
        group,
        "status",
        "tenants by version, out of date and drifted (with reasons)",
        STATUS_EPILOG,
        STATUS_HELP,
    )
    status.add_argument("--json", action="store_true", help="one JSON document on stdout")
    status.add_argument(
        "--verify",
        action="store_true",
        help="dry-run every database instead of trusting the catalog",
    )
    status.add_argument(
        "--concurrency", type=int, default=8, metavar="N", help="databases read at once (--verify)"
    )
    status.add_argument(
        "--limit", type=int, default=100, metavar="N", help="drifted tenants listed (default 100)"
    )
    status.set_defaults(run=_status)
    sync = add_command(
        group, "sync", "bring every tenant to a version, N at a time", SYNC_EPILOG, SYNC_HELP
    )
    sync.add_argument("--to", metavar="VERSION", help="target version (default: current)")
    sync.add_argument(
        "--concurrency", type=int, default=8, metavar="N", help="tenants at once (default 8)"
    )
    sync.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="P",
        help="local backend: sync in P worker processes, chunks of 25 tenants (more cores)",
    )
    sync.add_argument("--dry-run", action="store_true", help="report what would change only")
    sync.add_argument("--backup", action="store_true", help="back up each database it changes")
    sync.add_argument(
        "--resume", metavar="JOB", help="continue this job (its own version and flags apply)"
    )
    sync.add_argument("--json", action="store_true", help="JSON lines even on a terminal")
    sync.add_argument("--verbose", action="store_true", help="keep per-tenant logs on a terminal")
    sync.set_defaults(run=_sync)


# --------------------------------------------------------------------------- fleet status


def _status(args: argparse.Namespace, settings: Settings) -> int:
    if args.concurrency < 1 or args.limit < 0:
        sys.stderr.write("tenantdb: --concurrency must be at least 1 and --limit 0 or more\n")
        return USAGE

    async def work(tenants: TenantService) -> FleetStatus:
        return await fleet_status(
            tenants, verify=args.verify, concurrency=args.concurrency, limit=args.limit
        )

    report = with_tenants(settings, work)
    if args.json:
        emit_json(report)
    else:
        emit(_status_text(report))
    return OK


def _status_text(report: FleetStatus) -> str:
    lines = [
        f"current version {report.current_version}; {report.tenants:,} tenant(s) "
        f"(from the {report.source})"
    ]
    for version, count in report.by_version.items():
        mark = "  (current)" if version == report.current_version else ""
        lines.append(f"  {version:<12}{count:>10,}{mark}")
    lines.append(f"out of date: {report.out_of_date:,}")
    lines.append(f"drifted: {report.drifted:,}")
    if report.unreadable:
        lines.append(f"unreadable: {report.unreadable:,}")
    for tenant in report.drifted_tenants:
        lines += _tenant_lines(tenant.user_id, tenant.schema_version, tenant.drift, tenant.error)
    if len(report.drifted_tenants) < report.drifted:
        lines.append(f"  ... and {report.drifted - len(report.drifted_tenants):,} more (--limit)")
    job = report.last_rollout
    if job is not None:
        lines.append(
            f"last rollout {job.job_id}: {job.state}, {job.done:,}/{job.total:,} to {job.target}"
            + (" (dry run)" if job.dry_run else "")
            + f", updated {job.updated_at}"
        )
        if job.state != "finished":
            lines.append(f"  resume it with: tenantdb fleet sync --resume {job.job_id}")
    return "\n".join(lines)


def _tenant_lines(
    user_id: str, version: str | None, drift: tuple[DriftItem, ...], error: str | None
) -> list[str]:
    lines = [f"  {user_id} (at {version or 'no version'})"]
    if error:
        lines.append(f"    - could not read it: {error}")
    lines += [f"    - {d.description}: {d.reason}" for d in drift]
    if not drift and not error:
        lines.append("    - no drift found now: the catalog is stale (a sync refreshes it)")
    return lines


# --------------------------------------------------------------------------- fleet sync


def _sync(args: argparse.Namespace, settings: Settings) -> int:
    if args.concurrency < 1 or args.processes < 1:
        sys.stderr.write("tenantdb: --concurrency and --processes must be at least 1\n")
        return USAGE
    if args.processes > 1 and settings.backend != "local":
        sys.stderr.write("tenantdb: --processes is for the local backend (sqld does the work)\n")
        return USAGE
    bar = not args.json and sys.stderr.isatty()
    if bar and not args.verbose and settings.log_level == "info":
        configure_logging(settings.log_format, "warning")
    show = _Bar(sys.stderr) if bar else emit_json

    async def work(tenants: TenantService) -> RolloutSummary:
        target_version(tenants.registry, args.to)  # a bad version stops here, before any job
        if args.resume and await tenants.catalog.rollouts.get(args.resume) is None:
            raise BadRequest(
                f"no rollout job {args.resume} (`tenantdb fleet status` shows the last)"
            )
        with contextlib.ExitStack() as stack:
            syncer = None
            if args.processes > 1:
                syncer = stack.enter_context(
                    ProcessSyncer(settings, args.processes, backup_always=args.backup)
                )
            return await rollout(
                tenants,
                target=args.to,
                concurrency=max(args.concurrency, args.processes),
                dry_run=args.dry_run,
                job_id=args.resume,
                on_progress=show,
                actor="cli",
                syncer=syncer,
            )

    try:
        summary = with_tenants(settings, work, backup="always" if args.backup else None)
    except BadRequest as exc:  # an unknown version or job
        return usage(exc.message)
    except Conflict as exc:  # the job is being run elsewhere
        return fail(exc.message)
    except KeyboardInterrupt:
        sys.stderr.write(
            "\ntenantdb: interrupted; the job's progress is saved: `tenantdb fleet status` "
            "shows its id, `tenantdb fleet sync --resume JOB` continues it\n"
        )
        return FAILED
    if bar:
        sys.stderr.write("\n")
        emit(_summary_text(summary))
    else:
        emit_json(summary)
    return OK if summary.ok else FAILED


class _Bar:
    """One progress line redrawn with \\r on a terminal."""

    WIDTH = 28

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, p: Progress) -> None:
        share = p.done / p.total if p.total else 1.0
        filled = min(self.WIDTH, int(self.WIDTH * share))
        changed = f"would apply {p.would_apply:,}" if p.dry_run else f"upgraded {p.upgraded:,}"
        eta = f"  eta {(p.total - p.done) / p.rate:,.0f}s" if p.rate and p.done < p.total else ""
        self.stream.write(
            f"\r{p.job_id} [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
            f"{p.done:,}/{p.total:,} {share:4.0%}  {changed}  current {p.current:,}  "
            f"failed {p.failed:,}  drifted {p.drifted:,}  {p.rate:,.0f}/s{eta} "
        )
        self.stream.flush()


def _summary_text(s: RolloutSummary) -> str:
    what = "dry run of rollout" if s.dry_run else "rollout"
    changed = f"would apply: {s.would_apply:,}" if s.dry_run else f"upgraded: {s.upgraded:,}"
    lines = [
        f"{what} {s.job_id} to {s.target}: {s.state}, {s.done:,}/{s.total:,} tenant(s) "
        f"in {s.seconds:,.1f} s ({s.rate:,.0f}/s)",
        f"  {changed}",
        f"  already current: {s.current:,}",
        f"  failed: {len(s.failed):,}",
        f"  drifted: {len(s.drifted):,}",
    ]
    for title, issues in (("failed", s.failed), ("drifted", s.drifted)):
        if issues:
            lines.append(f"{title}:")
            lines += [line for issue in issues for line in _issue_lines(issue)]
    return "\n".join(lines)


def _issue_lines(issue: TenantIssue) -> list[str]:
    if issue.drift:
        return _tenant_lines(issue.user_id, issue.from_version, issue.drift, None)
    return [f"  {issue.user_id} (at {issue.from_version or 'no version'}): {issue.reason}"]
