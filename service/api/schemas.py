"""Request and response bodies. The sign-in contract's field names (user_id, email,
database_url, database_token, schema_synced, ...) are fixed; the rest is extra."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar.enums import RequestEncodingType
from litestar.openapi.spec import Example
from litestar.params import BodyKwarg, PathParameter

from service.auth import USER_ID_PATTERN
from service.drift import DriftItem


class Body(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Requests: unknown fields are an error, so a typo is not silently ignored."""


class Reply(msgspec.Struct, frozen=True, kw_only=True):
    """Responses."""


UserId = Annotated[
    str,
    msgspec.Meta(
        pattern=USER_ID_PATTERN,
        description="The user's id in your app: 1-64 of A-Z, a-z, 0-9, '_' and '-'",
        examples=["alice"],
    ),
]
Email = Annotated[
    str,
    msgspec.Meta(
        max_length=254,  # the longest address SMTP carries (RFC 5321 4.5.3.1.3, errata 1690)
        pattern=r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f]+$",  # no control characters
        description="Recorded in the catalog with a new user's database",
        examples=["alice@example.com"],
    ),
]

# A user_id in the path: checked by `check_user_id` against the same pattern (a 400
# otherwise), so the document states it without a second validation.
PathUserId = Annotated[
    str,
    PathParameter(
        description="The user whose database this is: 1-64 of A-Z, a-z, 0-9, '_' and '-'",
        examples=[Example(value="alice")],
        schema_extra={"pattern": USER_ID_PATTERN},
    ),
]


def json_body(description: str, *examples: tuple[str, dict[str, Any]]) -> BodyKwarg:
    """A JSON request body's documentation. Body structs forbid unknown fields
    (`forbid_unknown_fields`), which the document states as additionalProperties false."""
    return BodyKwarg(
        media_type=RequestEncodingType.JSON,
        description=description,
        examples=[Example(summary=summary, value=value) for summary, value in examples],
        schema_extra={"additionalProperties": False},
    )


class InitializeRequest(Body, frozen=True):
    user_id: UserId
    email: Email | None = None


def _doc(text: str) -> msgspec.Meta:
    return msgspec.Meta(description=text)


Changes = Annotated[list[str], _doc("What was applied, one line per change (empty if none)")]
Pending = Annotated[
    list[str],
    _doc("What a sync would apply but did not (verify mode): an admin's sync-schema applies it"),
]
Drift = Annotated[
    list[DriftItem],
    _doc("Differences tenantdb will not fix by itself; when any, nothing was applied"),
]
Warnings = Annotated[
    list[str], _doc("Missing optional tables, and objects the registry does not know")
]


class InitializeResponse(Reply, frozen=True):
    success: bool
    message: str
    database_url: Annotated[
        str, _doc("What the app's client connects to: a file: URL (local) or libsql:// (sqld)")
    ]
    database_token: Annotated[
        str | None,
        _doc("A JWT that opens only this database (sqld), or null for a local file"),
    ]
    schema_synced: Annotated[
        bool, _doc("False when the schema is out of date in verify mode, or has drifted")
    ]
    schema_version: Annotated[str | None, _doc("The version the database is at now")]
    created: Annotated[bool, _doc("True when this call created the database")]
    changes_applied: int
    changes: Changes
    pending: Pending
    drift: Drift
    warnings: Warnings


class SyncResponse(Reply, frozen=True):
    success: Annotated[bool, _doc("False when drift kept the sync from applying anything")]
    message: str
    schema_version: Annotated[str | None, _doc("The version the database is at now")]
    synced_at: Annotated[str, _doc("When the sync ran (UTC, ISO 8601)")]
    changes_applied: int
    changes: Changes
    pending: Pending
    drift: Drift
    warnings: Warnings


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
    damaged_tenants: int  # database files that are not sound SQLite, left as they are


class Deleted(Reply, frozen=True):
    success: bool
    message: str
