"""The one async database interface every stage talks to.

A local SQLite file and a namespace on a libSQL server both sit behind it, so
introspection, planning and apply are written once. Adapters live in their own modules
(sqlite_db here, the sqld one in the service).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

Value = None | int | float | str | bytes
Row = tuple[Value, ...]


class Session(Protocol):
    """Somewhere statements can run: a connection, or one open transaction."""

    async def fetch(self, sql: str, params: Sequence[Value] = ()) -> list[Row]:
        """Run a statement and return every row."""
        ...

    async def execute(self, sql: str, params: Sequence[Value] = ()) -> None:
        """Run a statement for its effect."""
        ...

    async def fetch_many(
        self, statements: Sequence[tuple[str, Sequence[Value]]]
    ) -> list[list[Row]]:
        """Run statements in order, stopping at the first error; one round trip on a server.

        The error may carry `step`, the index of the statement that failed."""
        ...


class Transaction(Session, Protocol):
    """A write transaction; it rolls back unless `commit` is called before it closes."""

    async def commit(
        self, statements: Sequence[tuple[str, Sequence[Value]]] = ()
    ) -> list[list[Row]]:
        """Run `statements`, then COMMIT, in one round trip on a server: if one of them
        fails nothing is committed (the transaction rolls back). Returns their rows."""
        ...


class Database(Session, Protocol):
    """A whole database: reads outside transactions, writes inside one."""

    def transaction(self, *, foreign_keys: bool = True) -> AbstractAsyncContextManager[Transaction]:
        """BEGIN IMMEDIATE: take the write lock first so concurrent syncs serialise.

        foreign_keys=False turns enforcement off for this transaction only. PRAGMA
        foreign_keys is a no-op inside a transaction, so it is set on the same connection
        (on a server: the same stream) before BEGIN and set back on after it ends.
        """
        ...

    async def schema_cookie(self) -> int:
        """PRAGMA schema_version: changes whenever the schema does."""
        ...
