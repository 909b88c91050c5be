"""Request and response bodies. The sign-in contract's field names (user_id, email,
database_url, database_token, schema_synced, ...) are fixed; the rest is extra."""

from __future__ import annotations

from typing import Annotated

import msgspec

from service.auth import USER_ID_PATTERN
from service.drift import DriftItem


class Body(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Requests: unknown fields are an error, so a typo is not silently ignored."""


class Reply(msgspec.Struct, frozen=True, kw_only=True):
    """Responses."""


UserId = Annotated[str, msgspec.Meta(pattern=USER_ID_PATTERN, description="1-64 of [A-Za-z0-9_-]")]
Email = Annotated[str, msgspec.Meta(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]


class InitializeRequest(Body, frozen=True):
    user_id: UserId
    email: Email | None = None


class InitializeResponse(Reply, frozen=True):
    success: bool
    message: str
    database_url: str
    database_token: str | None
    schema_synced: bool
    schema_version: str | None
    created: bool
    changes_applied: int
    changes: list[str]
    drift: list[DriftItem]
    warnings: list[str]


class SyncResponse(Reply, frozen=True):
    success: bool
    message: str
    schema_version: str | None
    synced_at: str
    changes_applied: int
    changes: list[str]
    drift: list[DriftItem]
    warnings: list[str]


class SchemaVersionResponse(Reply, frozen=True):
    user_schema_version: str | None
    user_schema_description: str | None
    user_schema_created_at: str | None
    current_app_version: str
    current_app_description: str
    is_up_to_date: bool
    user_schema_applied_at: str | None
    current_app_created_at: str


class Health(Reply, frozen=True):
    status: str


class DetailedHealth(Reply, frozen=True):
    status: str
    registry_path: str
    registry_version: str
    registry_versions: list[str]
    backend: str
    backend_reachable: bool
    sync_mode: str
    tenants: int
    tenants_by_version: dict[str, int]
    drifted_tenants: int


class Deleted(Reply, frozen=True):
    success: bool
    message: str
