"""What counts as a difference: cosmetic SQL does not, real changes and extras do."""

from __future__ import annotations

from pathlib import Path

import pytest

from schema_registry import (
    AddColumn,
    AlterColumn,
    AlterTable,
    Column,
    CreateIndex,
    Extra,
    Index,
    ReplaceIndex,
    ReplaceTrigger,
    ReplaceView,
    compile_schema,
    diff,
    make_plan,
)
from tests.engine.enginekit import execute_script, query, run_sync, schema_of, single

TABLE = "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT 'x', n INTEGER);\n"

COSMETIC = [
    (
        "CREATE TABLE c (n INTEGER CHECK (n > 0), s TEXT COLLATE NOCASE, g INTEGER AS (n * 2));",
        'create table c (n integer, s text collate "nocase", g integer generated always '
        "as (N*2) virtual, constraint positive check(n>0));",
    ),
    (
        TABLE + "CREATE INDEX ix ON t(n); CREATE VIEW v AS SELECT n FROM t;",
        TABLE.replace("CREATE TABLE t", "CREATE TABLE IF NOT EXISTS main.t")
        + "CREATE INDEX IF NOT EXISTS main.ix ON t(n); CREATE VIEW IF NOT EXISTS main.v AS "
        "SELECT n FROM t;",
    ),
    (
        TABLE + "CREATE TRIGGER trg AFTER INSERT ON t BEGIN UPDATE t SET n = n + 1 "
        "WHERE id = NEW.id; END;",
        TABLE + 'create   trigger "trg"\n  after INSERT on "t"\nbegin\n'
        "  update [t] set `n`=n+1 where ID=new.id ;\nend;",
    ),
    (
        TABLE + "CREATE VIEW v AS SELECT id, name FROM t WHERE n > 0;",
        TABLE + 'create view "V" as\n  select "id",\n    NAME  -- the label\n'
        "  from [t] /* all of them */ where n>0;",
    ),
    (
        TABLE + "CREATE INDEX ix ON t(name, n DESC);",
        TABLE + 'create index "IX" on "T" ( "name" , N desc );',
    ),
    (
        TABLE + "CREATE UNIQUE INDEX ix ON t(lower(name)) WHERE n IS NOT NULL;",
        TABLE + "create unique index ix on t (LOWER( name )) where N is not null;",
    ),
    (
        TABLE,
        'create table "T" (\n  "ID" integer primary key, -- key\n'
        "  [Name] text not null default ('x'),\n  N INTEGER\n);",
    ),
    (
        "CREATE TABLE kv (k TEXT PRIMARY KEY, v ANY) STRICT, WITHOUT ROWID;",
        "create table KV (K text primary key, V any) without rowid, strict;",
    ),
]
COSMETIC_IDS = [
    "check-and-collation",
    "if-not-exists-and-schema-name",
    "trigger",
    "view",
    "index",
    "unique-partial-expression-index",
    "table",
    "strict-without-rowid",
]


@pytest.mark.parametrize(("expected_sql", "actual_sql"), COSMETIC, ids=COSMETIC_IDS)
def test_cosmetic_sql_differences_are_not_drift(
    tmp_path: Path, expected_sql: str, actual_sql: str
) -> None:
    db = tmp_path / "user.db"
    execute_script(db, actual_sql)
    expected = compile_schema(expected_sql)

    assert diff(schema_of(db), expected) == []
    assert schema_of(db).fingerprint() == expected.fingerprint()


@pytest.mark.parametrize(("expected_sql", "actual_sql"), COSMETIC, ids=COSMETIC_IDS)
def test_cosmetically_different_database_is_adopted_without_changes(
    tmp_path: Path, expected_sql: str, actual_sql: str
) -> None:
    registry = single(tmp_path / "registry", expected_sql)
    db = tmp_path / "user.db"
    execute_script(db, actual_sql)

    result = run_sync(db, registry)

    assert (result.status, result.statements, result.recorded) == ("applied", (), ("1.0.0",))
    assert run_sync(db, registry).fast_path


