"""Service errors and the one place that turns any exception into a JSON response.

Every error body is `{"success": false, "message": ..., "status_code": ..., "code": ...}`,
with a message that says what to do next and a stable `code` a client can branch on; a
stack trace never reaches a client. The backends' typed errors get their status here, in
`BACKEND_STATUS`, and nowhere else.
"""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar import Litestar, MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap, Receive, Scope, Send

from schema_registry import NewerDatabaseError, SchemaRegistryError, StatementFailed
from service.backends.base import (
    BackendError,
    BackendUnavailable,
    DatabaseBusy,
    DatabaseDamaged,
    DatabaseMissing,
    StorageFull,
)

log = structlog.get_logger("tenantdb.errors")


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    """What every failed request returns."""

    success: bool = False
    message: str
    status_code: int
    code: str  # stable: what went wrong, for clients to branch on (the message may change)


class ServiceError(Exception):
    """An error with the HTTP status it maps to."""

    status_code = 400
    code = "bad_request"
    headers: dict[str, str] | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ServiceError):
    status_code = 400


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str, *, error: str = "invalid_token") -> None:
        super().__init__(message)
        safe = message.replace('"', "'")
        self.headers = {
            "WWW-Authenticate": f'Bearer realm="tenantdb", error="{error}", '
            f'error_description="{safe}"'
        }


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"


class Unavailable(ServiceError):
    status_code = 503
    code = "unavailable"


class CatalogError(ServiceError):
    """The catalog's own tables are not what its registry says: the service does not start."""

    status_code = 503
    code = "catalog_damaged"


# Status, code and extra headers of each backend error.
BACKEND_STATUS: dict[type[BackendError], tuple[int, str, dict[str, str] | None]] = {
    # Raised for a tenant the catalog knows (a user with no row is a 404 not_found).
    DatabaseMissing: (409, "database_missing", None),
    BackendUnavailable: (503, "storage_unavailable", None),
    DatabaseBusy: (503, "database_busy", {"Retry-After": "1"}),
    StorageFull: (507, "storage_full", None),
    DatabaseDamaged: (409, "database_damaged", None),
}


def _body(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response[Any]:
    return Response(
        content=ErrorBody(message=message, status_code=status, code=code),
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def service_error_handler(_: Request[Any, Any, Any], exc: ServiceError) -> Response[Any]:
    return _body(exc.status_code, exc.code, exc.message, exc.headers)


async def send_exception(scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
    """Answer a request from middleware, where the exception handlers do not reach, as the
    route's handlers answer `exc` (its nearest class in their map: Litestar's rule for
    exception types). Called in the `except` block, so a 500 logs the traceback."""
    app: Litestar = scope["litestar_app"]
    request: Request[Any, Any, Any] = app.request_class(scope)
    handlers = scope["route_handler"].resolve_exception_handlers()
    handler = next(handlers[kind] for kind in type(exc).__mro__ if kind in handlers)
    response = handler(request, exc)
    await response.to_asgi_response(app=None, request=request)(scope, receive, send)


def backend_error_handler(_: Request[Any, Any, Any], exc: BackendError) -> Response[Any]:
    status, code, headers = BACKEND_STATUS[type(exc)]
    return _body(status, code, exc.message, headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
}


def http_exception_handler(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    message = exc.detail
    if isinstance(exc, ValidationException) and exc.extra:
        message = f"{exc.detail}: {_validation_text(exc.extra)}"
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    return _body(exc.status_code, code, message, exc.headers)


def _validation_text(extra: Any) -> str:
    if isinstance(extra, list):
        parts = []
        for item in extra:
            if isinstance(item, dict):
                where = item.get("key") or item.get("source") or ""
                parts.append(f"{where}: {item.get('message', '')}".strip(": "))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(extra)


def registry_error_handler(_: Request[Any, Any, Any], exc: SchemaRegistryError) -> Response[Any]:
    log.error("schema.sync_failed", error=str(exc))
    if isinstance(exc, NewerDatabaseError):
        return _body(409, "database_newer", str(exc))
    if isinstance(exc, StatementFailed):  # rolled back: the database is as it was
        return _body(409, "sync_failed", str(exc))
    return _body(500, "sync_failed", str(exc))


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("request.failed", path=request.url.path, error_type=type(exc).__name__)
    return _body(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "internal_error",
        "internal error: the request was not completed; see the service log for its request id",
    )


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ServiceError: service_error_handler,
    BackendError: backend_error_handler,
    HTTPException: http_exception_handler,
    SchemaRegistryError: registry_error_handler,
    Exception: internal_error_handler,
}
