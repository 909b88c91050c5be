"""The user endpoints an app calls on sign-in: initialize, sync-schema, schema-version,
export and delete, with the request and response fields apps rely on."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import ResponseHeader
from litestar.response import File
from litestar.types import Scope

from schema_registry import utc_now
from service.api.authentication import USER
from service.api.deps import DATABASE_FAULTS, errors, ok
from service.api.docs import SECURED
from service.api.json_lane import json_lane
from service.api.schemas import (
    Deleted,
    InitializeRequest,
    InitializeResponse,
    PathUserId,
    SchemaVersionResponse,
    SyncResponse,
    json_body,
)
from service.auth import Identity, check_user_id
from service.drift import DriftItem
from service.tenants import Outcome, TenantService, remove_export


def caller(scope: Scope, user_id: str) -> tuple[Identity, TenantService]:
    """Who calls (put in the state by `authentication`) and the tenant service, once the caller
    is known to be allowed to act on `user_id` (a valid id: its own, or any as an admin).

    Read from the scope rather than injected: two injected dependencies make Litestar run a
    task group per request, about 40 µs on the sign-in hot path.
    """
    identity: Identity = scope["state"]["identity"]  # no State wrapper built
    identity.require(check_user_id(user_id))
    return identity, scope["litestar_app"].state.tenants


def _message(outcome: Outcome, subject: str) -> str:
    """`subject` is e.g. "User database initialized" or "Schema synchronized"."""
    result = outcome.result
    if result is None or (result.status == "up_to_date" and not result.steps):
        return f"{subject} successfully; schema is up to date"
    if result.status == "up_to_date":  # verify mode: only optional tables are missing
        return (
            f"{subject} successfully; schema is up to date ({len(result.steps)} optional "
            "change(s) pending: sync_mode is verify, an admin can apply them with sync-schema)"
        )
    if result.status == "ahead":
        return f"{subject} successfully; {result.warnings[0]}"
    if result.status == "applied":
        return f"{subject} successfully; applied {len(result.changes)} schema change(s)"
    if result.status == "out_of_date":
        return (
            f"{subject}; schema is out of date ({len(result.changes)} change(s) pending) "
            "and sync_mode is verify: an admin can apply them with sync-schema"
        )
    return (
        f"{subject}, but its schema has drifted ({len(result.drift)} item(s) tenantdb will "
        "not change by itself); nothing was applied: an operator must resolve it"
    )


class _Report(msgspec.Struct, frozen=True, kw_only=True):
    """What a sync did and did not do, as the responses say it: what was applied apart
    from what is pending (a sync that did not apply, in verify mode)."""

    count: int = 0  # additive changes applied
    applied: list[str] = []
    pending: list[str] = []
    drift: list[DriftItem] = []
    warnings: list[str] = []


def _report(outcome: Outcome) -> _Report:
    result = outcome.result
    if result is None:
        return _Report()
    steps = [step.describe() for step in result.steps]
    done = result.status == "applied"  # only an applying sync's steps ran
    return _Report(
        count=len(result.changes) if done else 0,
        applied=steps if done else [],
        pending=[] if done else steps,
        drift=[DriftItem.of(item) for item in result.drift],
        warnings=list(result.warnings) + [e.describe() for e in result.extras],
    )


async def sign_in(scope: Scope, data: InitializeRequest) -> InitializeResponse:
    """What initialize answers: by its route, and by its lane (`json_lane`) for most calls."""
    identity, tenants = caller(scope, data.user_id)
    outcome = await tenants.initialize(data.user_id, data.email, actor=identity.user_id)
    report = _report(outcome)
    backend = tenants.backend
    record = outcome.record
    return InitializeResponse(
        success=True,
        message=_message(
            outcome, "User database created" if outcome.created else "User database initialized"
        ),
        database_url=backend.database_url(record.location),
        database_token=backend.database_token(record.user_id, record.location),
        schema_synced=outcome.synced,
        schema_version=record.schema_version,
        created=outcome.created,
        changes_applied=report.count,
        changes=report.applied,
        pending=report.pending,
        drift=report.drift,
        warnings=report.warnings,
    )


# The codes every user route can answer; each adds the ones its work can meet (one
# `errors()` call per route, so codes sharing a status share its response).
_USER = ("bad_request", "unauthorized", "forbidden", *DATABASE_FAULTS)

# The File response's headers as the server sends them (Litestar's default documents
# Last-Modified as a date-time, but HTTP sends an HTTP-date, RFC 9110 section 5.6.7).
_EXPORT_HEADERS = [
    ResponseHeader(
        name="last-modified",
        value="Fri, 27 Nov 2026 09:20:27 GMT",
        documentation_only=True,
        description="When the copy was made, as an HTTP-date (RFC 9110)",
    ),
    ResponseHeader(
        name="content-disposition",
        value='attachment; filename="alice.db"',
        documentation_only=True,
        description="Names the file `{user_id}.db`",
    ),
    ResponseHeader(
        name="etag",
        value='"1795771227.72-131072-406392378"',
        documentation_only=True,
        description="Entity tag of the copy",
    ),
    ResponseHeader(
        name="content-length",
        value="131072",
        documentation_only=True,
        description="The file's size in bytes",
    ),
]

_CHANGES = [
    "create table accounts (8 columns)",
    "create table trades (15 columns)",
    "create index idx_trades_symbol on trades",
    "create view trade_pnl",
]
_CREATED = {
    "success": True,
    "message": "User database created successfully; applied 30 schema change(s)",
    "database_url": "libsql://alice.db.example.com",
    "database_token": "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9.eyJpZCI6ImFsaWNlIn0.c2lnbmF0dXJl",
    "schema_synced": True,
    "schema_version": "1.2.0",
    "created": True,
    "changes_applied": 30,
    "changes": _CHANGES,
    "pending": [],
    "drift": [],
    "warnings": [],
}
_CURRENT = _CREATED | {
    "message": "User database initialized successfully; schema is up to date",
    "created": False,
    "changes_applied": 0,
    "changes": [],
}
_SYNCED = {
    "success": True,
    "message": "Schema synchronized successfully; schema is up to date",
    "schema_version": "1.2.0",
    "synced_at": "2026-11-27T09:20:26Z",
    "changes_applied": 0,
    "changes": [],
    "pending": [],
    "drift": [],
    "warnings": [],
}
_VERSION = {
    "user_schema_version": "1.2.0",
    "user_schema_description": "Trade audit trail, updated_at triggers and P&L views",
    "user_schema_created_at": "2026-03-18T09:15:00Z",
    "user_schema_applied_at": "2026-11-27T09:20:26Z",
    "current_app_version": "1.2.0",
    "current_app_description": "Trade audit trail, updated_at triggers and P&L views",
    "current_app_created_at": "2026-03-18T09:15:00Z",
    "is_up_to_date": True,
}


class _UserRoutes(Controller):
    """Where the user endpoints live and who may call them (a user token), for both
    controllers."""

    path = "/api/user"
    tags = ["sign-in"]
    opt = USER
    security = SECURED


class UserController(_UserRoutes):
    @post(
        "/initialize",
        status_code=200,
        operation_id="initializeUser",
        summary="Provision and sync a user's database on sign-in",
        # Every sign-in comes here: the common call skips Litestar's per-route work.
        middleware=[json_lane(InitializeRequest, sign_in)],
        description="Creates the user's database if it is missing, applies the additive "
        "changes the registry's current version needs (in verify mode: only reports them) "
        "and says how to connect. A returning user whose database is current costs one read "
        "of its header. Call it on every sign-in with the user's own token.",
        responses=errors(*_USER, "database_newer", "sync_failed")
        | ok(
            InitializeResponse,
            "The database exists and is at the current version (or says why not)",
            ("A new user: database created", _CREATED),
            ("A returning user, already current", _CURRENT),
        ),
    )
    async def initialize(
        self,
        data: Annotated[
            InitializeRequest,
            json_body(
                "Whose database, and an email to record with a new one",
                ("Sign-in", {"user_id": "alice", "email": "alice@example.com"}),
                ("Without an email", {"user_id": "alice"}),
            ),
        ],
        request: Request[Any, Any, Any],
    ) -> InitializeResponse:
        """Provision the caller's database if missing, sync its schema, say how to connect."""
        return await sign_in(request.scope, data)

    @get(
        "/schema-version/{user_id:str}",
        operation_id="getUserSchemaVersion",
        summary="Read a user's schema version",
        description="The version recorded in the user's database (its newest "
        "`schema_version` row) against the registry's current one. Changes nothing.",
        responses=errors(*_USER, "not_found")
        | ok(
            SchemaVersionResponse,
            "The database's version and the app's",
            ("Up to date", _VERSION),
        ),
    )
    async def schema_version(
        self,
        user_id: PathUserId,
        request: Request[Any, Any, Any],
    ) -> SchemaVersionResponse:
        """The database's recorded version against the app's current one."""
        _, tenants = caller(request.scope, user_id)
        rows = await tenants.history(user_id)
        head = rows[-1] if rows else None
        current = tenants.registry.current
        return SchemaVersionResponse(
            user_schema_version=head.version if head else None,
            user_schema_description=head.description if head else None,
            user_schema_created_at=head.created_at if head else None,
            user_schema_applied_at=head.applied_at if head else None,
            current_app_version=current.version,
            current_app_description=current.description,
            current_app_created_at=current.created_at,
            is_up_to_date=await tenants.is_up_to_date(user_id),
        )

    @delete(
        "/{user_id:str}",
        status_code=200,
        operation_id="deleteUser",
        summary="Delete a user's database",
        description="Account deletion: removes the user's database, its catalog row and its "
        "backups. The owner or an admin may; it cannot be undone.",
        responses=errors(*_USER, "not_found")
        | ok(
            Deleted,
            "The database is gone",
            ("Deleted", {"success": True, "message": "database of alice deleted"}),
        ),
    )
    async def delete_user(
        self,
        user_id: PathUserId,
        request: Request[Any, Any, Any],
    ) -> Deleted:
        """Delete the user's database and catalog row (account deletion; owner or admin)."""
        _, tenants = caller(request.scope, user_id)
        await tenants.delete(user_id)
        return Deleted(success=True, message=f"database of {user_id} deleted")


