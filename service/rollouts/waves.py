"""A rollout in waves: cumulative percentages of the fleet, each checked before the next.

The order is fixed by the job, so every run (and resume) sees the same waves: the tenants
of its plan's `first` list in their order (internal accounts, say), then the others by a
hash of their user id, so each wave is a spread of the fleet rather than a run of ids.
After each wave, (failed + drifted) / its tenants above the plan's `max_failure_rate`
halts the job (state "halted", the reason and the command to resume in its `error`).

Each tenant done is a row of `rollout_tenants` (its wave, outcome, and for an upgraded one
the stamp left and the backup taken), written after the catalog rows its sync deferred:
a resumed run skips the tenants with a row, and syncs again those that failed or drifted
(after a halt, their rows fixed). A tenant synced but not saved when a run died is found
current by the next run.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Final

import msgspec
import structlog

from schema_registry import utc_now
from service.catalog import TenantRecord
from service.rollouts.job_run import JobRun
from service.rollouts.model import (
    Job,
    Plan,
    Progress,
    RolloutSummary,
    TenantChange,
    TenantIssue,
    WaveCounts,
    WaveState,
    summarize,
)
from service.rollouts.one_tenant import Done
from service.rollouts.store import RolloutStore
from service.rollouts.syncing import Syncer, settle, share
from service.status import ROLLOUT_OUTCOMES, RolloutOutcome
from service.tenants import TenantService

log = structlog.get_logger("tenantdb.fleet")

_PAGE: Final = 500  # catalog rows read per query
_REDONE: Final = ("failed", "drifted")  # a resumed job syncs these again


def order_key(user_id: str, first: dict[str, int]) -> tuple[int, str]:
    """Where a tenant stands in a job's order: the `first` list, then by hash."""
    if user_id in first:
        return 0, f"{first[user_id]:012d}"
    return 1, hashlib.sha256(user_id.encode()).hexdigest()


def wave_ends(total: int, waves: tuple[int, ...]) -> list[int]:
    """The position after each wave's last tenant, for `total` tenants."""
    return [min(total, math.ceil(total * percent / 100)) for percent in waves]


# Per wave (its index), how many of its tenants had each outcome so far.
WaveTally = dict[int, Counter[RolloutOutcome]]


def tally_waves(changes: Iterable[TenantChange]) -> WaveTally:
    """The tally of changes a run holds in memory; a reader of a saved job has SQLite
    count them (`RolloutStore.wave_tally`) instead of reading a row per tenant."""
    by_wave: WaveTally = {}
    for change in changes:
        if change.wave is not None:
            by_wave.setdefault(change.wave, Counter())[change.outcome] += 1
    return by_wave


async def saved_wave_counts(store: RolloutStore, job: Job, plan: Plan) -> tuple[WaveCounts, ...]:
    """Each wave's counts of a saved job (the API, `fleet status`): a row per wave and
    outcome is read, so the call does not grow with the fleet."""
    if not plan.waves:
        return ()
    return wave_counts(job, plan, await store.wave_tally(job.job_id))


def wave_counts(job: Job, plan: Plan, by_wave: WaveTally) -> tuple[WaveCounts, ...]:
    """Each wave's size and what happened to its tenants so far."""
    if not plan.waves:
        return ()
    counts: list[WaveCounts] = []
    start = 0
    for index, end in enumerate(wave_ends(job.total, plan.waves)):
        tally = by_wave.get(index, Counter())
        done, bad = sum(tally.values()), tally["failed"] + tally["drifted"]
        rate = bad / done if done else 0.0
        state: WaveState = "pending" if not done else "running" if done < end - start else "passed"
        if state == "passed" and plan.max_failure_rate is not None and rate > plan.max_failure_rate:
            state = "halted"
        counts.append(
            WaveCounts(
                wave=index + 1,
                percent=plan.waves[index],
                tenants=end - start,
                done=done,
                failure_rate=round(rate, 4),
                state=state,
                **{kind: tally[kind] for kind in ROLLOUT_OUTCOMES},
            )
        )
        start = end
    return tuple(counts)


def percent(rate: float) -> str:
    return f"{rate * 100:.3g}%"


