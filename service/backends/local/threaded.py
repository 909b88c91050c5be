"""SQLite behind the async Database interface, one hop to a dedicated thread per call.

For small, rare work such as the local catalog: each call is one short statement, so the
hop per call costs less than it would to batch. Tenant syncs instead run whole in a
worker thread (see LocalBackend), where the hop per statement would add up. In a process
whose event loop serves no request (`inline`), both run on the loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

from schema_registry import Row, Value, connect
from service.backends.local.faults import storage_fault

T = TypeVar("T")


class _ThreadSession:
    def __init__(self, owner: ThreadedSqlite) -> None:
        self._owner = owner
        self.committed = False

    async def fetch(self, sql: str, params: Sequence[Value] = ()) -> list[Row]:
        return await self._owner.fetch(sql, params)

    async def execute(self, sql: str, params: Sequence[Value] = ()) -> None:
        await self._owner.execute(sql, params)

    async def fetch_many(
        self, statements: Sequence[tuple[str, Sequence[Value]]]
    ) -> list[list[Row]]:
        return await self._owner.fetch_many(statements)

    async def commit(
        self, statements: Sequence[tuple[str, Sequence[Value]]] = ()
    ) -> list[list[Row]]:
        def run(conn: sqlite3.Connection) -> list[list[Row]]:
            rows = [conn.execute(s, p).fetchall() for s, p in statements]
            conn.execute("COMMIT")
            return rows

        rows = await self._owner.run(run)
        self.committed = True
        return rows


class ThreadedSqlite:
    """One connection, owned by one thread; calls are serialised in arrival order.

    `inline` runs each call on the caller's event loop instead, in a process whose loop
    serves no request (the CLI, a rollout worker): there a hop buys nothing, and a second
    thread taking the GIL from a loop busy with SQLite work costs more than the call.
    """

    def __init__(self, path: Path, *, inline: bool = False) -> None:
        self.path = path
        self._inline = inline
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-catalog")
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()  # one transaction at a time on the one connection

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._conn is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._conn = connect(self.path)
                # As tenant databases commit (sqlite_db): in WAL mode NORMAL survives a
                # process crash and skips an fsync per commit (a fleet rollout commits two
                # catalog rows per tenant). A power loss may drop the newest rows: tenant
                # rows are rewritten from each tenant's history row on its next sync; the
                # newest audit entries are lost, as the tenant's own change may be.
                self._conn.execute("PRAGMA synchronous = NORMAL")
            return fn(self._conn)

        try:
            if self._inline:
                return call()
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except (sqlite3.Error, OSError) as exc:  # storage faults as the backend protocol's types
            typed = storage_fault(exc)
            if typed is None:
                raise
            raise typed from exc

    async def fetch(self, sql: str, params: Sequence[Value] = ()) -> list[Row]:
        return await self.run(lambda c: c.execute(sql, params).fetchall())

    async def execute(self, sql: str, params: Sequence[Value] = ()) -> None:
        await self.run(lambda c: c.execute(sql, params))

    async def fetch_many(
        self, statements: Sequence[tuple[str, Sequence[Value]]]
    ) -> list[list[Row]]:
        """All of them or none: one transaction (one commit) unless one is already open."""

        def run(conn: sqlite3.Connection) -> list[list[Row]]:
            if conn.in_transaction or len(statements) < 2:
                return [conn.execute(s, p).fetchall() for s, p in statements]
            conn.execute("BEGIN IMMEDIATE")
            try:
                rows = [conn.execute(s, p).fetchall() for s, p in statements]
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return rows

        return await self.run(run)

    @asynccontextmanager
    async def transaction(self, *, foreign_keys: bool = True) -> AsyncIterator[_ThreadSession]:
        async with self._lock:
            if not foreign_keys:
                await self.execute("PRAGMA foreign_keys = OFF")
            try:
                await self.execute("BEGIN IMMEDIATE")
                tx = _ThreadSession(self)
                try:
                    yield tx
                finally:
                    if not tx.committed:
                        await self.run(
                            lambda c: c.execute("ROLLBACK") if c.in_transaction else None
                        )
            finally:
                if not foreign_keys:
                    await self.execute("PRAGMA foreign_keys = ON")

    async def schema_cookie(self) -> int:
        rows = await self.fetch("PRAGMA schema_version")
        return int(rows[0][0])  # type: ignore[arg-type]

    async def close(self) -> None:
        def shut(conn: sqlite3.Connection) -> None:
            conn.close()
            self._conn = None

        if self._conn is not None:
            await self.run(shut)
        self._executor.shutdown(wait=True)