def test_index_on_other_columns_is_replace_index() -> None:
    expected = compile_schema(TABLE + "CREATE INDEX ix ON t(name);")
    actual = compile_schema(TABLE + "CREATE INDEX ix ON t(n, name);")

    assert diff(actual, expected) == [
        ReplaceIndex(
            expected=Index(
                name="ix",
                table="t",
                columns=("name",),
                sql="CREATE INDEX ix ON t(name)",
                normalized="create index ix on t ( name )",
            ),
            actual=Index(
                name="ix",
                table="t",
                columns=("n", "name"),
                sql="CREATE INDEX ix ON t(n, name)",
                normalized="create index ix on t ( n , name )",
            ),
        )
    ]


def test_column_type_change_is_alter_column() -> None:
    expected = compile_schema("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER);")
    actual = compile_schema("CREATE TABLE t (id INTEGER PRIMARY KEY, n TEXT);")

    assert diff(actual, expected) == [
        AlterColumn(
            table="t",
            expected=Column(name="n", type="INTEGER", sql="n INTEGER"),
            actual=Column(name="n", type="TEXT", sql="n TEXT"),
        )
    ]


REAL = [
    (
        "n INTEGER NOT NULL DEFAULT 0",
        "n INTEGER DEFAULT 0",
        "column t.n differs: expected INTEGER NOT NULL DEFAULT 0, found INTEGER DEFAULT 0",
    ),
    (
        "n INTEGER DEFAULT 1",
        "n INTEGER DEFAULT 2",
        "column t.n differs: expected INTEGER DEFAULT 1, found INTEGER DEFAULT 2",
    ),
    (
        "n INTEGER AS (id * 2)",
        "n INTEGER AS (id * 2) STORED",
        "column t.n differs: expected INTEGER GENERATED AS (id * 2) VIRTUAL, "
        "found INTEGER GENERATED AS (id * 2) STORED",
    ),
    (
        "n INTEGER AS (id * 2)",
        "n INTEGER AS (id * 3)",
        "column t.n differs: expected INTEGER GENERATED AS (id * 2) VIRTUAL, "
        "found INTEGER GENERATED AS (id * 3) VIRTUAL",
    ),
    (
        "n TEXT COLLATE NOCASE",
        "n TEXT",
        "column t.n differs: expected TEXT COLLATE nocase, found TEXT",
    ),
    (
        "n TEXT COLLATE RTRIM",
        "n TEXT COLLATE NOCASE",
        "column t.n differs: expected TEXT COLLATE rtrim, found TEXT COLLATE nocase",
    ),
]


@pytest.mark.parametrize(
    ("expected_column", "actual_column", "described"),
    REAL,
    ids=[
        "not-null",
        "default",
        "generated-kind",
        "generated-expression",
        "collation-added",
        "collation-changed",
    ],
)
def test_column_constraint_change_is_alter_column(
    expected_column: str, actual_column: str, described: str
) -> None:
    expected = compile_schema(f"CREATE TABLE t (id INTEGER PRIMARY KEY, {expected_column});")
    actual = compile_schema(f"CREATE TABLE t (id INTEGER PRIMARY KEY, {actual_column});")

    changes = diff(actual, expected)

    assert [type(c) for c in changes] == [AlterColumn]
    assert changes[0].describe() == described


DEFINITIONS = [
    (
        "CREATE TRIGGER trg AFTER INSERT ON t BEGIN UPDATE t SET n = 1; END;",
        "CREATE TRIGGER trg AFTER INSERT ON t BEGIN UPDATE t SET n = 2; END;",
        ReplaceTrigger,
    ),
    (
        "CREATE VIEW v AS SELECT id FROM t;",
        "CREATE VIEW v AS SELECT id, name FROM t;",
        ReplaceView,
    ),
    ("CREATE UNIQUE INDEX ix ON t(name);", "CREATE INDEX ix ON t(name);", ReplaceIndex),
    ("CREATE INDEX ix ON t(name) WHERE n > 0;", "CREATE INDEX ix ON t(name);", ReplaceIndex),
    ("CREATE INDEX ix ON t(name COLLATE NOCASE);", "CREATE INDEX ix ON t(name);", ReplaceIndex),
    ("CREATE INDEX ix ON t(lower(name));", "CREATE INDEX ix ON t(upper(name));", ReplaceIndex),
]


