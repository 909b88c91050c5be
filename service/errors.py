"""Service errors and the one place that turns any exception into a JSON response.

Every error body is `{"success": false, "message": ..., "status_code": ...}`, with a
message that says what to do next; a stack trace never reaches a client.
"""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

from schema_registry.errors import NewerDatabaseError, SchemaRegistryError

log = structlog.get_logger("tenantdb.errors")


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    """What every failed request returns."""

    success: bool = False
    message: str
    status_code: int


class ServiceError(Exception):
    """An error with the HTTP status it maps to."""

    status_code = 400
    headers: dict[str, str] | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ServiceError):
    status_code = 400


class Unauthorized(ServiceError):
    status_code = 401

    def __init__(self, message: str, *, error: str = "invalid_token") -> None:
        super().__init__(message)
        safe = message.replace('"', "'")
        self.headers = {
            "WWW-Authenticate": f'Bearer realm="tenantdb", error="{error}", '
            f'error_description="{safe}"'
        }


class Forbidden(ServiceError):
    status_code = 403


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    status_code = 409


class Unavailable(ServiceError):
    status_code = 503


def _body(status: int, message: str, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        content=ErrorBody(message=message, status_code=status),
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def service_error_handler(_: Request[Any, Any, Any], exc: ServiceError) -> Response[Any]:
    return _body(exc.status_code, exc.message, exc.headers)


def http_exception_handler(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    message = exc.detail
    if isinstance(exc, ValidationException) and exc.extra:
        message = f"{exc.detail}: {_validation_text(exc.extra)}"
    return _body(exc.status_code, message, exc.headers)


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
    status = 409 if isinstance(exc, NewerDatabaseError) else 500
    log.error("schema.sync_failed", error=str(exc))
    return _body(status, str(exc))


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("request.failed", path=request.url.path, error_type=type(exc).__name__)
    return _body(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "internal error: the request was not completed; see the service log for its request id",
    )


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ServiceError: service_error_handler,
    HTTPException: http_exception_handler,
    SchemaRegistryError: registry_error_handler,
    Exception: internal_error_handler,
}
