"""The per-user lock and the SQLite transaction (a hand-written context manager, doing what
the generator-based one it replaced did), including when the body or the wait fails."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from schema_registry.sqlite_db import SqliteDatabase
from service.tenants import KeyedLocks


def test_a_key_serialises_its_holders_and_is_dropped_when_nobody_holds_it() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    async def hold(name: str, pause: float) -> None:
        async with locks.hold("alice"):
            order.append(f"{name} in")
            await asyncio.sleep(pause)
            order.append(f"{name} out")

    async def main() -> int:
        await asyncio.gather(hold("first", 0.02), hold("second", 0), hold("other", 0))
        return len(locks._locks)

    assert asyncio.run(main()) == 0
    assert order == ["first in", "first out", "second in", "second out", "other in", "other out"]


def test_a_waiter_cancelled_leaves_no_lock_behind_and_a_failing_body_releases_it() -> None:
    locks = KeyedLocks()

    async def main() -> tuple[int, int, bool]:
        async with locks.hold("alice"):
            waiter = asyncio.ensure_future(locks.hold("alice").__aenter__())
            await asyncio.sleep(0)
            waiting = locks._locks["alice"][1]
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
        with pytest.raises(RuntimeError):
            async with locks.hold("bob"):
                raise RuntimeError("the body failed")
        async with locks.hold("bob"):  # not left held by the failure
            pass
        return waiting, len(locks._locks), "alice" in locks._locks

    assert asyncio.run(main()) == (2, 0, False)


def _db(tmp_path: Path) -> SqliteDatabase:
    db = SqliteDatabase.open(tmp_path / "t.db")
    db.conn.execute("CREATE TABLE t (x INTEGER)")
    return db


def test_a_transaction_commits_or_rolls_back_and_restores_foreign_keys(tmp_path: Path) -> None:
    db = _db(tmp_path)

    inside: list[object] = []

    async def fails() -> None:
        async with db.transaction(foreign_keys=False) as tx:
            await tx.execute("INSERT INTO t VALUES (2)")
            inside.append(db.conn.execute("PRAGMA foreign_keys").fetchone())
            raise RuntimeError("the sync failed")

    async def main() -> None:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES (1)")
            await tx.commit()
        with pytest.raises(RuntimeError):
            await fails()
        async with db.transaction() as tx:  # no commit: rolled back on the way out
            await tx.execute("INSERT INTO t VALUES (3)")

    asyncio.run(main())
    assert inside == [(0,)]
    assert db.conn.execute("SELECT x FROM t").fetchall() == [(1,)]
    assert db.conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
    assert not db.conn.in_transaction
    db.close()


def test_a_transaction_that_cannot_begin_restores_foreign_keys(tmp_path: Path) -> None:
    db = _db(tmp_path)
    other = sqlite3.connect(tmp_path / "t.db", isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")  # holds the write lock
    db.conn.execute("PRAGMA busy_timeout = 0")

    async def main() -> None:
        async with db.transaction(foreign_keys=False):
            pass

    with pytest.raises(sqlite3.OperationalError, match="locked"):
        asyncio.run(main())
    assert db.conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
    other.execute("ROLLBACK")
    other.close()
    db.close()
