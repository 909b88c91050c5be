"""Fleet rollout jobs: their values, and the tables in the catalog's database that keep them,
so any process can poll or resume one.

Two tables beside the catalog's own, created here (the catalog module does not know them):
`rollouts`, one row per job with its counts, and `rollout_issues`, one row per tenant that
failed or drifted in a job, with the reason. A job's `cursor` is a low-water mark: every
tenant whose user id sorts at or below it is done and counted, so a resumed job starts
after it. Tenants finished above it when the process died are synced again and take the
engine's fast path: nothing is applied twice, since each tenant's own history row (not this
table) says what it is at.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final, Literal

import msgspec

from schema_registry.database import Row, Value
from schema_registry.plan import Refusal
from schema_registry.sqltext import split_statements
from service.catalog import CatalogStore

JobState = Literal["running", "finished", "cancelled", "failed"]
Kind = Literal["upgraded", "current", "would_apply", "failed", "drifted"]
KINDS: Final[tuple[Kind, ...]] = ("upgraded", "current", "would_apply", "failed", "drifted")

ROLLOUTS_DDL: Final = """
CREATE TABLE IF NOT EXISTS rollouts (
    job_id TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    concurrency INTEGER NOT NULL,
    actor TEXT,
    state TEXT NOT NULL,
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    finished_at TEXT,
    cursor TEXT,
    total INTEGER NOT NULL,
    upgraded INTEGER NOT NULL DEFAULT 0,
    current INTEGER NOT NULL DEFAULT 0,
    would_apply INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    drifted INTEGER NOT NULL DEFAULT 0,
    seconds REAL NOT NULL DEFAULT 0,
    error TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rollouts_by_start ON rollouts (started_at);
CREATE TABLE IF NOT EXISTS rollout_issues (
    job_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    from_version TEXT,
    reason TEXT NOT NULL,
    drift TEXT NOT NULL,
    PRIMARY KEY (job_id, user_id)
) WITHOUT ROWID;
"""
_JOB_COLUMNS: Final = (
    "job_id, target, dry_run, concurrency, actor, state, started_at, updated_at, finished_at, "
    "cursor, total, upgraded, current, would_apply, failed, drifted, seconds, error"
)
_ISSUE_BATCH: Final = 100  # rows per INSERT: 6 parameters each, far below SQLite's limit


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class DriftNote(msgspec.Struct, frozen=True, kw_only=True):
    """One drift item: what differs and why tenantdb will not change it by itself."""

    kind: str
    object: str
    description: str
    reason: str

    @classmethod
    def of(cls, refusal: Refusal) -> DriftNote:
        change = refusal.change
        return cls(
            kind=str(type(change).__struct_config__.tag),
            object=change.object,
            description=change.describe(),
            reason=refusal.reason,
        )


class TenantIssue(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant a rollout could not bring to its target: failed (an error) or drifted."""

    user_id: str
    kind: Literal["failed", "drifted"]
    from_version: str | None
    reason: str
    drift: tuple[DriftNote, ...] = ()


class Counts(msgspec.Struct, frozen=True, kw_only=True):
    upgraded: int = 0
    current: int = 0
    would_apply: int = 0
    failed: int = 0
    drifted: int = 0

    @property
    def done(self) -> int:
        return self.upgraded + self.current + self.would_apply + self.failed + self.drifted


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """A rollout job's row: what it targets, how far it got, and its counts so far."""

    job_id: str
    target: str
    dry_run: bool
    concurrency: int
    actor: str | None
    state: JobState
    started_at: str
    updated_at: str
    finished_at: str | None = None
    cursor: str | None = None  # every tenant with user_id <= cursor is done and counted
    total: int = 0
    counts: Counts = Counts()
    seconds: float = 0.0  # time spent running, over every run of the job
    error: str | None = None


class Progress(msgspec.Struct, frozen=True, kw_only=True, tag_field="event", tag="progress"):
    """Where a running job is: counts so far, and this run's speed."""

    job_id: str
    state: JobState
    target: str
    dry_run: bool
    total: int
    done: int
    upgraded: int
    current: int
    would_apply: int
    failed: int
    drifted: int
    rate: float  # tenants per second in this run
    elapsed_s: float  # this run


class RolloutSummary(msgspec.Struct, frozen=True, kw_only=True, tag_field="event", tag="summary"):
    """A job's counts and every tenant it could not bring to the target, with the reason."""

    job_id: str
    state: JobState
    target: str
    dry_run: bool
    concurrency: int
    started_at: str
    updated_at: str
    finished_at: str | None
    total: int
    done: int
    upgraded: int
    current: int  # already at the target
    would_apply: int  # dry run: a sync would change these
    failed: tuple[TenantIssue, ...]
    drifted: tuple[TenantIssue, ...]
    seconds: float  # time spent running, over every run of the job
    rate: float  # tenants per second, over every run of the job
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Finished, and every tenant is at the target (or would be, in a dry run)."""
        return self.state == "finished" and not self.failed and not self.drifted


def summarize(job: Job, issues: list[TenantIssue]) -> RolloutSummary:
    c = job.counts
    return RolloutSummary(
        job_id=job.job_id,
        state=job.state,
        target=job.target,
        dry_run=job.dry_run,
        concurrency=job.concurrency,
        started_at=job.started_at,
        updated_at=job.updated_at,
        finished_at=job.finished_at,
        total=job.total,
        done=c.done,
        upgraded=c.upgraded,
        current=c.current,
        would_apply=c.would_apply,
        failed=tuple(i for i in issues if i.kind == "failed"),
        drifted=tuple(i for i in issues if i.kind == "drifted"),
        seconds=round(job.seconds, 3),
        rate=round(c.done / job.seconds, 1) if job.seconds else 0.0,
        error=job.error,
    )


# Catalog stores whose rollout tables this process has created (or found).
_OPENED: weakref.WeakSet[CatalogStore] = weakref.WeakSet()


class RolloutStore:
    """The rollout tables, through the catalog's store (a local file or the sqld namespace).

    Every method creates the tables first if this process has not yet done so on that store.
    """

    def __init__(self, store: CatalogStore) -> None:
        self.store = store

    async def open(self) -> None:
        if self.store in _OPENED:
            return
        for statement in split_statements(ROLLOUTS_DDL):
            await self.store.execute(statement)
        _OPENED.add(self.store)

    async def save(self, job: Job, issues: Sequence[TenantIssue] = ()) -> None:
        """Write the job row; first the issues it counts, so a kill in between only
        leaves issue rows above the cursor, which `forget_after` clears on resume."""
        await self.open()
        for start in range(0, len(issues), _ISSUE_BATCH):
            batch = issues[start : start + _ISSUE_BATCH]
            params: list[Value] = []
            for issue in batch:
                drift = msgspec.json.encode(issue.drift).decode()
                params += [job.job_id, issue.user_id, issue.kind, issue.from_version]
                params += [issue.reason, drift]
            await self.store.execute(
                "INSERT OR REPLACE INTO rollout_issues "
                "(job_id, user_id, kind, from_version, reason, drift) VALUES "
                + ", ".join(["(?,?,?,?,?,?)"] * len(batch)),
                params,
            )
        c = job.counts
        await self.store.execute(
            f"INSERT OR REPLACE INTO rollouts ({_JOB_COLUMNS}) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                job.job_id,
                job.target,
                int(job.dry_run),
                job.concurrency,
                job.actor,
                job.state,
                job.started_at,
                job.updated_at,
                job.finished_at,
                job.cursor,
                job.total,
                c.upgraded,
                c.current,
                c.would_apply,
                c.failed,
                c.drifted,
                job.seconds,
                job.error,
            ),
        )

    async def get(self, job_id: str) -> Job | None:
        await self.open()
        rows = await self.store.fetch(
            f"SELECT {_JOB_COLUMNS} FROM rollouts WHERE job_id = ?", (job_id,)
        )
        return _job(rows[0]) if rows else None

    async def jobs(self, *, limit: int = 20) -> list[Job]:
        """The newest jobs first."""
        await self.open()
        rows = await self.store.fetch(
            f"SELECT {_JOB_COLUMNS} FROM rollouts ORDER BY started_at DESC, job_id LIMIT ?",
            (limit,),
        )
        return [_job(row) for row in rows]

    async def issues(self, job_id: str) -> list[TenantIssue]:
        await self.open()
        rows = await self.store.fetch(
            "SELECT user_id, kind, from_version, reason, drift FROM rollout_issues "
            "WHERE job_id = ? ORDER BY user_id",
            (job_id,),
        )
        return [
            TenantIssue(
                user_id=str(r[0]),
                kind="failed" if r[1] == "failed" else "drifted",
                from_version=None if r[2] is None else str(r[2]),
                reason=str(r[3]),
                drift=msgspec.json.decode(str(r[4]), type=tuple[DriftNote, ...]),
            )
            for r in rows
        ]

    async def forget_after(self, job_id: str, cursor: str | None) -> None:
        """Drop issue rows above the cursor: those tenants are about to be synced again."""
        await self.open()
        await self.store.execute(
            "DELETE FROM rollout_issues WHERE job_id = ? AND user_id > ?", (job_id, cursor or "")
        )


def _job(row: Row) -> Job:
    (job_id, target, dry_run, concurrency, actor, state, started, updated, finished) = row[:9]
    (cursor, total, upgraded, current, would_apply, failed, drifted, seconds, error) = row[9:]
    return msgspec.convert(
        {
            "job_id": job_id,
            "target": target,
            "dry_run": bool(dry_run),
            "concurrency": concurrency,
            "actor": actor,
            "state": state,
            "started_at": started,
            "updated_at": updated,
            "finished_at": finished,
            "cursor": cursor,
            "total": total,
            "counts": {
                "upgraded": upgraded,
                "current": current,
                "would_apply": would_apply,
                "failed": failed,
                "drifted": drifted,
            },
            "seconds": seconds,
            "error": error,
        },
        Job,
    )
