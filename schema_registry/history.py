"""The `schema_version` table every user database carries: one row per applied version.

Its newest row and the schema cookie stored with it are what the fast path compares
against, so a returning user costs a header read, not a schema parse.

This module owns the table's name. It sits below introspection in the stage order:
introspection must leave the table out of the user schema, so it reads the name from
here, while the table needs nothing from introspection.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Final

import msgspec

from schema_registry.database import Row, Session, Value
from schema_registry.errors import HistoryRowUnreadable
from schema_registry.model import Model

HISTORY_TABLE: Final = "schema_version"
_SEMVER: Final = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)\Z")
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


NEWEST_SQL: Final = f"SELECT {_COLUMNS} FROM {HISTORY_TABLE} ORDER BY id DESC LIMIT 1"
_MISSING: Final = f"no such table: {HISTORY_TABLE}"
COOKIE_SQL: Final = "PRAGMA schema_version"


@functools.lru_cache(maxsize=1024)
def version_key(version: str) -> tuple[int, ...]:
    """(MAJOR, MINOR, PATCH) for ordering (cached: a sync orders the same few versions
    a dozen times)."""
    match = _SEMVER.match(version)
    if match is None:
        raise ValueError(f"{version!r} is not a MAJOR.MINOR.PATCH version")
    return tuple(int(part) for part in match.groups())


def parse(rows: list[Row]) -> list[HistoryRow]:
    """History rows from `SELECT {_COLUMNS}` results; HistoryRowUnreadable for a row the
    engine did not write as it is (its version must order, its fields have their types)."""
    return [_parse_row(row) for row in rows]


def _parse_row(row: Row) -> HistoryRow:
    try:
        parsed = msgspec.convert(
            dict(zip(HistoryRow.__struct_fields__, row, strict=True)), HistoryRow
        )
        version_key(parsed.version)
    except (msgspec.ValidationError, ValueError) as exc:
        row_id = row[0] if isinstance(row[0], int) else None
        raise HistoryRowUnreadable(row_id, str(exc)) from None
    return parsed


async def read_history(session: Session) -> list[HistoryRow]:
    """Every row, oldest first; none when the table does not exist yet."""
    if not await session.fetch(_EXISTS_SQL, (HISTORY_TABLE,)):
        return []
    return parse(await session.fetch(f"SELECT {_COLUMNS} FROM {HISTORY_TABLE} ORDER BY id"))


async def newest(session: Session) -> HistoryRow | None:
    """The newest row, in one statement (one round trip on a server)."""
    try:
        rows = await session.fetch(NEWEST_SQL)
    except Exception as exc:  # sqlite3's or the server's error: both carry SQLite's message
        if _MISSING not in str(exc):
            raise
        return None
    return parse(rows)[0] if rows else None


def record_statements(rows: list[tuple[Value, ...]]) -> list[tuple[str, Sequence[Value]]]:
    """Append rows to the table (the sync made it, if missing, when its transaction began),
    then read the cookie they stored: the last statement's.

    Each row is (version, description, created_at, applied_at, content_hash,
    changes_applied, environment, trigger, notes); the schema cookie is read by the INSERT
    itself.
    """
    statements: list[tuple[str, Sequence[Value]]] = [(_INSERT_SQL, row) for row in rows]
    statements.append((COOKIE_SQL, ()))
    return statements


def rearm_statements(row_id: int) -> list[tuple[str, Sequence[Value]]]:
    """The schema moved but still matches its version: store the new cookie with its row
    (re-arming the fast path), then read it. The cookie is the last statement's."""
    return [
        (
            f"UPDATE {HISTORY_TABLE} "
            "SET schema_cookie = (SELECT schema_version FROM pragma_schema_version) WHERE id = ?",
            (row_id,),
        ),
        (COOKIE_SQL, ()),
    ]


def cookie_of(results: list[list[Row]]) -> int:
    """The cookie read by the last of `record_statements` or `rearm_statements`."""
    # PRAGMA schema_version always yields an integer, never the None a Value allows.
    return int(results[-1][0][0])  # type: ignore[arg-type]
