"""The user endpoints an app calls on sign-in: initialize, sync-schema, schema-version,
export and delete, with the request and response fields apps rely on."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, post
from litestar.background_tasks import BackgroundTask
from litestar.params import FromPath, JSONBody
from litestar.response import File

from schema_registry import utc_now
from service.api.auth_guard import authenticated
from service.api.deps import USER_ERRORS
from service.api.schemas import (
    Deleted,
    InitializeRequest,
    InitializeResponse,
    SchemaVersionResponse,
    SyncResponse,
)
from service.auth import Identity, check_user_id
from service.drift import DriftItem
from service.tenants import Outcome, TenantService, remove_export


def caller(request: Request[Any, Any, Any], user_id: str) -> tuple[Identity, TenantService]:
    """Who calls (set by the `authenticated` guard) and the tenant service, once the caller
    is known to be allowed to act on `user_id` (a valid id: its own, or any as an admin).

    Read from state rather than injected: two injected dependencies make Litestar run a
    task group per request, about 40 µs on the sign-in hot path.
    """
    identity: Identity = request.state.identity
    identity.require(check_user_id(user_id))
    return identity, request.app.state.tenants


def _message(outcome: Outcome, subject: str) -> str:
    """`subject` is e.g. "User database initialized" or "Schema synchronized"."""
    result = outcome.result
    if result is None or result.status == "up_to_date":
        return f"{subject} successfully; schema is up to date"
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


def _changes(outcome: Outcome) -> tuple[int, list[str], list[DriftItem], list[str]]:
    result = outcome.result
    if result is None:
        return 0, [], [], []
    applied = [step.describe() for step in result.steps]
    count = len(result.changes) if result.up_to_date else 0
    drift = [DriftItem.of(item) for item in result.drift]
    warnings = list(result.warnings) + [e.describe() for e in result.extras]
    return count, applied, drift, warnings


class UserController(Controller):
    path = "/api/user"
    tags = ["user"]
    guards = [authenticated]

    @post("/initialize", status_code=200, responses=USER_ERRORS)
    async def initialize(
        self,
        data: JSONBody[InitializeRequest],
        request: Request[Any, Any, Any],
    ) -> InitializeResponse:
        """Provision the caller's database if missing, sync its schema, say how to connect."""
        identity, tenants = caller(request, data.user_id)
        outcome = await tenants.initialize(data.user_id, data.email, actor=identity.user_id)
        count, applied, drift, warnings = _changes(outcome)
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
            changes_applied=count,
            changes=applied if count else [],
            drift=drift,
            warnings=warnings,
        )

    @post("/sync-schema/{user_id:str}", status_code=200, responses=USER_ERRORS)
    async def sync_schema(
        self,
        user_id: FromPath[str],
        request: Request[Any, Any, Any],
    ) -> SyncResponse:
        """Run the schema sync now (in verify mode only an admin may)."""
        identity, tenants = caller(request, user_id)
        outcome = await tenants.sync_schema(user_id, admin=identity.admin, actor=identity.user_id)
        count, applied, drift, warnings = _changes(outcome)
        return SyncResponse(
            success=outcome.synced,
            message=_message(outcome, "Schema synchronized"),
            schema_version=outcome.record.schema_version,
            synced_at=utc_now(),
            changes_applied=count,
            changes=applied if count else [],
            drift=drift,
            warnings=warnings,
        )

    @get("/schema-version/{user_id:str}", responses=USER_ERRORS)
    async def schema_version(
        self,
        user_id: FromPath[str],
        request: Request[Any, Any, Any],
    ) -> SchemaVersionResponse:
        """The database's recorded version against the app's current one."""
        _, tenants = caller(request, user_id)
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

    @delete("/{user_id:str}", status_code=200, responses=USER_ERRORS)
    async def delete_user(
        self,
        user_id: FromPath[str],
        request: Request[Any, Any, Any],
    ) -> Deleted:
        """Delete the user's database and catalog row (account deletion; owner or admin)."""
        _, tenants = caller(request, user_id)
        await tenants.delete(user_id)
        return Deleted(success=True, message=f"database of {user_id} deleted")

    @get(
        "/{user_id:str}/export",
        responses=USER_ERRORS,
        media_type="application/vnd.sqlite3",
        response_description="A consistent SQLite file of the user's database",
    )
    async def export(
        self,
        user_id: FromPath[str],
        request: Request[Any, Any, Any],
    ) -> File:
        """Download the user's database as one SQLite file (data portability)."""
        _, tenants = caller(request, user_id)
        path = await tenants.export(user_id)
        return File(
            path=path,
            filename=f"{user_id}.db",
            media_type="application/vnd.sqlite3",
            background=BackgroundTask(remove_export, path),
        )
