"""Fleet rollout: every tenant brought to one registry version, a bounded number at a time.

The catalog is paged by user id and each tenant goes through `TenantService.sync_tenant`
(trigger "fleet"), so a fleet upgrade takes the same per-user lock, runs the same
before-apply hooks (backups) and leaves the same audit trail as any other sync. One
tenant's failure, whatever it raises, is recorded with its reason and the rollout goes on.

A tenant the catalog says is current is first checked with the backend's fast path (a
header read): on a re-run, the done ones cost that and nothing else. Progress is kept in
the catalog's database (`RolloutStore`) so a job can be polled from another
process, and resumed by id after a kill: it restarts after the last user id below which
everything was done (see `RolloutStore`).
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Final

import msgspec
import structlog

from schema_registry import Registry, utc_now
from service.catalog import TenantRecord
from service.errors import BadRequest, Conflict
from service.rollouts.job_run import JobRun
from service.rollouts.model import (
    LEASE_SECONDS,
    Job,
    Plan,
    Progress,
    RolloutSummary,
    TenantIssue,
    run_owner,
    summarize,
)
from service.rollouts.one_tenant import Done
from service.rollouts.store import RolloutStore
from service.rollouts.syncing import Syncer, settle, share
from service.rollouts.waves import WaveRun
from service.status import ROLLOUT_OUTCOMES, RolloutOutcome, newer
from service.tenants import TenantService

log = structlog.get_logger("tenantdb.fleet")

PAGE_SIZE: Final = 500  # catalog rows read per query


def target_version(registry: Registry, target: str | None) -> str:
    """The version a rollout goes to; BadRequest naming the known ones if it is not there."""
    if target is None:
        return registry.current.version
    if registry.get(target) is None:
        known = ", ".join(v.version for v in registry.versions)
        raise BadRequest(f"version {target} is not in the registry (it has {known})")
    return target


async def start_job(
    tenants: TenantService,
    *,
    target: str | None = None,
    concurrency: int = 8,
    dry_run: bool = False,
    actor: str | None = None,
    job_id: str | None = None,
    plan: Plan | None = None,
) -> Job:
    """Record a new job (state running, nothing done) and its plan, and return it;
    `rollout` runs it. A job in waves, or one passing a migration script, backs up each
    tenant before changing it (the backups policy "always" for that job)."""
    if concurrency < 1:
        raise BadRequest("concurrency must be at least 1")
    goal = target_version(tenants.registry, target)
    plan = check_plan(plan or Plan())
    total, by_version, _ = await tenants.catalog.summary()
    if total and all(newer(version, goal) for version in by_version):
        raise BadRequest(
            f"every tenant is at a version newer than {goal} ({', '.join(sorted(by_version))}): "
            "a rollout brings tenants up to its target and tenantdb never downgrades; to go "
            "back, restore the backups a rollout took"
        )
    store = tenants.catalog.rollouts
    stamp = utc_now()
    job = Job(
        job_id=job_id or secrets.token_hex(8),
        target=goal,
        dry_run=dry_run,
        concurrency=concurrency,
        actor=actor,
        state="running",
        started_at=stamp,
        updated_at=stamp,
        total=total,
    )
    passes_script = any(
        v.migration
        for version in by_version
        for v in tenants.registry.passed(None if version == "none" else version, goal)
        if version == "none" or not newer(version, goal)
    )
    if not dry_run and (plan.waves or passes_script):
        plan = msgspec.structs.replace(plan, backup=True)
    await store.create(job)
    if plan != Plan():
        await store.create_plan(job.job_id, plan)
    return msgspec.structs.replace(job, backup=plan.backup)


def check_plan(plan: Plan) -> Plan:
    """BadRequest for waves that are not increasing percentages ending at 100, or a
    failure limit outside 0-100 %."""
    waves = plan.waves
    if waves and (
        any(not 0 < w <= 100 for w in waves)
        or list(waves) != sorted(set(waves))
        or waves[-1] != 100
    ):
        raise BadRequest(
            f"waves {','.join(map(str, waves))}: give increasing cumulative percentages "
            "ending at 100, such as 1,10,50,100"
        )
    rate = plan.max_failure_rate
    if rate is not None and not 0 <= rate <= 1:
        raise BadRequest("max_failure_rate must be between 0% and 100%")
    if rate is not None and not waves:
        raise BadRequest("max_failure_rate applies after each wave: give waves as well")
    return plan


async def reopen_job(tenants: TenantService, job_id: str) -> Job | None:
    """Mark an unfinished job running again before a task resumes it, so pollers do not
    see its old state (cancelled, failed) in between. None when there is no such job."""
    store = tenants.catalog.rollouts
    job = await store.get(job_id)
    if job is None or job.state == "finished":
        return job
    if job.leased:
        raise _busy(job)
    job = msgspec.structs.replace(job, state="running", error=None, updated_at=utc_now())
    await store.save(job, release=True)
    return job


def _busy(job: Job) -> Conflict:
    return Conflict(
        f"rollout job {job.job_id} is being run by {job.owner or 'another process'} (a run "
        f"renews its lease as it saves progress; if it is gone, resume it after "
        f"{LEASE_SECONDS:g} s)"
    )


async def rollout(
    tenants: TenantService,
    *,
    target: str | None = None,
    concurrency: int = 8,
    dry_run: bool = False,
    job_id: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    actor: str | None = None,
    progress_every: float = 0.5,
    syncer: Syncer | None = None,
    plan: Plan | None = None,
    max_failure_rate: float | None = None,
) -> RolloutSummary:
    """Sync every tenant to `target` (default: the registry's current version).

    With `job_id` of a job that exists, that job resumes with its own target, dry-run flag
    and concurrency (the arguments are ignored); a finished one only returns its summary.
    `on_progress` hears a Progress every `progress_every` seconds and once at the end.
    `syncer` syncs one tenant (default `sync_one` in this process; see `fleet_procs`).
    `plan`: waves, failure limit, first tenants (a new job); `max_failure_rate`: a resumed
    job in waves gets this limit from now on.
    """
    store = tenants.catalog.rollouts
    job = await store.get(job_id) if job_id else None
    if job is None:
        job = await start_job(
            tenants,
            target=target,
            concurrency=concurrency,
            dry_run=dry_run,
            actor=actor,
            job_id=job_id,
            plan=plan,
        )
    elif job.state == "finished":
        return summarize(job, await store.issues(job.job_id))
    saved = await store.plan(job.job_id)
    if max_failure_rate is not None and job_id is not None:
        saved = check_plan(msgspec.structs.replace(saved, max_failure_rate=max_failure_rate))
        await store.set_limit(job.job_id, max_failure_rate)
    claimed = await store.claim(job, run_owner())
    if claimed is None:
        raise _busy(job)
    job = msgspec.structs.replace(claimed, backup=saved.backup)
    if saved.waves:
        wave_run = WaveRun(
            tenants, store, job, saved, on_progress=on_progress, every=progress_every, syncer=syncer
        )
        return await wave_run.go()
    await store.forget_after(job.job_id, job.cursor)
    issues = await store.issues(job.job_id)
    run = _Run(
        tenants, store, job, issues, on_progress=on_progress, every=progress_every, syncer=syncer
    )
    return await run.go()


class _Run(JobRun):
    """A run in user-id order: a producer paging the catalog, workers syncing, and a
    cursor below which every tenant is done (a resumed run starts after it)."""

    def __init__(
        self,
        tenants: TenantService,
        store: RolloutStore,
        job: Job,
        issues: list[TenantIssue],
        *,
        on_progress: Callable[[Progress], None] | None,
        every: float,
        syncer: Syncer | None,
    ) -> None:
        super().__init__(tenants, store, job, on_progress=on_progress, every=every, syncer=syncer)
        self.issues = issues  # committed: at or below the cursor
        self.committed: Counter[RolloutOutcome] = Counter(
            {k: getattr(job.counts, k) for k in ROLLOUT_OUTCOMES}
        )
        self.pending: Counter[RolloutOutcome] = Counter()  # done, but above the cursor
        # Tenants in dispatch (user id) order; None until done. The done prefix moves the
        # cursor, so it only passes a tenant once every tenant before it is done.
        self.window: OrderedDict[str, Done | None] = OrderedDict()
        self.late = 0  # tenants created after the job started: not part of it

    def counted(self) -> Counter[RolloutOutcome]:
        return self.committed

    def shown(self) -> Counter[RolloutOutcome]:
        return self.committed + self.pending

    async def go(self) -> RolloutSummary:
        total = self.job.total  # fixed when the job started: tenants made since are not its
        self._update(state="running", error=None)
        await self._save()
        log.info(
            "fleet.rollout_started",
            job_id=self.job.job_id,
            target=self.job.target,
            dry_run=self.job.dry_run,
            concurrency=self.job.concurrency,
            total=total,
            resumed_from=self.job.cursor,
        )
        self._emit()
        await self._drive(self._sync_all())
        done = sum(self.committed.values())
        self._update(state="finished", finished_at=utc_now(), total=max(self.job.total, done))
        await self._save(release=True)
        self._emit()
        summary = summarize(self.job, self.issues)
        log.info(
            "fleet.rollout_finished",
            job_id=self.job.job_id,
            upgraded=summary.upgraded,
            current=summary.current,
            would_apply=summary.would_apply,
            failed=len(summary.failed),
            drifted=len(summary.drifted),
            left_to_sign_in=self.late,
            seconds=summary.seconds,
        )
        return summary

    async def _sync_all(self) -> None:
        calls = self.syncer.calls(self.job.concurrency)
        queue: asyncio.Queue[TenantRecord | None] = asyncio.Queue(calls * self.syncer.chunk * 2)
        tasks = [asyncio.create_task(self._produce(queue))]
        tasks += [asyncio.create_task(self._work(queue, calls)) for _ in range(calls)]
        try:
            await asyncio.gather(*tasks)  # the first error (a catalog read) stops the run
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _produce(self, queue: asyncio.Queue[TenantRecord | None]) -> None:
        after = self.job.cursor
        while True:
            page = await self.tenants.catalog.tenants(after=after, limit=PAGE_SIZE)
            for record in page:
                if record.created_at > self.job.started_at:
                    # Signed up after the job started: created at the registry's current
                    # version then, and left to their next sign-in. (Times are to the
                    # second: one who signed up in the job's first second is included, and
                    # counted into its total at the end.)
                    self.late += 1
                    continue
                self.window[record.user_id] = None
                await queue.put(record)
            if len(page) < PAGE_SIZE:
                break
            after = page[-1].user_id
        await queue.put(None)  # the end: each worker that takes it puts it back (`_take`)

    async def _work(self, queue: asyncio.Queue[TenantRecord | None], calls: int) -> None:
        while chunk := await _take(queue, self.syncer.chunk, calls):
            for record, result in zip(chunk, await self._sync_chunk(chunk), strict=True):
                self._finish(record.user_id, await self._retried(record, result))

    async def _retried(self, record: TenantRecord, result: Done | Exception) -> Done:
        return await settle(self._sync_chunk, self.job, record, result)

    def _finish(self, user_id: str, done: Done) -> None:
        self.window[user_id] = done
        self.pending[done[0]] += 1
        self.done_here += 1
        cursor = None
        while self.window:
            first, result = next(iter(self.window.items()))
            if result is None:
                break
            del self.window[first]
            kind, issue, change = result
            self.pending[kind] -= 1
            self.committed[kind] += 1
            cursor = first
            if issue is not None:
                self.issues.append(issue)
                self.unsaved_issues.append(issue)
            if change is not None:
                self.unsaved_changes.append(change)
        if cursor is not None:
            self._update(cursor=cursor)


async def _take(
    queue: asyncio.Queue[TenantRecord | None], most: int, calls: int
) -> list[TenantRecord]:
    """The next chunk: up to `most` tenants already queued (waiting for the first one), or
    at the run's end, once the queue holds all that is left, an even `share` of them among
    the `calls`; empty at the end, whose marker is left in the queue for the other workers."""
    chunk: list[TenantRecord] = []
    record = await queue.get()
    most = share(most, queue.qsize() + 1, calls)
    while record is not None:
        chunk.append(record)
        if len(chunk) == most or queue.empty():
            return chunk
        record = queue.get_nowait()
    queue.put_nowait(None)
    return chunk
