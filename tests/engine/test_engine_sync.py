"""Sync semantics on real files: provision, fast path, upgrade, drift, repair, concurrency."""

from __future__ import annotations

import re
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest

from schema_registry import (
    EXAMPLE,
    AlterColumn,
    HistoryRow,
    NewerDatabaseError,
    Refusal,
    Registry,
    SqliteDatabase,
    Stamp,
    SyncContext,
    SyncError,
    SyncResult,
    check,
    compile_schema,
    connect,
    dependency_order,
    drive,
    load_registry,
    sync,
)
from tests.engine.enginekit import (
    REBUILD_V1,
    REBUILDS,
    SEED000,
    V,
    cookie_of,
    described,
    execute_script,
    history_of,
    make_registry,
    query,
    run_sync,
    schema_of,
    snapshot,
    versions_of,
)

ISO_SECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")


@pytest.fixture(scope="module")
def example() -> Registry:
    return load_registry(EXAMPLE)


def at_version(path: Path, registry: Registry, version: str) -> Path:
    result = run_sync(path, registry, target=version)
    assert result.status == "applied"
    return path


TRADING_ROWS = """
INSERT INTO accounts (id, name) VALUES (1, 'main'), (2, 'paper');
INSERT INTO trades (account_id, symbol, side, quantity, price, opened_at, closed_at)
VALUES (1, 'AAPL', 'buy', 10, 150.5, '2026-01-02 10:00:00', '2026-01-05 15:00:00'),
       (1, 'MSFT', 'sell', 5, 300, '2026-01-03 11:00:00', NULL),
       (2, 'TSLA', 'buy', 1, 200, '2026-01-04 09:30:00', NULL);
INSERT INTO tags (name) VALUES ('breakout');
INSERT INTO trade_tags VALUES (1, 1);
INSERT INTO settings (key, value) VALUES ('theme', 'dark');
"""
TRADE_COLUMNS = "id, account_id, symbol, side, quantity, price, fee, opened_at, closed_at"


def test_new_database_gets_the_target_and_one_history_row(
    tmp_path: Path, example: Registry
) -> None:
    db = tmp_path / "user.db"

    result = run_sync(db, example)

    [row] = history_of(db)
    cookie = cookie_of(db)
    target = example.current
    assert (result.status, result.from_version, result.to_version) == ("applied", None, "1.2.0")
    assert result.recorded == ("1.2.0",)
    assert result.stamp == Stamp(version="1.2.0", content_hash=target.content_hash, cookie=cookie)
    assert ISO_SECONDS.match(row.applied_at)
    assert row == HistoryRow(
        id=1,
        version="1.2.0",
        description=target.description,
        created_at=target.created_at,
        applied_at=row.applied_at,
        content_hash=target.content_hash,
        changes_applied=len(described(result)),
        schema_cookie=cookie,
        trigger="manual",
    )
    assert schema_of(db).fingerprint() == target.content_hash
    assert len(described(result)) == 30  # 10 tables, 14 indexes, 2 views, 4 triggers


def test_second_sync_applies_and_records_nothing(tmp_path: Path, example: Registry) -> None:
    db = tmp_path / "user.db"
    first = run_sync(db, example)
    before = snapshot(db)

    again = run_sync(db, example)
    with_stamp = run_sync(db, example, known=first.stamp)

    for result in (again, with_stamp):
        assert result == SyncResult(
            status="up_to_date",
            from_version="1.2.0",
            to_version="1.2.0",
            stamp=first.stamp,
            fast_path=True,
            duration_ms=result.duration_ms,
        )
    assert snapshot(db) == before


def test_known_stamp_matching_the_cookie_skips_the_history_read(
    tmp_path: Path, example: Registry
) -> None:
    db_path = tmp_path / "user.db"
    stamp = run_sync(db_path, example).stamp
    db = SqliteDatabase.open(db_path)
    try:
        by_stamp = drive(check(db, example.current, stamp))
        stale = Stamp(version="1.2.0", content_hash=example.current.content_hash, cookie=-1)
        by_history = drive(check(db, example.current, stale))
    finally:
        db.close()

    assert stamp is not None
    assert by_stamp == (True, None, stamp.cookie)
    assert by_history[0] is True
    assert by_history[1] is not None
    assert by_history[1].version == "1.2.0"


