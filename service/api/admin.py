"""Admin endpoints (admin token): tenants, one tenant's detail, the audit trail, rollouts.

A rollout started here runs as an asyncio task held by the app (`RolloutJobs`, opened and
closed by `rollout_jobs` in the app's lifespan, so shutdown cancels it before the backend
closes; its progress is saved as "cancelled" and it can be resumed). Its progress lives
in the catalog's database, so any process can poll it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

import msgspec
import structlog
from litestar import Controller, Litestar, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter

from schema_registry import HistoryRow, SyncResult
from service.api.auth_guard import admin_only
from service.api.deps import ADMIN_ERRORS, provide_identity, provide_tenants
from service.api.schemas import Body, Reply
from service.auth import Identity, check_user_id
from service.catalog import AuditEntry, TenantView
from service.drift import DriftItem
from service.errors import Conflict, NotFound
from service.rollouts.model import RolloutSummary, summarize
from service.rollouts.run import reopen_job, rollout, start_job
from service.status import TenantStatus
from service.tenants import SyncRequest, TenantService

log = structlog.get_logger("tenantdb.admin")

Limit = Annotated[int, QueryParameter(ge=1, le=1000, description="rows per page")]
Filter = Annotated[str | None, QueryParameter()]


class TenantPage(Reply, frozen=True):
    tenants: list[TenantView]
    next_after: str | None  # pass as `after` for the next page; null on the last one


class DryRun(Reply, frozen=True):
    """What a sync to the current version would do now (nothing was applied)."""

    status: str  # up_to_date, out_of_date or drifted
    from_version: str | None
    to_version: str
    changes: list[str]
    statements: list[str]
    drift: list[DriftItem]
    warnings: list[str]


class TenantDetail(Reply, frozen=True):
    tenant: TenantView  # the catalog row: version, status, last sync
    history: list[HistoryRow]  # the database's schema_version rows, oldest first
    last_change: AuditEntry | None  # the newest applied change, from the audit trail
    dry_run: DryRun


class AuditPage(Reply, frozen=True):
    entries: list[AuditEntry]  # newest first
    next_before: int | None  # pass as `before` for the next page; null on the last one


class RolloutRequest(Body, frozen=True):
    target: str | None = None  # default: the registry's current version
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=256)] = 8
    dry_run: bool = False
    resume: str | None = None  # a job id: continue that job (its own target and flags)


class RolloutStarted(Reply, frozen=True):
    job_id: str
    target: str
    dry_run: bool
    poll: str  # GET this for progress


class RolloutList(Reply, frozen=True):
    rollouts: list[RolloutSummary]  # newest first, without their issue lists


class RolloutJobs:
    """This process's background rollouts, as asyncio tasks."""

    def __init__(self) -> None:
        self.tasks: dict[str, asyncio.Task[RolloutSummary]] = {}

    def running(self, job_id: str) -> bool:
        task = self.tasks.get(job_id)
        return task is not None and not task.done()

    def start(self, tenants: TenantService, job_id: str) -> None:
        task = asyncio.create_task(rollout(tenants, job_id=job_id), name=f"rollout-{job_id}")
        self.tasks[job_id] = task
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[RolloutSummary]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("fleet.rollout_failed", task=task.get_name(), error=str(error))

    async def close(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)


@contextlib.asynccontextmanager
async def rollout_jobs(app: Litestar) -> AsyncIterator[None]:
    """Lifespan: hold the rollout tasks; cancel them before the backend closes."""
    jobs = RolloutJobs()
    app.state.rollout_jobs = jobs
    try:
        yield
    finally:
        await jobs.close()


def provide_jobs(state: State) -> RolloutJobs:
    jobs: RolloutJobs = state.rollout_jobs
    return jobs


