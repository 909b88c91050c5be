"""Properties of sync over random schemas and random databases made from them.

A random expected schema (tables with random columns, indexes, a view, a trigger, odd names
included) and an actual database built from it by leaving out objects that can be added
back (tables, addable columns, indexes, views, triggers) and inserting rows. After one
sync nothing additive is left, every row is there unchanged, and a second sync applies
nothing.
"""

from __future__ import annotations

import sqlite3
import tempfile
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schema_registry import diff, fold, make_plan, quote
from tests.engine.enginekit import execute_script, opened, run_sync, schema_of, single

TABLE_NAMES = ["t", "order", "my table", 'q"uote', "café", "Ωmega"]
TABLE_OPTIONS = ["", " STRICT", " WITHOUT ROWID", " STRICT, WITHOUT ROWID"]
COLUMN_NAMES = ["a", "b c", "select", "Ünï", 'x"y', "group", "é", "n2", "value", "when"]

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6)
# SQLite's length() stops at the first NUL, so a CHECK on it needs text without one in front.
NON_EMPTY_TEXT = TEXT.filter(lambda text: text[:1] not in ("", "\x00"))
FLOAT = st.floats(allow_nan=False, allow_infinity=False)
INTEGER = st.integers(min_value=-(2**63), max_value=2**63 - 1)

# (definition template, values to insert; None for generated columns). Core columns are
# never left out, so they may be ones SQLite cannot add.
CORE = [
    ("{n} TEXT NOT NULL", TEXT),
    ("{n} INTEGER NOT NULL DEFAULT 0", INTEGER),
    ("{n} TEXT DEFAULT CURRENT_TIMESTAMP", TEXT),
    ("{n} REAL", st.none() | FLOAT),
    ("{n} INTEGER GENERATED ALWAYS AS (id + 1) STORED", None),
    ("{n} TEXT UNIQUE COLLATE RTRIM", st.none()),
]
ADDABLE = [
    ("{n} TEXT", st.none() | TEXT),
    ("{n} INTEGER DEFAULT 0", INTEGER),
    ("{n} TEXT NOT NULL DEFAULT 'x'", TEXT),
    ("{n} REAL DEFAULT -1.5", FLOAT),
    ("{n} INTEGER DEFAULT (7)", st.none() | INTEGER),
    ("{n} BLOB DEFAULT x'ab'", st.binary(max_size=4)),
    ("{n} INTEGER GENERATED ALWAYS AS (id * 2) VIRTUAL", None),
    ("{n} TEXT COLLATE NOCASE DEFAULT 'a' CHECK (length({n}) > 0)", NON_EMPTY_TEXT),
    ("{n} INTEGER REFERENCES {parent}(id)", st.none()),
]


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    sql: str
    values: st.SearchStrategy[object] | None  # None: generated, not inserted
    addable: bool


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[ColumnSpec, ...]
    options: str

    def create(self, columns: tuple[ColumnSpec, ...]) -> str:
        body = ", ".join(["id INTEGER PRIMARY KEY", *(c.sql for c in columns)])
        return f"CREATE TABLE {quote(self.name)} ({body}){self.options}"


@dataclass(frozen=True)
class Dependent:
    """An index, view or trigger, and what it needs to exist."""

    sql: str
    table: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Case:
    expected: str
    actual: str
    tables: tuple[tuple[str, tuple[str, ...]], ...]  # kept tables and their columns
    inserts: tuple[tuple[str, tuple[object, ...]], ...]


@st.composite
def table_specs(draw: st.DrawFn) -> tuple[TableSpec, ...]:
    names = draw(st.lists(st.sampled_from(TABLE_NAMES), min_size=1, max_size=3, unique_by=fold))
    tables: list[TableSpec] = []
    for name in names:
        column_names = draw(
            st.lists(st.sampled_from(COLUMN_NAMES), min_size=1, max_size=6, unique_by=fold)
        )
        columns = []
        for i, column in enumerate(column_names):
            addable = i > 0 and draw(st.booleans())
            template, values = draw(st.sampled_from(ADDABLE if addable else CORE))
            parent = quote(draw(st.sampled_from(names)))
            sql = template.format(n=quote(column), parent=parent)
            columns.append(ColumnSpec(column, sql, values, addable))
        options = draw(st.sampled_from(TABLE_OPTIONS))
        tables.append(TableSpec(name, tuple(columns), options))
    return tuple(tables)


