"""Every object kind is created when missing, in an order SQLite accepts, whatever its name."""

from __future__ import annotations

from pathlib import Path

import pytest

from schema_registry import compile_schema, dependency_order, quote
from tests.engine.enginekit import described, execute_script, query, run_sync, schema_of, single

BASE = """CREATE TABLE t (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    qty INTEGER NOT NULL DEFAULT 0
);
"""
BASE_ROWS = "INSERT INTO t (name, qty) VALUES ('ab', 1), ('cd', 0), ('Ef', 5);\n"

KINDS = [
    (
        "CREATE TABLE u (id INTEGER PRIMARY KEY, t_id INTEGER REFERENCES t(id))",
        "create table u (2 columns)",
    ),
    ("CREATE INDEX ix_t_name ON t(name)", "create index ix_t_name on t"),
    ("CREATE UNIQUE INDEX ux_t_name ON t(name)", "create unique index ux_t_name on t"),
    ("CREATE INDEX ix_t_stocked ON t(name) WHERE qty > 0", "create index ix_t_stocked on t"),
    ("CREATE INDEX ix_t_lower ON t(lower(name), qty DESC)", "create index ix_t_lower on t"),
    (
        "CREATE UNIQUE INDEX ux_t_lower ON t(lower(name)) WHERE qty >= 0",
        "create unique index ux_t_lower on t",
    ),
    (
        "CREATE TRIGGER trg_t_qty AFTER UPDATE OF name ON t\n"
        "BEGIN\n    UPDATE t SET qty = qty + 1 WHERE id = NEW.id;\nEND",
        "create trigger trg_t_qty on t",
    ),
    ("CREATE VIEW v_t AS SELECT id, upper(name) AS shout FROM t", "create view v_t"),
]
KIND_IDS = [
    "table",
    "index",
    "unique-index",
    "partial-index",
    "expression-index",
    "unique-partial-expression-index",
    "trigger",
    "view",
]


@pytest.mark.parametrize(("sql", "description"), KINDS, ids=KIND_IDS)
def test_missing_object_is_created_with_its_registry_sql(
    tmp_path: Path, sql: str, description: str
) -> None:
    registry = single(tmp_path / "registry", f"{BASE}{sql};\n")
    db = tmp_path / "user.db"
    execute_script(db, BASE + BASE_ROWS)

    result = run_sync(db, registry)

    assert (result.status, described(result), result.statements) == (
        "applied",
        (description,),
        (sql,),
    )
    assert schema_of(db).fingerprint() == registry.current.content_hash
    assert query(db, "SELECT id, name, qty FROM t ORDER BY id") == [
        (1, "ab", 1),
        (2, "cd", 0),
        (3, "Ef", 5),
    ]


def test_missing_column_is_added_with_its_definition(tmp_path: Path) -> None:
    registry = single(
        tmp_path / "registry",
        BASE.replace("DEFAULT 0\n", "DEFAULT 0,\n    note TEXT NOT NULL DEFAULT 'none'\n"),
    )
    db = tmp_path / "user.db"
    execute_script(db, BASE + BASE_ROWS)

    result = run_sync(db, registry)

    assert result.statements == ("ALTER TABLE \"t\" ADD COLUMN note TEXT NOT NULL DEFAULT 'none'",)
    assert query(db, "SELECT id, note FROM t ORDER BY id") == [
        (1, "none"),
        (2, "none"),
        (3, "none"),
    ]


def test_created_trigger_and_view_work_on_existing_rows(tmp_path: Path) -> None:
    trigger, view = KINDS[6][0], KINDS[7][0]
    registry = single(tmp_path / "registry", f"{BASE}{trigger};\n{view};\n")
    db = tmp_path / "user.db"
    execute_script(db, BASE + BASE_ROWS)

    run_sync(db, registry)
    execute_script(db, "UPDATE t SET name = 'zz' WHERE id = 2;")

    assert query(db, "SELECT id, shout FROM v_t ORDER BY id") == [(1, "AB"), (2, "ZZ"), (3, "EF")]
    assert query(db, "SELECT qty FROM t WHERE id = 2") == [(1,)]