@pytest.mark.parametrize(
    ("expected_sql", "actual_sql", "kind"),
    DEFINITIONS,
    ids=[
        "trigger-body",
        "view-columns",
        "index-unique",
        "index-partial",
        "index-collate",
        "index-expression",
    ],
)
def test_object_with_another_definition_is_replace_drift(
    expected_sql: str, actual_sql: str, kind: type
) -> None:
    expected = compile_schema(TABLE + expected_sql)
    actual = compile_schema(TABLE + actual_sql)
    want = (expected.triggers + expected.views + expected.indexes)[0]
    found = (actual.triggers + actual.views + actual.indexes)[0]

    changes = diff(actual, expected)

    assert changes == [kind(expected=want, actual=found)]
    assert make_plan(changes).steps == ()


TABLE_SHAPES = [
    (
        "CREATE TABLE t (k TEXT PRIMARY KEY) WITHOUT ROWID;",
        "CREATE TABLE t (k TEXT NOT NULL PRIMARY KEY);",
        ["WITHOUT ROWID expected True"],
    ),
    ("CREATE TABLE t (k TEXT) STRICT;", "CREATE TABLE t (k TEXT);", ["STRICT expected True"]),
    (
        "CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE t (k INTEGER REFERENCES p(id));",
        "CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE t (k INTEGER);",
        ["missing foreign key (k) -> p"],
    ),
    (
        "CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE t (k INTEGER);",
        "CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE t (k INTEGER REFERENCES p(id));",
        ["unexpected foreign key (k) -> p"],
    ),
    (
        "CREATE TABLE t (a TEXT, b TEXT, UNIQUE (a, b));",
        "CREATE TABLE t (a TEXT, b TEXT);",
        ["missing UNIQUE (a, b)"],
    ),
    (
        "CREATE TABLE t (a TEXT, b TEXT);",
        "CREATE TABLE t (a TEXT UNIQUE, b TEXT);",
        ["unexpected UNIQUE (a)"],
    ),
    (
        "CREATE TABLE t (a INTEGER CHECK (a > 0), b TEXT);",
        "CREATE TABLE t (a INTEGER CHECK (a >= 0), b TEXT);",
        ["missing CHECK (a > 0)", "unexpected CHECK (a >= 0)"],
    ),
    (
        "CREATE TABLE t (a INTEGER, b TEXT, CONSTRAINT ck CHECK (a > 0 OR b IS NULL));",
        "CREATE TABLE t (a INTEGER, b TEXT);",
        ["missing CHECK (a > 0 or b is null)"],
    ),
    (
        "CREATE TABLE t (a INTEGER, b TEXT);",
        "CREATE TABLE t (a INTEGER, b TEXT CHECK (length(b) < 9));",
        ["unexpected CHECK (length ( b ) < 9)"],
    ),
]


@pytest.mark.parametrize(
    ("expected_sql", "actual_sql", "details"),
    TABLE_SHAPES,
    ids=[
        "without-rowid",
        "strict",
        "missing-fk",
        "unexpected-fk",
        "missing-unique",
        "unexpected-unique",
        "changed-column-check",
        "missing-table-check",
        "unexpected-column-check",
    ],
)
def test_table_shape_change_is_alter_table(
    expected_sql: str, actual_sql: str, details: list[str]
) -> None:
    changes = diff(compile_schema(actual_sql), compile_schema(expected_sql))

    assert changes == [AlterTable(table="t", detail=d) for d in details]


