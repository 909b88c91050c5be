"""Backups before schema changes and restore, on real databases of both backends."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture

from schema_registry import Row, SqliteDatabase, connect
from service.backends.base import DatabaseMissing
from service.backends.local import LocalBackend
from service.backends.sqld import SqldBackend
from service.backends.sqld.restore import drop_statements
from service.errors import BadRequest, Unavailable
from service.operations import backups
from service.operations.backups import inspect_backup, list_backups, restore_backup
from service.status import status_of
from service.tenants import SyncRequest, TenantService, remove_export
from service.wiring import open_runtime
from tests.api.conftest import registry_upto
from tests.cli.conftest import Operator

ACCOUNTS = "SELECT id, name FROM accounts ORDER BY id"
TRADES = "SELECT id, symbol, quantity FROM trades ORDER BY id"
HISTORY = "SELECT version FROM schema_version ORDER BY id"
LINKS = (
    "SELECT 'tag', trade_id, tag_id FROM trade_tags UNION ALL "
    "SELECT 'note', trade_id, account_id FROM journal_entries ORDER BY 1, 2"
)


async def run_sql(tenants: TenantService, user_id: str, *statements: str) -> list[list[Row]]:
    """SQL on a tenant's database, beside the service (the way an app writes to it)."""
    record = await tenants.catalog.get(user_id)
    assert record is not None
    pairs = [(sql, ()) for sql in statements]
    if isinstance(tenants.backend, SqldBackend):
        return await tenants.backend.database(record.location).fetch_many(pairs)
    assert isinstance(tenants.backend, LocalBackend)
    conn = connect(tenants.backend.path(record.location), create=False)
    try:
        return await SqliteDatabase(conn).fetch_many(pairs)
    finally:
        conn.close()


def sql(operator: Operator, user_id: str, *statements: str) -> list[list[Row]]:
    async def work(tenants: TenantService) -> list[list[Row]]:
        return await run_sql(tenants, user_id, *statements)

    result: list[list[Row]] = operator.with_tenants(work)
    return result


def sync(operator: Operator, user_id: str, **settings: Any) -> str:
    """Sync one tenant to the current version of the (overridden) registry."""

    async def work(tenants: TenantService) -> str:
        outcome = await tenants.sync(SyncRequest(user_id=user_id, trigger="cli"))
        assert outcome.result is not None
        return outcome.result.to_version

    version: str = operator.with_tenants(work, **settings)
    return version


def backed_up(operator: Operator, user_id: str) -> list[tuple[str | None, str]]:
    """(from, to) of each backup, newest first."""
    return [(b.from_version, b.to_version) for b in list_backups(operator.settings, user_id)]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("migration", [("1.1.0", "1.2.0")]),
        ("always", [("1.1.0", "1.2.0"), ("1.0.0", "1.1.0")]),
        ("never", []),
    ],
    ids=["migration-only-before-1.2.0-script", "always", "never"],
)
def test_policy_decides_which_upgrades_are_backed_up(
    operator: Operator, tmp_path: Path, policy: str, expected: list[tuple[str, str]]
) -> None:
    operator.values["backup_policy"] = policy
    operator.provision("ann", registry=registry_upto(tmp_path, "1.0.0"))
    # 1.1.0 is additive only; 1.2.0 carries a migration script.
    assert sync(operator, "ann", registry=str(registry_upto(tmp_path, "1.1.0"))) == "1.1.0"
    assert sync(operator, "ann") == "1.2.0"
    assert backed_up(operator, "ann") == expected


def test_a_backup_is_a_consistent_copy_from_before_the_upgrade(
    operator: Operator, tmp_path: Path
) -> None:
    operator.provision("bea", registry=registry_upto(tmp_path, "1.1.0"))
    sql(operator, "bea", "INSERT INTO accounts (name) VALUES ('main')")
    sync(operator, "bea")
    [backup] = list_backups(operator.settings, "bea")
    assert Path(backup.path).parent == operator.settings.data_path / "backups" / "bea"
    assert inspect_backup(Path(backup.path)).version == "1.1.0"
    with sqlite3.connect(backup.path) as conn:
        assert conn.execute(ACCOUNTS).fetchall() == [(1, "main")]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # one file