FAMILY = """
CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent(id));
CREATE TABLE parent (id INTEGER PRIMARY KEY, root_id INTEGER REFERENCES root(id));
CREATE TABLE root (id INTEGER PRIMARY KEY, name TEXT);
"""
SELF = """
CREATE TABLE leaf (id INTEGER PRIMARY KEY, node_id INTEGER REFERENCES node(id));
CREATE TABLE node (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES node(id));
"""
CYCLE = """
CREATE TABLE a (id INTEGER PRIMARY KEY, b_id INTEGER REFERENCES b(id));
CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a(id));
CREATE TABLE c (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a(id));
"""
COMPOSITE = """
CREATE TABLE line (order_id INTEGER, sku TEXT,
    FOREIGN KEY (order_id, sku) REFERENCES stock(order_id, sku));
CREATE TABLE stock (order_id INTEGER, sku TEXT, PRIMARY KEY (order_id, sku)) WITHOUT ROWID;
"""


@pytest.mark.parametrize(
    ("sql", "order"),
    [
        (FAMILY, ["root", "parent", "child"]),
        (SELF, ["node", "leaf"]),
        (CYCLE, ["b", "a", "c"]),
        (COMPOSITE, ["stock", "line"]),
    ],
    ids=["child-before-parent", "self-reference", "cycle", "composite-key"],
)
def test_tables_are_created_parents_first(tmp_path: Path, sql: str, order: list[str]) -> None:
    registry = single(tmp_path / "registry", sql)
    db = tmp_path / "user.db"

    result = run_sync(db, registry)

    assert [t.name for t in dependency_order(list(compile_schema(sql).tables))] == order
    assert [line.split(" ")[2] for line in described(result)] == order
    assert schema_of(db).fingerprint() == registry.current.content_hash
    assert query(db, "PRAGMA foreign_key_check") == []


def test_cyclic_tables_accept_rows_pointing_at_each_other(tmp_path: Path) -> None:
    registry = single(tmp_path / "registry", CYCLE)
    db = tmp_path / "user.db"
    run_sync(db, registry)

    execute_script(
        db,
        "INSERT INTO a (id) VALUES (1); INSERT INTO b (id, a_id) VALUES (1, 1);"
        "UPDATE a SET b_id = 1 WHERE id = 1; INSERT INTO c (a_id) VALUES (1);",
    )

    assert query(db, "PRAGMA foreign_key_check") == []


ODD_NAMES = ["order", "select", "my table", 'we"ird', "café ☕", "Ωμέγα", "group by", "1st"]


def _odd_schema(name: str, *, full: bool) -> str:
    table, col, extra = quote(name), quote(f"{name} col"), quote(f"{name}.x")
    if not full:
        return f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, {col} TEXT);\n"
    return (
        f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, {col} TEXT, {extra} TEXT DEFAULT 'x');\n"
        f"CREATE INDEX {quote(name + ' idx')} ON {table}({col}, {extra});\n"
        f"CREATE VIEW {quote(name + ' view')} AS SELECT {col} AS {quote('v ' + name)} "
        f"FROM {table};\n"
        f"CREATE TRIGGER {quote(name + ' trg')} AFTER DELETE ON {table}\n"
        f"BEGIN SELECT {col} FROM {table}; END;\n"
    )