class WaveRun(JobRun):
    """One run of a job in waves: its tenants in the job's order, wave after wave."""

    def __init__(
        self,
        tenants: TenantService,
        store: RolloutStore,
        job: Job,
        plan: Plan,
        *,
        on_progress: Callable[[Progress], None] | None,
        every: float,
        syncer: Syncer | None,
    ) -> None:
        super().__init__(tenants, store, job, on_progress=on_progress, every=every, syncer=syncer)
        self.plan = plan
        self.done: dict[str, TenantChange] = {}
        self.tally: Counter[RolloutOutcome] = Counter()  # outcomes of `done`
        self.issues: dict[str, TenantIssue] = {}

    def counted(self) -> Counter[RolloutOutcome]:
        return self.tally

    async def go(self) -> RolloutSummary:
        job_id = self.job.job_id
        self.done = {c.user_id: c for c in await self.store.changes(job_id) if c.wave is not None}
        redo = [u for u, c in self.done.items() if c.outcome in _REDONE]
        for user_id in redo:
            del self.done[user_id]
        await self.store.forget_issues(job_id, redo)
        self.issues = {i.user_id: i for i in await self.store.issues(job_id)}
        self.tally = Counter(c.outcome for c in self.done.values())
        self._update(state="running", error=None)
        await self._save()
        log.info("fleet.waves_started", job_id=job_id, waves=self.plan.waves, redo=len(redo))
        self._emit()
        halted = await self._drive(self._waves())
        if halted is not None:
            self._update(state="halted", error=halted)
            log.warning("fleet.rollout_halted", job_id=job_id, reason=halted)
        else:
            self._update(state="finished", finished_at=utc_now())
        await self._save(release=True)
        self._emit()
        waves = wave_counts(self.job, self.plan, tally_waves(self.done.values()))
        issues = sorted(self.issues.values(), key=lambda i: i.user_id)
        return summarize(self.job, issues, plan=self.plan, waves=waves)

    async def _ordered(self) -> list[TenantRecord]:
        """The job's tenants (those there when it started) in its order."""
        records: list[TenantRecord] = []
        after: str | None = None
        while page := await self.tenants.catalog.tenants(after=after, limit=_PAGE):
            records += [r for r in page if r.created_at <= self.job.started_at]
            after = page[-1].user_id
        first = {user: i for i, user in enumerate(self.plan.first)}
        return sorted(records, key=lambda r: order_key(r.user_id, first))

    async def _waves(self) -> str | None:
        """Sync wave after wave; the reason to halt after one, or None at the end."""
        records = await self._ordered()
        start = 0
        for index, end in enumerate(wave_ends(self.job.total, self.plan.waves)):
            wave = records[start:end]
            await self._sync_wave(index, [r for r in wave if r.user_id not in self.done])
            await self._save()
            start = end
            bad = sum(1 for r in wave if self.done[r.user_id].outcome in _REDONE)
            rate = bad / len(wave) if wave else 0.0
            limit = self.plan.max_failure_rate
            log.info("fleet.wave_done", job_id=self.job.job_id, wave=index + 1, failure_rate=rate)
            if limit is not None and rate > limit:
                return (
                    f"halted after wave {index + 1} (up to {self.plan.waves[index]}%): {bad} of "
                    f"{len(wave)} tenant(s) failed or drifted ({percent(rate)}), above the "
                    f"limit of {percent(limit)}; fix them (`tenantdb fleet status` lists them), "
                    f"then `tenantdb fleet sync --resume {self.job.job_id}` syncs them again "
                    "and goes on (add --max-failure-rate to change the limit)"
                )
        return None

    async def _sync_wave(self, wave: int, records: list[TenantRecord]) -> None:
        left = deque(records)
        calls = min(self.syncer.calls(self.job.concurrency), len(records))

        async def work() -> None:
            while left:
                size = share(self.syncer.chunk, len(left), calls)
                batch = [left.popleft() for _ in range(min(size, len(left)))]
                for record, result in zip(batch, await self._sync_chunk(batch), strict=True):
                    self._finish(
                        wave, record, await settle(self._sync_chunk, self.job, record, result)
                    )

        workers = [asyncio.create_task(work()) for _ in range(calls)]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    def _finish(self, wave: int, record: TenantRecord, done: Done) -> None:
        kind, issue, change = done
        change = change or TenantChange(
            user_id=record.user_id, outcome=kind, from_version=record.schema_version
        )
        change = msgspec.structs.replace(change, wave=wave)
        self.done[record.user_id] = change
        self.tally[kind] += 1
        self.unsaved_changes.append(change)
        if issue is not None:
            self.issues[record.user_id] = issue
            self.unsaved_issues.append(issue)
        self.done_here += 1
        self._update()