def test_retention_keeps_the_newest_backups(operator: Operator, tmp_path: Path) -> None:
    operator.values.update(backup_policy="always", backup_keep=1)
    operator.provision("cai", registry=registry_upto(tmp_path, "1.0.0"))
    sync(operator, "cai", registry=str(registry_upto(tmp_path, "1.1.0")))
    sync(operator, "cai")
    # A change beside the service is no new version: the next sync backs up nothing.
    sql(operator, "cai", "CREATE TABLE scratch (x)")
    sync(operator, "cai")
    assert backed_up(operator, "cai") == [("1.1.0", "1.2.0")]
    folder = operator.settings.data_path / "backups" / "cai"
    assert len(list(folder.iterdir())) == 1  # no partial files left behind


def test_policy_always_backs_up_before_a_repair_at_the_same_version(operator: Operator) -> None:
    """A repair changes the database although its version stays: `always` copies it first;
    a sync that finds it current, or only an extra table beside the registry, copies
    nothing."""
    operator.values["backup_policy"] = "always"
    operator.provision("ida")
    sql(operator, "ida", "DROP INDEX idx_trades_symbol")
    sync(operator, "ida")  # makes the index again
    sql(operator, "ida", "CREATE TABLE scratch (x)")
    sync(operator, "ida")  # an extra table is kept, nothing to repair
    sync(operator, "ida")  # current

    assert backed_up(operator, "ida") == [("1.2.0", "1.2.0")]