class AdminController(Controller):
    path = "/api/admin"
    tags = ["admin"]
    guards = [admin_only]
    dependencies = {
        "identity": Provide(provide_identity, sync_to_thread=False),
        "tenants": Provide(provide_tenants, sync_to_thread=False),
        "jobs": Provide(provide_jobs, sync_to_thread=False),
    }

    @get("/tenants", responses=ADMIN_ERRORS)
    async def list_tenants(
        self,
        tenants: NamedDependency[TenantService],
        version: Filter = None,
        status: Annotated[TenantStatus | None, QueryParameter()] = None,
        after: Filter = None,
        limit: Limit = 100,
    ) -> TenantPage:
        """Tenants ordered by user id, filtered by version ("none": never synced) and status
        (provisioned, current, out_of_date, drifted, failed)."""
        current = tenants.registry.current.version
        page = await tenants.catalog.tenants(
            version=version,
            status=status,
            current=current,
            after=after,
            limit=limit,
        )
        more = len(page) == limit
        return TenantPage(
            tenants=[TenantView.of(record, current) for record in page],
            next_after=page[-1].user_id if more else None,
        )

    @get("/tenants/{user_id:str}", responses=ADMIN_ERRORS)
    async def tenant_detail(
        self,
        user_id: FromPath[str],
        identity: NamedDependency[Identity],
        tenants: NamedDependency[TenantService],
    ) -> TenantDetail:
        """One tenant: its catalog row, history rows, last applied change and a dry run."""
        check_user_id(user_id)
        request = SyncRequest(user_id=user_id, trigger="admin", actor=identity.user_id, apply=False)
        outcome = await tenants.sync(request)
        history = await tenants.history(user_id)
        audit = await tenants.catalog.audit(user_id=user_id, limit=1)
        return TenantDetail(
            tenant=TenantView.of(outcome.record, tenants.registry.current.version),
            history=history,
            last_change=audit[0] if audit else None,
            dry_run=_dry_run(outcome.result, tenants),
        )

    @get("/audit", responses=ADMIN_ERRORS)
    async def audit(
        self,
        tenants: NamedDependency[TenantService],
        user_id: Filter = None,
        before: Annotated[int | None, QueryParameter(ge=1)] = None,
        limit: Limit = 100,
    ) -> AuditPage:
        """Applied changes, newest first: trigger, actor, versions and the SQL that ran."""
        if user_id is not None:
            check_user_id(user_id)
        entries = await tenants.catalog.audit(user_id=user_id, before=before, limit=limit)
        more = len(entries) == limit
        return AuditPage(entries=entries, next_before=entries[-1].id if more else None)

    @post("/rollouts", status_code=202, responses=ADMIN_ERRORS)
    async def start_rollout(
        self,
        data: JSONBody[RolloutRequest],
        identity: NamedDependency[Identity],
        tenants: NamedDependency[TenantService],
        jobs: NamedDependency[RolloutJobs],
    ) -> RolloutStarted:
        """Start a fleet rollout in the background (or resume one); poll it by its id."""
        if data.resume is not None:
            if jobs.running(data.resume):
                raise Conflict(f"rollout job {data.resume} is already running in this process")
            job = await reopen_job(tenants, data.resume)
            if job is None:
                raise NotFound(f"no rollout job {data.resume}")
        else:
            job = await start_job(
                tenants,
                target=data.target,
                concurrency=data.concurrency,
                dry_run=data.dry_run,
                actor=identity.user_id,
            )
        jobs.start(tenants, job.job_id)
        return RolloutStarted(
            job_id=job.job_id,
            target=job.target,
            dry_run=job.dry_run,
            poll=f"/api/admin/rollouts/{job.job_id}",
        )

    @get("/rollouts", responses=ADMIN_ERRORS)
    async def list_rollouts(
        self, tenants: NamedDependency[TenantService], limit: Limit = 20
    ) -> RolloutList:
        """Recent rollout jobs, newest first, with their counts."""
        store = tenants.catalog.rollouts
        return RolloutList(rollouts=[summarize(job, []) for job in await store.jobs(limit=limit)])

    @get("/rollouts/{job_id:str}", responses=ADMIN_ERRORS)
    async def rollout_status(
        self, job_id: FromPath[str], tenants: NamedDependency[TenantService]
    ) -> RolloutSummary:
        """A job's state and counts (saved every half second while it runs), and every
        tenant it could not bring to the target so far, with the reason."""
        store = tenants.catalog.rollouts
        job = await store.get(job_id)
        if job is None:
            raise NotFound(f"no rollout job {job_id}")
        return summarize(job, await store.issues(job_id))


def _dry_run(result: SyncResult | None, tenants: TenantService) -> DryRun:
    current = tenants.registry.current.version
    if result is None:  # the fast path: current, nothing to read
        return DryRun(
            status="up_to_date",
            from_version=current,
            to_version=current,
            changes=[],
            statements=[],
            drift=[],
            warnings=[],
        )
    return DryRun(
        status=result.status,
        from_version=result.from_version,
        to_version=result.to_version,
        changes=[s.describe() for s in result.steps] if result.status != "up_to_date" else [],
        statements=list(result.statements) if result.status != "up_to_date" else [],
        drift=[DriftItem.of(item) for item in result.drift],
        warnings=list(result.warnings) + [e.describe() for e in result.extras],
    )
