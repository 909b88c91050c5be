"""A transaction's later requests name the anchor, a namespace sqld keeps loaded, so sqld
never loads a tenant's namespace again in the middle of its sync (contract "sqld at 10,000
namespaces": each namespace loaded once per rollout)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.backends.sqld import SqldBackend
from service.backends.sqld.hrana import HranaHttp
from service.config import load_settings
from service.wiring import open_runtime
from tests.api.conftest import settings_for
from tests.sqld import SqldServer, make_keypair

pytestmark = pytest.mark.sqld

CATALOG = "tenantdb-catalog"


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[list[SqldServer], Path]]:
    private, public = make_keypair(tmp_path, "k")
    started = [SqldServer(tmp_path / f"sqld{i}", [public]).start() for i in range(2)]
    yield started, private
    for server in started:
        server.stop()


def spy(http: HranaHttp, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool, int]]:
    """Each request to this server: the namespace it named, whether it continued a stream
    (carried a baton), and the status it got."""
    seen: list[tuple[str, bool, int]] = []
    sent = http.request

    async def request(
        method: str, path: str, namespace: str, body: bytes = b"", base_url: str | None = None
    ) -> tuple[int, bytes]:
        status, reply = await sent(method, path, namespace, body, base_url)
        seen.append((namespace, json.loads(body).get("baton") is not None, status))
        return status, reply

    monkeypatch.setattr(http, "request", request)
    return seen


def test_every_shard_gets_the_anchor_and_listings_skip_it(
    servers: tuple[list[SqldServer], Path], tmp_path: Path
) -> None:
    started, private = servers
    values = settings_for(tmp_path, started, private)

    async def go() -> list[str]:
        async with open_runtime(load_settings({}, **values)) as tenants:
            backend = tenants.backend
            assert isinstance(backend, SqldBackend)
            await tenants.initialize("alice", None)
            await tenants.initialize("bob", None)
            backend.db_paths = tuple(s.folder / "data" for s in started)
            return [location async for location in backend.databases()]

    listed = asyncio.run(go())
    for server in started:  # the catalog on the first, an empty anchor on the other
        status = httpx.get(f"{server.admin_url}/v1/namespaces/{CATALOG}/config").status_code
        assert status == 200
    assert len(listed) == 2
    assert not any(location.endswith(f"/{CATALOG}") for location in listed)


def test_a_transactions_later_requests_name_the_anchor_a_held_streams_do_not(
    servers: tuple[list[SqldServer], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, private = servers
    values = settings_for(tmp_path, started[:1], private)

    async def go() -> None:
        async with open_runtime(load_settings({}, **values, sqld_held_streams=4)) as tenants:
            backend = tenants.backend
            assert isinstance(backend, SqldBackend)
            http = backend.database("0/x").http
            assert http.anchor == CATALOG
            seen = spy(http, monkeypatch)
            record = (await tenants.initialize("alice", None)).record
            _, namespace = backend.split(record.location)
            # The sync's transaction: its first request names alice's namespace (sqld makes
            # the stream's connection there), every later one the anchor; so do the
            # catalog's own transactions.
            assert [s for s in seen if s[0] == namespace] == [(namespace, False, 200)]
            continued = [name for name, baton, _ in seen if baton]
            assert len(continued) >= 2
            assert set(continued) == {CATALOG}

            seen.clear()
            for _ in range(3):  # a held stream: no transaction, its own namespace each time
                assert await backend.check(record.location, tenants.registry, record.stamp)
            assert seen == [(namespace, False, 200), (namespace, True, 200), (namespace, True, 200)]
            rows = await backend.database(record.location).fetch(
                "SELECT version FROM schema_version"
            )
            assert rows

    asyncio.run(go())


def test_without_its_anchor_a_transaction_goes_on_through_its_own_namespace(
    servers: tuple[list[SqldServer], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, private = servers
    values = settings_for(tmp_path, started[:1], private)

    async def go() -> list[tuple[str, bool, int]]:
        async with open_runtime(load_settings({}, **values)) as tenants:
            backend = tenants.backend
            assert isinstance(backend, SqldBackend)
            http = backend.database("0/x").http
            http.anchor = "deleted-by-hand"  # a 404 before sqld looks at the stream
            seen = spy(http, monkeypatch)
            await backend.create_namespace(0, "alice")
            db = backend.database("0/alice")
            async with db.transaction() as tx:
                await tx.execute("CREATE TABLE t (x)")
                await tx.execute("INSERT INTO t VALUES (1)")
                await tx.commit([("INSERT INTO t VALUES (2)", ())])
            assert await db.fetch("SELECT x FROM t ORDER BY x") == [(1,), (2,)]
            return seen

    seen = asyncio.run(go())
    continued = [(name, status) for name, baton, status in seen if baton]
    assert continued == [("deleted-by-hand", 404), ("alice", 200)] * (len(continued) // 2)
    assert len(continued) == 4  # the INSERT and the COMMIT went on, each sent twice