def test_upgrade_records_every_version_passed_and_runs_the_migration(
    tmp_path: Path, example: Registry
) -> None:
    db = at_version(tmp_path / "user.db", example, "1.0.0")
    execute_script(db, TRADING_ROWS)
    trades_before = query(db, f"SELECT {TRADE_COLUMNS} FROM trades ORDER BY id")

    result = run_sync(db, example)

    rows = history_of(db)
    assert (result.status, result.from_version, result.recorded) == (
        "applied",
        "1.0.0",
        ("1.1.0", "1.2.0"),
    )
    assert [(r.version, r.content_hash) for r in rows] == [
        (v.version, v.content_hash) for v in example.versions
    ]
    assert [r.changes_applied for r in rows[1:]] == [0, len(described(result))]
    assert result.statements[-1] == example.current.migration[0]
    assert query(db, f"SELECT {TRADE_COLUMNS} FROM trades ORDER BY id") == trades_before
    assert query(db, "SELECT id, updated_at, status FROM trades ORDER BY id") == [
        (1, "2026-01-05 15:00:00", "open"),
        (2, "2026-01-03 11:00:00", "open"),
        (3, "2026-01-04 09:30:00", "open"),
    ]
    assert schema_of(db).fingerprint() == example.current.content_hash
    assert query(db, "PRAGMA foreign_key_check") == []
    assert run_sync(db, example).fast_path


def test_upgrade_one_version_at_a_time_ends_where_one_jump_does(
    tmp_path: Path, example: Registry
) -> None:
    stepwise = at_version(tmp_path / "stepwise.db", example, "1.0.0")
    at_once = at_version(tmp_path / "at_once.db", example, "1.0.0")
    for db in (stepwise, at_once):
        execute_script(db, TRADING_ROWS)

    steps = [run_sync(stepwise, example, target=v).recorded for v in ("1.1.0", "1.2.0")]
    run_sync(at_once, example)

    assert steps == [("1.1.0",), ("1.2.0",)]
    assert versions_of(stepwise) == versions_of(at_once) == ["1.0.0", "1.1.0", "1.2.0"]
    assert schema_of(stepwise).fingerprint() == schema_of(at_once).fingerprint()
    assert query(stepwise, "SELECT * FROM trades") == query(at_once, "SELECT * FROM trades")


def _conflicting_fee(tmp_path: Path, example: Registry) -> tuple[Path, Registry]:
    """A database whose 1.0.0 has trades.fee as TEXT: someone changed it behind our back."""
    sql = (EXAMPLE / "1.0.0.sql").read_text().replace("fee REAL NOT NULL", "fee TEXT NOT NULL")
    altered = make_registry(tmp_path / "altered", V("1.0.0", sql))
    db = at_version(tmp_path / "user.db", altered, "1.0.0")
    execute_script(db, TRADING_ROWS)
    return db, altered


def test_drifted_database_is_left_byte_for_byte_unchanged(
    tmp_path: Path, example: Registry
) -> None:
    db, altered = _conflicting_fee(tmp_path, example)
    before = snapshot(db)

    result = run_sync(db, example)

    found = altered.current.schema.table("trades")
    wanted = example.current.schema.table("trades")
    assert found is not None
    assert wanted is not None
    found_fee, wanted_fee = found.column("fee"), wanted.column("fee")
    assert found_fee is not None
    assert wanted_fee is not None
    assert result.status == "drifted"
    assert result.drift == (
        Refusal(
            change=AlterColumn(table="trades", expected=wanted_fee, actual=found_fee),
            reason="not additive: needs a migration",
        ),
    )
    assert result.recorded == ()
    assert result.stamp is None
    assert snapshot(db) == before
    assert query(db, "PRAGMA integrity_check") == [("ok",)]


def test_drift_without_pending_migrations_is_reported_by_verify_too(tmp_path: Path) -> None:
    registry = make_registry(
        tmp_path / "registry",
        V("1.0.0", "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER);"),
        V(
            "1.1.0",
            "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER);\nCREATE INDEX ix_n ON t(n);",
        ),
    )
    db = tmp_path / "user.db"
    execute_script(
        db, "CREATE TABLE t (id INTEGER PRIMARY KEY, n TEXT); INSERT INTO t VALUES (1, 'a');"
    )
    before = snapshot(db)

    verified = run_sync(db, registry, apply=False)
    applied = run_sync(db, registry)

    assert verified.status == applied.status == "drifted"
    assert verified.drift == applied.drift
    assert [item.change.describe() for item in applied.drift] == [
        "column t.n differs: expected INTEGER, found TEXT"
    ]
    assert verified.statements == ("CREATE INDEX ix_n ON t(n)",)
    assert snapshot(db) == before


