"""Bring one database to a registry version: fast check, then plan and apply in one transaction.

Everything a sync changes, its DDL, the versions' migration scripts and the history rows,
commits together under BEGIN IMMEDIATE or not at all. Concurrent syncs of one database
serialise on SQLite's write lock, and the second one re-reads the state and finds nothing
to do.

A statement SQLite refuses while applying (a step, a script's statement, the history rows)
fails the sync with StatementFailed, naming it; the transaction rolls back. Faults of the
storage itself (busy, full, I/O) pass through as the database raised them, for the caller
to type. A history row the engine cannot read is drift: nothing is changed.

Migration scripts run the way SQLite documents its 12-step table rebuild
(https://www.sqlite.org/lang_altertable.html#otheralter): foreign keys off for the
transaction, then `PRAGMA foreign_key_check` before commit. With them on, dropping a table
that others reference would run ON DELETE CASCADE and silently empty its children.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Final, Literal

import msgspec

from schema_registry import history
from schema_registry.changes import (
    AddColumn,
    Additive,
    AlterColumn,
    AlterTable,
    CreateIndex,
    Extra,
    RunScript,
    Step,
    UnreadableHistory,
    step_statements,
)
from schema_registry.clock import utc_now
from schema_registry.database import Database, Row, Transaction, Value
from schema_registry.errors import (
    HistoryRowUnreadable,
    NewerDatabaseError,
    StatementFailed,
    SyncError,
)
from schema_registry.history import HistoryRow, Stamp, version_key
from schema_registry.introspect import OBJECTS_SQL, introspect
from schema_registry.model import Model, Schema
from schema_registry.plan import Plan, Refusal
from schema_registry.registry import Registry, Version
from schema_registry.sqltext import fold

FOREIGN_KEY_CHECK: Final = "PRAGMA foreign_key_check"
# SQLite's result codes for a statement it refused, as opposed to the storage failing
# (busy, locked, full, I/O, corrupt), which the backends type themselves. sqlite3 gives the
# number (https://www.sqlite.org/rescode.html: ERROR, SCHEMA, TOOBIG, CONSTRAINT, MISMATCH,
# AUTH, RANGE), sqld the name (SQLITE_UNKNOWN is its name for SQLITE_ERROR: "no such
# column" while running), or SQL_... when its own parser refused the statement.
_REFUSED_CODES: Final = frozenset({1, 17, 18, 19, 20, 23, 25})
_REFUSED_NAMES: Final = (
    "SQL_",
    "SQLITE_ERROR",
    "SQLITE_UNKNOWN",
    "SQLITE_SCHEMA",
    "SQLITE_TOOBIG",
    "SQLITE_CONSTRAINT",
    "SQLITE_MISMATCH",
    "SQLITE_AUTH",
    "SQLITE_RANGE",
)
# "ahead": at a version newer than the registry's current one (a service rolled back, or
# an older replica during a rolling deploy) while holding everything the current one
# expects: usable as it is, and never downgraded.
Status = Literal["up_to_date", "applied", "out_of_date", "drifted", "ahead"]


class SyncContext(Model, frozen=True):
    """Who asked for a sync, recorded with every version row it writes."""

    trigger: str = "manual"  # sign-in, manual, fleet, cli
    environment: str | None = None
    notes: str | None = None


class SyncResult(Model, frozen=True):
    status: Status
    from_version: str | None
    to_version: str
    steps: tuple[Step, ...] = ()  # what ran (or would run, when verifying), in order
    drift: tuple[Refusal, ...] = ()
    extras: tuple[Extra, ...] = ()
    warnings: tuple[str, ...] = ()
    recorded: tuple[str, ...] = ()  # versions whose rows this sync wrote
    stamp: Stamp | None = None  # where the database is now, when it matches a version
    fast_path: bool = False
    duration_ms: float = 0.0

    @property
    def up_to_date(self) -> bool:
        """Usable at the target: current, just brought there, or ahead of it."""
        return self.status in ("up_to_date", "applied", "ahead")

    @property
    def changes(self) -> tuple[Additive, ...]:
        """The additive changes among the steps (what `changes_applied` counts)."""
        return tuple(s for s in self.steps if not isinstance(s, RunScript))

    @property
    def statements(self) -> tuple[str, ...]:
        """The SQL of every step, in order."""
        return tuple(sql for step in self.steps for sql in step_statements(step))


def is_current(stamp: Stamp | None, target: Version, cookie: int) -> bool:
    """Whether a stamp says `target`, with a content hash it accepts, at this schema cookie."""
    return (
        stamp is not None
        and stamp.version == target.version
        and target.accepts(stamp.content_hash)
        and stamp.cookie == cookie
    )


async def check(
    db: Database, target: Version, known: Stamp | None = None
) -> tuple[bool, HistoryRow | None, int]:
    """The fast path: is the database at `target` with nothing changed since we recorded it?

    `known` is a stamp mirrored elsewhere (the service's catalog): when it matches the live
    schema cookie, no table is read at all, which spares SQLite parsing the schema.
    An unreadable newest history row is "not current": the sync reports it as drift.
    """
    cookie = await db.schema_cookie()
    try:
        current, head = await _current(db, target, known, cookie)
    except HistoryRowUnreadable:
        return False, None, cookie
    return current, head, cookie


async def sync(
    db: Database,
    registry: Registry,
    *,
    target: str | None = None,
    apply: bool = True,
    known: Stamp | None = None,
    context: SyncContext | None = None,
    fresh: bool = False,
) -> SyncResult:
    """Sync `db` to `target` (default: the registry's current version).

    With apply=False nothing is written: the result says what would run (the dry run).
    `fresh` says the database was created just now, so the up-to-date check is skipped
    (on a server, a round trip); the transaction re-reads the state all the same.
    """
    started = time.perf_counter()
    version = _target(registry, target)
    try:
        result = await _sync(
            db,
            registry=registry,
            version=version,
            apply=apply,
            known=known,
            context=context or SyncContext(),
            fresh=fresh,
        )
    except HistoryRowUnreadable as exc:  # rolled back, if a transaction had begun
        change = UnreadableHistory(row=exc.row, detail=exc.detail)
        drift = (Refusal(change=change, reason=str(exc)),)
        result = SyncResult(
            status="drifted", from_version=None, to_version=version.version, drift=drift
        )
    return msgspec.structs.replace(result, duration_ms=_ms(started))


async def _sync(
    db: Database,
    *,
    registry: Registry,
    version: Version,
    apply: bool,
    known: Stamp | None,
    context: SyncContext,
    fresh: bool,
) -> SyncResult:
    if fresh and apply:
        return await _apply(db, registry, version, None, context)
    behind = known is not None and version_key(known.version) < version.key
    if apply and known is not None and behind and not _recorded(known, version):
        # The mirror says the database is behind: straight to the transaction, which
        # reads where it really is (on a server, a round trip less than checking first).
        return await _apply(db, registry, version, known.version, context)
    cookie = await db.schema_cookie()
    current, head = await _current(db, version, known, cookie)
    if head is None and known is not None and not current:
        head = await history.newest(db)
    if head is not None and version_key(head.version) > version.key:
        if registry.get(head.version) is not None:  # a downgrade asked for: refused
            _from_version(head, target=version)
        return await _ahead(db, version, head)
    if current:
        stamp = Stamp(version=version.version, content_hash=version.content_hash, cookie=cookie)
        return SyncResult(
            status="up_to_date",
            from_version=version.version,
            to_version=version.version,
            stamp=stamp,
            fast_path=True,
        )
    if not apply:
        return await _verify(db, registry, version, head)
    return await _apply(db, registry, version, _from_version(head, target=version), context)


async def _ahead(db: Database, target: Version, head: HistoryRow) -> SyncResult:
    """A database at a version this registry does not have yet (the service was rolled
    back, or runs beside a newer replica): served as it is when it holds everything
    `target` expects (extras allowed); NewerDatabaseError naming what it lacks otherwise.
    Nothing is written either way: tenantdb never downgrades."""
    plan = target.plan_from(await introspect(db))
    missing = [step.describe() for step in plan.steps]
    missing += [f"{r.change.describe()} ({r.reason})" for r in plan.drift]
    if missing:
        raise NewerDatabaseError(
            f"the database is at {head.version}, newer than {target.version}, and differs "
            f"from what {target.version} expects: {'; '.join(missing[:5])}; tenantdb does "
            f"not downgrade: serve it with a registry that has {head.version}"
        )
    note = (
        f"the database is at {head.version}, newer than this service's {target.version}, "
        f"and holds everything {target.version} expects: served as it is"
    )
    return SyncResult(
        status="ahead",
        from_version=head.version,
        to_version=target.version,
        extras=plan.extras,
        warnings=(note,),
    )


async def _apply(
    db: Database,
    registry: Registry,
    target: Version,
    from_version: str | None,
    context: SyncContext,
) -> SyncResult:
    """One write transaction, with foreign keys off when migration scripts run.

    SQLite's table rebuilds need them off (see the module's docstring), and that must be
    set before BEGIN: it is decided from where the database is thought to be
    (`from_version`). A transaction that finds scripts to run after all starts again with
    them off.
    """
    scripts = bool(_migrations(registry, from_version, target))
    try:
        async with db.transaction(foreign_keys=not scripts) as tx:
            return await _upgrade(tx, registry, target, context, scripts=scripts)
    except _ScriptsAfterAll:
        async with db.transaction(foreign_keys=False) as tx:
            return await _upgrade(tx, registry, target, context, scripts=True)


class _ScriptsAfterAll(Exception):
    """The database is further behind than thought, and migration scripts must run."""


def _violations(rows: list[Row]) -> Counter[tuple[str, str]]:
    """PRAGMA foreign_key_check's rows pointing at a missing parent, counted per (table,
    parent table)."""
    return Counter((str(row[0]), str(row[2])) for row in rows)


def _refuse_new_orphans(before: list[Row], after: list[Row]) -> None:
    """Fail the sync if migration scripts left rows pointing at missing parents."""
    broken = _violations(after) - _violations(before)
    if broken:
        (table, parent), count = next(iter(broken.items()))
        raise SyncError(
            f"after the migration scripts, {count} row(s) of {table} point at missing "
            f"{parent} rows (foreign keys are off while scripts run: delete or fix "
            "dependent rows in the script); rolled back"
        )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _target(registry: Registry, target: str | None) -> Version:
    if target is None:
        return registry.current
    version = registry.get(target)
    if version is None:
        known = ", ".join(v.version for v in registry.versions)
        raise SyncError(f"version {target} is not in the registry (it has {known})")
    return version


async def _current(
    db: Database, target: Version, known: Stamp | None, cookie: int
) -> tuple[bool, HistoryRow | None]:
    """Whether the database is at `target` unchanged, and its newest history row (None
    when the mirror `known` already said so)."""
    if is_current(known, target, cookie):
        return True, None
    head = await history.newest(db)
    return is_current(head.stamp if head else None, target, cookie), head


def _from_version(head: HistoryRow | None, *, target: Version) -> str | None:
    if head is None:
        return None
    if version_key(head.version) > target.key:
        raise NewerDatabaseError(
            f"the database is at {head.version}, newer than {target.version}: "
            "tenantdb does not downgrade"
        )
    return head.version


async def _verify(
    db: Database, registry: Registry, target: Version, head: HistoryRow | None
) -> SyncResult:
    """What a sync would do, without writing anything."""
    from_version = _from_version(head, target=target)
    plan = target.plan_from(await introspect(db))
    warnings = tuple(f"optional: {s.describe()}" for s in plan.optional) + _warnings(plan)
    pending_migrations = bool(_migrations(registry, from_version, target))
    status: Status
    if plan.drift and not pending_migrations:
        status = "drifted"
    elif plan.required_steps or pending_migrations or not _recorded(head, target):
        status = "out_of_date"
    else:
        status = "up_to_date"
    return SyncResult(
        status=status,
        from_version=from_version,
        to_version=target.version,
        steps=plan.steps,
        drift=plan.drift,
        extras=plan.extras,
        warnings=warnings,
    )


def _warnings(plan: Plan) -> tuple[str, ...]:
    """What a sync reports without refusing: tables in another column order."""
    return tuple(order.describe() for order in plan.warnings)


def _recorded(head: HistoryRow | Stamp | None, target: Version) -> bool:
    return head is not None and head.version == target.version and target.accepts(head.content_hash)


def _refused(exc: Exception) -> bool:
    """Whether SQLite refused a statement (see _REFUSED_CODES), not the storage failed."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _REFUSED_CODES
    name = getattr(exc, "code", None)
    return isinstance(name, str) and name.startswith(_REFUSED_NAMES)


