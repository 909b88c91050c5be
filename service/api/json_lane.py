"""A route's common request answered without Litestar's per-route work, for the sign-in.

Every sign-in of every user is a POST to initialize, so what a request costs there is
tenantdb's cost of doing business. Litestar's route handling (a Request object, the kwargs
and signature models, a Response object and its ASGI response) was about a third of a
returning user's sign-in in one process (bench/api.py has the sign-in beside a bare
endpoint). `json_lane` is route middleware that answers the common request itself: a JSON
body of declared, modest length that decodes into the route's body type. Anything else (no
length, another media type, a body that does not decode, a client gone) goes on to the
route with what was read of it, so the answer is the route's own: the same 400 naming the
field, the same 415. What the work raises is answered by the route's exception handlers,
as the route would. Its 200 is the route's, byte for byte (tests/api/test_json_lane.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import msgspec
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)

from service.api.deps import header
from service.api.validation import is_json, media_type
from service.errors import send_exception

Body = TypeVar("Body", bound=msgspec.Struct)

# A body past this goes to the route (which reads any size up to the app's limit): a
# sign-in's is a user id and an email, well under a kilobyte.
LANE_MAX_BODY: Final = 16 * 1024
_CONTENT_LENGTH: Final = b"content-length"
_JSON_HEADERS: Final = (b"content-type", b"application/json")

Answer = Callable[[Scope, Body], Awaitable[msgspec.Struct]]


def json_lane(kind: type[Body], answer: Answer[Body]) -> Callable[[ASGIApp], ASGIApp]:
    """Route middleware: `answer(scope, body)` for a body that decodes into `kind`, with
    a 200 and the answer as JSON; everything else to the route."""
    # strict=False: the route's signature model converts the decoded body the same way.
    decoder = msgspec.json.Decoder(kind, strict=False)
    encoder = msgspec.json.Encoder()

    def middleware(app: ASGIApp) -> ASGIApp:
        async def lane(scope: Scope, receive: Receive, send: Send) -> None:
            if not _fits(scope):
                await app(scope, receive, send)
                return
            read: list[ReceiveMessage] = []
            body = await _read_body(receive, read)
            try:
                data = decoder.decode(body) if body is not None else None
            except Exception:  # whatever does not decode, the route words the answer to
                data = None
            if data is None:
                await app(scope, _replay(read, receive), send)
                return
            try:
                content = encoder.encode(await answer(scope, data))
            except Exception as exc:  # answered as the route's exception handlers answer it
                await send_exception(scope, receive, send, exc)
                return
            length = (_CONTENT_LENGTH, str(len(content)).encode())
            start = HTTPResponseStartEvent(
                type="http.response.start", status=200, headers=[_JSON_HEADERS, length]
            )
            await send(start)
            body_event = HTTPResponseBodyEvent(
                type="http.response.body", body=content, more_body=False
            )
            await send(body_event)

        return lane

    return middleware


def _fits(scope: Scope) -> bool:
    """A declared length the lane reads whole, and a JSON media type."""
    length = header(scope, _CONTENT_LENGTH)
    if length is None or not length.isdecimal() or int(length) > LANE_MAX_BODY:
        return False
    return is_json(media_type(scope))


async def _read_body(receive: Receive, read: list[ReceiveMessage]) -> bytes | None:
    """The whole body, keeping each message in `read`; None when the client left first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        read.append(message)
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(read: list[ReceiveMessage], receive: Receive) -> Receive:
    """`receive` as if nothing had been read: the messages read first, then the rest."""
    pending = list(read)

    async def again() -> ReceiveMessage:
        if pending:
            return pending.pop(0)
        return await receive()

    return again
