"""Properties of generated migrations over random schema changes and random data.

A previous version (a parent, a child with ON DELETE CASCADE, and a table `t` with random
options, an index, a trigger and a view on it) and a target made from it by random
decided changes: drops, renames, type changes, a new NOT NULL column with a backfill, a
new CHECK, UNIQUE or foreign key (satisfied by the data), STRICT and WITHOUT ROWID, a
rebuilt parent. A database at the previous version is filled and synced to the target
through the engine, running the generated script. Then the engine finds nothing left,
every kept value is there (after CAST for a type change), no child row is lost to a
cascade, and foreign_key_check and integrity_check are clean.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schema_registry import (
    compile_schema,
    diff,
    generate_migration,
    make_plan,
    parse_decisions,
)
from tests.engine.enginekit import V, make_registry, opened, query, run_sync, schema_of

PARENT = "CREATE TABLE p (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"
CHILD = (
    "CREATE TABLE c (id INTEGER PRIMARY KEY, "
    "p_id INTEGER NOT NULL REFERENCES p(id) ON DELETE CASCADE, note TEXT)"
)


@dataclass
class Change:
    """The target's `t` and what the CLI flags would say."""

    table: str = "t"
    columns: dict[str, str] = field(default_factory=dict)  # target name -> definition
    sources: dict[str, str] = field(default_factory=dict)  # target name -> previous name
    casts: dict[str, str] = field(default_factory=dict)  # target name -> CAST type
    backfilled: dict[str, str] = field(default_factory=dict)  # target name -> expression
    constraints: list[str] = field(default_factory=list)
    options: str = ""
    renames: list[str] = field(default_factory=list)
    drops: list[str] = field(default_factory=list)
    backfills: list[str] = field(default_factory=list)
    parent_rebuilt: bool = False


BASE_COLUMNS = {"k": "INTEGER NOT NULL", "s": "TEXT", "r": "TEXT", "u": "INTEGER"}
OPTIONS = ["", " STRICT", " WITHOUT ROWID", " STRICT, WITHOUT ROWID"]


def previous_sql(options: str) -> str:
    body = ", ".join(f"{n} {d}" for n, d in BASE_COLUMNS.items())
    return ";\n".join(
        [
            PARENT,
            CHILD,
            f"CREATE TABLE t (id INTEGER PRIMARY KEY, {body}){options}",
            "CREATE INDEX t_by_s ON t(s)",
            "CREATE TRIGGER t_k_positive BEFORE INSERT ON t WHEN NEW.k < 0 "
            "BEGIN SELECT RAISE(ABORT, 'negative'); END",
            "CREATE VIEW t_view AS SELECT id, k FROM t",
        ]
    )


def target_sql(change: Change) -> str:
    parts = ["id INTEGER PRIMARY KEY", *(f"{n} {d}" for n, d in change.columns.items())]
    name = change.table
    parent = PARENT.replace(")", ", tag TEXT NOT NULL)") if change.parent_rebuilt else PARENT
    statements = [
        parent,
        CHILD,
        f"CREATE TABLE {name} ({', '.join(parts + change.constraints)}){change.options}",
    ]
    if "k" in change.columns:
        statements.append(f"CREATE INDEX t_by_k ON {name}(k)")
        statements.append(
            f"CREATE TRIGGER t_k_positive BEFORE INSERT ON {name} WHEN NEW.k < 0 "
            "BEGIN SELECT RAISE(ABORT, 'negative'); END"
        )
        statements.append(f"CREATE VIEW t_view AS SELECT id, k FROM {name}")
    return ";\n".join(statements)


