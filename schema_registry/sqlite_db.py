"""The SQLite adapter: a sqlite3 connection behind the async Database interface.

Its coroutines never suspend: each call runs to completion at once. That lets the
service run a whole sync in one worker thread with `drive()` (one hop off the event
loop per sync instead of one per statement), while tests and the CLI may await it.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from schema_registry.database import Row, Value

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000


def connect(path: str | Path, *, create: bool = True, wal: bool = True) -> sqlite3.Connection:
    """Open a file with the settings every tenant database uses.

    isolation_level=None leaves transactions to us (BEGIN IMMEDIATE ... COMMIT) instead of
    Python's implicit ones; check_same_thread=False lets a pool hand it between threads,
    one at a time.
    """
    target = str(path)
    uri = target.startswith("file:")
    # The journal mode is stored in the file: only a new (empty) file needs switching to
    # WAL, and asking costs a schema parse (~360 µs for 27 tables) on every open. An empty
    # file that exists is switched too: one whose header a power loss took (_use_wal).
    fresh = wal and not uri and _empty(target)
    if not create and not uri:
        target, uri = f"file:{target}?mode=rw", True
    conn = sqlite3.connect(
        target,
        isolation_level=None,
        check_same_thread=False,
        uri=uri,
        timeout=BUSY_TIMEOUT_MS / 1000,  # sqlite3_busy_timeout: no PRAGMA needed
    )
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        if fresh:
            _use_wal(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _empty(path: str) -> bool:
    """No file yet, or one SQLite has not written a page to (a first open still under way)."""
    try:
        return os.path.getsize(path) == 0
    except FileNotFoundError:
        return True


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL, waiting out other connections doing the same.

    The switch needs an exclusive lock and SQLite answers SQLITE_BUSY at once instead of
    calling the busy handler, so concurrent first opens of a new file (two sign-ins of a new
    user) would fail with "database is locked". The mode persists in the file: later opens
    find it set and skip the switch.

    The switch writes the empty file's first page through the rollback journal, which at
    SQLite's default (synchronous = FULL) costs 8 fsyncs, ~0.6 ms of a new user's ~3 ms.
    It runs at synchronous = OFF instead: the file holds no row yet, so all a power loss
    can take is the header of an empty file, and `connect` switches an empty file again on
    its next open. Every transaction after it runs at NORMAL (`transaction()`), as before
    (the schema a sync then writes is no more durable than that: WAL at NORMAL).
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    conn.execute("PRAGMA synchronous = OFF")
    try:
        while True:
            try:
                # One statement: on a file already in WAL (another connection switched it
                # first) SQLite answers "wal" without a lock; asking first costs a read.
                conn.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as exc:
                busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY  # extended codes
                if not busy or time.monotonic() > deadline:
                    raise
                time.sleep(0.002)
            else:
                return
    finally:
        conn.execute("PRAGMA synchronous = NORMAL")


def _run_all(
    conn: sqlite3.Connection, statements: Sequence[tuple[str, Sequence[Value]]]
) -> list[list[Row]]:
    """Run statements in order; an error carries `step`, the index of the one that failed
    (as the Session protocol says), so a sync can name it."""
    rows: list[list[Row]] = []
    cursor = conn.cursor()  # one for the batch: Connection.execute makes one per statement
    for index, (sql, params) in enumerate(statements):
        try:
            rows.append(cursor.execute(sql, params).fetchall())
        except sqlite3.Error as exc:
            exc.step = index  # type: ignore[attr-defined]  # sqlite3's errors take attributes
            raise
    return rows


class SqliteTransaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.committed = False

    async def fetch(self, sql: str, params: Sequence[Value] = ()) -> list[Row]:
        return self._conn.execute(sql, params).fetchall()

    async def execute(self, sql: str, params: Sequence[Value] = ()) -> None:
        self._conn.execute(sql, params)

    async def fetch_many(
        self, statements: Sequence[tuple[str, Sequence[Value]]]
    ) -> list[list[Row]]:
        return _run_all(self._conn, statements)

    async def commit(
        self, statements: Sequence[tuple[str, Sequence[Value]]] = ()
    ) -> list[list[Row]]:
        rows = _run_all(self._conn, statements)
        self._conn.execute("COMMIT")
        self.committed = True
        return rows


class SqliteDatabase:
    """One sqlite3 connection. Not for concurrent use: callers hold it one at a time."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True) -> SqliteDatabase:
        return cls(connect(path, create=create))

    async def fetch(self, sql: str, params: Sequence[Value] = ()) -> list[Row]:
        return self.conn.execute(sql, params).fetchall()

    async def execute(self, sql: str, params: Sequence[Value] = ()) -> None:
        self.conn.execute(sql, params)

    async def fetch_many(
        self, statements: Sequence[tuple[str, Sequence[Value]]]
    ) -> list[list[Row]]:
        return _run_all(self.conn, statements)

    def transaction(self, *, foreign_keys: bool = True) -> _Transaction:
        return _Transaction(self.conn, foreign_keys)

    async def schema_cookie(self) -> int:
        row = self.conn.execute("PRAGMA schema_version").fetchone()
        return int(row[0])

    def close(self) -> None:
        self.conn.close()


class _Transaction:
    """`SqliteDatabase.transaction`: a class rather than a generator-based context manager,
    which makes a generator and two wrapper objects on every sync (the engine's pure Python
    per sync, replayed without SQLite: 24.5 -> 23.9 µs)."""

    __slots__ = ("_conn", "_foreign_keys", "_tx")

    def __init__(self, conn: sqlite3.Connection, foreign_keys: bool) -> None:
        self._conn = conn
        self._foreign_keys = foreign_keys
        self._tx: SqliteTransaction | None = None

    async def __aenter__(self) -> SqliteTransaction:
        conn = self._conn
        # NORMAL is durable across application crashes in WAL mode and is per connection;
        # set here rather than at open, since the PRAGMA costs a schema parse.
        conn.execute("PRAGMA synchronous = NORMAL")
        if not self._foreign_keys:
            conn.execute("PRAGMA foreign_keys = OFF")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._restore()
            raise
        self._tx = SqliteTransaction(conn)
        return self._tx

    async def __aexit__(self, *_: object) -> None:
        try:
            if self._tx is not None and not self._tx.committed and self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        finally:
            self._restore()

    def _restore(self) -> None:
        if not self._foreign_keys:
            self._conn.execute("PRAGMA foreign_keys = ON")  # as connect() leaves it


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (one using SqliteDatabase) to its result."""
    try:
        coro.send(None)
    except StopIteration as stop:
        # StopIteration.value is typed Any; it is what the coroutine returned, a T.
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("drive() got a coroutine that suspended; await it on a loop instead")