@pytest.mark.parametrize(
    "name",
    ODD_NAMES,
    ids=["order", "select", "space", "quote", "unicode", "greek", "two-keywords", "digit"],
)
def test_odd_identifiers_are_quoted_in_every_statement(tmp_path: Path, name: str) -> None:
    registry = single(tmp_path / "registry", _odd_schema(name, full=True))
    db = tmp_path / "user.db"
    execute_script(db, _odd_schema(name, full=False))
    execute_script(db, f"INSERT INTO {quote(name)} ({quote(name + ' col')}) VALUES ('a'), ('b');")

    result = run_sync(db, registry)

    expected = compile_schema(_odd_schema(name, full=True))
    assert result.status == "applied"
    assert result.statements == (
        f"ALTER TABLE {quote(name)} ADD COLUMN {quote(name + '.x')} TEXT DEFAULT 'x'",
        expected.indexes[0].sql,
        expected.views[0].sql,
        expected.triggers[0].sql,
    )
    assert query(db, f"SELECT * FROM {quote(name)} ORDER BY id") == [(1, "a", "x"), (2, "b", "x")]
    assert schema_of(db).fingerprint() == registry.current.content_hash
    assert run_sync(db, registry).fast_path


@pytest.mark.parametrize(
    "name",
    ODD_NAMES,
    ids=["order", "select", "space", "quote", "unicode", "greek", "two-keywords", "digit"],
)
def test_odd_identifiers_provision_a_new_database(tmp_path: Path, name: str) -> None:
    registry = single(tmp_path / "registry", _odd_schema(name, full=True))
    db = tmp_path / "user.db"

    result = run_sync(db, registry)

    assert result.status == "applied"
    assert schema_of(db).fingerprint() == registry.current.content_hash


def test_other_quoting_styles_name_the_same_objects(tmp_path: Path) -> None:
    registry = single(
        tmp_path / "registry",
        'CREATE TABLE [my table] (`my col` TEXT, "select" INTEGER DEFAULT 7, [ü] TEXT);\n'
        "CREATE INDEX `my idx` ON [my table]([select]);\n",
    )
    db = tmp_path / "user.db"
    execute_script(
        db, 'CREATE TABLE "my table" ("my col" TEXT); INSERT INTO "my table" VALUES (1);'
    )

    result = run_sync(db, registry)

    assert result.statements == (
        'ALTER TABLE "my table" ADD COLUMN "select" INTEGER DEFAULT 7',
        'ALTER TABLE "my table" ADD COLUMN [ü] TEXT',
        "CREATE INDEX `my idx` ON [my table]([select])",
    )
    assert query(db, 'SELECT * FROM "my table"') == [("1", 7, None)]


SPECIAL_TABLES = [
    "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE s (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, r REAL, b BLOB, a ANY) STRICT",
    "CREATE TABLE ws (k TEXT PRIMARY KEY, n INTEGER) STRICT, WITHOUT ROWID",
    "CREATE TABLE g (a INTEGER, b INTEGER AS (a * 2) VIRTUAL, c TEXT AS (a || '!') STORED)",
    "CREATE TABLE ai (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT)",
]
SPECIAL_IDS = ["without-rowid", "strict", "strict-without-rowid", "generated", "autoincrement"]


@pytest.mark.parametrize("sql", SPECIAL_TABLES, ids=SPECIAL_IDS)
def test_special_table_kinds_are_provisioned_exactly(tmp_path: Path, sql: str) -> None:
    registry = single(tmp_path / "registry", f"{sql};\n")
    db = tmp_path / "user.db"

    result = run_sync(db, registry)

    assert result.statements == (sql,)
    assert schema_of(db) == compile_schema(sql)


ADD_TO_SPECIAL = [
    (
        "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL{}) WITHOUT ROWID",
        ", note TEXT NOT NULL DEFAULT ''",
        "INSERT INTO kv VALUES ('a', '1'), ('b', '2')",
        "SELECT * FROM kv ORDER BY k",
        [("a", "1", ""), ("b", "2", "")],
    ),
    (
        "CREATE TABLE s (id INTEGER PRIMARY KEY, n INTEGER NOT NULL{}) STRICT",
        ", label TEXT NOT NULL DEFAULT 'x', score REAL",
        "INSERT INTO s (n) VALUES (1), (2)",
        "SELECT * FROM s ORDER BY id",
        [(1, 1, "x", None), (2, 2, "x", None)],
    ),
    (
        "CREATE TABLE g (a INTEGER{})",
        ", b INTEGER AS (a * 2) VIRTUAL, c TEXT GENERATED ALWAYS AS (a || '!')",
        "INSERT INTO g VALUES (1), (2)",
        "SELECT a, b, c FROM g ORDER BY a",
        [(1, 2, "1!"), (2, 4, "2!")],
    ),
    (
        "CREATE TABLE ai (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT{})",
        ", flag INTEGER NOT NULL DEFAULT 1",
        "INSERT INTO ai (name) VALUES ('a'), ('b'); DELETE FROM ai WHERE id = 2",
        "SELECT * FROM ai ORDER BY id",
        [(1, "a", 1)],
    ),
]


