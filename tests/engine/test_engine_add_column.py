"""SQLite's ALTER TABLE ADD COLUMN rules, each tried on a table that holds rows.

SQLite only enforces some rules once the table has a row (NOT NULL without a default,
CURRENT_TIMESTAMP), so every case here runs on a populated table: refused columns must
end as drift with nothing applied, allowed ones must really be added to the rows.
https://www.sqlite.org/lang_altertable.html#alter_table_add_column
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from schema_registry import AddColumn, AlterTable, Refusal, add_column_refusal, compile_schema
from tests.engine.enginekit import execute_script, query, run_sync, single, snapshot

PARENT = "CREATE TABLE p (id INTEGER PRIMARY KEY);\n"
BEFORE = PARENT + "CREATE TABLE t (name TEXT NOT NULL);\n"
ROWS = "INSERT INTO p (id) VALUES (1), (2);\nINSERT INTO t (name) VALUES ('ab'), ('cde');\n"


def target(column_sql: str) -> str:
    return PARENT + f"CREATE TABLE t (name TEXT NOT NULL, {column_sql});\n"


def populated(path: Path) -> Path:
    execute_script(path, BEFORE + ROWS)
    return path


REFUSED = [
    ("x INTEGER PRIMARY KEY", "SQLite cannot add a PRIMARY KEY column"),
    ("x TEXT UNIQUE", "SQLite cannot add a UNIQUE column"),
    ("x TEXT CONSTRAINT x_once UNIQUE", "SQLite cannot add a UNIQUE column"),
    ("x TEXT NOT NULL", "SQLite cannot add a NOT NULL column without a non-NULL default"),
    (
        "x TEXT NOT NULL DEFAULT NULL",
        "SQLite cannot add a NOT NULL column without a non-NULL default",
    ),
    (
        "x TEXT DEFAULT CURRENT_TIMESTAMP",
        "SQLite cannot add a column with a non-constant default (CURRENT_TIMESTAMP)",
    ),
    (
        "x TEXT NOT NULL DEFAULT CURRENT_DATE",
        "SQLite cannot add a column with a non-constant default (CURRENT_DATE)",
    ),
    ("x INTEGER DEFAULT (1+1)", "SQLite cannot add a column with a non-constant default (1+1)"),
    (
        "x TEXT DEFAULT (lower('A'))",
        "SQLite cannot add a column with a non-constant default (lower('A'))",
    ),
    (
        "x INTEGER GENERATED ALWAYS AS (length(name)) STORED",
        "SQLite can add generated columns only as VIRTUAL, not STORED",
    ),
    (
        "x INTEGER DEFAULT 1 REFERENCES p(id)",
        "SQLite cannot add a REFERENCES column with a non-NULL default while foreign keys are on",
    ),
]
REFUSED_IDS = [
    "primary-key",
    "unique",
    "named-unique-constraint",
    "not-null-without-default",
    "not-null-default-null",
    "current-timestamp",
    "current-date",
    "expression-default",
    "function-default",
    "generated-stored",
    "references-with-default",
]


@pytest.mark.parametrize(("column_sql", "reason"), REFUSED, ids=REFUSED_IDS)
def test_unaddable_column_on_populated_table_is_drift_and_nothing_applied(
    tmp_path: Path, column_sql: str, reason: str
) -> None:
    registry = single(tmp_path / "registry", target(column_sql))
    db = populated(tmp_path / "user.db")
    before = snapshot(db)

    result = run_sync(db, registry)

    table = registry.current.schema.table("t")
    assert table is not None
    column = table.column("x")
    assert column is not None
    assert result.status == "drifted"
    assert result.drift == (Refusal(change=AddColumn(table="t", column=column), reason=reason),)
    assert result.recorded == ()
    assert snapshot(db) == before


@pytest.mark.parametrize(("column_sql", "reason"), REFUSED, ids=REFUSED_IDS)
def test_refusal_is_decided_from_the_definition_not_the_rows(column_sql: str, reason: str) -> None:
    table = compile_schema(target(column_sql)).table("t")
    assert table is not None
    column = table.column("x")
    assert column is not None
    assert add_column_refusal(column) == reason


ALLOWED = [
    ("x INTEGER DEFAULT (0)", [("ab", 0), ("cde", 0)]),
    ("x INTEGER DEFAULT 0", [("ab", 0), ("cde", 0)]),
    ("x TEXT DEFAULT 'x'", [("ab", "x"), ("cde", "x")]),
    ("x INTEGER DEFAULT -1", [("ab", -1), ("cde", -1)]),
    ("x INTEGER DEFAULT (-1)", [("ab", -1), ("cde", -1)]),
    ("x REAL DEFAULT 1.5e3", [("ab", 1500.0), ("cde", 1500.0)]),
    ("x BLOB DEFAULT x'00ff'", [("ab", b"\x00\xff"), ("cde", b"\x00\xff")]),
    ("x INTEGER DEFAULT TRUE", [("ab", 1), ("cde", 1)]),
    ("x INTEGER NOT NULL DEFAULT 0", [("ab", 0), ("cde", 0)]),
    (
        "x TEXT NOT NULL DEFAULT 'open' CHECK (x IN ('open', 'shut'))",
        [("ab", "open"), ("cde", "open")],
    ),
    ("x TEXT", [("ab", None), ("cde", None)]),
    ("x TEXT DEFAULT NULL", [("ab", None), ("cde", None)]),
    ("x TEXT COLLATE NOCASE", [("ab", None), ("cde", None)]),
    ("x INTEGER GENERATED ALWAYS AS (length(name)) VIRTUAL", [("ab", 2), ("cde", 3)]),
    ("x INTEGER AS (length(name) * 10)", [("ab", 20), ("cde", 30)]),
    ("x INTEGER REFERENCES p(id)", [("ab", None), ("cde", None)]),
    ("x INTEGER DEFAULT NULL REFERENCES p(id) ON DELETE SET NULL", [("ab", None), ("cde", None)]),
]
ALLOWED_IDS = [
    "parenthesised-zero",
    "zero",
    "string",
    "negative",
    "parenthesised-negative",
    "real",
    "blob",
    "true",
    "not-null-with-default",
    "not-null-default-with-check",
    "nullable",
    "default-null",
    "collate",
    "generated-virtual",
    "generated-shorthand",
    "references-null-default",
    "references-explicit-null-default",
]


@pytest.mark.parametrize(("column_sql", "rows"), ALLOWED, ids=ALLOWED_IDS)
def test_addable_column_is_added_to_populated_table(
    tmp_path: Path, column_sql: str, rows: list[tuple[object, ...]]
) -> None:
    registry = single(tmp_path / "registry", target(column_sql))
    db = populated(tmp_path / "user.db")

    result = run_sync(db, registry)

    assert result.status == "applied"
    assert result.drift == ()
    assert result.statements == (f'ALTER TABLE "t" ADD COLUMN {column_sql}',)
    assert query(db, "SELECT name, x FROM t ORDER BY rowid") == rows
    assert run_sync(db, registry).fast_path


@pytest.mark.parametrize(
    ("constraint", "detail"),
    [
        ("UNIQUE (x)", "missing UNIQUE (x)"),
        ("FOREIGN KEY (x) REFERENCES p(id)", "missing foreign key (x) -> p"),
        ("CHECK (x > 0)", "missing CHECK (x > 0)"),
    ],
    ids=["table-unique", "table-foreign-key", "table-check"],
)
def test_table_constraint_on_new_column_is_drift_because_add_column_cannot_bring_it(
    tmp_path: Path, constraint: str, detail: str
) -> None:
    registry = single(tmp_path / "registry", target(f"x INTEGER, {constraint}"))
    db = populated(tmp_path / "user.db")
    before = snapshot(db)

    verified = run_sync(db, registry, apply=False)
    result = run_sync(db, registry)

    assert [item.change for item in verified.drift] == [AlterTable(table="t", detail=detail)]
    assert verified.status == "drifted"
    assert result.status == "drifted"
    assert [item.change for item in result.drift] == [AlterTable(table="t", detail=detail)]
    assert snapshot(db) == before


@pytest.mark.parametrize(
    "column_sql",
    ["x TEXT NOT NULL", "x TEXT DEFAULT CURRENT_TIMESTAMP"],
    ids=["not-null-without-default", "current-timestamp"],
)
def test_sqlite_enforces_some_rules_only_once_the_table_has_rows(column_sql: str) -> None:
    """Why the planner decides statically: an empty table would let these through."""
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.execute("CREATE TABLE empty (a)")
        conn.execute("CREATE TABLE full (a)")
        conn.execute("INSERT INTO full VALUES (1)")
        conn.execute(f"ALTER TABLE empty ADD COLUMN {column_sql}")
        with pytest.raises(sqlite3.OperationalError, match="Cannot add a"):
            conn.execute(f"ALTER TABLE full ADD COLUMN {column_sql}")


def test_refused_column_is_drift_on_an_empty_table_too(tmp_path: Path) -> None:
    registry = single(tmp_path / "registry", target("x TEXT NOT NULL"))
    db = tmp_path / "user.db"
    execute_script(db, BEFORE)

    result = run_sync(db, registry)

    assert result.status == "drifted"
    assert [item.reason for item in result.drift] == [
        "SQLite cannot add a NOT NULL column without a non-NULL default"
    ]
