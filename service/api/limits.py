"""Rate limits, with Litestar's RateLimitMiddleware and identifiers of our own.

Two limits, both per process (each replica counts its own), fixed one-minute windows:

- per user (the verified token subject): the calls a user can repeat at will and that
  cost real work, sync-schema and export. Sign-ins (initialize) are never limited: an
  app server signs every user in from one address, and one user's concurrent first
  sign-ins must all succeed.
- per client address: requests that fail authentication (401). Only failing requests
  count and only they are refused, so an app server sending one bad token does not
  lock its other users out.

A refused request gets 429 with `Retry-After` and code `rate_limited`.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from typing import Any, Final

import structlog
from litestar import Litestar, Request, Response
from litestar.exceptions import TooManyRequestsException
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.rate_limit import (
    CacheObject,
    RateLimitConfig,
    RateLimitMiddleware,
    get_remote_address,
)
from litestar.stores.memory import MemoryStore
from litestar.types import Message, Receive, Scope, Send

from service.auth import Identity
from service.config import Settings
from service.errors import ServiceError, send_exception, service_error_handler

log = structlog.get_logger("tenantdb.limits")

STORE: Final = "rate_limit"  # the app's store holding the counters (a MemoryStore)
SWEEP_SECONDS: Final = 60.0  # how often expired counters are dropped from memory


class RateLimited(ServiceError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.headers = headers


def _limited(headers: dict[str, str] | None, what: str) -> RateLimited:
    """The 429: RFC 9110 `Retry-After` from the window's reset, with the RateLimit-* headers."""
    headers = dict(headers or {})
    retry = max(1, int(headers.get("RateLimit-Reset", "1")))
    headers["Retry-After"] = str(retry)
    return RateLimited(f"too many {what}; try again in {retry} s", headers)


def rate_limited_handler(
    request: Request[Any, Any, Any], exc: TooManyRequestsException
) -> Response[Any]:
    """Litestar's 429 (raised by the per-user limiter) in the service's error body."""
    identity = request.state.get("identity")
    log.warning("request.rate_limited", limit="user", user_id=getattr(identity, "user_id", None))
    return service_error_handler(request, _limited(exc.headers, "sync-schema or export calls"))


def _subject(request: Request[Any, Any, Any]) -> str:
    """The verified caller: the authentication middleware, which runs first, put it in the
    state (a token that does not verify is a 401, counted per address)."""
    identity: Identity = request.state.identity
    return f"user:{identity.user_id}"


def _address(request: Request[Any, Any, Any]) -> str:
    """The client's address; an IPv6 client by its /64, which one host usually holds whole."""
    host = get_remote_address(request)
    with suppress(ValueError):
        ip = ipaddress.ip_address(host)
        if ip.version == 6 and ip.ipv4_mapped is None:
            return f"addr:{ipaddress.ip_network(f'{ip}/64', strict=False)}"
    return f"addr:{host}"


class FailedAuthLimit(RateLimitMiddleware):
    """Counts the requests answered 401 per address; past the limit, answers 429 instead.

    Counted from the response, whatever refused the credentials (a guard, /metrics' token),
    so a token is verified once, by the guard, and a good one is never refused.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused = False

        async def count_failures(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and message["status"] == 401:
                app: Litestar = scope["litestar_app"]
                request: Request[Any, Any, Any] = app.request_class(scope)
                store = self.config.get_store_from_app(app)
                key = self.cache_key_from_request(request)
                async with self._lock:
                    window = await self.retrieve_cached_history(key, store)
                    refused = len(window.history) >= self.max_requests
                    if not refused:
                        await self.set_cached_history(key=key, cache_object=window, store=store)
                if refused:
                    await self._refuse(request, window, scope, receive, send)
            if not refused:  # else the 401's own messages are dropped
                await send(message)

        await self.app(scope, receive, count_failures)

    async def _refuse(
        self,
        request: Request[Any, Any, Any],
        window: CacheObject,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        log.warning("request.rate_limited", limit="auth_failures", client=_address(request))
        error = _limited(self.create_response_headers(window), "failed authentications")
        await send_exception(scope, receive, send, error)


def rate_limit_middleware(
    settings: Settings,
) -> tuple[list[DefineMiddleware], list[DefineMiddleware]]:
    """The limiters to put outside authentication (per address: it counts the 401s
    authentication answers) and inside it, on the routes of LimitedUserController only
    (per user: it counts verified callers); none when TENANTDB_RATE_LIMIT=off."""
    if settings.rate_limit == "off":
        return [], []
    per_address = RateLimitConfig(
        rate_limit=("minute", settings.rate_limit_auth_failures),
        identifier_for_request=_address,
        middleware_class=FailedAuthLimit,
        store=STORE,
    )
    per_user = RateLimitConfig(
        rate_limit=("minute", settings.rate_limit_user),
        identifier_for_request=_subject,
        store=STORE,
    )
    return [per_address.middleware], [per_user.middleware]


@asynccontextmanager
async def sweep_counters(app: Litestar) -> AsyncIterator[None]:
    """Lifespan: drop expired counters every minute. MemoryStore forgets a key only when it
    is read again, and addresses that fail once and never return would pile up."""
    store = app.stores.get(STORE)
    task: asyncio.Task[None] | None = None
    if isinstance(store, MemoryStore):
        task = asyncio.create_task(_every(SWEEP_SECONDS, store.delete_expired))
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task


async def _every(seconds: float, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
    while True:
        await asyncio.sleep(seconds)
        await job()
