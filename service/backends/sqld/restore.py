"""Restore on sqld: a namespace's objects dropped and a SQLite file's dump loaded, in one
transaction on the namespace, so every connection sees the old content or the new."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Final

from schema_registry import quote
from service.backends.base import BackendUnavailable
from service.backends.sqld.hrana import HranaDatabase, HranaError

_LOAD_BATCH: Final = 200  # dump statements per Hrana request
_OBJECTS_SQL: Final = (
    "SELECT type, name FROM sqlite_schema WHERE type IN ('trigger', 'view', 'table') "
    "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
)
_REFERENCES_SQL: Final = (
    'SELECT m.name, f."table" FROM sqlite_schema AS m, pragma_foreign_key_list(m.name) AS f '
    "WHERE m.type = 'table'"
)


async def restore_namespace(db: HranaDatabase, source: Path) -> None:
    """Drop every object and load `source`'s SQL, in one transaction on the namespace."""
    statements = await asyncio.to_thread(_dump, source)
    try:
        async with db.transaction() as tx:
            # Checked at COMMIT, so tables may go and come back in any order.
            await tx.execute("PRAGMA defer_foreign_keys = ON")
            objects = await tx.fetch(_OBJECTS_SQL)
            references = await tx.fetch(_REFERENCES_SQL)
            work = drop_statements(
                [(str(k), str(n)) for k, n in objects], [(str(c), str(p)) for c, p in references]
            )
            work += statements
            for start in range(0, len(work), _LOAD_BATCH):
                await tx.fetch_many([(sql, ()) for sql in work[start : start + _LOAD_BATCH]])
            await tx.commit()
    except HranaError as exc:
        raise BackendUnavailable(
            f"sqld refused the restore ({exc}); the database is unchanged"
        ) from exc


def drop_statements(objects: list[tuple[str, str]], references: list[tuple[str, str]]) -> list[str]:
    """DROPs for (type, name) objects in an order SQLite accepts with foreign keys on.

    With them on (sqld's connections), DROP TABLE first deletes the rows, and that
    delete's ON DELETE actions are compiled against every table referencing this one and
    the tables those reference: so triggers go first, then views, then tables children
    before parents. `references` are (child, parent) pairs.
    """
    names = {kind: sorted(n for k, n in objects if k == kind) for kind in ("trigger", "view")}
    tables = {name.lower(): name for kind, name in objects if kind == "table"}
    children: dict[str, set[str]] = {key: set() for key in tables}
    for child, parent in references:
        if parent.lower() in children and child.lower() != parent.lower():
            children[parent.lower()].add(child.lower())
    order: list[str] = []
    left = set(tables)
    while left:
        # A cycle has no leaf: drop it in name order and let SQLite say if it cannot.
        batch = sorted(key for key in left if not children[key] & left) or sorted(left)
        order += [tables[key] for key in batch]
        left -= set(batch)
    return [
        *(f"DROP TRIGGER IF EXISTS {quote(name)}" for name in names["trigger"]),
        *(f"DROP VIEW IF EXISTS {quote(name)}" for name in names["view"]),
        *(f"DROP TABLE IF EXISTS {quote(name)}" for name in order),
    ]


def _dump(source: Path) -> list[str]:
    """The file as SQL: Python's iterdump without its BEGIN and COMMIT, every table created
    before any row goes in.

    iterdump fills each table right after creating it, in name order; with foreign keys on,
    a row whose parent table does not exist yet fails ("no such table"), while a row whose
    parent row comes later only counts against the deferred check at COMMIT.
    """
    conn = sqlite3.connect(source.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        dump = [s.removesuffix(";") for s in conn.iterdump()]
    finally:
        conn.close()
    body = [s for s in dump if s not in ("BEGIN TRANSACTION", "COMMIT")]
    return sorted(body, key=lambda sql: not sql[:12].upper().startswith("CREATE TABLE"))
