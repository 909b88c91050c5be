"""A small keep-alive HTTP/1.1 client: what tenantdb needs to talk to one sqld server.

Why not aiohttp: a Hrana round trip is most of a returning user's cost on sqld, and
measured against a real sqld, aiohttp spent about 240 µs of this process's CPU per
request where this client spends about 90 µs (bench/sqld.py reports both). It does only
what sqld's HTTP and admin endpoints need: a request with a small body, a reply with
Content-Length or chunked, connections kept alive and reused, TLS for https URLs.

A connection goes back to the pool only after a complete exchange; one cancelled or
failed half way is closed. Idle connections are dropped after IDLE_FOR seconds (before a
server could drop them while a request is on its way), and one found closed by the server
is never written to. Nothing is retried here: a request that failed may have run.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

IDLE_FOR: Final = 15.0  # seconds an idle connection is kept
_MAX_HEADER_LINES: Final = 100


class HttpError(ConnectionError):
    """The server could not be reached, or broke off or garbled its reply."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = time.monotonic()

    def usable(self) -> bool:
        fresh = time.monotonic() - self.idle_since < IDLE_FOR
        return fresh and not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


class Http1Pool:
    """Keep-alive connections to one server (`base_url`), at most `limit` at once."""

    def __init__(self, base_url: str, *, limit: int = 64, timeout: float = 30.0) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"{base_url!r}: expected http://HOST[:PORT] or https://...")
        self.base_url = base_url.rstrip("/")
        self._host = url.hostname
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if url.scheme == "https" else None
        self._prefix = url.path.rstrip("/")
        self._host_header = url.netloc
        self._timeout = timeout
        self._gate = asyncio.Semaphore(limit)
        self._idle: list[_Connection] = []
        self.opened = 0  # connections made so far (keep-alive working: few)

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """Send one request; returns the reply's status and body."""
        head = [f"{method} {self._prefix}{path} HTTP/1.1", f"host: {self._host_header}"]
        head += [f"{name}: {value}" for name, value in (headers or {}).items()]
        head.append(f"content-length: {len(body)}")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        async with self._gate:
            conn = await self._connection()
            try:
                async with asyncio.timeout(self._timeout):
                    conn.writer.write(data)
                    status, keep, reply = await _read_reply(conn.reader)
            except BaseException:
                conn.close()
                raise
            if keep:
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
            else:
                conn.close()
            return status, reply

    async def _connection(self) -> _Connection:
        while self._idle:
            conn = self._idle.pop()
            if conn.usable():
                return conn
            conn.close()
        try:
            async with asyncio.timeout(self._timeout):
                reader, writer = await asyncio.open_connection(
                    self._host, self._port, ssl=self._ssl
                )
        except (OSError, TimeoutError) as exc:
            raise HttpError(f"cannot reach {self.base_url}: {exc}") from exc
        self.opened += 1
        return _Connection(reader, writer)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


async def _read_reply(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """(status, keep the connection, body) of one reply."""
    try:
        status_line = await reader.readline()
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise HttpError(f"not an HTTP reply: {status_line[:80]!r}")
        status = int(parts[1])
        keep = parts[0] == b"HTTP/1.1"
        length: int | None = None
        chunked = False
        for _ in range(_MAX_HEADER_LINES):
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = value.endswith(b"chunked")
            elif name == b"connection":
                keep = value != b"close" if keep else value == b"keep-alive"
        else:
            raise HttpError("an HTTP reply with too many header lines")
        if chunked:
            return status, keep, await _read_chunked(reader)
        if length is not None:
            return status, keep, await reader.readexactly(length)
        return status, False, await reader.read()  # until the server closes
    except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
        if isinstance(exc, HttpError):
            raise
        raise HttpError(f"the server broke off its reply: {exc}") from exc


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size = int((await reader.readline()).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailer fields
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)  # the chunk's CRLF
