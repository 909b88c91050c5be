"""Admin endpoints (admin token): tenants, one tenant's detail, the audit trail, rollouts.

A rollout started here syncs its tenants in worker processes of its own (at most
TENANTDB_ROLLOUT_PROCESSES), so sign-ins keep their latency while it runs; the server keeps
only its bookkeeping (`api/rollout_jobs.py`). Its progress lives in the catalog's
database, so any process can poll it.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Response, get, post, route
from litestar.di import NamedDependency, Provide
from litestar.enums import HttpMethod
from litestar.openapi.spec import Example
from litestar.params import PathParameter, QueryParameter

from schema_registry import HistoryRow, SyncResult
from service.api.authentication import ADMIN
from service.api.deps import (
    CATALOG_FAULTS,
    DATABASE_FAULTS,
    errors,
    ok,
    provide_identity,
    provide_tenants,
)
from service.api.docs import SECURED
from service.api.rollout_jobs import RolloutJobs, provide_jobs
from service.api.schemas import Body, PathUserId, Reply, json_body
from service.auth import USER_ID_PATTERN, Identity, check_user_id
from service.catalog import AuditEntry, TenantView
from service.drift import DriftItem
from service.errors import Conflict, NotFound
from service.rollouts.model import Plan, RolloutSummary, summarize
from service.rollouts.run import check_plan, reopen_job, start_job
from service.rollouts.waves import saved_wave_counts
from service.status import TenantStatus
from service.tenants import SyncRequest, TenantService

Limit = Annotated[int, QueryParameter(ge=1, le=1000, description="Rows per page")]
JobId = Annotated[
    str,
    PathParameter(
        description="A rollout job's id, as `POST /api/admin/rollouts` answered it",
        examples=[Example(value="3f9c2a7d41b0e6c8")],
    ),
]


class TenantPage(Reply, frozen=True):
    tenants: list[TenantView]
    next_after: Annotated[
        str | None,
        msgspec.Meta(description="Pass as `after` for the next page; null on the last one"),
    ]


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
    next_before: Annotated[
        int | None,
        msgspec.Meta(description="Pass as `before` for the next page; null on the last one"),
    ]


class RolloutRequest(Body, frozen=True):
    target: Annotated[
        str | None,
        msgspec.Meta(
            description="One of the registry's versions (`GET /api/health/detailed` lists "
            "them; another is refused with 400); default: the current one",
            examples=["1.2.0"],
        ),
    ] = None
    concurrency: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=256,
            description="Tenants synced at once: the rollout's worker processes sync one "
            "each, and the server starts at most TENANTDB_ROLLOUT_PROCESSES of them",
        ),
    ] = 8
    dry_run: Annotated[
        bool, msgspec.Meta(description="Only say what each tenant would get; apply nothing")
    ] = False
    resume: Annotated[
        str | None,
        msgspec.Meta(
            description="A job id: continue that job with its own target and flags "
            "(the other fields but `max_failure_rate` are then ignored)"
        ),
    ] = None
    waves: Annotated[
        list[int] | None,
        msgspec.Meta(
            description="Cumulative percentages of the tenants per wave, increasing and ending "
            "at 100; tenants in `first`, then by a hash of their id. A job in waves backs up "
            "each tenant before changing it",
            examples=[[1, 10, 50, 100]],
        ),
    ] = None
    max_failure_rate: Annotated[
        Annotated[float, msgspec.Meta(ge=0, le=100)] | None,
        msgspec.Meta(
            description="Percent: after a wave whose failed + drifted tenants are above this "
            "share, the job halts (state `halted`); with `resume`, the new limit",
            examples=[2],
        ),
    ] = None
    first: Annotated[
        list[str] | None,
        msgspec.Meta(
            description="User ids that go first, in this order (internal accounts, say)",
            examples=[["staff-1", "staff-2"]],
        ),
    ] = None


class RolloutStarted(Reply, frozen=True):
    job_id: str
    target: str
    dry_run: bool
    poll: Annotated[str, msgspec.Meta(description="GET this for progress")]


class RolloutList(Reply, frozen=True):
    rollouts: list[RolloutSummary]  # newest first, without their issue lists


# The codes every admin route can answer; each adds the ones its work can meet.
_ADMIN = ("unauthorized", "forbidden_admin")

_TENANT = {
    "user_id": "alice",
    "email": "alice@example.com",
    "location": "tenants/2b/d8/alice.db",
    "created_at": "2026-11-27T09:20:26Z",
    "schema_version": "1.2.0",
    "content_hash": "sha256:4df16c53b18b7af20b758b84c7c8671560abe58bd504d4577463cc10fb3a95d1",
    "schema_cookie": 31,
    "last_sync_at": "2026-11-27T09:20:26Z",
    "status": "current",
    "drift_count": 0,
}
_TENANT_PAGE = {"tenants": [_TENANT], "next_after": None}
_AUDIT_ENTRY = {
    "id": 1,
    "at": "2026-11-27T09:20:26Z",
    "user_id": "alice",
    "trigger": "sign-in",
    "actor": "alice",
    "from_version": "1.1.0",
    "to_version": "1.2.0",
    "status": "applied",
    "changes_applied": 1,
    "statements": ["CREATE INDEX idx_trades_symbol ON trades(symbol)"],
}
_AUDIT_PAGE = {"entries": [_AUDIT_ENTRY], "next_before": None}
_DETAIL = {
    "tenant": _TENANT,
    "history": [
        {
            "id": 1,
            "version": "1.2.0",
            "description": "Trade audit trail, updated_at triggers and P&L views",
            "created_at": "2026-03-18T09:15:00Z",
            "applied_at": "2026-11-27T09:20:26Z",
            "content_hash": _TENANT["content_hash"],
            "changes_applied": 30,
            "schema_cookie": 31,
            "environment": "production",
            "trigger": "sign-in",
            "notes": None,
        }
    ],
    "last_change": _AUDIT_ENTRY,
    "dry_run": {
        "status": "up_to_date",
        "from_version": "1.2.0",
        "to_version": "1.2.0",
        "changes": [],
        "statements": [],
        "drift": [],
        "warnings": [],
    },
}
_STARTED = {
    "job_id": "3f9c2a7d41b0e6c8",
    "target": "1.2.0",
    "dry_run": False,
    "poll": "/api/admin/rollouts/3f9c2a7d41b0e6c8",
}
_SUMMARY = {
    "event": "summary",
    "job_id": "3f9c2a7d41b0e6c8",
    "state": "finished",
    "target": "1.2.0",
    "dry_run": False,
    "concurrency": 8,
    "started_at": "2026-11-27T09:20:26Z",
    "updated_at": "2026-11-27T09:20:31Z",
    "finished_at": "2026-11-27T09:20:31Z",
    "total": 1200,
    "done": 1200,
    "upgraded": 1180,
    "current": 19,
    "would_apply": 0,
    "failed": [],
    "drifted": [
        {
            "user_id": "bob",
            "kind": "drifted",
            "from_version": "1.1.0",
            "reason": "1 item tenantdb will not change by itself",
            "drift": [
                {
                    "kind": "add_column",
                    "object": "trades.status",
                    "description": "add column trades.status",
                    "reason": "NOT NULL without a default cannot be added to existing rows",
                }
            ],
        }
    ],
    "seconds": 5.2,
    "rate": 230.8,
    "error": None,
}

_WAVE = {"upgraded": 0, "current": 0, "would_apply": 0, "failed": 0, "drifted": 0}
_HALTED = _SUMMARY | {
    "total": 200,
    "state": "halted",
    "finished_at": None,
    "done": 100,
    "upgraded": 97,
    "current": 0,
    "failed": [
        {
            "user_id": "carol",
            "kind": "failed",
            "from_version": "1.1.0",
            "reason": "applying 1.2.0: SQLite refused 'INSERT INTO \"notes__new\" ...': "
            "UNIQUE constraint failed: notes__new.body; rolled back",
            "drift": [],
        }
    ],
    "drifted": [],
    "error": "halted after wave 2 (up to 50%): 3 of 90 tenant(s) failed or drifted (3.33%), "
    "above the limit of 1%; fix them (`tenantdb fleet status` lists them), then "
    "`tenantdb fleet sync --resume 3f9c2a7d41b0e6c8` syncs them again and goes on "
    "(add --max-failure-rate to change the limit)",
    "max_failure_rate": 0.01,
    "waves": [
        _WAVE
        | {"wave": 1, "percent": 5, "tenants": 10, "done": 10, "upgraded": 10}
        | {"failure_rate": 0.0, "state": "passed"},
        _WAVE
        | {"wave": 2, "percent": 50, "tenants": 90, "done": 90, "upgraded": 87}
        | {"failed": 3, "failure_rate": 0.0333, "state": "halted"},
        _WAVE
        | {"wave": 3, "percent": 100, "tenants": 100, "done": 0}
        | {"failure_rate": 0.0, "state": "pending"},
    ],
}


class AdminController(Controller):
    path = "/api/admin"
    opt = ADMIN
    security = SECURED
    dependencies = {
        "identity": Provide(provide_identity, sync_to_thread=False),
        "tenants": Provide(provide_tenants, sync_to_thread=False),
        "jobs": Provide(provide_jobs, sync_to_thread=False),
    }

    @get(
        "/tenants",
        tags=["admin: tenants"],
        operation_id="listTenants",
        summary="List tenants",
        description="Catalog rows ordered by user id, optionally filtered by recorded "
        "version and status; page on with `after=next_after`. Reads the catalog only.",
        responses=errors(*_ADMIN, "bad_request", *CATALOG_FAULTS)
        | ok(TenantPage, "One page of tenants", ("A page", _TENANT_PAGE)),
    )
    async def list_tenants(
        self,
        tenants: NamedDependency[TenantService],
        version: Annotated[
            str | None,
            QueryParameter(
                description='Only tenants at this version ("none": never synced)',
                examples=[Example(value="1.2.0")],
            ),
        ] = None,
        status: Annotated[
            TenantStatus | None, QueryParameter(description="Only tenants in this status")
        ] = None,
        after: Annotated[
            str | None,
            QueryParameter(
                description="Start after this user id (the last page's `next_after`)",
                examples=[Example(value="alice")],
            ),
        ] = None,
        limit: Limit = 100,
    ) -> TenantPage:
        """Tenants ordered by user id, filtered by version ("none": never synced) and status
        (provisioned, current, out_of_date, drifted, failed)."""
        current = tenants.registry.current.version
        page = await tenants.catalog.tenants(
            version=version,
            status=status,
            versions=[v.version for v in tenants.registry.versions],
            after=after,
            limit=limit,
        )
        more = len(page) == limit
        return TenantPage(
            tenants=[TenantView.of(record, current) for record in page],
            next_after=page[-1].user_id if more else None,
        )

    @get(
        "/tenants/{user_id:str}",
        tags=["admin: tenants"],
        operation_id="getTenant",
        summary="Inspect one tenant",
        description="The tenant's catalog row, its database's `schema_version` rows, the "
        "last applied change, and a dry run of a sync to the current version (pending "
        "changes with their SQL, drift with reasons). Applies nothing.",
        responses=errors(
            *_ADMIN, "bad_request", "not_found", "database_newer", "sync_failed", *DATABASE_FAULTS
        )
        | ok(TenantDetail, "The tenant and its dry run", ("A current tenant", _DETAIL)),
    )
    async def tenant_detail(
        self,
        user_id: PathUserId,
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

    @get(
        "/audit",
        tags=["admin: tenants"],
        operation_id="listAuditEntries",
        summary="Read the audit trail",
        description="Applied schema changes, newest first: trigger, actor, versions and the "
        "SQL that ran; page on with `before=next_before`.",
        responses=errors(*_ADMIN, "bad_request", *CATALOG_FAULTS)
        | ok(AuditPage, "One page of entries", ("A page", _AUDIT_PAGE)),
    )
    async def audit(
        self,
        tenants: NamedDependency[TenantService],
        user_id: Annotated[
            str | None,
            QueryParameter(
                description="Only this user's entries",
                examples=[Example(value="alice")],
                schema_extra={"pattern": USER_ID_PATTERN},
            ),
        ] = None,
        before: Annotated[
            int | None,
            QueryParameter(
                ge=1,
                le=2**63 - 1,  # SQLite INTEGER
                description="Entries older than this id (`next_before`)",
            ),
        ] = None,
        limit: Limit = 100,
    ) -> AuditPage:
        """Applied changes, newest first: trigger, actor, versions and the SQL that ran."""
        if user_id is not None:
            check_user_id(user_id)
        entries = await tenants.catalog.audit(user_id=user_id, before=before, limit=limit)
        more = len(entries) == limit
        return AuditPage(entries=entries, next_before=entries[-1].id if more else None)

    @post(
        "/rollouts",
        status_code=202,
        tags=["admin: rollouts"],
        operation_id="startRollout",
        summary="Start or resume a fleet rollout",
        description="Brings every tenant to `target` in the background, `concurrency` at a "
        "time, each as a manual sync (per-user lock, backups, audit entry with trigger "
        "`fleet`); one tenant's failure is recorded and the others go on. The tenants are "
        "synced in worker processes of the server's own (at most TENANTDB_ROLLOUT_PROCESSES, "
        "default 1), so sign-ins keep their latency. `resume` continues an interrupted job. "
        "Poll `poll` for progress.",
        responses=errors(*_ADMIN, "bad_request", "not_found_job", "conflict", *CATALOG_FAULTS)
        | ok(
            RolloutStarted,
            "The job was accepted and runs in this server's worker processes",
            ("Started", _STARTED),
            status=202,
        ),
    )
    async def start_rollout(
        self,
        data: Annotated[
            RolloutRequest,
            json_body(
                "What to roll out, or which job to resume",
                ("Roll out the current version", {"concurrency": 8}),
                ("Preview a rollout to 1.2.0", {"target": "1.2.0", "dry_run": True}),
                ("Resume an interrupted job", {"resume": "3f9c2a7d41b0e6c8"}),
                (
                    "Roll out in waves, halting above 2 % failed",
                    {"waves": [1, 10, 50, 100], "max_failure_rate": 2, "first": ["staff-1"]},
                ),
                (
                    "Resume a halted job with a new limit",
                    {"resume": "3f9c2a7d41b0e6c8", "max_failure_rate": 5},
                ),
            ),
        ],
        identity: NamedDependency[Identity],
        tenants: NamedDependency[TenantService],
        jobs: NamedDependency[RolloutJobs],
    ) -> RolloutStarted:
        """Start a fleet rollout in the background (or resume one); poll it by its id."""
        rate = None if data.max_failure_rate is None else data.max_failure_rate / 100
        if data.resume is not None:
            if jobs.running(data.resume):
                raise Conflict(f"rollout job {data.resume} is already running in this process")
            job = await reopen_job(tenants, data.resume)
            if job is None:
                raise NotFound(f"no rollout job {data.resume}")
            if rate is not None:
                store = tenants.catalog.rollouts
                plan = await store.plan(job.job_id)
                check_plan(msgspec.structs.replace(plan, max_failure_rate=rate))
                await store.set_limit(job.job_id, rate)
        else:
            plan = None
            if data.waves is not None or rate is not None or data.first is not None:
                waves, first = tuple(data.waves or ()), tuple(data.first or ())
                plan = Plan(waves=waves, max_failure_rate=rate, first=first)
            job = await start_job(
                tenants,
                target=data.target,
                concurrency=data.concurrency,
                dry_run=data.dry_run,
                actor=identity.user_id,
                plan=plan,
            )
        jobs.start(tenants, job)
        return RolloutStarted(
            job_id=job.job_id,
            target=job.target,
            dry_run=job.dry_run,
            poll=f"/api/admin/rollouts/{job.job_id}",
        )

    @route("/rollouts", http_method=[HttpMethod.OPTIONS], include_in_schema=False)
    async def allow_rollouts(self) -> Response[None]:
        """Litestar makes a path's automatic OPTIONS answer when its first handler is
        registered, so on this path (GET, then POST) its `Allow` lacked POST. Handlers
        register in name order: this one goes first, so none is made. RFC 9110 section
        10.2.1: Allow lists every method the resource supports."""
        return Response(None, status_code=204, headers={"Allow": "GET, OPTIONS, POST"})

    @get(
        "/rollouts",
        tags=["admin: rollouts"],
        operation_id="listRollouts",
        summary="List rollout jobs",
        description="Recent jobs, newest first, with their counts (without issue lists).",
        responses=errors(*_ADMIN, "bad_request", *CATALOG_FAULTS)
        | ok(RolloutList, "Recent jobs", ("One finished job", {"rollouts": [_SUMMARY]})),
    )
    async def list_rollouts(
        self, tenants: NamedDependency[TenantService], limit: Limit = 20
    ) -> RolloutList:
        """Recent rollout jobs, newest first, with their counts."""
        store = tenants.catalog.rollouts
        return RolloutList(rollouts=[summarize(job, []) for job in await store.jobs(limit=limit)])

    @get(
        "/rollouts/{job_id:str}",
        tags=["admin: rollouts"],
        operation_id="getRollout",
        summary="Follow a rollout job",
        description="A job's state and counts (saved every half second while it runs), "
        "every tenant it could not bring to the target so far, with the reason, and for a "
        "job in waves each wave's counts (state `halted`: `error` says why and how to resume).",
        responses=errors(*_ADMIN, "bad_request", "not_found_job", *CATALOG_FAULTS)
        | ok(
            RolloutSummary,
            "The job and its issues",
            ("A finished job", _SUMMARY),
            ("A job in waves, halted after its second", _HALTED),
        ),
    )
    async def rollout_status(
        self, job_id: JobId, tenants: NamedDependency[TenantService]
    ) -> RolloutSummary:
        """A job's state and counts (saved every half second while it runs), and every
        tenant it could not bring to the target so far, with the reason."""
        store = tenants.catalog.rollouts
        job = await store.get(job_id)
        if job is None:
            raise NotFound(f"no rollout job {job_id}")
        plan = await store.plan(job_id)
        waves = await saved_wave_counts(store, job, plan)
        return summarize(job, await store.issues(job_id), plan=plan, waves=waves)


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
