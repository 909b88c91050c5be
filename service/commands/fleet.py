"""`tenantdb fleet status|sync|rehearse|restore`: every tenant at once, in waves if asked,
rehearsed on copies first, and put back from a job's backups."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import msgspec
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn
from rich.table import Column

from service.commands import reconcile
from service.commands.common import (
    FAILED,
    INTERRUPTED,
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
from service.errors import BadRequest, Conflict, NotFound
from service.rollouts.model import Plan, RolloutSummary, TenantIssue, WaveCounts
from service.rollouts.model import Progress as RolloutProgress
from service.rollouts.processes import ProcessSyncer
from service.rollouts.rehearse import RehearsalSummary, Rehearsed, rehearse
from service.rollouts.report import FleetStatus, fleet_status
from service.rollouts.restore import Restored, RestoreSummary, planned, restore_job
from service.rollouts.run import rollout, target_version
from service.rollouts.waves import percent
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
  tenantdb fleet rehearse --all              # the upgrade on a copy of every database
  tenantdb fleet sync --waves 1,10,50,100 --max-failure-rate 2% --first internal.txt
  tenantdb fleet restore --job 3f9c2a7d41b0e6c8 --yes   # undo a rollout from its backups
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
  tenantdb fleet sync --waves 1,10,50,100 --max-failure-rate 2% --first internal.txt
  tenantdb fleet sync --resume 3f9c2a7d41b0e6c8 --max-failure-rate 5%   # after a halt
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
drifted is reported with its reason and the others go on. On a terminal a progress bar
fitted to its width is drawn on stderr (done/total, upgraded, failed, drifted, tenants per
second, time left); otherwise, or with --json, progress comes as JSON lines on stdout, then
the summary as one JSON line. The summary lists at most --limit failed and drifted tenants
each (the counts are whole).

Ctrl-C stops the run (exit 130): its progress is saved and the command to resume it, with
the job's id, is printed.

On the local backend, --processes P syncs in P worker processes (chunks of 100 tenants,
one at a time each; about half a second to start them), for when one process's core is
the limit.

Re-running is safe: tenants already at the version cost a header read and are counted
as already current. Each run is a job whose progress is kept in the catalog; after a
kill, --resume JOB continues it after the last tenant below which all were done (one run
holds a job at a time: a job another live process runs is refused, exit 1).
With --waves 1,10,50,100 the tenants go in waves, cumulative percentages of the fleet in
a fixed order: the user ids in --first FILE (one a line: internal accounts, say) first,
then the others by a hash of their id, so each wave is a spread of the fleet. After each
wave, if (failed + drifted) / the wave's tenants is above --max-failure-rate, the job
stops, state "halted" (exit 1), saying why; fix those tenants and --resume JOB syncs them
again and goes on (--max-failure-rate with --resume sets a new limit). A job in waves, or
one whose target passes a migration script, backs up each tenant before changing it and
records that backup: `tenantdb fleet restore --job JOB` puts the tenants back from them.

Exit 0 when every tenant is at the version (or would be, with --dry-run), 1 when some
tenant failed or drifted (or the rollout stopped or halted).
"""
REHEARSE_HELP = """\
Rehearse the upgrade to VERSION (default: the current one) on copies of the databases.

Each chosen tenant's database is copied to a scratch folder (SQLite's online backup
locally, sqld's dump on sqld) and upgraded there exactly as `fleet sync` would (the
engine's sync: additive steps, migration scripts, foreign key check), then the copy is
deleted. The live databases are never touched. Each tenant is reported ok, or failed with
the statement SQLite refused and the constraint (UNIQUE, NOT NULL, CHECK, foreign key,
foreign key orphans, drift), with the upgrade's duration and the file's size before and
after. On sqld a tenant whose upgrade takes over 2.5 s is flagged: sqld rolls back write
transactions after 5 s. A summary comes last; with --json, JSON lines. Exit 0 when every
rehearsal passed (none near that limit), 1 otherwise.
"""
REHEARSE_EPILOG = """\
examples:
  tenantdb fleet rehearse                    # 20 tenants spread over the fleet
  tenantdb fleet rehearse --all --json | jq 'select(.status == "failed")'
  tenantdb fleet rehearse --to 2.0.0 --sample 200
"""
RESTORE_HELP = """\
Put back every tenant a rollout job changed, from the backup the job took before changing
it (one transaction per tenant; the service serves it at once, at its old version, out of
date). A tenant changed again since (its newest history row is not the one the job wrote)
or without a backup is skipped and listed. Rows written since the job are lost with the
restore: that is why it asks (or needs --yes off a terminal). Each restore is in the
audit trail (trigger "restore"). Exit 0 when every tenant the job changed is restored.
"""
RESTORE_EPILOG = """\
examples:
  tenantdb fleet restore --job 3f9c2a7d41b0e6c8          # asks first
  tenantdb fleet restore --job 3f9c2a7d41b0e6c8 --yes --json
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
        help="local backend: sync in P worker processes, chunks of 100 tenants (more cores)",
    )
    sync.add_argument("--dry-run", action="store_true", help="report what would change only")
    sync.add_argument("--backup", action="store_true", help="back up each database it changes")
    sync.add_argument(
        "--resume", metavar="JOB", help="continue this job (its own version and flags apply)"
    )
    sync.add_argument("--json", action="store_true", help="JSON lines even on a terminal")
    sync.add_argument(
        "--limit",
        type=int,
        default=100,
        metavar="N",
        help="failed and drifted tenants listed in the summary, each (default 100)",
    )
    sync.add_argument(
        "--waves",
        metavar="P1,P2,..",
        help="cumulative percentages of the tenants per wave, ending at 100: 1,10,50,100",
    )
    sync.add_argument(
        "--max-failure-rate",
        metavar="RATE",
        help="halt after a wave whose failed + drifted share is above this, such as 2%%",
    )
    sync.add_argument(
        "--first", metavar="FILE", help="user ids (one a line) that go first, in that order"
    )
    sync.set_defaults(run=_sync)
    rehearse_cmd = add_command(
        group,
        "rehearse",
        "the upgrade on copies of the databases: what would fail, and why",
        REHEARSE_EPILOG,
        REHEARSE_HELP,
    )
    rehearse_cmd.add_argument("--to", metavar="VERSION", help="target (default: current)")
    chosen = rehearse_cmd.add_mutually_exclusive_group()
    chosen.add_argument(
        "--sample", type=int, default=20, metavar="N", help="N tenants spread over the fleet"
    )
    chosen.add_argument("--all", action="store_true", help="every tenant")
    rehearse_cmd.add_argument(
        "--concurrency", type=int, default=4, metavar="N", help="copies at once (default 4)"
    )
    rehearse_cmd.add_argument("--json", action="store_true", help="JSON lines on stdout")
    rehearse_cmd.set_defaults(run=_rehearse)
    restore = add_command(
        group,
        "restore",
        "put back every tenant a rollout job changed, from its backups",
        RESTORE_EPILOG,
        RESTORE_HELP,
    )
    restore.add_argument("--job", required=True, metavar="JOB", help="the rollout job's id")
    restore.add_argument("-y", "--yes", action="store_true", help="restore without asking")
    restore.add_argument("--json", action="store_true", help="JSON lines on stdout")
    restore.set_defaults(run=_restore)
    reconcile.register(group)


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
    if report.damaged:
        lines.append(f"damaged: {report.damaged:,} (not sound SQLite files, left as they are)")
    if report.ahead:
        lines.append(f"ahead: {report.ahead:,} (at a newer release's version: served as they are)")
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
        lines += wave_lines(job.waves, job.max_failure_rate)
        if job.state == "halted":
            lines.append(f"  {job.error}")
        elif job.state != "finished":
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
    try:
        plan, limit = _checked(args, settings)
    except ValueError as exc:
        return usage(str(exc))
    bar = ProgressBar(Console(stderr=True)) if not args.json and sys.stderr.isatty() else None
    show = bar or _JsonLines()

    async def work(tenants: TenantService) -> RolloutSummary:
        target_version(tenants.registry, args.to)  # a bad version stops here, before any job
        if args.resume and await tenants.catalog.rollouts.get(args.resume) is None:
            raise BadRequest(
                f"no rollout job {args.resume} (`tenantdb fleet status` shows the last)"
            )
        async with contextlib.AsyncExitStack() as stack:
            syncer = None
            if args.processes > 1:
                syncer = await stack.enter_async_context(
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
                plan=plan,
                max_failure_rate=limit,
            )

    try:
        summary = with_tenants(settings, work, backup="always" if args.backup else None)
    except BadRequest as exc:  # an unknown version or job
        return usage(exc.message)
    except Conflict as exc:  # the job is being run elsewhere
        return fail(exc.message)
    except KeyboardInterrupt:
        if bar is not None:
            bar.stop()  # ends the bar's line, so the message starts on its own
        job = show.job_id or args.resume
        resume = (
            f"`tenantdb fleet sync --resume {job}` continues it"
            if job
            else "`tenantdb fleet status` shows its id, `tenantdb fleet sync --resume JOB` "
            "continues it"
        )
        sys.stderr.write(f"tenantdb: interrupted; the job's progress is saved: {resume}\n")
        sys.stderr.flush()
        return INTERRUPTED
    finally:
        if bar is not None:
            bar.stop()
    if summary.state == "halted":
        sys.stderr.write(f"tenantdb: rollout {summary.job_id} {summary.error}\n")
    ok, counts = summary.ok, {"failed_count": len(summary.failed)}
    counts["drifted_count"] = len(summary.drifted)
    listed = capped(summary, args.limit)
    if bar is not None:
        emit(_summary_text(listed, counts["failed_count"], counts["drifted_count"]))
    else:
        emit_json(msgspec.to_builtins(listed) | counts)
    return OK if ok else FAILED


def _checked(args: argparse.Namespace, settings: Settings) -> tuple[Plan | None, float | None]:
    """`_plan`, once the numbers are in range; ValueError says what is wrong."""
    if args.concurrency < 1 or args.processes < 1 or args.limit < 0:
        raise ValueError("--concurrency and --processes must be at least 1 and --limit 0 or more")
    if args.processes > 1 and settings.backend != "local":
        raise ValueError("--processes is for the local backend (sqld does the work)")
    return _plan(args)


def _plan(args: argparse.Namespace) -> tuple[Plan | None, float | None]:
    """The new job's plan from --waves, --max-failure-rate and --first; or, with --resume,
    the resumed job's new limit. ValueError says what is wrong."""
    rate = None if args.max_failure_rate is None else parse_rate(args.max_failure_rate)
    if args.resume:
        if args.waves or args.first:
            raise ValueError("a resumed job keeps its waves and order: drop --waves and --first")
        return None, rate
    if args.waves is None and (args.first or rate is not None):
        raise ValueError("--first and --max-failure-rate go with --waves")
    if args.waves is None:
        return None, None
    try:
        waves = tuple(int(part) for part in args.waves.split(","))
    except ValueError:
        raise ValueError(f"--waves {args.waves}: give percentages such as 1,10,50,100") from None
    first: tuple[str, ...] = ()
    if args.first:
        try:
            text = Path(args.first).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"--first {args.first}: {exc.strerror or exc}") from None
        lines = (line.strip() for line in text.splitlines())
        first = tuple(dict.fromkeys(line for line in lines if line and not line.startswith("#")))
    return Plan(waves=waves, max_failure_rate=rate, first=first), None