@st.composite
def changes(draw: st.DrawFn) -> tuple[str, Change]:
    old_options = draw(st.sampled_from(OPTIONS))
    change = Change(options=draw(st.sampled_from(OPTIONS)))
    if draw(st.booleans()):
        change.table = "t2"
        change.renames.append("t=t2")
    for name, definition in BASE_COLUMNS.items():
        fate = draw(st.sampled_from(["keep", "keep", "drop", "rename", "retype"]))
        if name == "k" and fate == "drop":
            fate = "keep"
        if fate == "drop":
            change.drops.append(f"t.{name}")
            continue
        new = f"{name}_new" if fate == "rename" else name
        if fate == "rename":
            change.renames.append(f"t.{name}={new}")
        if fate == "retype":
            definition = (  # noqa: PLW2901 - the retyped definition
                definition.replace("INTEGER", "TEXT")
                if "INTEGER" in definition
                else (definition.replace("TEXT", "INTEGER"))
            )
            change.casts[new] = definition.split()[0]
        change.columns[new] = definition
        change.sources[new] = name
    if draw(st.booleans()):
        change.columns["added"] = "TEXT NOT NULL"
        change.backfilled["added"] = "'n' || id"
        change.backfills.append("t.added='n' || id")
    if "k" in change.columns and draw(st.booleans()):
        change.constraints.append("CHECK (k >= 0)")
    if draw(st.booleans()):
        change.constraints.append("UNIQUE (id, k)" if "k" in change.columns else "UNIQUE (id)")
    if "u" in change.columns and change.sources["u"] == "u" and draw(st.booleans()):
        change.constraints.append("FOREIGN KEY (u) REFERENCES p(id)")
    change.parent_rebuilt = draw(st.booleans())
    if change.parent_rebuilt:
        change.backfills.append("p.tag='t' || id")
    return old_options, change


ROWS = st.lists(
    st.tuples(
        st.integers(0, 50),
        st.none() | st.text(max_size=4),
        st.none() | st.sampled_from(["12", "x", "3.5", ""]),
        st.none() | st.integers(1, 3),
    ),
    max_size=8,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(drawn=changes(), rows=ROWS)
def test_generated_migration_reaches_the_target_keeping_every_row(
    drawn: tuple[str, Change], rows: list[tuple[int, str | None, str | None, int | None]]
) -> None:
    old_options, change = drawn
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        old_sql, new_sql = previous_sql(old_options), target_sql(change)
        previous, target = compile_schema(old_sql), compile_schema(new_sql)
        decisions = parse_decisions(
            previous,
            target,
            renames=change.renames,
            drops=change.drops,
            backfills=change.backfills,
        )
        migration = generate_migration(previous, target, decisions)
        db = root / "tenant.db"
        v1 = make_registry(root / "r1", V("1.0.0", old_sql))
        run_sync(db, v1)
        with opened(db) as conn:
            conn.executemany(
                "INSERT INTO p (id, name) VALUES (?, ?)", [(i, f"p{i}") for i in (1, 2, 3)]
            )
            conn.executemany(
                "INSERT INTO c (p_id, note) VALUES (?, ?)", [(i, "child") for i in (1, 2, 3, 3)]
            )
            conn.executemany(
                "INSERT INTO t (id, k, s, r, u) VALUES (?, ?, ?, ?, ?)",
                [(i + 1, *row) for i, row in enumerate(rows)],
            )
        before = {
            row[0]: dict(zip(("k", "s", "r", "u"), row[1:], strict=True))
            for row in query(db, "SELECT id, k, s, r, u FROM t")
        }
        v2 = make_registry(root / "r2", V("1.0.0", old_sql), V("1.1.0", new_sql, migration.script))

        result = run_sync(db, v2)

        assert result.status == "applied", (result, migration.script)
        left = make_plan(diff(schema_of(db), target))
        assert (left.steps, left.drift, left.extras) == ((), (), ()), migration.script
        assert query(db, "PRAGMA foreign_key_check") == []
        assert query(db, "PRAGMA integrity_check") == [("ok",)]
        assert query(db, "SELECT count(*) FROM c") == [(4,)]  # no cascade from rebuilding p
        for target_name, source in change.sources.items():
            got: dict[object, object] = {
                row[0]: row[1] for row in query(db, f"SELECT id, {target_name} FROM {change.table}")
            }
            for row_id, values in before.items():
                expected = values[source]
                if target_name in change.casts and expected is not None:
                    cast = change.casts[target_name]
                    expected = query(db, f"SELECT CAST(? AS {cast})", (expected,))[0][0]
                assert got[row_id] == expected, (target_name, migration.script)
        if change.backfilled:
            assert query(db, f"SELECT count(*) FROM {change.table} WHERE added != 'n' || id") == [
                (0,)
            ]
        assert set(got) == set(before)