def test_index_dropped_behind_our_back_is_recreated(tmp_path: Path, example: Registry) -> None:
    db = tmp_path / "user.db"
    run_sync(db, example)
    execute_script(db, "DROP INDEX idx_trades_symbol;")

    result = run_sync(db, example)

    assert (result.status, result.fast_path) == ("applied", False)
    assert described(result) == ("create index idx_trades_symbol on trades",)
    assert result.statements == ("CREATE INDEX idx_trades_symbol ON trades(symbol)",)
    assert [(r.version, r.changes_applied) for r in history_of(db)] == [
        ("1.2.0", len(run_sync(tmp_path / "fresh.db", example).changes)),
        ("1.2.0", 1),
    ]
    assert schema_of(db).fingerprint() == example.current.content_hash
    assert run_sync(db, example).fast_path


def test_schema_moved_but_still_matching_rearms_the_fast_path_without_a_row(
    tmp_path: Path, example: Registry
) -> None:
    db = tmp_path / "user.db"
    run_sync(db, example)
    execute_script(db, "CREATE TABLE scratch (a); DROP TABLE scratch;")

    result = run_sync(db, example)

    assert (result.status, result.fast_path, result.recorded) == ("up_to_date", False, ())
    assert [(r.version, r.schema_cookie) for r in history_of(db)] == [("1.2.0", cookie_of(db))]
    assert run_sync(db, example).fast_path


def test_history_row_with_another_content_hash_is_not_up_to_date(
    tmp_path: Path, example: Registry
) -> None:
    db = tmp_path / "user.db"
    run_sync(db, example)
    execute_script(db, "UPDATE schema_version SET content_hash = 'sha256:another-1.2.0';")

    verified = run_sync(db, example, apply=False)
    result = run_sync(db, example)

    assert (verified.status, verified.fast_path) == ("out_of_date", False)
    assert (result.status, result.fast_path, result.recorded) == ("applied", False, ("1.2.0",))
    assert [r.content_hash for r in history_of(db)] == [
        "sha256:another-1.2.0",
        example.current.content_hash,
    ]
    assert run_sync(db, example).fast_path


def _sync_concurrently(db_path: Path, registry: Registry, workers: int) -> list[SyncResult]:
    """Several sign-ins at once: each thread opens its own connection, then all sync."""
    start = threading.Barrier(workers)
    results: list[SyncResult] = []
    errors: list[BaseException] = []

    def one_sync() -> None:
        try:
            start.wait()
            db = SqliteDatabase.open(db_path)
            try:
                results.append(drive(sync(db, registry)))
            finally:
                db.close()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=one_sync) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results


def test_concurrent_syncs_of_one_database_serialise_and_record_once(
    tmp_path: Path, example: Registry
) -> None:
    db = at_version(tmp_path / "user.db", example, "1.0.0")
    execute_script(db, TRADING_ROWS)

    results = _sync_concurrently(db, example, workers=8)

    assert sorted(r.status for r in results) == ["applied"] + ["up_to_date"] * 7
    assert versions_of(db) == ["1.0.0", "1.1.0", "1.2.0"]
    assert query(db, "SELECT count(*) FROM trades WHERE updated_at IS NULL") == [(0,)]


def test_concurrent_provisioning_of_new_files_records_once(
    tmp_path: Path, example: Registry
) -> None:
    """Also the first opens racing to switch a new file to WAL (which once failed at random)."""
    for round_ in range(12):
        db = tmp_path / f"user{round_}.db"

        results = _sync_concurrently(db, example, workers=6)

        assert sorted(r.status for r in results) == ["applied"] + ["up_to_date"] * 5
        assert versions_of(db) == ["1.2.0"]


def test_opening_waits_for_a_writer_before_switching_a_new_file_to_wal(tmp_path: Path) -> None:
    """SQLite refuses the switch to WAL at once (no busy handler) while another connection
    holds the write lock; opening must wait for it instead of failing "database is locked".
    The file is new: the other connection's first transaction has not written it yet."""
    path = tmp_path / "user.db"
    with closing(sqlite3.connect(path, isolation_level=None, check_same_thread=False)) as writer:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("CREATE TABLE t (a)")
        writer.execute("INSERT INTO t VALUES (1)")
        assert path.stat().st_size == 0
        release = threading.Timer(0.1, writer.execute, ("COMMIT",))
        release.start()
        try:
            with closing(connect(path)) as conn:
                mode = conn.execute("PRAGMA journal_mode").fetchone()
                rows = conn.execute("SELECT a FROM t").fetchall()
        finally:
            release.join()

    assert (mode, rows) == (("wal",), [(1,)])


