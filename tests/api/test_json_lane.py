"""The sign-in's lane (service/api/json_lane.py): it answers initialize's common call
itself, with the route's answer byte for byte, and leaves everything else to the route."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
from litestar.types import Receive, Scope, Send

from service.api.json_lane import LANE_MAX_BODY, json_lane
from tests.api.disk import Disk, disk

__all__ = ["disk"]  # the fixture, used by name

INIT = "/api/user/initialize"
JSON = {"Content-Type": "application/json"}
VARYING = {"date", "x-request-id"}  # set per response, by the server and the request log


def by_lane_and_route(server: Any, body: bytes, user_id: str) -> tuple[httpx.Response, ...]:
    """The same call twice: with a Content-Length (the lane), then chunked (the route)."""
    headers = {**server.headers(user_id), **JSON}
    with server.client() as client:
        lane = client.post(INIT, content=body, headers=headers)
        route = client.post(INIT, content=iter([body]), headers=headers)
    assert "content-length" in lane.request.headers
    assert route.request.headers["transfer-encoding"] == "chunked"
    return lane, route


def assert_same_answer(lane: httpx.Response, route: httpx.Response) -> None:
    def shown(response: httpx.Response) -> list[tuple[str, str]]:
        return [(k, v) for k, v in response.headers.multi_items() if k not in VARYING]

    assert (lane.status_code, shown(lane), lane.content) == (
        route.status_code,
        shown(route),
        route.content,
    )
    assert lane.headers["x-request-id"]  # the lane runs inside the request log


def test_a_returning_users_answer_is_the_routes(serve: Any) -> None:
    server = serve()
    assert server.initialize("alice", "alice@example.com").status_code == 200
    body = b'{"user_id": "alice", "email": "alice@example.com"}'
    lane, route = by_lane_and_route(server, body, "alice")
    assert lane.status_code == 200
    assert lane.json()["message"].endswith("schema is up to date")
    assert_same_answer(lane, route)


def test_a_drifted_users_answer_is_the_routes(serve: Any) -> None:
    server = serve()
    tenant = server.tenant(server.initialize("erin"))
    tenant.script("DROP INDEX idx_trades_symbol; CREATE INDEX idx_trades_symbol ON trades (price)")
    lane, route = by_lane_and_route(server, b'{"user_id": "erin"}', "erin")
    assert [d["object"] for d in lane.json()["drift"]] == ["idx_trades_symbol"]
    assert_same_answer(lane, route)


def test_errors_the_work_raises_are_answered_as_the_route_answers_them(
    serve: Any, disk: Disk
) -> None:
    server = serve(data_dir=disk.path)
    server.tenant(server.initialize("alice"))
    # Another user's id without the admin role: refused inside the sign-in's work.
    lane, route = by_lane_and_route(server, b'{"user_id": "alice"}', "mallory")
    assert (lane.status_code, lane.json()["code"]) == (403, "forbidden")
    assert_same_answer(lane, route)
    # A new user on a full disk: the backend's error, through its handler.
    disk.fill()
    lane, route = by_lane_and_route(server, b'{"user_id": "bob"}', "bob")
    assert (lane.status_code, lane.json()["code"]) == (507, "storage_full")
    assert_same_answer(lane, route)


def test_bodies_the_lane_does_not_take_get_the_routes_answer(serve: Any) -> None:
    server = serve()
    for body, status in [
        (b'{"user_id": 5}', 400),  # the route names the field
        (b'{"user_id": "alice", "extra": 1}', 400),
        (b'{"user_id": "alice"', 400),  # malformed
        (b'{"user_id": "al\\u0000ice"}', 400),
    ]:
        lane, route = by_lane_and_route(server, body, "alice")
        assert lane.status_code == status, lane.text
        assert_same_answer(lane, route)


# The lane on its own, in one process: which calls it answers and which it passes on.


class Hello(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str


async def greet(_: Scope, body: Hello) -> Hello:
    return Hello(name=f"hello {body.name}")


class Call:
    """One call through the lane in front of a route that records what it received."""

    def __init__(self, body: bytes, headers: list[tuple[bytes, bytes]], chunks: int = 1) -> None:
        step = max(1, -(-len(body) // chunks))
        self.incoming: list[Any] = [
            {"type": "http.request", "body": body[i : i + step], "more_body": i + step < len(body)}
            for i in range(0, len(body), step)
        ] or [{"type": "http.request", "body": b"", "more_body": False}]
        self.scope: Any = {"type": "http", "headers": headers, "state": {}}
        self.sent: list[Any] = []
        self.route_read: list[Any] | None = None

    async def route(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.route_read = []
        while True:  # as a route reads a body: to its end, or to the client's leaving
            message = await receive()
            self.route_read.append(message)
            if message["type"] != "http.request" or not message.get("more_body"):
                return

    def run(self) -> Call:
        pending = iter(self.incoming)

        async def receive() -> Any:
            return next(pending, {"type": "http.disconnect"})

        async def send(message: Any) -> None:
            self.sent.append(message)

        lane: Any = json_lane(Hello, greet)(self.route)
        asyncio.run(lane(self.scope, receive, send))
        return self


def headers(length: int | None, media_type: str = "application/json") -> list[tuple[bytes, bytes]]:
    out = [(b"content-type", media_type.encode())]
    if length is not None:
        out.append((b"content-length", str(length).encode()))
    return out


def cases() -> Iterator[tuple[bytes, list[tuple[bytes, bytes]]]]:
    """Calls the lane must pass on, each with the body the route must still read whole."""
    good = b'{"name": "ada"}'
    yield good, headers(None)  # no declared length (chunked)
    yield good, headers(len(good), "text/plain")
    yield good, headers(len(good), "application/x-www-form-urlencoded")
    big = b'{"name": "' + b"a" * LANE_MAX_BODY + b'"}'
    yield big, headers(len(big))
    for bad in (b'{"name": 5}', b"{", b"", b'{"name": "ada", "x": 1}', b"[" * 10_000):
        yield bad, headers(len(bad))


def test_the_lane_answers_a_body_that_decodes() -> None:
    for media_type in ("application/json", "application/json; charset=utf-8", "application/x+json"):
        body = b'{"name": "ada"}'
        call = Call(body, headers(len(body), media_type), chunks=3).run()
        assert call.route_read is None
        start, sent = call.sent
        assert start["status"] == 200
        assert dict(start["headers"])[b"content-type"] == b"application/json"
        assert sent["body"] == b'{"name":"hello ada"}'
        assert dict(start["headers"])[b"content-length"] == str(len(sent["body"])).encode()


def test_the_route_reads_every_call_the_lane_passes_on_as_it_came() -> None:
    for body, sent_headers in cases():
        call = Call(body, sent_headers, chunks=2).run()
        assert call.sent == []
        assert call.route_read == call.incoming, sent_headers


def test_a_client_gone_mid_body_is_the_routes_to_answer() -> None:
    body = b'{"name": "ada"}'
    call = Call(body, headers(len(body)), chunks=2)
    call.incoming = call.incoming[:1]  # the rest never comes: a disconnect instead
    call.run()
    assert call.sent == []
    assert call.route_read == [call.incoming[0], {"type": "http.disconnect"}]
