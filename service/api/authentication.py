"""Who may call a route, checked by middleware before the body is read.

A route (or its controller) says it with `opt`: `USER` (any valid token) or `ADMIN` (a
token with the admin role); routes without either are open. The verified `Identity` is put
in the request's state for the handlers (`request.state.identity`).

Middleware, not a Litestar guard: Litestar copies the route handler for every guard it
calls (about 6 µs a request), and every sign-in pays what this costs.
"""

from __future__ import annotations

from typing import Final

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from service.api.deps import header
from service.auth import Authenticator
from service.errors import Forbidden, ServiceError, send_exception

AUTH: Final = "auth"
USER: Final = {AUTH: "user"}
ADMIN: Final = {AUTH: "admin"}
_AUTHORIZATION: Final = b"authorization"


def authentication(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        need = scope["route_handler"].opt.get(AUTH) if scope["type"] == ScopeType.HTTP else None
        if need is None:
            await app(scope, receive, send)
            return
        litestar: Litestar = scope["litestar_app"]
        authenticator: Authenticator = litestar.state.authenticator
        try:
            identity = await authenticator.authenticate(header(scope, _AUTHORIZATION))
            if need == "admin" and not identity.admin:
                raise Forbidden("this endpoint needs a token with the admin role")
        except ServiceError as exc:  # answered here, inside the request log and the limits
            await send_exception(scope, receive, send, exc)
            return
        scope["state"]["identity"] = identity
        await app(scope, receive, send)

    return middleware
