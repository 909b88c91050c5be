"""What every run of a rollout job does alike, whatever its order (by user id, or in
waves): sync chunks, save progress with the job's lease every `every` seconds, report it,
and end in a saved state (stopped, taken over, or the run's own ending)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import msgspec
import structlog

from schema_registry import utc_now
from service.catalog import TenantRecord
from service.rollouts.model import Counts, Job, LeaseLost, Progress, TenantChange, TenantIssue
from service.rollouts.one_tenant import Done, reason
from service.rollouts.store import RolloutStore
from service.rollouts.syncing import InProcessSyncer, Syncer, SyncerGone
from service.status import ROLLOUT_OUTCOMES, RolloutOutcome
from service.tenants import TenantService

log = structlog.get_logger("tenantdb.fleet")
T = TypeVar("T")


class JobRun:
    """One run of a job. Subclasses say what is counted (`counted`, saved with the job)
    and shown (`shown`, in progress lines), and queue `unsaved_issues` and
    `unsaved_changes` as tenants finish."""

    def __init__(
        self,
        tenants: TenantService,
        store: RolloutStore,
        job: Job,
        *,
        on_progress: Callable[[Progress], None] | None,
        every: float,
        syncer: Syncer | None,
    ) -> None:
        self.tenants = tenants
        self.store = store
        self.job = job
        self.on_progress = on_progress
        self.every = every
        self.syncer = syncer or InProcessSyncer(tenants)
        self.started = time.monotonic()
        self.base_seconds = job.seconds  # spent by earlier runs of the job
        self.done_here = 0
        self.lost: LeaseLost | None = None  # set when another run takes the job
        self.unsaved_issues: list[TenantIssue] = []
        self.unsaved_changes: list[TenantChange] = []

    def counted(self) -> Counter[RolloutOutcome]:
        raise NotImplementedError

    def shown(self) -> Counter[RolloutOutcome]:
        return self.counted()

    async def _drive(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` beside the ticker; a run that stops early saves why (or, taken over
        by another run, saves nothing: the job is no longer ours)."""
        syncing = asyncio.create_task(work)
        ticker = asyncio.create_task(self._tick(syncing))
        try:
            result = await syncing
        except BaseException as exc:
            await _stop(ticker)
            if self.lost is not None:
                log.warning("fleet.rollout_taken_over", job_id=self.job.job_id)
                raise self.lost from None
            cancelled = isinstance(exc, asyncio.CancelledError)
            self._update(state="cancelled" if cancelled else "failed", error=reason(exc))
            await self._save(release=True)
            log.warning("fleet.rollout_stopped", job_id=self.job.job_id, state=self.job.state)
            raise
        await _stop(ticker)
        return result

    async def _sync_chunk(self, records: list[TenantRecord]) -> list[Done | Exception]:
        try:
            return await self.syncer(records, self.job)
        except SyncerGone:
            raise  # no tenant's fault: the run stops, saved as failed, and a resume goes on
        except Exception as exc:  # the whole call failed: each of its tenants fails
            return [exc] * len(records)

    async def _tick(self, syncing: asyncio.Task[Any]) -> None:
        """Save progress (renewing the job's lease) every `every` seconds; stop the run
        if another has taken the job."""
        while True:
            await asyncio.sleep(self.every)
            self._emit()
            try:
                await self._save()
            except LeaseLost as exc:
                self.lost = exc
                syncing.cancel()
                return
            except Exception as exc:  # progress is saved again at the next tick
                log.warning("fleet.progress_not_saved", job_id=self.job.job_id, error=str(exc))

    def _update(self, **changes: object) -> None:
        counts = Counts(**{kind: self.counted()[kind] for kind in ROLLOUT_OUTCOMES})
        self.job = msgspec.structs.replace(self.job, counts=counts, updated_at=utc_now(), **changes)

    async def _save(self, *, release: bool = False) -> None:
        """Save progress: first the catalog rows the syncs deferred, so the job never
        counts a tenant whose row is not written, then the tenants' rows, then the job."""
        self._update(seconds=self.base_seconds + time.monotonic() - self.started)
        job = self.job
        issues, self.unsaved_issues = self.unsaved_issues, []
        changes, self.unsaved_changes = self.unsaved_changes, []
        try:
            await self.tenants.catalog.flush()
            await self.store.record_changes(job, changes)
            await self.store.save(job, issues, release=release)
        except BaseException:
            self.unsaved_issues = issues + self.unsaved_issues
            self.unsaved_changes = changes + self.unsaved_changes
            raise

    def _emit(self) -> None:
        if self.on_progress is None:
            return
        tally = self.shown()
        elapsed = time.monotonic() - self.started
        self.on_progress(
            Progress(
                job_id=self.job.job_id,
                state=self.job.state,
                target=self.job.target,
                dry_run=self.job.dry_run,
                total=self.job.total,
                done=sum(tally.values()),
                rate=round(self.done_here / elapsed, 1) if elapsed > 0 else 0.0,
                elapsed_s=round(elapsed, 3),
                **{kind: tally[kind] for kind in ROLLOUT_OUTCOMES},
            )
        )


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