def _statement_failed(
    exc: Exception, version: str, statements: Sequence[tuple[str, Sequence[Value]]]
) -> StatementFailed | None:
    """StatementFailed for a refusal, naming the statement by the error's `step` (the
    Session protocol's), or None for anything else (raised as it is)."""
    if not _refused(exc):
        return None
    step = getattr(exc, "step", None)
    if isinstance(step, int) and 0 <= step < len(statements):
        statement = statements[step][0]
    else:
        statement = f"one of {len(statements)} statement(s)"
    return StatementFailed(version, statement, str(exc))


async def _run(
    tx: Transaction,
    version: str,
    statements: Sequence[tuple[str, Sequence[Value]]],
    *,
    commit: bool = False,
) -> list[list[Row]]:
    """One batch of the sync (then COMMIT, with `commit`); a refused statement fails the
    sync as StatementFailed (the transaction rolls back when it closes)."""
    try:
        return await (tx.commit(statements) if commit else tx.fetch_many(statements))
    except Exception as exc:
        failed = _statement_failed(exc, version, statements)
        if failed is None:
            raise
        raise failed from exc


def _passed(registry: Registry, from_version: str | None, target: Version) -> tuple[Version, ...]:
    """Versions an upgrade records. A database with no history adopts the target directly:
    migrations are written for databases that were at the version before them."""
    if from_version is None:
        return (target,)
    return registry.passed(from_version, target.version)