def test_a_new_file_is_switched_to_wal_and_left_at_synchronous_normal(tmp_path: Path) -> None:
    """The switch itself runs at synchronous = OFF (the file holds no row yet); the
    connection is handed back at NORMAL, what every transaction uses."""
    with closing(connect(tmp_path / "user.db")) as conn:
        settings = (
            conn.execute("PRAGMA journal_mode").fetchone(),
            conn.execute("PRAGMA synchronous").fetchone(),
        )

    assert settings == (("wal",), (1,))


def test_an_existing_empty_file_is_switched_to_wal_on_open(tmp_path: Path) -> None:
    """A file a power loss left empty (its header was never written back) is switched
    again by the next open, even one that may not create the file."""
    path = tmp_path / "user.db"
    path.touch()

    with closing(connect(path, create=False)) as conn:
        mode = conn.execute("PRAGMA journal_mode").fetchone()

    assert mode == ("wal",)
    assert path.stat().st_size > 0


def test_verify_writes_nothing_and_lists_what_sync_would_run(
    tmp_path: Path, example: Registry
) -> None:
    db = at_version(tmp_path / "user.db", example, "1.0.0")
    execute_script(db, TRADING_ROWS)
    before = snapshot(db)

    verified = run_sync(db, example, apply=False)
    after_verify = snapshot(db)
    applied = run_sync(db, example)

    assert after_verify == before
    assert (verified.status, verified.from_version, verified.recorded) == (
        "out_of_date",
        "1.0.0",
        (),
    )
    assert verified.statements + example.current.migration == applied.statements
    assert described(verified) == described(applied)


def test_verify_of_a_new_database_creates_nothing(tmp_path: Path, example: Registry) -> None:
    db = tmp_path / "user.db"

    verified = run_sync(db, example, apply=False)

    assert (verified.status, verified.from_version) == ("out_of_date", None)
    assert len(verified.statements) == 30
    assert query(db, "SELECT count(*) FROM sqlite_schema") == [(0,)]


def test_missing_optional_table_is_a_warning_when_verifying_and_created_when_syncing(
    tmp_path: Path, example: Registry
) -> None:
    db = tmp_path / "user.db"
    run_sync(db, example)
    execute_script(db, "DROP TABLE rate_limit_violations;")

    verified = run_sync(db, example, apply=False)
    result = run_sync(db, example)

    assert (verified.status, verified.warnings) == (
        "up_to_date",
        (
            "optional: create table rate_limit_violations (5 columns)",
            "optional: create index idx_rate_limit_violations_occurred_at on rate_limit_violations",
        ),
    )
    assert result.status == "applied"
    assert schema_of(db).table("rate_limit_violations") is not None


def _rebuild_registry(tmp_path: Path, v2: str, migration: str) -> tuple[Registry, Path]:
    registry = make_registry(
        tmp_path / "registry", V("1.0.0", REBUILD_V1), V("1.1.0", v2, migration)
    )
    db = at_version(tmp_path / "user.db", registry, "1.0.0")
    execute_script(
        db,
        "INSERT INTO parent VALUES (1, 'a'), (2, 'b');"
        "INSERT INTO child (parent_id, amount) VALUES (1, 10), (1, 20), (2, 30);",
    )
    return registry, db


@pytest.mark.parametrize(("v2", "migration", "children"), REBUILDS, ids=["child", "parent"])
def test_migration_rebuilding_a_table_resolves_its_drift_and_keeps_every_row(
    tmp_path: Path, v2: str, migration: str, children: list[tuple[object, ...]]
) -> None:
    registry, db = _rebuild_registry(tmp_path, v2, migration)

    result = run_sync(db, registry)

    assert (result.status, result.drift, result.recorded) == ("applied", (), ("1.1.0",))
    assert query(db, "SELECT id, parent_id, amount, typeof(amount) FROM child") == children
    assert query(db, "SELECT * FROM parent") == [(1, "a"), (2, "b")]
    assert schema_of(db).fingerprint() == registry.current.content_hash
    assert query(db, "PRAGMA foreign_key_check") == []
    assert query(db, "PRAGMA integrity_check") == [("ok",)]


