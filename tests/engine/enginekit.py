"""Helpers shared by the engine tests: small registries on disk and real SQLite files.

Every connection opened here is closed before the helper returns (pytest turns the
ResourceWarning of a leaked sqlite3 connection into an error).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from schema_registry import (
    HistoryRow,
    Registry,
    Row,
    Schema,
    SqliteDatabase,
    Stamp,
    SyncResult,
    connect,
    drive,
    introspect,
    load_registry,
    read_history,
    sync,
)

ROOT = Path(__file__).resolve().parents[2]
SEED000 = ROOT / "tests" / "registries" / "seed000"


@dataclass(frozen=True)
class V:
    """One version of a registry written by `write_registry`."""

    version: str
    sql: str
    migration: str | None = None
    optional: tuple[str, ...] = ()


def write_registry(root: Path, versions: Sequence[V]) -> Path:
    """A registry folder: registry.toml plus one schema (and migration) file per version."""
    root.mkdir(parents=True, exist_ok=True)
    entries: list[str] = []
    for v in versions:
        (root / f"{v.version}.sql").write_text(v.sql, encoding="utf-8")
        lines = [
            "[[versions]]",
            f'version = "{v.version}"',
            f'description = "version {v.version}"',
            'created_at = "2026-01-01T00:00:00Z"',
            f'schema = "{v.version}.sql"',
        ]
        if v.migration is not None:
            (root / f"{v.version}.migrate.sql").write_text(v.migration, encoding="utf-8")
            lines.append(f'migration = "{v.version}.migrate.sql"')
        if v.optional:
            names = ", ".join(f'"{name}"' for name in v.optional)
            lines.append(f"optional = [{names}]")
        entries.append("\n".join(lines))
    (root / "registry.toml").write_text("\n\n".join(entries) + "\n", encoding="utf-8")
    return root


def make_registry(root: Path, *versions: V) -> Registry:
    return load_registry(write_registry(root, versions))


def single(root: Path, sql: str) -> Registry:
    """A one-version registry (1.0.0) holding `sql`."""
    return make_registry(root, V("1.0.0", sql))


@contextmanager
def opened(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection with tenantdb's settings (WAL, foreign keys on), closed on exit."""
    with closing(connect(path)) as conn:
        yield conn


def execute_script(path: Path, script: str) -> None:
    with opened(path) as conn:
        conn.executescript(script)


def query(path: Path, sql: str, params: Sequence[object] = ()) -> list[Row]:
    with opened(path) as conn:
        return conn.execute(sql, params).fetchall()


def run_sync(
    path: Path,
    registry: Registry,
    *,
    target: str | None = None,
    apply: bool = True,
    known: Stamp | None = None,
) -> SyncResult:
    """One sync on its own connection, as a sign-in would do it."""
    db = SqliteDatabase.open(path)
    try:
        return drive(sync(db, registry, target=target, apply=apply, known=known))
    finally:
        db.close()


def schema_of(path: Path) -> Schema:
    db = SqliteDatabase.open(path)
    try:
        return drive(introspect(db))
    finally:
        db.close()


def history_of(path: Path) -> list[HistoryRow]:
    db = SqliteDatabase.open(path)
    try:
        return drive(read_history(db))
    finally:
        db.close()


def versions_of(path: Path) -> list[str]:
    return [row.version for row in history_of(path)]


def snapshot(path: Path) -> tuple[int, list[Row], list[str], bytes]:
    """Everything a sync could change: the schema cookie, the catalog, every row and, once
    the last connection has closed (which checkpoints the WAL into it), the file's bytes."""
    with opened(path) as conn:
        cookie = int(conn.execute("PRAGMA schema_version").fetchone()[0])
        catalog = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY rowid"
        ).fetchall()
        dump = list(conn.iterdump())
    return cookie, catalog, dump, path.read_bytes()


def cookie_of(path: Path) -> int:
    cookie = query(path, "PRAGMA schema_version")[0][0]
    assert isinstance(cookie, int)
    return cookie


REBUILD_V1 = """
CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE child (
    id INTEGER PRIMARY KEY,
    parent_id INTEGER NOT NULL REFERENCES parent(id) ON DELETE CASCADE,
    amount INTEGER NOT NULL
);
CREATE INDEX ix_child_parent ON child(parent_id);
"""
# SQLite's 12-step rebuild (https://www.sqlite.org/lang_altertable.html#otheralter) of a
# table changing a column type, once for a table that references another, once for a table
# that others reference (where ON DELETE CASCADE would empty the children if the sync left
# foreign keys on while the script runs).
REBUILD_CHILD = """
PRAGMA defer_foreign_keys = ON;
CREATE TABLE child_new (
    id INTEGER PRIMARY KEY,
    parent_id INTEGER NOT NULL REFERENCES parent(id) ON DELETE CASCADE,
    amount TEXT NOT NULL
);
INSERT INTO child_new (id, parent_id, amount) SELECT id, parent_id, printf('%d', amount) FROM child;
DROP TABLE child;
ALTER TABLE child_new RENAME TO child;
CREATE INDEX ix_child_parent ON child(parent_id);
"""
REBUILD_PARENT = """
PRAGMA defer_foreign_keys = ON;
CREATE TABLE parent_new (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL);
INSERT INTO parent_new (id, name) SELECT id, name FROM parent;
DROP TABLE parent;
ALTER TABLE parent_new RENAME TO parent;
"""
REBUILDS = [
    (
        REBUILD_V1.replace("amount INTEGER NOT NULL", "amount TEXT NOT NULL"),
        REBUILD_CHILD,
        [(1, 1, "10", "text"), (2, 1, "20", "text"), (3, 2, "30", "text")],
    ),
    (
        REBUILD_V1.replace("name TEXT NOT NULL", "name VARCHAR(40) NOT NULL"),
        REBUILD_PARENT,
        [(1, 1, 10, "integer"), (2, 1, 20, "integer"), (3, 2, 30, "integer")],
    ),
]


def described(result: SyncResult) -> tuple[str, ...]:
    """The additive changes of a sync, as the dry run prints them."""
    return tuple(change.describe() for change in result.changes)