def parse_rate(text: str) -> float:
    """A percentage ("2%", "0.5%", or "2") as a fraction; ValueError when it is not one."""
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        raise ValueError(f"--max-failure-rate {text}: give a percentage such as 2%") from None
    if not 0 <= value <= 100:
        raise ValueError(f"--max-failure-rate {text}: between 0% and 100%")
    return value / 100


def capped(summary: RolloutSummary, limit: int) -> RolloutSummary:
    """The summary listing at most `limit` failed and `limit` drifted tenants, as `fleet
    status --limit` caps its list: a rollout over a broken fleet would otherwise print a
    line per tenant. The whole counts go beside it (failed_count, drifted_count)."""
    return msgspec.structs.replace(
        summary, failed=summary.failed[:limit], drifted=summary.drifted[:limit]
    )


class _JsonLines:
    """Progress as JSON lines on stdout (off a terminal, or with --json)."""

    def __init__(self) -> None:
        self.job_id: str | None = None

    def __call__(self, p: RolloutProgress) -> None:
        self.job_id = p.job_id
        emit_json(p)


class ProgressBar:
    """The rollout's progress as a rich bar on one line, fitted to the console's width:
    rich redraws it in place, so a narrow terminal never wraps and stacks it. The job id
    and target are printed once, above it."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.job_id: str | None = None
        self._task: TaskID | None = None
        self._started = False

        def text(template: str, *, ratio: int | None = None) -> TextColumn:
            return TextColumn(
                template, table_column=Column(no_wrap=True, overflow="ellipsis", ratio=ratio)
            )

        self.progress = Progress(
            BarColumn(bar_width=None),  # the room the other columns leave
            text("{task.fields[done]}"),
            TaskProgressColumn(),
            text("{task.fields[counts]}"),
            text("{task.fields[rate]}"),
            text("{task.fields[left]}"),
            console=console,
            auto_refresh=False,  # redrawn on each progress report (every half second)
            redirect_stdout=False,  # the summary goes to stdout after the bar ends
            redirect_stderr=False,
        )

    def __call__(self, p: RolloutProgress) -> None:
        done, counts, rate, left = self.fields(p)
        if self._task is None:
            self.job_id = p.job_id
            what = "dry run of rollout" if p.dry_run else "rollout"
            self.console.print(f"{what} {p.job_id} to {p.target}: {p.total:,} tenant(s)")
            self._task = self.progress.add_task(
                "", total=p.total or 1, done=done, counts=counts, rate=rate, left=left
            )
            self.progress.start()
            self._started = True
        self.progress.update(
            self._task,
            completed=p.done if p.total else 1,
            done=done,
            counts=counts,
            rate=rate,
            left=left,
        )
        self.progress.refresh()

    @staticmethod
    def fields(p: RolloutProgress) -> tuple[str, str, str, str]:
        """The texts beside the bar: done/total, counts, rate, time left."""
        changed = f"would apply {p.would_apply:,}" if p.dry_run else f"upgraded {p.upgraded:,}"
        left = ""
        if p.done >= p.total:
            left = "done"
        elif p.rate > 0:
            left = "left " + _duration((p.total - p.done) / p.rate)
        return (
            f"{p.done:,}/{p.total:,}",
            f"{changed} failed {p.failed:,} drifted {p.drifted:,}",
            f"{p.rate:,.0f}/s",
            left,
        )

    def stop(self) -> None:
        """End the bar's line (idempotent)."""
        if self._started:
            self._started = False
            self.progress.stop()