def test_a_stale_mirror_that_hides_a_migration_still_gets_foreign_keys_off(
    tmp_path: Path,
) -> None:
    # The catalog believes the database is past the rebuild of `parent`; it is not. The
    # sync trusts the mirror to skip reading the history first, so its transaction must
    # find out and start again with foreign keys off (or DROP TABLE parent would cascade).
    v2, migration, children = REBUILDS[1]
    registry = make_registry(
        tmp_path / "registry",
        V("1.0.0", REBUILD_V1),
        V("1.1.0", v2, migration),
        V("1.2.0", v2 + "CREATE TABLE notes (id INTEGER PRIMARY KEY);"),
    )
    db = at_version(tmp_path / "user.db", registry, "1.0.0")
    execute_script(
        db,
        "INSERT INTO parent VALUES (1, 'a'), (2, 'b');"
        "INSERT INTO child (parent_id, amount) VALUES (1, 10), (1, 20), (2, 30);",
    )
    stale = Stamp(version="1.1.0", content_hash=registry.versions[1].content_hash, cookie=0)

    result = run_sync(db, registry, known=stale)

    assert (result.status, result.from_version, result.recorded) == (
        "applied",
        "1.0.0",
        ("1.1.0", "1.2.0"),
    )
    assert query(db, "SELECT id, parent_id, amount, typeof(amount) FROM child") == children
    assert query(db, "PRAGMA foreign_key_check") == []


def test_foreign_keys_are_back_on_after_a_sync_that_ran_migrations(tmp_path: Path) -> None:
    registry, db_path = _rebuild_registry(tmp_path, *REBUILDS[1][:2])
    db = SqliteDatabase.open(db_path)
    try:
        drive(sync(db, registry))
        enforced = db.conn.execute("PRAGMA foreign_keys").fetchone()
    finally:
        db.close()

    assert enforced == (1,)


def test_new_database_adopts_the_target_without_running_migrations(tmp_path: Path) -> None:
    registry = make_registry(
        tmp_path / "registry",
        V("1.0.0", "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT);"),
        V(
            "1.1.0",
            "CREATE TABLE t (id INTEGER PRIMARY KEY, b TEXT);",
            migration="UPDATE t SET b = a; ALTER TABLE t DROP COLUMN a;",
        ),
    )
    new = tmp_path / "new.db"
    old = at_version(tmp_path / "old.db", registry, "1.0.0")
    execute_script(old, "INSERT INTO t (a) VALUES ('kept');")

    provisioned = run_sync(new, registry)
    upgraded = run_sync(old, registry)

    assert provisioned.status == upgraded.status == "applied"
    assert provisioned.statements == ("CREATE TABLE t (id INTEGER PRIMARY KEY, b TEXT)",)
    assert upgraded.statements == (
        'ALTER TABLE "t" ADD COLUMN b TEXT',
        "UPDATE t SET b = a;",
        "ALTER TABLE t DROP COLUMN a;",
    )
    assert query(old, "SELECT * FROM t") == [(1, "kept")]


@pytest.mark.parametrize(
    ("migration", "error"),
    [
        ("UPDATE nowhere SET x = 1;", "no such table: nowhere"),
        (
            "INSERT INTO child (parent_id, amount) VALUES (99, 1);",
            r"1 row\(s\) of child point at missing parent rows",
        ),
        # Foreign keys are off while scripts run: ON DELETE CASCADE does not fire either.
        ("DELETE FROM parent WHERE id = 2;", r"1 row\(s\) of child point at missing parent rows"),
    ],
    ids=["does-not-compile", "inserts-an-orphan", "deletes-a-parent"],
)
def test_failing_migration_leaves_the_database_unchanged(
    tmp_path: Path, migration: str, error: str
) -> None:
    registry, db = _rebuild_registry(tmp_path, REBUILD_V1 + "CREATE TABLE extra (a);", migration)
    before = snapshot(db)

    with pytest.raises(Exception, match=error):
        run_sync(db, registry)

    assert snapshot(db) == before
    assert versions_of(db) == ["1.0.0"]


def test_foreign_key_violations_from_before_the_migration_do_not_block_it(
    tmp_path: Path,
) -> None:
    registry, db = _rebuild_registry(tmp_path, *REBUILDS[1][:2])
    with closing(sqlite3.connect(db)) as conn:  # foreign keys off: how orphans get made
        conn.execute("INSERT INTO child (parent_id, amount) VALUES (42, 0)")
        conn.commit()

    result = run_sync(db, registry)

    assert result.status == "applied"
    assert query(db, "PRAGMA foreign_key_check") == [("child", 4, "parent", 0)]