def _migrations(
    registry: Registry, from_version: str | None, target: Version
) -> tuple[Version, ...]:
    """Versions whose migration scripts an upgrade runs, oldest first. None for a database
    with no history: it adopts the target directly, and a script written for the previous
    version's schema would meet the schema it produces (and fail, or do harm)."""
    if from_version is None:
        return ()
    return tuple(v for v in registry.passed(from_version, target.version) if v.migration)


async def _upgrade(
    tx: Transaction, registry: Registry, target: Version, context: SyncContext, *, scripts: bool
) -> SyncResult:
    """Inside the write transaction: re-read the state, apply, verify, record, commit.

    Each step is one batch (one round trip on a server): the state, then each plan with
    its script and the schema it leaves, then the history rows with COMMIT. With
    `scripts` (foreign keys are off), rows the scripts leave pointing nowhere fail the
    sync; violations that were there before do not.
    """
    # The history table is made first so its newest row can be read in the same batch; a
    # sync that does not commit takes it away again.
    state = [(history.HISTORY_DDL, ()), (history.NEWEST_SQL, ()), (OBJECTS_SQL, ())]
    state += [(FOREIGN_KEY_CHECK, ())] if scripts else []
    reads = await _run(tx, target.version, state)
    head = next(iter(history.parse(reads[1])), None)
    violations_before = reads[3] if scripts else []
    actual = await introspect(tx, reads[2])
    from_version = _from_version(head, target=target)
    passed = _passed(registry, from_version, target)
    migrating = _migrations(registry, from_version, target)
    if migrating and not scripts:
        raise _ScriptsAfterAll  # the transaction rolls back: it has changed nothing yet
    checking = bool(migrating)
    applied = _Applied(actual=actual)
    # Straight to the target, except that a version with a migration script is reached
    # first, so its script runs against the schema it was written for.
    for stop in [*(v for v in migrating if v is not target), target]:
        plan = stop.plan_from(applied.actual)
        ran: list[Step] = [*plan.steps]
        if stop in migrating:
            ran = [
                *_before_script(plan),
                RunScript(version=stop.version, statements=stop.migration),
            ]
        check_keys = checking and stop is target
        await _apply_steps(tx, stop, ran, applied, check_keys=check_keys)
        if stop in migrating:
            # Steps held back for what the script makes (an index on the column its table
            # rebuild adds) run after it: the plan never runs them against what is missing.
            following = [*stop.plan_from(applied.actual).steps]
            await _apply_steps(tx, stop, following, applied, check_keys=check_keys)
    final = target.plan_from(applied.actual)
    if final.steps:
        raise SyncError(
            f"after applying, {final.steps[0].describe()} is still missing; rolled back"
        )
    if checking:
        violations_after = applied.violations
        if violations_after is None:
            violations_after = await tx.fetch(FOREIGN_KEY_CHECK)
        _refuse_new_orphans(violations_before, violations_after)
    base = SyncResult(
        status="drifted" if final.drift else "applied",
        from_version=from_version,
        to_version=target.version,
        steps=tuple(applied.steps),
        drift=final.drift,
        extras=final.extras,
        warnings=_warnings(final),
    )
    if final.drift:
        return base  # rolled back when the transaction closes: all of the version or none
    return await _record(tx, result=base, head=head, passed=passed, target=target, context=context)


