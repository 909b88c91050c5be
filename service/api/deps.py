"""What the API's controllers share: dependency providers and the error responses they
declare, so no controller imports another.

Each route declares the errors it can really return (`errors(...)`, by stable `code`), with
an example body per code: the `code` values and statuses are those of `service/errors.py`
(`ServiceError` subclasses, `BACKEND_STATUS`, the registry and HTTP handlers).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.types import Scope

from service.auth import Identity
from service.errors import ErrorBody
from service.tenants import TenantService


def header(scope: Scope, name: bytes) -> str | None:
    """A request header straight from the ASGI scope (`name` in lower case), for the
    middleware every request passes: no Headers object built."""
    for key, value in scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


def provide_tenants(state: State) -> TenantService:
    tenants: TenantService = state.tenants
    return tenants


def provide_identity(request: ASGIConnection[Any, Any, Any, Any]) -> Identity:
    """Who calls, as the `authentication` middleware found it."""
    identity: Identity = request.state.identity
    return identity


# What each status means to a client, whatever the code.
_STATUS_MEANING = {
    400: "Bad input: the message names the field and what it must be; nothing was changed",
    401: "Missing, malformed, badly signed or expired token (see `WWW-Authenticate`)",
    403: "The token may not do this",
    404: "Not found",
    409: "The database is in a state tenantdb will not change by itself",
    500: "Internal error; nothing was half-applied (the log has the request id)",
    503: "Unavailable or busy now; nothing was changed: try again (`Retry-After` when busy)",
    507: "The storage is full; nothing was written",
}

# code -> (status, when it happens, an example message as the service words it)
ERROR_CODES: dict[str, tuple[int, str, str]] = {
    "bad_request": (
        400,
        "a field, path or query parameter is invalid",
        "user_id must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'",
    ),
    "unauthorized": (
        401,
        "no token, or one that does not verify",
        "token has expired",
    ),
    "forbidden": (
        403,
        "another user's user_id without the admin role, or an admin endpoint",
        "this token may only act on its own user_id; "
        "use a token for that user or one with the admin role",
    ),
    "forbidden_admin": (
        403,
        "the token does not carry the admin role",
        "this endpoint needs a token with the admin role",
    ),
    "forbidden_verify": (
        403,
        "sync_mode is verify and the token is not an admin's",
        "sync_mode is verify: only a token with the admin role may apply schema changes",
    ),
    "not_found": (
        404,
        "the user has no database yet (call initialize first)",
        "no database for user alice: call POST /api/user/initialize first",
    ),
    "not_found_job": (404, "no rollout job with this id", "no rollout job 3f9c2a7d41b0e6c8"),
    "database_missing": (
        404,
        "the catalog lists the database but it is gone",
        "the database of alice is gone although the catalog lists it (a moved or deleted "
        "data directory?): restore a backup (`tenantdb db restore alice FILE`), or delete "
        "the user (DELETE /api/user/alice as an admin) to start over",
    ),
    "conflict": (
        409,
        "the rollout job is already running in this process",
        "rollout job 3f9c2a7d41b0e6c8 is already running in this process",
    ),
    "database_newer": (
        409,
        "the database is at a version newer than the registry knows",
        "the database is at 1.3.0, newer than 1.2.0: tenantdb does not downgrade",
    ),
    "database_damaged": (
        409,
        "the file is not a database, or is malformed or truncated (left as it is)",
        "the file is not a sound SQLite database; it was left as it is (file is not a database)",
    ),
    "internal_error": (
        500,
        "an unexpected fault",
        "internal error: the request was not completed; see the service log for its request id",
    ),
    "sync_failed": (
        500,
        "the schema sync failed and was rolled back",
        "migration script of 1.2.0 failed: no such table: trade_tags",
    ),
    "database_busy": (
        503,
        "another writer held the database's write lock past the wait (`Retry-After: 1`)",
        "another writer held it past the busy timeout; try again in a moment (database is locked)",
    ),
    "storage_unavailable": (
        503,
        "the storage or sqld server cannot be reached or opened now",
        "the data directory cannot be opened or written now (unable to open database file)",
    ),
    "storage_full": (
        507,
        "the disk or quota is full",
        "the disk is full; nothing was written (database or disk is full)",
    ),
}

# The faults any route touching a tenant's database can meet (service/errors.py
# BACKEND_STATUS), with the registry's own errors (database_newer, sync_failed).
DATABASE_FAULTS = (
    "database_missing",
    "database_damaged",
    "database_busy",
    "storage_unavailable",
    "storage_full",
    "internal_error",
)
# What a route that reads only the catalog can meet: its storage being away, or busy.
CATALOG_FAULTS = ("database_busy", "storage_unavailable", "internal_error")


# Variants of one code, documented apart because they happen in different places.
_VARIANT_OF = {
    "forbidden_admin": "forbidden",
    "forbidden_verify": "forbidden",
    "not_found_job": "not_found",
}


def _wire_code(code: str) -> str:
    """The `code` a client sees."""
    return _VARIANT_OF.get(code, code)


def errors(*codes: str) -> dict[int, ResponseSpec]:
    """The error responses of a route: per status, what it means and an example per code."""
    by_status: dict[int, list[str]] = defaultdict(list)
    for code in dict.fromkeys(codes):
        by_status[ERROR_CODES[code][0]].append(code)
    specs: dict[int, ResponseSpec] = {}
    for status, group in sorted(by_status.items()):
        cases = "; ".join(f"`{_wire_code(c)}`: {ERROR_CODES[c][1]}" for c in group)
        specs[status] = ResponseSpec(
            ErrorBody,
            description=f"{_STATUS_MEANING[status]}. {cases}.",
            generate_examples=False,
            examples=[
                Example(
                    id=code,
                    summary=ERROR_CODES[code][1],
                    value={
                        "success": False,
                        "message": ERROR_CODES[code][2],
                        "status_code": status,
                        "code": _wire_code(code),
                    },
                )
                for code in group
            ],
        )
    return specs


# Every route behind a bearer token.
_AUTH = ("bad_request", "unauthorized")
USER_ERRORS: dict[int, ResponseSpec] = errors(*_AUTH, "forbidden")
ADMIN_ERRORS: dict[int, ResponseSpec] = errors(*_AUTH, "forbidden_admin")


def ok(
    container: type[Any], description: str, *examples: tuple[str, Any], status: int = 200
) -> dict[int, ResponseSpec]:
    """A success response with realistic examples instead of generated noise."""
    return {
        status: ResponseSpec(
            container,
            description=description,
            generate_examples=False,
            examples=[Example(summary=summary, value=value) for summary, value in examples],
        )
    }
