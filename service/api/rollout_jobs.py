"""An app's background rollouts: started by `POST /api/admin/rollouts`, each an asyncio
task keeping the job's books while worker processes of its own sync the tenants, held by
the app's lifespan so shutdown cancels them (saved as "cancelled", resumable) and stops
their workers before the backend closes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Final

import structlog
from litestar import Litestar
from litestar.datastructures import State

from service.config import Settings
from service.rollouts.model import Job, RolloutSummary
from service.rollouts.processes import ProcessSyncer
from service.rollouts.run import rollout
from service.tenants import TenantService

log = structlog.get_logger("tenantdb.admin")

# An admin rollout's workers run at this CPU niceness: when the cores are busy the server's
# own processes, answering sign-ins, come first; on idle cores the rollout is as fast.
BACKGROUND_NICE: Final = 10


class RolloutJobs:
    """This process's background rollouts. Each is an asyncio task keeping the job's books
    (cursor, counts, progress saved to the catalog off the loop) while worker processes of
    its own sync the tenants: the contract is that sign-ins keep their latency during a
    rollout, and a rollout's CPU work on the event loop would hold them up. That holds on
    sqld too: the SQLite work is sqld's there, but the engine's (reading the schema, diff,
    plan) is ours, in Python."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tasks: dict[str, asyncio.Task[RolloutSummary]] = {}
        self.stopping: set[asyncio.Task[None]] = set()  # ended runs' workers, exiting

    def running(self, job_id: str) -> bool:
        task = self.tasks.get(job_id)
        return task is not None and not task.done()

    def start(self, tenants: TenantService, job: Job) -> None:
        task = asyncio.create_task(self._run(tenants, job), name=f"rollout-{job.job_id}")
        self.tasks[job.job_id] = task
        task.add_done_callback(self._finished)

    async def _run(self, tenants: TenantService, job: Job) -> RolloutSummary:
        """The job's run, its tenants synced by `min(concurrency, TENANTDB_ROLLOUT_PROCESSES)`
        worker processes, started at its first tenants and stopped when it ends."""
        processes = min(job.concurrency, self.settings.rollout_processes)
        # No process starts here (the pool starts them off the loop, at the first tenants).
        syncer = ProcessSyncer(self.settings, processes, nice=BACKGROUND_NICE, tenants=tenants)
        try:
            return await rollout(tenants, job_id=job.job_id, syncer=syncer)
        finally:
            # The job is saved and released by now, so the run ends here (a resume may
            # follow at once); its workers exit meanwhile, each after its chunk, and
            # `close` waits for them.
            stopping = asyncio.create_task(syncer.close(), name=f"rollout-{job.job_id}-stop")
            self.stopping.add(stopping)
            stopping.add_done_callback(self.stopping.discard)

    def _finished(self, task: asyncio.Task[RolloutSummary]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("fleet.rollout_failed", task=task.get_name(), error=str(error))

    async def close(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        await asyncio.gather(*self.stopping, return_exceptions=True)


@contextlib.asynccontextmanager
async def rollout_jobs(app: Litestar) -> AsyncIterator[None]:
    """Lifespan: hold the rollout tasks; cancel them (and stop their worker processes)
    before the backend closes."""
    jobs = RolloutJobs(app.state.settings)
    app.state.rollout_jobs = jobs
    try:
        yield
    finally:
        await jobs.close()


def provide_jobs(state: State) -> RolloutJobs:
    jobs: RolloutJobs = state.rollout_jobs
    return jobs
