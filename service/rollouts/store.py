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

import os
import secrets
import socket
import time
import weakref
from collections.abc import Sequence
from typing import Final, Literal

import msgspec

from schema_registry.database import Row, Value
from schema_registry.plan import Refusal
from schema_registry.sqltext import split_statements
from service.catalog import CatalogStore
from service.errors import Conflict

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
    error TEXT,
    owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0
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
    "cursor, total, upgraded, current, would_apply, failed, drifted, seconds, error, owner, "
    "lease_until"
)
_SET_JOB: Final = ", ".join(f"{c} = ?" for c in _JOB_COLUMNS.split(", ")[1:-1])
# Columns added after the first release: catalogs made before get them on open.
_ADDED: Final = (("owner", "TEXT"), ("lease_until", "REAL NOT NULL DEFAULT 0"))
LEASE_SECONDS: Final = 15.0  # a run renews its lease with every progress save
_ISSUE_BATCH: Final = 100  # rows per INSERT: 6 parameters each, far below SQLite's limit


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
    owner: str | None = None  # the run holding the job's lease
    lease_until: float = 0.0  # unix time; another run may take the job after it

    @property
    def leased(self) -> bool:
        """A live run holds the job (it saves progress at least every few seconds); a
        run of this machine whose process is gone (killed) holds nothing."""
        return (
            self.owner is not None and self.lease_until > time.time() and not owner_gone(self.owner)
        )


def run_owner() -> str:
    """An id for one run of a job: the machine and process it runs in, and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def owner_gone(owner: str) -> bool:
    """Whether `owner` (a `run_owner`) ran on this machine in a process that has exited."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: does it exist?
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's process: alive
        return False
    return False


class LeaseLost(Conflict):
    """Another run has taken the job (this one stopped saving progress for too long)."""


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
        columns = {str(r[1]) for r in await self.store.fetch("PRAGMA table_info(rollouts)")}
        for name, kind in _ADDED:
            if name not in columns:
                try:
                    await self.store.execute(f"ALTER TABLE rollouts ADD COLUMN {name} {kind}")
                except Exception as exc:  # another process added it first
                    if "duplicate column" not in str(exc):
                        raise
        _OPENED.add(self.store)

    async def create(self, job: Job) -> None:
        """Write a new job's row (no run holds it yet)."""
        await self.open()
        await self.store.execute(
            f"INSERT INTO rollouts ({_JOB_COLUMNS}) VALUES ({', '.join('?' * 20)})",
            _job_values(job),
        )

    async def claim(self, job: Job, owner: str) -> Job | None:
        """Take the job's lease for run `owner`: None while another live run holds it.

        One statement, so two runs resuming a job at once cannot both get it. A lease of
        a killed process on this machine is taken at once, others once they expire.
        """
        await self.open()
        now = time.time()
        gone = job.owner if job.owner is not None and owner_gone(job.owner) else owner
        rows = await self.store.fetch(
            "UPDATE rollouts SET owner = ?, lease_until = ? WHERE job_id = ? "
            "AND (owner IS NULL OR owner IN (?, ?) OR lease_until < ?) "
            f"RETURNING {_JOB_COLUMNS}",
            (owner, now + LEASE_SECONDS, job.job_id, owner, gone, now),
        )
        return _job(rows[0]) if rows else None

    async def save(
        self, job: Job, issues: Sequence[TenantIssue] = (), *, release: bool = False
    ) -> None:
        """Write the job row, renewing its run's lease (`release`: ending it); first the
        issues it counts, so a kill in between only leaves issue rows above the cursor,
        which `forget_after` clears on resume. Both only while `job.owner` holds the job:
        LeaseLost when another run has taken it."""
        await self.open()
        held = "EXISTS (SELECT 1 FROM rollouts WHERE job_id = ? AND owner IS ?)"
        for start in range(0, len(issues), _ISSUE_BATCH):
            batch = issues[start : start + _ISSUE_BATCH]
            params: list[Value] = []
            for issue in batch:
                drift = msgspec.json.encode(issue.drift).decode()
                params += [job.job_id, issue.user_id, issue.kind, issue.from_version]
                params += [issue.reason, drift]
            await self.store.execute(
                "INSERT OR REPLACE INTO rollout_issues "
                "(job_id, user_id, kind, from_version, reason, drift) SELECT * FROM (VALUES "
                + ", ".join(["(?,?,?,?,?,?)"] * len(batch))
                + f") WHERE {held}",
                [*params, job.job_id, job.owner],
            )
        lease = 0.0 if release else time.time() + LEASE_SECONDS
        values = [*_job_values(job)[1:-1], lease, job.job_id, job.owner]
        rows = await self.store.fetch(
            f"UPDATE rollouts SET {_SET_JOB}, lease_until = ? "
            "WHERE job_id = ? AND owner IS ? RETURNING job_id",
            values,
        )
        if not rows:
            raise LeaseLost(
                f"rollout job {job.job_id} was taken over by another run; this one stops"
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


def _job_values(job: Job) -> list[Value]:
    """The job's row, in _JOB_COLUMNS order."""
    c = job.counts
    return [
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
        job.owner,
        job.lease_until,
    ]


def _job(row: Row) -> Job:
    (job_id, target, dry_run, concurrency, actor, state, started, updated, finished) = row[:9]
    (cursor, total, upgraded, current, would_apply, failed, drifted, seconds, error) = row[9:18]
    owner, lease_until = row[18:]
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
            "owner": owner,
            "lease_until": lease_until,
        },
        Job,
    )
