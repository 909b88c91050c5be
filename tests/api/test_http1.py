"""service/backends/http1.py against small real servers on loopback: the replies sqld and
its admin API send (Content-Length, chunked), keep-alive, and the ways a reply goes wrong."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from service.backends.sqld import http1
from service.backends.sqld.http1 import Http1Pool, HttpError

Reply = Callable[[bytes], bytes]  # request head -> raw reply


async def _serve(reply: Reply, *, close_after: bool = False) -> tuple[asyncio.Server, list[int]]:
    """A server answering each request on a connection with `reply(head)`; the list counts
    requests per connection."""
    per_connection: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        per_connection.append(0)
        index = len(per_connection) - 1
        try:
            while not reader.at_eof():
                head = await reader.readuntil(b"\r\n\r\n")
                lengths = [
                    int(line.split(b":")[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length")
                ]
                await reader.readexactly(sum(lengths))
                per_connection[index] += 1
                writer.write(reply(head))
                await writer.drain()
                if close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client hung up
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, per_connection


def _run(reply: Reply, work: Callable[[Http1Pool], Awaitable[object]], **kw: bool) -> list[int]:
    async def go() -> list[int]:
        server, counts = await _serve(reply, **kw)
        port = server.sockets[0].getsockname()[1]
        pool = Http1Pool(f"http://127.0.0.1:{port}")
        try:
            await work(pool)
        finally:
            await pool.close()
            server.close()
        return counts

    return asyncio.run(go())


def _sized(body: bytes, extra: bytes = b"") -> Reply:
    return lambda _: b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def test_sequential_requests_share_one_kept_alive_connection() -> None:
    async def work(pool: Http1Pool) -> None:
        for _ in range(3):
            assert await pool.request("POST", "/v2/pipeline", b'{"a": 1}') == (200, b"{}")
        assert pool.opened == 1

    assert _run(_sized(b"{}"), work) == [3]


def test_a_chunked_reply_is_put_together() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6;x=1\r\n world\r\n0\r\n\r\n"
    )

    async def work(pool: Http1Pool) -> None:
        assert await pool.request("GET", "/dump") == (200, b"hello world")
        assert await pool.request("GET", "/dump") == (200, b"hello world")  # still in step

    assert _run(lambda _: chunked, work) == [2]


def test_connection_close_and_servers_that_hang_up_get_a_new_connection() -> None:
    async def work(pool: Http1Pool) -> None:
        for _ in range(2):
            assert await pool.request("GET", "/") == (404, b"no")
            await asyncio.sleep(0.01)  # the server's close reaches us
        assert pool.opened == 2

    reply = _sized(b"no", b"connection: close\r\n")
    close = lambda head: reply(head).replace(b"200 OK", b"404 Not Found")  # noqa: E731
    assert _run(close, work, close_after=True) == [1, 1]


def test_idle_connections_are_not_kept_past_idle_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http1, "IDLE_FOR", 0.02)

    async def work(pool: Http1Pool) -> None:
        await pool.request("GET", "/")
        await asyncio.sleep(0.05)
        await pool.request("GET", "/")
        assert pool.opened == 2

    assert _run(_sized(b"x"), work) == [1, 1]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP reply"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", "broke off its reply"),
    ],
    ids=["not-http", "cut-short"],
)
def test_a_garbled_or_cut_reply_is_an_http_error(raw: bytes, message: str) -> None:
    async def work(pool: Http1Pool) -> None:
        with pytest.raises(HttpError, match=message):
            await pool.request("GET", "/")
        assert pool._idle == []  # that connection is not reused

    _run(lambda _: raw, work, close_after=True)


def test_an_unreachable_server_is_an_http_error() -> None:
    async def go() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        with pytest.raises(HttpError, match="cannot reach"):
            await Http1Pool(f"http://127.0.0.1:{port}").request("GET", "/")

    asyncio.run(go())
