"""Authentication as a Litestar guard, so a bad token fails before the body is read."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from service.auth import Authenticator
from service.errors import Forbidden


async def authenticated(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    authenticator: Authenticator = connection.app.state.authenticator
    identity = await authenticator.authenticate(connection.headers.get("authorization"))
    connection.state.identity = identity


async def admin_only(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    await authenticated(connection, handler)
    if not connection.state.identity.admin:
        raise Forbidden("this endpoint needs a token with the admin role")
