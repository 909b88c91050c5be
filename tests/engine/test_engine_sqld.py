"""The engine's sync against a real sqld namespace, where each Hrana stream is its own
connection: what must hold there as it does on a local file."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from schema_registry import Registry, Row, StatementFailed, SyncContext, SyncResult
from service.backends.sqld import SqldBackend
from service.config import load_settings
from service.errors import Unavailable
from tests.engine.enginekit import REBUILD_V1, REBUILDS, V, make_registry
from tests.sqld import SqldServer, make_keypair

pytestmark = pytest.mark.sqld


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[SqldBackend]:
    private, public = make_keypair(tmp_path, "k")
    server = SqldServer(tmp_path / "sqld", [public]).start()
    settings = load_settings(
        {},
        data_dir=str(tmp_path / "data"),
        backend="sqld",
        sqld_url=(server.url,),
        sqld_admin_url=(server.admin_url,),
        sqld_jwt_key_file=str(private),
        public_url_template="ws://{namespace}.localhost:1",
    )
    try:
        yield SqldBackend(settings)
    finally:
        server.stop()


def _sync(
    backend: SqldBackend, registry: Registry, *, target: str | None = None, create: bool = False
) -> SyncResult:
    async def go() -> SyncResult:
        try:
            result, _ = await backend.sync(
                "0/alice",
                registry,
                apply=True,
                known=None,
                context=SyncContext(),
                create=create,
                target=target,
            )
            return result
        finally:
            await backend.close()

    return asyncio.run(go())


def _query(backend: SqldBackend, sql: str) -> list[Row]:
    async def go() -> list[Row]:
        try:
            return await backend.database("0/alice").fetch(sql)
        finally:
            await backend.close()

    return asyncio.run(go())


def _at_1_0_0(tmp_path: Path, backend: SqldBackend, v2: str, migration: str) -> Registry:
    registry = make_registry(
        tmp_path / "registry", V("1.0.0", REBUILD_V1), V("1.1.0", v2, migration)
    )
    _sync(backend, registry, target="1.0.0", create=True)
    _query(backend, "INSERT INTO parent VALUES (1, 'a'), (2, 'b')")
    _query(backend, "INSERT INTO child (parent_id, amount) VALUES (1, 10), (1, 20), (2, 30)")
    return registry


@pytest.mark.parametrize(("v2", "migration", "children"), REBUILDS, ids=["child", "parent"])
def test_migration_scripts_run_with_foreign_keys_off_on_the_transactions_own_stream(
    tmp_path: Path, backend: SqldBackend, v2: str, migration: str, children: list[tuple[object]]
) -> None:
    registry = _at_1_0_0(tmp_path, backend, v2, migration)
    # sqld's connections enforce foreign keys: left on, rebuilding `parent` (DROP TABLE)
    # would run ON DELETE CASCADE and empty `child`.
    assert _query(backend, "PRAGMA foreign_keys") == [(1,)]

    result = _sync(backend, registry)

    assert (result.status, result.recorded) == ("applied", ("1.1.0",))
    assert _query(backend, "SELECT id, parent_id, amount, typeof(amount) FROM child") == children
    assert _query(backend, "SELECT * FROM parent") == [(1, "a"), (2, "b")]
    assert _query(backend, "PRAGMA foreign_key_check") == []


def test_a_migration_that_orphans_rows_is_rolled_back(tmp_path: Path, backend: SqldBackend) -> None:
    registry = _at_1_0_0(
        tmp_path,
        backend,
        REBUILD_V1 + "CREATE TABLE extra (a);",
        "DELETE FROM parent WHERE id = 2;",
    )

    with pytest.raises(Exception, match=r"1 row\(s\) of child point at missing parent rows"):
        _sync(backend, registry)

    assert _query(backend, "SELECT count(*) FROM child") == [(3,)]
    assert _query(backend, "SELECT count(*) FROM parent") == [(2,)]
    assert _query(backend, "SELECT name FROM sqlite_schema WHERE name = 'extra'") == []
    assert _query(backend, "SELECT version FROM schema_version") == [("1.0.0",)]


def test_a_statement_sqld_refuses_is_a_typed_failure_naming_it(
    tmp_path: Path, backend: SqldBackend
) -> None:
    bad = "UPDATE child SET nosuch = 1;"
    registry = _at_1_0_0(tmp_path, backend, REBUILD_V1 + "CREATE TABLE extra (a);", bad)

    with pytest.raises(StatementFailed) as caught:
        _sync(backend, registry)

    assert (caught.value.version, caught.value.statement) == ("1.1.0", bad)
    assert "no such column: nosuch" in caught.value.sqlite_message
    assert _query(backend, "SELECT name FROM sqlite_schema WHERE name = 'extra'") == []
    assert _query(backend, "SELECT version FROM schema_version") == [("1.0.0",)]


def test_a_commit_that_never_reaches_sqld_still_releases_the_write_lock(
    backend: SqldBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def go() -> tuple[object, object]:
        await backend.create_namespace(0, "alice")
        db = backend.database("0/alice")
        await db.execute("CREATE TABLE t (x)")
        sent = db.http.request

        async def refused(*args: object, **kwargs: object) -> tuple[int, bytes]:
            raise Unavailable("connection refused (injected)")

        async def write_then_fail_to_commit() -> None:
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO t VALUES (1)")
                monkeypatch.setattr(db.http, "request", refused)  # the COMMIT's request fails
                try:
                    await tx.commit([("INSERT INTO t VALUES (2)", ())])
                finally:
                    monkeypatch.setattr(db.http, "request", sent)

        with pytest.raises(Unavailable):
            await write_then_fail_to_commit()
        # The transaction was rolled back and its stream closed: another writer gets in
        # at once (sqld would otherwise hold the lock until the stream expires, 10 s).
        other = backend.database("0/alice")
        started = time.monotonic()
        await other.execute("INSERT INTO t VALUES (3)")
        waited = time.monotonic() - started
        rows = await other.fetch("SELECT x FROM t")
        await backend.close()
        return waited, rows

    waited, rows = asyncio.run(go())
    assert rows == [(3,)]
    assert isinstance(waited, float)
    assert waited < 1.0
