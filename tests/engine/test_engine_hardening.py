"""Faults found by running other projects' schema-change cases through the engine.

Each test stands for one: a plan step depending on something refused, a statement SQLite
refuses while applying, AUTOINCREMENT, column order, views and triggers that do not
compile, a version identical to the one before it, and an unreadable history row.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from schema_registry import (
    AlterTable,
    CreateIndex,
    CreateTrigger,
    CreateView,
    RegistryError,
    SqliteDatabase,
    Stamp,
    StatementFailed,
    SyncError,
    UnreadableHistory,
    check,
    compile_schema,
    drive,
)
from tests.engine.enginekit import (
    V,
    cookie_of,
    execute_script,
    history_of,
    make_registry,
    query,
    run_sync,
    single,
    snapshot,
)

# --- 1. nothing planned depends on something refused; SQLite's refusals are typed ---------

BEFORE = "CREATE TABLE t (a integer);\nINSERT INTO t (a) VALUES (1), (2);\n"
WITH_B = "CREATE TABLE t (a integer, b integer NOT NULL);\n"
DEPENDENTS = [
    pytest.param("CREATE INDEX t_b ON t (b);", CreateIndex, "t_b", id="index"),
    pytest.param("CREATE INDEX t_ab ON t (a) WHERE b > 0;", CreateIndex, "t_ab", id="partial"),
    pytest.param("CREATE VIEW v AS SELECT a, b FROM t;", CreateView, "v", id="view"),
    pytest.param(
        "CREATE TRIGGER t_fill AFTER INSERT ON t BEGIN "
        "UPDATE t SET b = 0 WHERE rowid = NEW.rowid; END;",
        CreateTrigger,
        "t_fill",
        id="trigger",
    ),
]


@pytest.mark.parametrize(("dependent", "kind", "name"), DEPENDENTS)
def test_an_object_on_a_refused_column_is_drift_naming_both(
    tmp_path: Path, dependent: str, kind: type, name: str
) -> None:
    db = tmp_path / "user.db"
    execute_script(db, BEFORE)
    registry = single(tmp_path / "registry", WITH_B + dependent)
    before = snapshot(db)

    dry = run_sync(db, registry, apply=False)
    result = run_sync(db, registry)

    for outcome in (dry, result):
        assert outcome.status == "drifted"
        assert not any(isinstance(step, kind) for step in outcome.steps)
        refused = {r.change.object: r.reason for r in outcome.drift}
        assert refused["t.b"].startswith("SQLite cannot add a NOT NULL column")
        assert refused[name].startswith("depends on t.b, which cannot be added: SQLite cannot")
    assert snapshot(db) == before


def test_a_view_on_a_refused_view_is_refused_in_turn(tmp_path: Path) -> None:
    db = tmp_path / "user.db"
    execute_script(db, BEFORE)
    registry = single(
        tmp_path / "registry",
        WITH_B + "CREATE VIEW v AS SELECT b FROM t;\nCREATE VIEW w AS SELECT * FROM v;\n",
    )

    result = run_sync(db, registry)

    assert result.status == "drifted"
    assert result.steps == ()
    refused = {r.change.object: r.reason for r in result.drift}
    assert refused["w"].startswith("depends on v, which cannot be created: depends on t.b")


def test_an_object_waiting_for_a_migration_script_runs_after_it(tmp_path: Path) -> None:
    """A version whose script adds what its objects need: they are created after it."""
    db = tmp_path / "user.db"
    rebuild = (
        "CREATE TABLE t_new (a integer, b integer NOT NULL);\n"
        "INSERT INTO t_new (a, b) SELECT a, a * 10 FROM t;\n"
        "DROP TABLE t;\nALTER TABLE t_new RENAME TO t;\n"
    )
    registry = make_registry(
        tmp_path / "registry",
        V("1.0.0", "CREATE TABLE t (a integer);\n"),
        V("1.1.0", WITH_B + "CREATE INDEX t_b ON t (b);\n", migration=rebuild),
    )
    assert run_sync(db, registry, target="1.0.0").status == "applied"
    execute_script(db, "INSERT INTO t (a) VALUES (1), (2);")

    result = run_sync(db, registry)

    assert result.status == "applied", result.drift
    assert query(db, "SELECT a, b FROM t ORDER BY a") == [(1, 10), (2, 20)]
    assert query(db, "SELECT name FROM sqlite_schema WHERE type = 'index'") == [("t_b",)]


def test_a_failing_migration_statement_is_a_typed_failure_that_names_it(tmp_path: Path) -> None:
    db = tmp_path / "user.db"
    bad = "INSERT INTO nosuch (x) VALUES (1);"
    registry = make_registry(
        tmp_path / "registry",
        V("1.0.0", "CREATE TABLE t (a integer);\n"),
        V(
            "1.1.0",
            "CREATE TABLE t (a integer);\nCREATE TABLE u (x integer);\n",
            migration=f"UPDATE t SET a = a + 1;\n{bad}\n",
        ),
    )
    assert run_sync(db, registry, target="1.0.0").status == "applied"
    execute_script(db, "INSERT INTO t (a) VALUES (1);")
    before = snapshot(db)

    with pytest.raises(StatementFailed) as caught:
        run_sync(db, registry)

    failure = caught.value
    assert isinstance(failure, SyncError)
    assert failure.version == "1.1.0"
    assert failure.statement == bad
    assert "no such table: nosuch" in failure.sqlite_message
    assert bad in str(failure)
    assert "rolled back" in str(failure)
    assert snapshot(db) == before


def test_a_step_sqlite_refuses_on_the_data_is_a_typed_failure(tmp_path: Path) -> None:
    """A UNIQUE index over duplicate rows: only the data decides, so only applying can."""
    db = tmp_path / "user.db"
    execute_script(db, "CREATE TABLE t (a integer);\nINSERT INTO t (a) VALUES (1), (1);\n")
    registry = single(
        tmp_path / "registry", "CREATE TABLE t (a integer);\nCREATE UNIQUE INDEX t_a ON t (a);\n"
    )
    before = snapshot(db)

    with pytest.raises(StatementFailed) as caught:
        run_sync(db, registry)

    assert caught.value.statement == "CREATE UNIQUE INDEX t_a ON t (a)"
    assert caught.value.version == "1.0.0"
    assert "UNIQUE constraint failed" in caught.value.sqlite_message
    assert snapshot(db) == before


# --- 2. AUTOINCREMENT ----------------------------------------------------------------------

PLAIN = "CREATE TABLE events (id INTEGER PRIMARY KEY, name TEXT);\n"
COUNTED = "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT);\n"
# The content hashes today's engine (before AUTOINCREMENT was part of it) gave these
# schemas, computed with it and written down: history rows in the field carry them.
NOTES = """CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL,
    created_at TEXT DEFAULT CURRENT_TIMESTAMP);
