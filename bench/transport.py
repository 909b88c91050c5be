"""Hrana over HTTP (our client) against libsql-client over WebSocket, on a real sqld.

Why the sqld backend talks HTTP: per operation on a namespace, the WebSocket client needs
its own connection (the namespace is chosen by the Host header at the handshake), while
HTTP sends the namespace in a header over one keep-alive pool. Measured here, same run:
  - a returning user's check (PRAGMA schema_version) on one of many namespaces
  - provisioning: the seed-000 DDL in one transaction on a fresh namespace

Run: .venv/bin/python bench/transport.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import libsql_client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from schema_registry.sqltext import split_statements  # noqa: E402
from service.backends.sqld.hrana import HranaDatabase, HranaHttp  # noqa: E402
from tests.sqld import SqldServer, make_keypair  # noqa: E402

DDL = split_statements((ROOT / "tests/registries/seed000/1.0.0.sql").read_text())


def _resolve_localhost_subdomains() -> None:
    original = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return original(host, *args, **kwargs)

    socket.getaddrinfo = resolve  # type: ignore[assignment]


def ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[int(len(ordered) * 0.9) - 1]
    return f"median {statistics.median(ordered) * 1000:6.2f} ms  p90 {p90 * 1000:6.2f} ms"


async def main(count: int) -> None:
    _resolve_localhost_subdomains()
    work = Path(tempfile.mkdtemp(prefix="bench-transport-"))
    private, public = make_keypair(work, "k")
    server = SqldServer(work / "sqld", [public]).start()
    token = jwt.encode({"exp": int(time.time()) + 3600}, private.read_text(), "EdDSA")
    http = HranaHttp(server.url, lambda: token)
    try:
        names = [f"ns{i}" for i in range(count)]
        fresh = [f"new-{kind}-{i}" for kind in ("http", "ws") for i in range(count)]
        async with httpx.AsyncClient() as admin:
            for name in names + fresh:
                await admin.post(f"{server.admin_url}/v1/namespaces/{name}/create", json={})
        for name in names:  # give each a schema, as a returning user's would have
            await HranaDatabase(http, name).fetch_many([(s, ()) for s in DDL])

        check_http, check_ws, tx_http, tx_ws = [], [], [], []
        for name in names:
            started = time.perf_counter()
            await HranaDatabase(http, name).fetch("PRAGMA schema_version")
            check_http.append(time.perf_counter() - started)
            started = time.perf_counter()
            url = f"ws://{name}.localhost:{server.port}"
            async with libsql_client.create_client(url, auth_token=token) as client:
                await client.execute("PRAGMA schema_version")
            check_ws.append(time.perf_counter() - started)
        for i in range(count):
            started = time.perf_counter()
            async with HranaDatabase(http, f"new-http-{i}").transaction() as tx:
                await tx.fetch_many([(s, ()) for s in DDL])
                await tx.commit()
            tx_http.append(time.perf_counter() - started)
            started = time.perf_counter()
            url = f"ws://new-ws-{i}.localhost:{server.port}"
            async with libsql_client.create_client(url, auth_token=token) as client:
                transaction = client.transaction()
                for statement in DDL:
                    await transaction.execute(statement)
                await transaction.commit()
            tx_ws.append(time.perf_counter() - started)
        print(f"sqld {server.url}, {count} namespaces each")
        print(f"check, Hrana over HTTP (pooled):          {ms(check_http)}")
        print(f"check, libsql-client ws (per namespace):  {ms(check_ws)}")
        print(f"27-table DDL in a transaction, HTTP batch: {ms(tx_http)}")
        print(f"27-table DDL in a transaction, ws client:  {ms(tx_ws)}")
    finally:
        await http.close()
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 namespaces instead of 100")
    args = parser.parse_args()
    asyncio.run(main(20 if args.quick else 100))