EXTRAS_SQL = """
CREATE TABLE old_t (id INTEGER PRIMARY KEY, v TEXT);
CREATE INDEX ix_old ON t(n);
CREATE VIEW v_old AS SELECT * FROM old_t;
CREATE TRIGGER trg_old AFTER DELETE ON t BEGIN DELETE FROM old_t; END;
INSERT INTO old_t (v) VALUES ('kept');
INSERT INTO t (name, n, legacy) VALUES ('a', 1, 'also kept');
"""


def test_objects_the_registry_does_not_know_are_reported_and_kept(tmp_path: Path) -> None:
    registry = single(tmp_path / "registry", TABLE)
    db = tmp_path / "user.db"
    execute_script(db, TABLE.replace("n INTEGER", "n INTEGER, legacy TEXT") + EXTRAS_SQL)

    result = run_sync(db, registry)

    assert result.status == "applied"
    assert result.statements == ()
    assert result.extras == (
        Extra(type="column", name="t.legacy"),
        Extra(type="table", name="old_t"),
        Extra(type="index", name="ix_old"),
        Extra(type="view", name="v_old"),
        Extra(type="trigger", name="trg_old"),
    )
    assert query(db, "SELECT * FROM v_old") == [(1, "kept")]
    assert query(db, "SELECT name, legacy FROM t") == [("a", "also kept")]
    assert {i.name for i in schema_of(db).indexes} == {"ix_old"}
    assert run_sync(db, registry).fast_path


INTERNAL = """
CREATE TABLE seq (id INTEGER PRIMARY KEY AUTOINCREMENT);
INSERT INTO seq DEFAULT VALUES;
CREATE TABLE libsql_wasm_func_table (name TEXT PRIMARY KEY, body TEXT);
CREATE TABLE sqlite3_libsql_tasks (id TEXT PRIMARY KEY);
CREATE TABLE _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER);
CREATE TABLE _litestream_lock (id INTEGER);
CREATE TABLE schema_version (id INTEGER PRIMARY KEY);
CREATE INDEX ix_seq ON seq(id);
ANALYZE;
"""


def test_sqlite_libsql_litestream_and_tenantdb_objects_are_not_user_schema(
    tmp_path: Path,
) -> None:
    db = tmp_path / "user.db"
    execute_script(db, INTERNAL)

    schema = schema_of(db)

    assert [t.name for t in schema.tables] == ["seq"]
    assert (
        diff(
            schema,
            compile_schema(
                "CREATE TABLE seq (id INTEGER PRIMARY KEY AUTOINCREMENT);"
                "CREATE INDEX ix_seq ON seq(id);"
            ),
        )
        == []
    )


def test_virtual_table_is_created_and_its_shadow_tables_are_not_user_schema(
    tmp_path: Path,
) -> None:
    registry = single(tmp_path / "registry", "CREATE VIRTUAL TABLE docs USING fts5(body);")
    db = tmp_path / "user.db"

    result = run_sync(db, registry)
    execute_script(db, "INSERT INTO docs (body) VALUES ('hello world');")

    assert result.statements == ("CREATE VIRTUAL TABLE docs USING fts5(body)",)
    assert [t.name for t in schema_of(db).tables] == ["docs"]
    assert query(db, "SELECT body FROM docs WHERE docs MATCH 'hello'") == [("hello world",)]
    assert run_sync(db, registry).fast_path


def test_dry_run_prints_sql_then_drift_then_extras() -> None:
    expected = compile_schema(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, note TEXT);CREATE INDEX ix ON t(note);"
    )
    actual = compile_schema(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, n TEXT); CREATE TABLE old (a);"
    )

    plan = make_plan(diff(actual, expected))

    assert [type(s) for s in plan.steps] == [AddColumn, CreateIndex]
    assert plan.render() == "\n".join(
        [
            "-- 2 change(s) to apply, 1 drift item(s)",
            "-- add column t.note: note TEXT",
            'ALTER TABLE "t" ADD COLUMN note TEXT;',
            "-- create index ix on t",
            "CREATE INDEX ix ON t(note);",
            "-- DRIFT: column t.n differs: expected INTEGER, found TEXT "
            "(not additive: needs a migration)",
            "-- extra: table old is not in the registry (kept)",
        ]
    )