def _before_script(plan: Plan) -> tuple[Additive, ...]:
    """A migrating version's steps that run before its script: all but the indexes on
    tables with drift, which the script is about to rebuild (they follow it)."""
    drifted = {
        fold(item.change.table)
        for item in plan.drift
        if isinstance(item.change, AddColumn | AlterColumn | AlterTable)
    }
    return tuple(
        step
        for step in plan.steps
        if not (isinstance(step, CreateIndex) and fold(step.index.table) in drifted)
    )


class _Applied:
    """What the transaction has run so far, and the schema it has left."""

    def __init__(self, *, actual: Schema) -> None:
        self.actual = actual
        self.steps: list[Step] = []
        self.violations: list[Row] | None = None  # the newest PRAGMA foreign_key_check


async def _apply_steps(
    tx: Transaction,
    stop: Version,
    ran: Sequence[Step],
    applied: _Applied,
    *,
    check_keys: bool,
) -> None:
    """Run steps in one batch with the read of the schema they leave (and, with
    `check_keys`, of the foreign key violations)."""
    script = [sql for step in ran for sql in step_statements(step)]
    applied.steps += ran
    if not script:
        return
    after: list[tuple[str, Sequence[Value]]] = [(OBJECTS_SQL, ())]
    after += [(FOREIGN_KEY_CHECK, ())] if check_keys else []
    results = await _run(tx, stop.version, [(sql, ()) for sql in script] + after)
    applied.actual = await introspect(tx, results[len(script)])
    if check_keys:
        applied.violations = results[-1]


