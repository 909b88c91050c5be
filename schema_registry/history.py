"""The `schema_version` table every user database carries: one row per applied version.

Its newest row and the schema cookie stored with it are what the fast path compares
against, so a returning user costs a header read, not a schema parse.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from schema_registry.database import Session, Value
from schema_registry.introspect import HISTORY_TABLE
from schema_registry.model import Model

HISTORY_DDL: Final = f"""CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (
    id INTEGER PRIMARY KEY,
    version TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    changes_applied INTEGER NOT NULL,
    schema_cookie INTEGER NOT NULL,
    environment TEXT,
    trigger TEXT,
    notes TEXT
)"""
_COLUMNS: Final = (
    "id, version, description, created_at, applied_at, content_hash, changes_applied, "
    "schema_cookie, environment, trigger, notes"
)
_EXISTS_SQL: Final = "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?"
_INSERT_SQL: Final = (
    f"INSERT INTO {HISTORY_TABLE} (version, description, created_at, applied_at, content_hash, "
    "changes_applied, schema_cookie, environment, trigger, notes) "
    "VALUES (?, ?, ?, ?, ?, ?, (SELECT schema_version FROM pragma_schema_version), ?, ?, ?)"
)


class Stamp(Model, frozen=True):
    """What a database is known to be at: enough for the fast path."""

    version: str
    content_hash: str
    cookie: int


class HistoryRow(Model, frozen=True):
    id: int
    version: str
    description: str
    created_at: str
    applied_at: str
    content_hash: str
    changes_applied: int
    schema_cookie: int
    environment: str | None = None
    trigger: str | None = None
    notes: str | None = None

    @property
    def stamp(self) -> Stamp:
        return Stamp(
            version=self.version, content_hash=self.content_hash, cookie=self.schema_cookie
        )


async def read_history(session: Session, *, newest_only: bool = False) -> list[HistoryRow]:
    """Rows oldest first (or just the newest); none when the table does not exist yet."""
    if not await session.fetch(_EXISTS_SQL, (HISTORY_TABLE,)):
        return []
    order = "ORDER BY id DESC LIMIT 1" if newest_only else "ORDER BY id"
    rows = await session.fetch(f"SELECT {_COLUMNS} FROM {HISTORY_TABLE} {order}")
    fields = HistoryRow.__struct_fields__
    return [msgspec.convert(dict(zip(fields, row, strict=True)), HistoryRow) for row in rows]


async def newest(session: Session) -> HistoryRow | None:
    rows = await read_history(session, newest_only=True)
    return rows[0] if rows else None


async def schema_cookie(session: Session) -> int:
    rows = await session.fetch("PRAGMA schema_version")
    return int(rows[0][0])  # type: ignore[arg-type]


async def record(session: Session, rows: list[tuple[Value, ...]]) -> int:
    """Create the table if needed and append rows, in one batch; returns the cookie stored.

    Each row is (version, description, created_at, applied_at, content_hash,
    changes_applied, environment, trigger, notes); the schema cookie is read by the INSERT
    itself, after the CREATE that may have moved it.
    """
    statements: list[tuple[str, Sequence[Value]]] = [(HISTORY_DDL, ())]
    statements += [(_INSERT_SQL, row) for row in rows]
    statements.append(("PRAGMA schema_version", ()))
    results = await session.fetch_many(statements)
    return int(results[-1][0][0])  # type: ignore[arg-type]


async def update_cookie(session: Session, row_id: int, cookie: int) -> None:
    """The schema moved but still matches its version: re-arm the fast path."""
    await session.execute(
        f"UPDATE {HISTORY_TABLE} SET schema_cookie = ? WHERE id = ?", (cookie, row_id)
    )
