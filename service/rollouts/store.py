"""Fleet rollout jobs in the catalog's database, so any process can poll or resume one.

Two of the catalog's tables (its registry, service/catalog/schema/, makes them): `rollouts`,
one row per job with its counts and the lease of the run holding it, and `rollout_issues`,
one row per tenant that failed or drifted in a job, with the reason. Tenants finished above
a job's cursor when the process died are synced again and take the engine's fast path:
nothing is applied twice, since each tenant's own history row (not this table) says what
it is at.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Final

import msgspec

from schema_registry import Database, Row, Value
from service.drift import DriftItem
from service.rollouts.model import (
    LEASE_SECONDS,
    Job,
    LeaseLost,
    Plan,
    TenantChange,
    TenantIssue,
    owner_gone,
)
from service.status import RolloutOutcome

_JOB_COLUMNS: Final = (
    "job_id, target, dry_run, concurrency, actor, state, started_at, updated_at, finished_at, "
    "cursor, total, upgraded, current, would_apply, failed, drifted, seconds, error, owner, "
    "lease_until"
)
_SET_JOB: Final = ", ".join(f"{c} = ?" for c in _JOB_COLUMNS.split(", ")[1:-1])
_ISSUE_BATCH: Final = 100  # rows per INSERT: 6 parameters each, far below SQLite's limit
_CHANGE_COLUMNS: Final = (
    "user_id, outcome, wave, from_version, to_version, content_hash, schema_cookie, backup, "
    "restored_at"
)


class RolloutStore:
    """The rollout tables, through the catalog's database (a local file or the sqld
    namespace); the catalog made them when it opened."""

    def __init__(self, store: Database) -> None:
        self.store = store

    async def create(self, job: Job) -> None:
        """Write a new job's row (no run holds it yet)."""
        await self.store.execute(
            f"INSERT INTO rollouts ({_JOB_COLUMNS}) VALUES ({', '.join('?' * 20)})",
            _job_values(job),
        )

    async def claim(self, job: Job, owner: str) -> Job | None:
        """Take the job's lease for run `owner`: None while another live run holds it.

        One statement, so two runs resuming a job at once cannot both get it. A lease of
        a killed process on this machine is taken at once, others once they expire.
        """
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
        rows = await self.store.fetch(
            f"SELECT {_JOB_COLUMNS} FROM rollouts WHERE job_id = ?", (job_id,)
        )
        return _job(rows[0]) if rows else None

    async def jobs(self, *, limit: int = 20) -> list[Job]:
        """The newest jobs first."""
        rows = await self.store.fetch(
            f"SELECT {_JOB_COLUMNS} FROM rollouts ORDER BY started_at DESC, job_id LIMIT ?",
            (limit,),
        )
        return [_job(row) for row in rows]

    async def issues(self, job_id: str) -> list[TenantIssue]:
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
                drift=msgspec.json.decode(str(r[4]), type=tuple[DriftItem, ...]),
            )
            for r in rows
        ]

    async def create_plan(self, job_id: str, plan: Plan) -> None:
        """Write a job's plan (catalog 1.4.0: waves, failure limit, first tenants, backups)."""
        await self.store.execute(
            "INSERT INTO rollout_plans (job_id, waves, max_failure_rate, first_users, backup) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                job_id,
                msgspec.json.encode(plan.waves).decode(),
                plan.max_failure_rate,
                msgspec.json.encode(plan.first).decode(),
                int(plan.backup),
            ),
        )

    async def plan(self, job_id: str) -> Plan:
        """The job's plan; a job made before plans existed has the default (no waves)."""
        rows = await self.store.fetch(
            "SELECT waves, max_failure_rate, first_users, backup FROM rollout_plans "
            "WHERE job_id = ?",
            (job_id,),
        )
        if not rows:
            return Plan()
        waves, rate, first, backup = rows[0]
        return Plan(
            waves=msgspec.json.decode(str(waves), type=tuple[int, ...]),
            max_failure_rate=None if rate is None else float(rate),
            first=msgspec.json.decode(str(first), type=tuple[str, ...]),
            backup=bool(backup),
        )

    async def set_limit(self, job_id: str, max_failure_rate: float) -> None:
        """A resume's new failure limit (`--resume JOB --max-failure-rate`)."""
        await self.store.execute(
            "UPDATE rollout_plans SET max_failure_rate = ? WHERE job_id = ?",
            (max_failure_rate, job_id),
        )

    async def record_changes(self, job: Job, changes: Sequence[TenantChange]) -> None:
        """Write what the job did to these tenants, while `job.owner` holds it."""
        held = "EXISTS (SELECT 1 FROM rollouts WHERE job_id = ? AND owner IS ?)"
        width = len(_CHANGE_COLUMNS.split(", ")) + 1
        for start in range(0, len(changes), _ISSUE_BATCH):
            batch = changes[start : start + _ISSUE_BATCH]
            params: list[Value] = []
            for c in batch:
                params += [job.job_id, c.user_id, c.outcome, c.wave, c.from_version]
                params += [c.to_version, c.content_hash, c.schema_cookie, c.backup, c.restored_at]
            marks = "(" + ",".join("?" * width) + ")"
            await self.store.execute(
                f"INSERT OR REPLACE INTO rollout_tenants (job_id, {_CHANGE_COLUMNS}) "
                f"SELECT * FROM (VALUES {', '.join([marks] * len(batch))}) WHERE {held}",
                [*params, job.job_id, job.owner],
            )

    async def changes(self, job_id: str) -> list[TenantChange]:
        """What the job did, tenant by tenant (by user id)."""
        rows = await self.store.fetch(
            f"SELECT {_CHANGE_COLUMNS} FROM rollout_tenants WHERE job_id = ? ORDER BY user_id",
            (job_id,),
        )
        return [
            msgspec.convert(
                dict(zip(TenantChange.__struct_fields__, row, strict=True)), TenantChange
            )
            for row in rows
        ]

    async def wave_tally(self, job_id: str) -> dict[int, Counter[RolloutOutcome]]:
        """Per wave, how many of the job's tenants had each outcome: counted by SQLite over
        the primary key's `job_id` prefix, so a reader gets a row per wave and outcome
        instead of one per tenant."""
        rows = await self.store.fetch(
            "SELECT wave, outcome, count(*) FROM rollout_tenants "
            "WHERE job_id = ? AND wave IS NOT NULL GROUP BY wave, outcome",
            (job_id,),
        )
        tally: dict[int, Counter[RolloutOutcome]] = {}
        for wave, outcome, n in msgspec.convert(rows, list[tuple[int, RolloutOutcome, int]]):
            tally.setdefault(wave, Counter())[outcome] = n
        return tally

    async def mark_restored(self, job_id: str, user_id: str, at: str) -> None:
        await self.store.execute(
            "UPDATE rollout_tenants SET restored_at = ? WHERE job_id = ? AND user_id = ?",
            (at, job_id, user_id),
        )

    async def forget_issues(self, job_id: str, user_ids: Sequence[str]) -> None:
        """Drop these tenants' issue rows: a resumed job with waves syncs them again."""
        for start in range(0, len(user_ids), _ISSUE_BATCH):
            batch = list(user_ids[start : start + _ISSUE_BATCH])
            await self.store.execute(
                f"DELETE FROM rollout_issues WHERE job_id = ? AND user_id IN "
                f"({', '.join('?' * len(batch))})",
                [job_id, *batch],
            )

    async def forget_after(self, job_id: str, cursor: str | None) -> None:
        """Drop issue rows above the cursor: those tenants are about to be synced again."""
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