CREATE INDEX notes_created ON notes (created_at);
CREATE VIEW recent AS SELECT id, body FROM notes;
"""
NOTES_HASH_V1 = "sha256:6d7704e6e1f2484236accc814b1bfdcd58064933d1f5a0df6b230b9e93d51d65"
COUNTED_HASH_V1 = "sha256:8af6e566a7b3bb06615cf23065eb507a8d64d501fc15729939d8d16d2c45f581"


def test_autoincrement_is_part_of_the_model() -> None:
    assert compile_schema(COUNTED).tables[0].autoincrement
    assert not compile_schema(PLAIN).tables[0].autoincrement
    assert compile_schema(COUNTED).fingerprint() != compile_schema(PLAIN).fingerprint()


@pytest.mark.parametrize(("live", "wanted"), [(PLAIN, COUNTED), (COUNTED, PLAIN)])
def test_adding_or_removing_autoincrement_is_drift(tmp_path: Path, live: str, wanted: str) -> None:
    db = tmp_path / "user.db"
    execute_script(db, live + "INSERT INTO events (name) VALUES ('x');\n")
    before = snapshot(db)

    result = run_sync(db, single(tmp_path / "registry", wanted))

    assert result.status == "drifted"
    assert [type(r.change) for r in result.drift] == [AlterTable]
    assert "AUTOINCREMENT" in result.drift[0].change.describe()
    assert snapshot(db) == before


def test_a_version_adding_autoincrement_needs_a_migration(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"1\.1\.0.*events.*AUTOINCREMENT"):
        make_registry(tmp_path / "registry", V("1.0.0", PLAIN), V("1.1.0", COUNTED))


def test_hashes_of_schemas_without_autoincrement_are_unchanged(tmp_path: Path) -> None:
    assert single(tmp_path / "registry", NOTES).current.content_hash == NOTES_HASH_V1


def _stamped_by_the_old_engine(db: Path, old_hash: str) -> None:
    """What today's engine left: the same row, carrying its content hash. Updating a row
    does not move the schema cookie, so the stored cookie stays right."""
    execute_script(db, f"UPDATE schema_version SET content_hash = '{old_hash}'")


@pytest.mark.parametrize(("sql", "old_hash"), [(NOTES, NOTES_HASH_V1), (COUNTED, COUNTED_HASH_V1)])
def test_a_database_stamped_before_the_hash_changed_stays_current(
    tmp_path: Path, sql: str, old_hash: str
) -> None:
    registry = single(tmp_path / "registry", sql)
    db = tmp_path / "user.db"
    assert run_sync(db, registry).status == "applied"
    _stamped_by_the_old_engine(db, old_hash)
    head = history_of(db)[-1]
    assert head.content_hash == old_hash

    result = run_sync(db, registry)
    known = run_sync(db, registry, known=head.stamp)
    conn = SqliteDatabase.open(db)
    try:
        current, _, _ = drive(check(conn, registry.current))
    finally:
        conn.close()

    assert (result.status, result.fast_path) == ("up_to_date", True)
    assert (known.status, known.fast_path) == ("up_to_date", True)
    assert current
    assert history_of(db) == [head]
    assert registry.current.accepts(old_hash)


def test_an_old_stamp_whose_cookie_moved_is_rearmed_not_recorded_again(tmp_path: Path) -> None:
    registry = single(tmp_path / "registry", COUNTED)
    db = tmp_path / "user.db"
    assert run_sync(db, registry).status == "applied"
    _stamped_by_the_old_engine(db, COUNTED_HASH_V1)
    execute_script(db, "CREATE TABLE scratch (x);\nDROP TABLE scratch;\n")  # moves the cookie
    rows = len(history_of(db))

    result = run_sync(db, registry)

    assert result.status == "up_to_date"
    assert not result.fast_path
    assert len(history_of(db)) == rows
    assert history_of(db)[-1].schema_cookie == cookie_of(db)
    assert result.stamp == Stamp(
        version="1.0.0", content_hash=registry.current.content_hash, cookie=cookie_of(db)
    )


# --- 3. column order -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param("CREATE TABLE t (b TEXT, a TEXT);\n", id="reordered"),
        pytest.param("CREATE TABLE t (a TEXT, c TEXT, b TEXT);\n", id="inserted"),
    ],
)
def test_a_version_changing_column_order_is_refused(tmp_path: Path, changed: str) -> None:
    with pytest.raises(RegistryError) as caught:
        make_registry(
            tmp_path / "registry",
            V("1.0.0", "CREATE TABLE t (a TEXT, b TEXT);\n"),
            V("1.1.0", changed),
        )
    message = str(caught.value)
    assert "1.1.0.sql (version 1.1.0)" in message
    assert "table t" in message
    assert "column order" in message


def test_a_live_table_in_another_column_order_is_a_warning(tmp_path: Path) -> None:
    db = tmp_path / "user.db"
    execute_script(db, "CREATE TABLE t (b TEXT, a TEXT);\nINSERT INTO t VALUES ('b', 'a');\n")
    registry = single(tmp_path / "registry", "CREATE TABLE t (a TEXT, b TEXT);\n")

    dry = run_sync(db, registry, apply=False)
    result = run_sync(db, registry)

    assert result.status == "applied"
    assert result.drift == ()
    for outcome in (dry, result):
        assert any("column order of t" in w and "(b, a)" in w for w in outcome.warnings)
    assert query(db, "SELECT b, a FROM t") == [("b", "a")]


def test_a_column_added_at_the_end_is_no_order_warning(tmp_path: Path) -> None:
    db = tmp_path / "user.db"
    execute_script(db, "CREATE TABLE t (a TEXT);\n")
    result = run_sync(db, single(tmp_path / "registry", "CREATE TABLE t (a TEXT, b TEXT);\n"))
    assert result.status == "applied"
    assert result.warnings == ()


# --- 4. views and triggers are compiled at load --------------------------------------------

BROKEN = [
    pytest.param("CREATE VIEW v AS SELECT nosuch FROM t;", "view v", id="view"),
    pytest.param(
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET nosuch = 1; END;",
        "trigger tr",
        id="insert-trigger",
    ),
    pytest.param(
        "CREATE TRIGGER tr AFTER UPDATE OF a ON t BEGIN INSERT INTO nosuch VALUES (1); END;",
        "trigger tr",
        id="update-trigger",
    ),
    pytest.param(
        "CREATE TRIGGER tr BEFORE DELETE ON t BEGIN SELECT OLD.nosuch; END;",
        "trigger tr",
        id="delete-trigger",
    ),
    pytest.param(
        "CREATE VIEW w AS SELECT a FROM t;\n"
        "CREATE TRIGGER tr INSTEAD OF INSERT ON w BEGIN INSERT INTO t (a) VALUES (NEW.q); END;",
        "trigger tr",
        id="instead-of-trigger",
    ),
]


@pytest.mark.parametrize(("objects", "named"), BROKEN)
def test_a_view_or_trigger_that_does_not_compile_fails_the_load(
    tmp_path: Path, objects: str, named: str
) -> None:
    good = (
        "CREATE TABLE t (a TEXT);\nCREATE TRIGGER ok AFTER INSERT ON t BEGIN SELECT NEW.a; END;\n"
    )
    with pytest.raises(RegistryError) as caught:
        make_registry(tmp_path / "registry", V("1.0.0", good), V("1.1.0", good + objects))
    message = str(caught.value)
    assert "1.1.0.sql (version 1.1.0)" in message
    assert named in message
    assert "no such" in message


def test_views_and_triggers_that_compile_load(tmp_path: Path) -> None:
    sql = (
        "CREATE TABLE t (a TEXT, b TEXT, c TEXT GENERATED ALWAYS AS (a || b));\n"
        "CREATE TABLE log (what TEXT);\n"
        "CREATE VIEW v AS SELECT a, c FROM t;\n"
        "CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN INSERT INTO log VALUES (NEW.c); END;\n"
        "CREATE TRIGGER t_upd AFTER UPDATE OF b ON t BEGIN INSERT INTO log VALUES (OLD.b); END;\n"
        "CREATE TRIGGER t_del AFTER DELETE ON t BEGIN INSERT INTO log VALUES (OLD.a); END;\n"
        "CREATE TRIGGER v_ins INSTEAD OF INSERT ON v BEGIN INSERT INTO t (a) VALUES (NEW.a); END;\n"
    )
    assert len(single(tmp_path / "registry", sql).current.schema.triggers) == 4


# --- 5. a version identical to the one before it -------------------------------------------


def test_a_version_identical_to_the_previous_one_is_a_warning(tmp_path: Path) -> None:
    registry = make_registry(
        tmp_path / "registry", V("1.0.0", PLAIN), V("1.1.0", PLAIN + "-- nothing new\n")
    )
    assert [v.version for v in registry.versions] == ["1.0.0", "1.1.0"]
    assert len(registry.warnings) == 1
    assert "1.1.0.sql (version 1.1.0)" in registry.warnings[0]
    assert "identical to 1.0.0" in registry.warnings[0]


def test_distinct_versions_load_without_warnings(tmp_path: Path) -> None:
    registry = make_registry(
        tmp_path / "registry",
        V("1.0.0", PLAIN),
        V(
            "1.1.0",
            COUNTED.replace("AUTOINCREMENT", "") + "CREATE INDEX e_name ON events (name);\n",
        ),
    )
    assert registry.warnings == ()


# --- 6. an unreadable history row ----------------------------------------------------------


@pytest.mark.parametrize(
    ("damage", "detail"),
    [
        ("UPDATE schema_version SET version = 'one'", "'one' is not a MAJOR.MINOR.PATCH version"),
        ("UPDATE schema_version SET schema_cookie = 'x'", "schema_cookie"),
    ],
)
def test_an_unreadable_history_row_is_drift_and_changes_nothing(
    tmp_path: Path, damage: str, detail: str
) -> None:
    registry = single(tmp_path / "registry", PLAIN)
    db = tmp_path / "user.db"
    assert run_sync(db, registry).status == "applied"
    execute_script(db, damage)
    row_id = int(str(query(db, "SELECT id FROM schema_version")[0][0]))
    before = snapshot(db)

    for apply in (False, True):
        result = run_sync(db, registry, apply=apply)
        assert result.status == "drifted"
        assert result.steps == ()
        assert [type(r.change) for r in result.drift] == [UnreadableHistory]
        reason = result.drift[0].reason
        assert reason.startswith(f"history row {row_id} unreadable")
        assert detail in reason
    conn = SqliteDatabase.open(db)
    try:
        assert drive(check(conn, registry.current)) == (False, None, before[0])
    finally:
        conn.close()
    assert snapshot(db) == before