def test_backup_dir_setting_and_log_event(
    operator: Operator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    capture = LogCapture()
    monkeypatch.setattr(
        backups,
        "log",
        structlog.wrap_logger(
            None,
            processors=[capture],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        ),
    )
    operator.values["backup_dir"] = str(tmp_path / "elsewhere")
    operator.provision("dan", registry=registry_upto(tmp_path, "1.1.0"))
    sync(operator, "dan")
    [backup] = list_backups(operator.settings, "dan")
    assert Path(backup.path).parent == tmp_path / "elsewhere" / "dan"
    assert capture.entries == [
        {
            "event": "backup.created",
            "log_level": "info",
            "user_id": "dan",
            "from_version": "1.1.0",
            "to_version": "1.2.0",
            "path": backup.path,
            "size_bytes": backup.size_bytes,
            "pruned": 0,
        }
    ]


def test_a_failed_backup_stops_the_upgrade(operator: Operator, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the backup folder should be")
    operator.values["backup_dir"] = str(blocker)
    operator.provision("eve", registry=registry_upto(tmp_path, "1.1.0"))
    with pytest.raises(Unavailable, match=r"the backup of eve before 1\.2\.0 failed"):
        sync(operator, "eve")
    assert sql(operator, "eve", HISTORY) == [[("1.1.0",)]]


def test_a_lost_database_is_never_provisioned_again_in_silence(operator: Operator) -> None:
    """The catalog knows kim, so kim had data: a sign-in says the database is missing and
    what to do, creates nothing, and takes no backup of nothing."""
    operator.values["backup_policy"] = "always"
    operator.provision("kim")

    async def scenario(tenants: TenantService) -> tuple[str, bool]:
        record = await tenants.catalog.get("kim")
        assert record is not None
        await tenants.backend.delete(record.location)
        with pytest.raises(DatabaseMissing) as caught:
            await tenants.initialize("kim", None)
        return caught.value.message, await tenants.backend.exists(record.location)

    message, recreated = operator.with_tenants(scenario)
    assert "restore a backup" in message
    assert "DELETE /api/user/kim" in message
    assert recreated is False
    assert list_backups(operator.settings, "kim") == []


def test_restore_brings_back_rows_and_version(operator: Operator, tmp_path: Path) -> None:
    operator.provision("fay", registry=registry_upto(tmp_path, "1.1.0"))
    sql(
        operator,
        "fay",
        "INSERT INTO accounts (name) VALUES ('main')",
        "INSERT INTO trades (account_id, symbol, side, quantity, price) "
        "VALUES (1, 'AAPL', 'buy', 10, 150), (1, 'MSFT', 'sell', 5, 300)",
        # Rows in tables that sort before their parents: sqld reloads them in name order.
        "INSERT INTO tags (name) VALUES ('swing')",
        "INSERT INTO trade_tags VALUES (1, 1), (2, 1)",
        "INSERT INTO journal_entries (account_id, trade_id, title) VALUES (1, 2, 'why')",
    )
    sync(operator, "fay")  # to 1.2.0, backed up before its migration
    [backup] = list_backups(operator.settings, "fay")
    sql(
        operator,
        "fay",
        "DELETE FROM trades WHERE symbol = 'AAPL'",
        "UPDATE accounts SET name = 'renamed'",
    )

    async def restore(tenants: TenantService) -> Any:
        await restore_backup(tenants, "fay", Path(backup.path))
        rows = await run_sql(tenants, "fay", ACCOUNTS, TRADES, LINKS, HISTORY)
        return rows, await tenants.catalog.get("fay", fresh=True), await tenants.catalog.audit()

    rows, record, audit = operator.with_tenants(restore)
    assert rows == [
        [(1, "main")],
        [(1, "AAPL", 10.0), (2, "MSFT", 5.0)],
        [("note", 2, 1), ("tag", 1, 1), ("tag", 2, 1)],
        [("1.1.0",)],
    ]
    assert (record.schema_version, status_of(record.status, record.schema_version, "1.2.0")) == (
        "1.1.0",
        "out_of_date",
    )
    assert (audit[0].trigger, audit[0].from_version, audit[0].to_version) == (
        "restore",
        "1.2.0",
        "1.1.0",
    )
    # The catalog knows it is at 1.1.0 again: the next upgrade backs it up once more.
    assert sync(operator, "fay") == "1.2.0"
    assert backed_up(operator, "fay") == [("1.1.0", "1.2.0"), ("1.1.0", "1.2.0")]
    assert sql(operator, "fay", HISTORY) == [[("1.1.0",), ("1.2.0",)]]


def test_restore_from_an_export_at_the_current_version_rearms_the_fast_path(
    operator: Operator,
) -> None:
    operator.provision("gus")
    sql(operator, "gus", "INSERT INTO accounts (name) VALUES ('kept')")

    async def scenario(tenants: TenantService) -> Any:
        export = await tenants.export("gus")
        try:
            await run_sql(tenants, "gus", "DELETE FROM accounts")
            await restore_backup(tenants, "gus", export)
        finally:
            await remove_export(export)
        outcome = await tenants.initialize("gus", None)
        return await run_sql(tenants, "gus", ACCOUNTS), outcome

    rows, outcome = operator.with_tenants(scenario)
    assert rows == [[(1, "kept")]]
    assert outcome.result is None  # the fast path: current, nothing re-read
    record = outcome.record
    assert (record.schema_version, status_of(record.status, record.schema_version, "1.2.0")) == (
        "1.2.0",
        "current",
    )


def test_restore_brings_back_a_lost_database(operator: Operator) -> None:
    operator.provision("ivy")
    sql(operator, "ivy", "INSERT INTO accounts (name) VALUES ('saved')")

    async def scenario(tenants: TenantService) -> Any:
        export = await tenants.export("ivy")
        try:
            record = await tenants.catalog.get("ivy")
            assert record is not None
            assert await tenants.backend.delete(record.location)  # the file or namespace is gone
            await restore_backup(tenants, "ivy", export)
        finally:
            await remove_export(export)
        return await run_sql(tenants, "ivy", ACCOUNTS, HISTORY)

    assert operator.with_tenants(scenario) == [[(1, "saved")], [("1.2.0",)]]


@pytest.mark.parametrize(
    ("objects", "references", "expected"),
    [
        (
            [("table", "a"), ("view", "v"), ("table", "b"), ("trigger", "t"), ("table", "c")],
            [("b", "a"), ("c", "B"), ("c", "c")],
            ["DROP TRIGGER", "t", "DROP VIEW", "v", "c", "b", "a"],
        ),
        (
            [("table", "x"), ("table", "y"), ("table", "z")],
            [("x", "y"), ("y", "x"), ("x", "z")],
            ["x", "y", "z"],
        ),
    ],
    ids=["children-first-case-insensitive", "cycle-in-name-order"],
)
def test_drop_order_on_sqld(
    objects: list[tuple[str, str]], references: list[tuple[str, str]], expected: list[str]
) -> None:
    words = []
    for statement in drop_statements(objects, references):
        kind, name = statement.rsplit(" IF EXISTS ", 1)
        if kind != "DROP TABLE":
            words.append(kind)
        words.append(name.strip('"'))
    assert words == expected


def _not_sqlite(path: Path) -> None:
    path.write_bytes(b"this is not a database, just text\n" * 200)


def _no_history(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    conn.close()


def _unknown_version(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE schema_version (id INTEGER PRIMARY KEY, version TEXT, "
            "description TEXT, created_at TEXT, applied_at TEXT, content_hash TEXT, "
            "changes_applied INTEGER, schema_cookie INTEGER, environment TEXT, trigger TEXT, "
            "notes TEXT)"
        )
        conn.execute(
            "INSERT INTO schema_version VALUES (1, '9.0.0', '', '', '', 'h', 0, 1, NULL, "
            "NULL, NULL)"
        )
    conn.close()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_not_sqlite, "is not a SQLite database"),
        (_no_history, "has no schema_version rows, so it is not a tenantdb database"),
        (_unknown_version, "is at version 9.0.0, which the registry .* does not have"),
        (None, "no such file"),
    ],
    ids=["not-sqlite", "no-history", "unknown-version", "missing"],
)
def test_restore_refuses_a_file_that_is_not_a_tenant_backup(
    operator: Operator, tmp_path: Path, make: Callable[[Path], None] | None, message: str
) -> None:
    operator.provision("hal")
    sql(operator, "hal", "INSERT INTO accounts (name) VALUES ('untouched')")
    bad = tmp_path / "bad.db"
    if make is not None:
        make(bad)

    async def restore(tenants: TenantService) -> None:
        await restore_backup(tenants, "hal", bad)

    with pytest.raises(BadRequest, match=message):
        operator.with_tenants(restore)
    assert sql(operator, "hal", ACCOUNTS) == [[(1, "untouched")]]


def test_a_backup_override_replaces_the_configured_policy(operator: Operator) -> None:
    async def policies() -> list[str]:
        seen: list[str] = []
        for override in ("always", None, "never"):
            async with open_runtime(operator.settings, backup=override) as tenants:
                assert isinstance(tenants.safeguard, backups.Backups)
                seen.append(tenants.safeguard.policy)
        return seen

    assert operator.settings.backup_policy == "migration"
    assert asyncio.run(policies()) == ["always", "migration", "never"]


def test_list_backups_of_a_tenant_without_any(operator: Operator) -> None:
    assert list_backups(operator.settings, "nobody") == []
    with pytest.raises(BadRequest):
        list_backups(operator.settings, "../etc")


def test_deleting_an_account_removes_its_backups(operator: Operator, tmp_path: Path) -> None:
    operator.provision("gil", registry=registry_upto(tmp_path, "1.1.0"))
    sync(operator, "gil")
    assert len(backed_up(operator, "gil")) == 1

    async def delete(tenants: TenantService) -> None:
        await tenants.delete("gil")

    operator.with_tenants(delete)
    assert backed_up(operator, "gil") == []
    assert not (operator.settings.data_path / "backups" / "gil").exists()


def test_a_sync_that_fails_marks_the_tenant_failed_in_the_catalog(
    operator: Operator, tmp_path: Path
) -> None:
    operator.values["backup_policy"] = "never"
    operator.provision("hal", registry=registry_upto(tmp_path, "1.1.0"))
    broken = registry_upto(tmp_path, "1.2.0")
    (broken / "1.2.0.migrate.sql").write_text("UPDATE no_such_table SET x = 1;\n")
    with pytest.raises(Exception, match="no_such_table"):
        sync(operator, "hal", registry=str(broken))

    async def status(tenants: TenantService) -> tuple[str | None, str]:
        record = await tenants.catalog.get("hal", fresh=True)
        assert record is not None
        return record.schema_version, record.status

    assert operator.with_tenants(status) == ("1.1.0", "failed")