@pytest.mark.parametrize(
    ("table", "added", "insert", "select", "rows"),
    ADD_TO_SPECIAL,
    ids=["without-rowid", "strict", "generated-virtual", "autoincrement"],
)
def test_columns_are_added_to_populated_special_tables(
    tmp_path: Path,
    *,
    table: str,
    added: str,
    insert: str,
    select: str,
    rows: list[tuple[object, ...]],
) -> None:
    registry = single(tmp_path / "registry", table.format(added) + ";\n")
    db = tmp_path / "user.db"
    execute_script(db, f"{table.format('')};\n{insert};\n")

    result = run_sync(db, registry)

    assert result.status == "applied"
    assert result.extras == ()
    assert query(db, select) == rows
    assert schema_of(db).fingerprint() == registry.current.content_hash


def test_strict_table_keeps_rejecting_wrong_types_after_a_column_is_added(tmp_path: Path) -> None:
    table = ADD_TO_SPECIAL[1][0]
    registry = single(tmp_path / "registry", table.format(", score REAL") + ";\n")
    db = tmp_path / "user.db"
    execute_script(db, table.format("") + ";\nINSERT INTO s (n) VALUES (1);")

    run_sync(db, registry)

    with pytest.raises(Exception, match=r"cannot store TEXT value in REAL column s\.score"):
        execute_script(db, "INSERT INTO s (n, score) VALUES (2, 'high');")


def test_autoincrement_keeps_counting_past_deleted_rows(tmp_path: Path) -> None:
    table = ADD_TO_SPECIAL[3][0]
    registry = single(tmp_path / "registry", table.format(", flag INTEGER DEFAULT 1") + ";\n")
    db = tmp_path / "user.db"
    execute_script(
        db,
        table.format("") + ";\nINSERT INTO ai (name) VALUES ('a'), ('b');"
        "DELETE FROM ai WHERE id = 2;",
    )

    run_sync(db, registry)
    execute_script(db, "INSERT INTO ai (name) VALUES ('c');")

    assert query(db, "SELECT id, name FROM ai ORDER BY id") == [(1, "a"), (3, "c")]


def test_names_differing_only_in_non_ascii_case_are_different_objects(tmp_path: Path) -> None:
    """SQLite folds only ASCII letters: "É" and "é" are two tables, "T" and "t" one."""
    registry = single(
        tmp_path / "registry",
        'CREATE TABLE "É" (a TEXT);\nCREATE TABLE "T" (b TEXT);\n'
        'CREATE INDEX "ÉIX" ON "É"(a);\nCREATE VIEW "Vé" AS SELECT a FROM "É";\n',
    )
    db = tmp_path / "user.db"
    execute_script(
        db,
        'CREATE TABLE "é" (a TEXT);\nCREATE TABLE "t" (b TEXT);\n'
        'CREATE INDEX "éIX" ON "é"(a);\nCREATE VIEW "VÉ" AS SELECT a FROM "é";\n',
    )

    result = run_sync(db, registry)

    assert described(result) == (
        "create table É (1 columns)",
        "create index ÉIX on É",
        "create view Vé",
    )
    assert sorted((e.type, e.name) for e in result.extras) == [
        ("index", "éIX"),
        ("table", "é"),
        ("view", "VÉ"),
    ]
    assert schema_of(db).table("É") is not None
