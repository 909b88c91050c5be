"""What the API's controllers share: dependency providers and the error responses they
declare, so no controller imports another."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec

from service.auth import Identity
from service.errors import ErrorBody
from service.tenants import TenantService


def provide_tenants(state: State) -> TenantService:
    tenants: TenantService = state.tenants
    return tenants


def provide_identity(request: ASGIConnection[Any, Any, Any, Any]) -> Identity:
    """Who calls, as the `authenticated` guard found it."""
    identity: Identity = request.state.identity
    return identity


def _error(description: str) -> ResponseSpec:
    return ResponseSpec(ErrorBody, description=description)


# Every route can answer these.
_COMMON: dict[int, ResponseSpec] = {
    400: _error("Bad input: the message says which field and why"),
    401: _error("Missing, malformed, badly signed or expired token"),
    500: _error("Internal error; nothing was half-applied"),
    503: _error(
        "The database or the server holding it is unavailable or busy now (see `code`); "
        "nothing was changed: try again"
    ),
}
USER_ERRORS: dict[int, ResponseSpec] = _COMMON | {
    403: _error("The token may not act on this user_id"),
    404: _error("No database for this user yet"),
    409: _error("The database is at a newer version than the registry"),
}
ADMIN_ERRORS: dict[int, ResponseSpec] = _COMMON | {
    403: _error("The token does not carry the admin role"),
    404: _error("No such tenant or rollout job"),
    409: _error("That rollout job is already running here"),
}