@pytest.mark.parametrize("apply", [True, False], ids=["sync", "verify"])
def test_database_newer_than_the_target_is_refused(
    tmp_path: Path, example: Registry, *, apply: bool
) -> None:
    db = tmp_path / "user.db"
    run_sync(db, example)
    before = snapshot(db)

    with pytest.raises(NewerDatabaseError) as caught:
        run_sync(db, example, target="1.1.0", apply=apply)

    assert str(caught.value) == (
        "the database is at 1.2.0, newer than 1.1.0: tenantdb does not downgrade"
    )
    assert snapshot(db) == before


def test_a_database_at_a_version_the_registry_lacks_is_ahead_when_it_holds_everything(
    tmp_path: Path,
) -> None:
    """A service rolled back to 1.0.0 meets a database its newer release took to 1.1.0: it
    is served as it is (nothing written); one lacking what 1.0.0 expects is refused."""
    new = make_registry(
        tmp_path / "new",
        V("1.0.0", "CREATE TABLE t (a)"),
        V("1.1.0", "CREATE TABLE t (a); CREATE TABLE u (b)"),
    )
    old = make_registry(tmp_path / "old", V("1.0.0", "CREATE TABLE t (a)"))
    db = tmp_path / "user.db"
    run_sync(db, new)
    before = snapshot(db)

    result = run_sync(db, old)

    assert (result.status, result.from_version, result.to_version) == ("ahead", "1.1.0", "1.0.0")
    assert result.up_to_date
    assert result.warnings == (
        "the database is at 1.1.0, newer than this service's 1.0.0, and holds everything "
        "1.0.0 expects: served as it is",
    )
    assert len(result.extras) == 1  # table u, kept
    assert snapshot(db) == before
    execute_script(db, "DROP TABLE t")
    with pytest.raises(NewerDatabaseError, match="create table t"):
        run_sync(db, old)


def test_unknown_target_version_names_the_known_ones(tmp_path: Path, example: Registry) -> None:
    with pytest.raises(SyncError) as caught:
        run_sync(tmp_path / "user.db", example, target="9.9.9")

    assert str(caught.value) == "version 9.9.9 is not in the registry (it has 1.0.0, 1.1.0, 1.2.0)"


def test_sync_context_is_recorded_with_the_row(tmp_path: Path, example: Registry) -> None:
    db = SqliteDatabase.open(tmp_path / "user.db")
    try:
        drive(
            sync(
                db,
                example,
                context=SyncContext(trigger="sign-in", environment="prod", notes="first login"),
            )
        )
    finally:
        db.close()

    [row] = history_of(tmp_path / "user.db")
    assert (row.trigger, row.environment, row.notes) == ("sign-in", "prod", "first login")


def _fill(table_sql: str) -> str:
    """An INSERT giving every NOT NULL column without a default a plausible value."""
    schema = compile_schema(table_sql)
    [table] = schema.tables
    columns = [c for c in table.columns if c.not_null and c.default is None and not c.generated]
    values = {"INTEGER": "1", "REAL": "1.5"}
    names = ", ".join(c.name for c in columns)
    literals = ", ".join(values.get(c.type.upper(), "'2026-01-01'") for c in columns)
    return f"INSERT INTO {table.name} ({names}) VALUES ({literals})"


def test_seed000_provisions_27_tables_with_working_foreign_keys(tmp_path: Path) -> None:
    registry = load_registry(SEED000)
    db = tmp_path / "user.db"

    result = run_sync(db, registry)
    ordered = dependency_order(list(registry.current.schema.tables))
    execute_script(db, ";\n".join(_fill(t.sql) for t in ordered) + ";")

    created = [line.split(" ")[2] for line in described(result) if line.startswith("create table")]
    assert result.status == "applied"
    assert created == [t.name for t in ordered]
    assert len(created) == 27
    for position, table in enumerate(ordered):
        assert table.references() <= {t.name for t in ordered[:position]}
    assert schema_of(db).fingerprint() == registry.current.content_hash
    assert query(db, "PRAGMA foreign_key_check") == []
    assert all(
        count == (1,)
        for count in (query(db, f'SELECT count(*) FROM "{t.name}"')[0] for t in ordered)
    )
