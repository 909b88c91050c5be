"""One log event per request (method, path, status, duration, request id, user id), and
the request's count and latency in the app's metrics (service.operations.metrics).

A request without an `X-Request-Id` gets one from a counter behind a random per-process
prefix (32 random bits: in practice unique across the server processes and their
restarts), made without a system call (uuid4 reads the OS's random source on every
request, and sign-ins are the product's cost). Nothing here waits on disk: the log line is
queued for the log pump (service.logs).
"""

from __future__ import annotations

import itertools
import os
import secrets
import time
from collections.abc import Callable

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.api.deps import header
from service.logs import REQUEST_ID, Event, info_writer
from service.operations.metrics import UNMATCHED, Metrics

log = structlog.get_logger("tenantdb.http")

_REQUEST_ID: bytes = b"x-request-id"


class RequestCompleted(Event, tag="request.completed"):
    """The line of every request, with the request id, level and time of every Event."""

    method: str
    path: str
    status: int
    duration_ms: float
    user_id: str | None
    pid: int


class RequestIds:
    """`<8 random hex of this process><8 hex of a counter>`: 16 characters, as before.

    A forked child draws a new prefix (os.register_at_fork), so no two processes share one
    and a request pays for neither a random draw nor a getpid.
    """

    def __init__(self) -> None:
        self.pid = 0
        self._prefix = ""
        self._counter = itertools.count()
        self._start()
        os.register_at_fork(after_in_child=self._start)

    def _start(self) -> None:
        self.pid = os.getpid()
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFF:08x}"


_ids = RequestIds()  # one per process: every app in it draws from the same counter


def request_logging(app: ASGIApp) -> ASGIApp:
    metrics: Metrics | None = None  # the app's, found on its first request
    ids = _ids
    # How the line is logged, asked on the first request (logging is set up by then):
    # None at the warning level, where a sign-in skips gathering the line's fields (~1 µs).
    write_line: Callable[[Event], None] | None = None
    asked = False

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal metrics, write_line, asked
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope) or ids.next()
        bound = REQUEST_ID.set(request_id)  # every line logged while it runs carries it
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((_REQUEST_ID, request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            if metrics is None:
                metrics = getattr(scope["app"].state, "metrics", None)
            if metrics is not None:
                # The route's template (Litestar sets it once routed), never the raw path:
                # user ids in label values would make a series per user.
                route = scope.get("path_template", UNMATCHED)
                metrics.request(route, scope["method"], status, seconds)
            if not asked:
                write_line, asked = info_writer(log), True
            if write_line is not None:
                identity = scope.get("state", {}).get("identity")
                write_line(
                    RequestCompleted(
                        method=scope["method"],
                        path=scope["path"],
                        status=status,
                        duration_ms=round(seconds * 1000, 3),
                        user_id=getattr(identity, "user_id", None),
                        pid=ids.pid,
                        request_id=request_id,
                    )
                )
            REQUEST_ID.reset(bound)

    return middleware


def _request_id(scope: Scope) -> str | None:
    """The client's X-Request-Id, if it is printable, cut to 64 characters."""
    text = header(scope, _REQUEST_ID)
    if text is None:
        return None
    text = text[:64]
    return text if text.isprintable() else None