class LimitedUserController(_UserRoutes):
    """The user endpoints that cost real work, a full sync and a copy of the database, and
    that a caller can repeat at will: app.py serves them behind the per-user rate limit
    (api/limits.py), which the sign-in never pays for."""

    @post(
        "/sync-schema/{user_id:str}",
        status_code=200,
        operation_id="syncUserSchema",
        summary="Sync a user's schema now",
        description="Brings an existing database to the registry's current version, as a "
        "sign-in would, and reports drift without applying anything when there is any. In "
        "verify mode only an admin may apply changes.",
        responses=errors(*_USER, "forbidden_verify", "not_found", "database_newer", "sync_failed")
        | ok(
            SyncResponse,
            "The sync ran; `success` is false when drift kept it from applying",
            ("Already current", _SYNCED),
        ),
    )
    async def sync_schema(
        self,
        user_id: PathUserId,
        request: Request[Any, Any, Any],
    ) -> SyncResponse:
        """Run the schema sync now (in verify mode only an admin may)."""
        identity, tenants = caller(request.scope, user_id)
        outcome = await tenants.sync_schema(user_id, admin=identity.admin, actor=identity.user_id)
        report = _report(outcome)
        return SyncResponse(
            success=outcome.synced,
            message=_message(outcome, "Schema synchronized"),
            schema_version=outcome.record.schema_version,
            synced_at=utc_now(),
            changes_applied=report.count,
            changes=report.applied,
            pending=report.pending,
            drift=report.drift,
            warnings=report.warnings,
        )

    @get(
        "/{user_id:str}/export",
        operation_id="exportUserDatabase",
        summary="Download a user's database",
        description="Data portability: a consistent copy of the user's database as one "
        "SQLite file, readable by any SQLite tool. The owner or an admin may.",
        responses=errors(*_USER, "not_found"),
        media_type="application/vnd.sqlite3",
        content_media_type="application/vnd.sqlite3",
        response_description="A consistent SQLite file of the user's database",
        response_headers=_EXPORT_HEADERS,
    )
    async def export(
        self,
        user_id: PathUserId,
        request: Request[Any, Any, Any],
    ) -> File:
        """Download the user's database as one SQLite file (data portability)."""
        _, tenants = caller(request.scope, user_id)
        path = await tenants.export(user_id)
        return File(
            path=path,
            filename=f"{user_id}.db",
            media_type="application/vnd.sqlite3",
            background=BackgroundTask(remove_export, path),
        )