def _duration(seconds: float) -> str:
    whole = int(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02}:{rest % 60:02}" if hours else f"{rest // 60}:{rest % 60:02}"


def _summary_text(s: RolloutSummary, failed: int, drifted: int) -> str:
    what = "dry run of rollout" if s.dry_run else "rollout"
    changed = f"would apply: {s.would_apply:,}" if s.dry_run else f"upgraded: {s.upgraded:,}"
    lines = [
        f"{what} {s.job_id} to {s.target}: {s.state}, {s.done:,}/{s.total:,} tenant(s) "
        f"in {s.seconds:,.1f} s ({s.rate:,.0f}/s)",
        f"  {changed}",
        f"  already current: {s.current:,}",
        f"  failed: {failed:,}",
        f"  drifted: {drifted:,}",
    ]
    lines += wave_lines(s.waves, s.max_failure_rate)
    if s.state == "halted":
        lines.append(f"  {s.error}")
    for title, issues, count in (("failed", s.failed, failed), ("drifted", s.drifted, drifted)):
        if issues:
            lines.append(f"{title}:")
            lines += [line for issue in issues for line in _issue_lines(issue)]
        if count > len(issues):
            lines.append(f"  ... and {count - len(issues):,} more (--limit)")
    return "\n".join(lines)


def wave_lines(waves: tuple[WaveCounts, ...], limit: float | None) -> list[str]:
    """A line per wave: its share, tenants, counts, failure rate and state."""
    if not waves:
        return []
    head = (
        f"  waves (halt above {percent(limit)} failed or drifted):"
        if limit is not None
        else "  waves:"
    )
    return [head] + [
        f"    {w.wave}. up to {w.percent}%: {w.done:,}/{w.tenants:,} done, upgraded "
        f"{w.upgraded:,}, current {w.current:,}, failed {w.failed:,}, drifted {w.drifted:,} "
        f"({percent(w.failure_rate)}): {w.state}"
        for w in waves
    ]


def _issue_lines(issue: TenantIssue) -> list[str]:
    if issue.drift:
        return _tenant_lines(issue.user_id, issue.from_version, issue.drift, None)
    return [f"  {issue.user_id} (at {issue.from_version or 'no version'}): {issue.reason}"]


# --------------------------------------------------------------------------- fleet rehearse


def _rehearse(args: argparse.Namespace, settings: Settings) -> int:
    if args.sample < 1 or args.concurrency < 1:
        return usage("--sample and --concurrency must be at least 1")

    def show(result: Rehearsed) -> None:
        emit_json(result) if args.json else emit("\n".join(_rehearsed_lines(result)))

    async def work(tenants: TenantService) -> RehearsalSummary:
        goal = target_version(tenants.registry, args.to)
        sample = None if args.all else args.sample
        return await rehearse(
            tenants, target=goal, sample=sample, concurrency=args.concurrency, on_tenant=show
        )

    try:
        summary = with_tenants(settings, work)
    except BadRequest as exc:  # an unknown version
        return usage(exc.message)
    if args.json:
        emit_json(summary)
    else:
        emit(
            f"rehearsed the upgrade to {summary.target} on copies of {summary.tenants:,} "
            f"tenant(s) in {summary.seconds:,.1f} s: {summary.passed:,} passed, "
            f"{summary.failed:,} failed"
            + (f", {summary.near_limit:,} near sqld's 5 s limit" if summary.near_limit else "")
            + ("" if summary.ok else f" ({', '.join(summary.failed_tenants)})")
            + "; no live database was changed"
        )
    return OK if summary.ok and not summary.near_limit else FAILED  # near it: may not commit


def _rehearsed_lines(r: Rehearsed) -> list[str]:
    size = f"{r.size_before:,} -> {r.size_after:,} bytes"
    head = f"{r.user_id} ({r.from_version or 'no version'} -> {r.to_version}): {r.status}"
    lines = [f"{head}, {r.duration_ms:,.1f} ms, {size}"]
    if r.near_limit:
        lines.append("  - near sqld's 5 s write-transaction limit: the live upgrade may not commit")
    if r.status == "failed":
        lines.append(f"  - {r.constraint or 'error'}: {r.message}")
        if r.statement:
            lines.append(f"    statement: {r.statement}")
        lines += [f"  - {d.description}: {d.reason}" for d in r.drift]
    return lines


# --------------------------------------------------------------------------- fleet restore


def _restore(args: argparse.Namespace, settings: Settings) -> int:
    try:
        count = len(with_tenants(settings, lambda tenants: planned(tenants, args.job)))
    except NotFound as exc:
        return usage(exc.message)
    if not args.yes:
        if not sys.stdin.isatty():
            return usage("fleet restore replaces live databases: pass --yes to confirm")
        sys.stderr.write(
            f"Restore {count:,} tenant(s) changed by job {args.job} from the backups it took? "
            "Rows written since are lost. [y/N] "
        )
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return fail("nothing restored")

    def show(result: Restored) -> None:
        if args.json:
            emit_json(result)
            return
        why = f": {result.reason}" if result.reason else ""
        emit(f"{result.user_id}: {result.status} (at {result.version or 'no version'}){why}")

    async def work(tenants: TenantService) -> RestoreSummary:
        return await restore_job(tenants, args.job, actor=f"job {args.job}", on_tenant=show)

    summary = with_tenants(settings, work)
    if args.json:
        emit_json(summary)
    else:
        emit(
            f"job {summary.job_id} changed {summary.changed:,} tenant(s): restored "
            f"{summary.restored:,}, skipped {summary.skipped:,}, failed {summary.failed:,}"
            + (f", restored before {summary.already:,}" if summary.already else "")
        )
    return OK if summary.ok else FAILED