async def _record(
    tx: Transaction,
    *,
    result: SyncResult,
    head: HistoryRow | None,
    passed: tuple[Version, ...],
    target: Version,
    context: SyncContext,
) -> SyncResult:
    """Write the history rows and commit, in one batch."""
    if not any(map(step_statements, result.steps)) and head is not None and _recorded(head, target):
        # Someone changed the schema and it still matches: re-arm the fast path only.
        rearm = history.rearm_statements(head.id)
        cookie = history.cookie_of(await _run(tx, target.version, rearm, commit=True))
        stamp = Stamp(version=target.version, content_hash=target.content_hash, cookie=cookie)
        return msgspec.structs.replace(result, status="up_to_date", stamp=stamp)
    applied_at = utc_now()
    count = len(result.changes)
    recorded = passed or (target,)
    rows: list[tuple[Value, ...]] = [
        (
            version.version,
            version.description,
            version.created_at,
            applied_at,
            version.content_hash,
            count if version is target else 0,
            context.environment,
            context.trigger,
            context.notes,
        )
        for version in recorded
    ]
    record = history.record_statements(rows)
    cookie = history.cookie_of(await _run(tx, target.version, record, commit=True))
    stamp = Stamp(version=target.version, content_hash=target.content_hash, cookie=cookie)
    return msgspec.structs.replace(result, recorded=tuple(v.version for v in recorded), stamp=stamp)