@st.composite
def dependents(draw: st.DrawFn, tables: tuple[TableSpec, ...]) -> tuple[Dependent, ...]:
    found: list[Dependent] = []
    for i in range(draw(st.integers(0, 4))):
        table = draw(st.sampled_from(tables))
        column = draw(st.sampled_from(table.columns)).name
        on, col = quote(table.name), quote(column)
        shapes = [
            f"CREATE INDEX {quote(f'ix {i}')} ON {on} ({col})",
            f"CREATE UNIQUE INDEX {quote(f'ux{i}')} ON {on} ({col}, id)",
            f"CREATE INDEX {quote(f'ix_part{i}')} ON {on} ({col}) WHERE {col} IS NOT NULL",
            f"CREATE INDEX {quote(f'ix_expr{i}')} ON {on} (lower({col}), id DESC)",
            f"CREATE VIEW {quote(f'v {i}')} AS SELECT id, {col} AS {quote('v' + column)} "
            f"FROM {on} WHERE id > 0",
            f"CREATE TRIGGER {quote(f'trg{i}')} AFTER UPDATE OF {col} ON {on}\n"
            f"BEGIN SELECT NEW.{col}; END",
        ]
        found.append(Dependent(draw(st.sampled_from(shapes)), table.name, (column,)))
    return tuple(found)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    tables = draw(table_specs())
    objects = draw(dependents(tables))
    expected = [t.create(t.columns) for t in tables] + [o.sql for o in objects]

    actual: list[str] = []
    kept: dict[str, tuple[ColumnSpec, ...]] = {}
    for table in tables:
        if draw(st.integers(0, 3)) == 0:
            continue  # the whole table is missing
        columns = tuple(c for c in table.columns if not (c.addable and draw(st.booleans())))
        kept[table.name] = columns
        actual.append(table.create(columns))
    for obj in objects:
        present = {c.name for c in kept.get(obj.table, ())}
        if set(obj.columns) <= present and draw(st.booleans()):
            actual.append(obj.sql)

    inserts: list[tuple[str, tuple[object, ...]]] = []
    for table in tables:
        filled = [c for c in kept.get(table.name, ()) if c.values is not None]
        names = ", ".join(["id", *(quote(c.name) for c in filled)])
        marks = ", ".join("?" * (len(filled) + 1))
        sql = f"INSERT INTO {quote(table.name)} ({names}) VALUES ({marks})"
        for row_id in range(draw(st.integers(0, 4)) if table.name in kept else 0):
            values = tuple(draw(c.values) for c in filled if c.values is not None)
            inserts.append((sql, (row_id + 1, *values)))
    return Case(
        expected=";\n".join(expected) + ";\n",
        actual=";\n".join(actual) + ";\n" if actual else "",
        tables=tuple((name, tuple(c.name for c in cols)) for name, cols in kept.items()),
        inserts=tuple(inserts),
    )


def _rows(db: Path, tables: tuple[tuple[str, tuple[str, ...]], ...]) -> dict[str, list[object]]:
    with opened(db) as conn:
        return {
            name: conn.execute(
                f"SELECT {', '.join(['id', *map(quote, columns)])} FROM {quote(name)} ORDER BY id"
            ).fetchall()
            for name, columns in tables
        }


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=cases())
def test_sync_restores_everything_additive_and_keeps_every_row(case: Case) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        registry = single(root / "registry", case.expected)
        db = root / "user.db"
        execute_script(db, case.actual)
        # Foreign keys off, as the app may have had them: a row may name a missing parent table.
        with closing(sqlite3.connect(db)) as conn, conn:
            for sql, values in case.inserts:
                conn.execute(sql, values)
        rows_before = _rows(db, case.tables)

        first = run_sync(db, registry)
        second = run_sync(db, registry)

        left = make_plan(diff(schema_of(db), registry.current.schema))
        assert first.status == "applied", first.drift
        assert (left.steps, left.drift, left.extras) == ((), (), ())
        assert schema_of(db).fingerprint() == registry.current.content_hash
        assert _rows(db, case.tables) == rows_before
        assert (second.status, second.fast_path, second.statements) == ("up_to_date", True, ())


@settings(max_examples=40, deadline=None)
@given(case=cases())
def test_verify_lists_exactly_what_sync_then_runs(case: Case) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        registry = single(root / "registry", case.expected)
        db = root / "user.db"
        execute_script(db, case.actual)

        verified = run_sync(db, registry, apply=False)
        applied = run_sync(db, registry)

        assert verified.status == "out_of_date"
        assert verified.drift == ()
        assert verified.statements == applied.statements
