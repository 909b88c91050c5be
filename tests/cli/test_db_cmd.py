"""`tenantdb db inspect|diff|sync|restore` against real databases on both backends."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from service.tenants import TenantService, remove_export
from tests.cli.clikit import masked, notes_registry, record_of, run_sql
from tests.cli.conftest import Operator

DRY_RUN = """\
alice: out_of_date, 1.0.0 -> 1.1.0 (dry run: nothing was applied)
-- 3 statement(s) to run, 0 drift item(s)
-- create table tags (2 columns)
CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
-- create view note_count
CREATE VIEW note_count AS SELECT count(*) AS n FROM notes;
-- create trigger notes_not_empty on notes
CREATE TRIGGER notes_not_empty BEFORE INSERT ON notes WHEN NEW.body = ''
BEGIN SELECT RAISE(ABORT, 'empty note'); END;
"""


@pytest.fixture
def notes(operator: Operator, tmp_path: Path) -> Operator:
    """alice provisioned at 1.0.0 of the notes registry, whose current version is 1.1.0."""
    old = notes_registry(tmp_path / "registry-1.0.0", upto="1.0.0")
    operator.values["registry"] = str(notes_registry(tmp_path / "registry"))
    operator.provision("alice", registry=old)
    return operator


def history_versions(operator: Operator, user: str) -> list[tuple[str, str]]:
    rows = run_sql(operator, user, "SELECT version, trigger FROM schema_version ORDER BY id")[0]
    return [(str(version), str(trigger)) for version, trigger in rows]


def test_inspect_shows_record_history_and_schema(notes: Operator) -> None:
    run_sql(notes, "alice", "INSERT INTO notes (body) VALUES ('a'), ('b')")
    location = record_of(notes, "alice").location

    code, out, err = notes.cli("db", "inspect", "alice")

    assert (code, err) == (0, "")
    assert masked(out) == (
        "tenant alice\n"
        f"  location        {location}\n"
        "  created at      <time>\n"
        "  schema version  1.0.0 (registry: 1.1.0, behind)\n"
        # judged against the registry served now, never a status stored before it changed
        "  status          out_of_date, 0 drift item(s), last sync <time>\n"
        "history: 1 row(s)\n"
        "  1.0.0  applied <time>  sign-in  2 change(s)\n"
        "tables: 1\n"
        "  name   columns  rows  indexes  triggers\n"
        "  notes        2     2        1         0\n"
        "views: 0\n"
    )


def test_inspect_json(notes: Operator) -> None:
    notes.cli("db", "sync", "alice")
    record = record_of(notes, "alice")

    code, out, _ = notes.cli("db", "inspect", "alice", "--json")

    assert code == 0
    body = json.loads(out)
    assert body["record"] == {
        "user_id": "alice",
        "email": None,
        "location": record.location,
        "created_at": record.created_at,
        "schema_version": "1.1.0",
        "content_hash": record.content_hash,
        "schema_cookie": record.schema_cookie,
        "last_sync_at": record.last_sync_at,
        "status": "current",
        "drift_count": 0,
    }
    assert body["current_version"] == "1.1.0"
    assert [(h["version"], h["trigger"]) for h in body["history"]] == [
        ("1.0.0", "sign-in"),
        ("1.1.0", "cli"),
    ]
    assert body["tables"] == [
        {
            "name": "notes",
            "columns": 2,
            "rows": 0,
            "indexes": ["notes_by_body"],
            "triggers": ["notes_not_empty"],
        },
        {"name": "tags", "columns": 2, "rows": 0, "indexes": [], "triggers": []},
    ]
    assert body["views"] == ["note_count"]


@pytest.mark.parametrize("command", ["inspect", "diff", "sync"])
def test_a_user_without_a_database_fails(notes: Operator, command: str) -> None:
    code, out, err = notes.cli("db", command, "bob")

    assert (code, out, err) == (1, "", "tenantdb: no database for user bob\n")


def test_diff_is_a_dry_run(notes: Operator) -> None:
    code, out, err = notes.cli("db", "diff", "alice")
    again = notes.cli("db", "sync", "alice", "--dry-run")

    assert (code, out, err) == (0, DRY_RUN, "")
    assert again == (0, DRY_RUN, "")
    assert history_versions(notes, "alice") == [("1.0.0", "sign-in")]
    assert run_sql(notes, "alice", "SELECT name FROM sqlite_schema WHERE name = 'tags'") == [[]]


def test_diff_json(notes: Operator) -> None:
    code, out, _ = notes.cli("db", "diff", "alice", "--json")

    assert code == 0
    body = json.loads(out)
    result = body.pop("result")
    assert body == {"user_id": "alice"}
    assert {k: result[k] for k in ("status", "from_version", "to_version", "drift")} == {
        "status": "out_of_date",
        "from_version": "1.0.0",
        "to_version": "1.1.0",
        "drift": [],
    }
    assert result["applied"] == [
        "create table tags (2 columns)",
        "create view note_count",
        "create trigger notes_not_empty on notes",
    ]


def test_sync_applies_and_is_audited(notes: Operator) -> None:
    code, out, err = notes.cli("db", "sync", "alice")
    again = notes.cli("db", "sync", "alice")

    assert (code, err) == (0, "")
    assert out == (
        "alice: applied 3 change(s), 1.0.0 -> 1.1.0\n"
        "  - create table tags (2 columns)\n"
        "  - create view note_count\n"
        "  - create trigger notes_not_empty on notes\n"
    )
    assert again == (0, "alice: up to date at 1.1.0; nothing to do\n", "")
    assert history_versions(notes, "alice") == [("1.0.0", "sign-in"), ("1.1.0", "cli")]

    async def audit(tenants: TenantService) -> list[tuple[object, ...]]:
        entries = await tenants.catalog.audit(user_id="alice")  # newest first
        return [(e.trigger, e.actor, e.from_version, e.to_version) for e in entries]

    assert notes.with_tenants(audit) == [
        ("cli", getpass.getuser(), "1.0.0", "1.1.0"),
        ("sign-in", None, None, "1.0.0"),
    ]


def test_sync_refuses_a_drifted_database(notes: Operator) -> None:
    run_sql(notes, "alice", "CREATE TABLE tags (id INTEGER PRIMARY KEY, name INTEGER)")

    code, out, err = notes.cli("db", "sync", "alice")

    assert (code, err) == (1, "")
    assert out == (
        "alice: drifted; nothing was applied (2 drift item(s) block 1.1.0)\n"
        "-- DRIFT: column tags.name differs: expected TEXT NOT NULL, found INTEGER "
        "(not additive: needs a migration)\n"
        "-- DRIFT: table tags differs: missing UNIQUE (name) (not additive: needs a migration)\n"
    )
    assert history_versions(notes, "alice") == [("1.0.0", "sign-in")]
    assert record_of(notes, "alice").status == "drifted"


@pytest.mark.parametrize(
    ("target", "code", "message"),
    [
        ("9.9.9", 2, "version 9.9.9 is not in the registry (it has 1.0.0, 1.1.0)"),
        (
            "1.0.0",
            1,
            "alice: the database is at 1.1.0, newer than 1.0.0: tenantdb does not downgrade",
        ),
    ],
    ids=["unknown-version-is-bad-usage", "downgrade-fails"],
)
@pytest.mark.parametrize("command", ["sync", "diff"])
def test_sync_to_a_version_it_cannot_reach_fails(
    notes: Operator, command: str, target: str, code: int, message: str
) -> None:
    notes.cli("db", "sync", "alice")

    result = notes.cli("db", command, "alice", "--to", target)

    assert result == (code, "", f"tenantdb: {message}\n")


def test_restore_brings_back_the_backup(notes: Operator, tmp_path: Path) -> None:
    notes.cli("db", "sync", "alice")
    run_sql(notes, "alice", "INSERT INTO notes (body) VALUES ('kept')")

    async def export(tenants: TenantService) -> None:
        path = await tenants.export("alice")
        shutil.copyfile(path, tmp_path / "alice.db")
        await remove_export(path)

    notes.with_tenants(export)
    run_sql(notes, "alice", "INSERT INTO notes (body) VALUES ('later')")

    code, out, err = notes.cli("db", "restore", "alice", str(tmp_path / "alice.db"), "--yes")

    assert (code, err) == (0, "")
    assert out == f"alice: restored from {tmp_path / 'alice.db'}; now at 1.1.0, current\n"
    assert run_sql(notes, "alice", "SELECT body FROM notes ORDER BY id") == [[("kept",)]]


def test_restore_of_a_file_that_is_not_a_backup_fails(notes: Operator, tmp_path: Path) -> None:
    (tmp_path / "junk.db").write_text("not a database")

    code, out, err = notes.cli("db", "restore", "alice", str(tmp_path / "junk.db"), "--yes")

    assert (code, out) == (1, "")
    assert err.startswith(f"tenantdb: {tmp_path / 'junk.db'} is not a SQLite database")
    assert history_versions(notes, "alice") == [("1.0.0", "sign-in")]


def test_a_malformed_user_id_is_bad_usage(notes: Operator) -> None:
    code, _, err = notes.cli("db", "inspect", "../alice")

    assert code == 2
    assert "a user id is 1-64 characters of A-Z, a-z, 0-9, '_' or '-'" in err


def exported(operator: Operator, user: str, dest: Path) -> Path:
    async def export(tenants: TenantService) -> None:
        path = await tenants.export(user)
        shutil.copyfile(path, dest)
        await remove_export(path)

    operator.with_tenants(export)
    return dest


def test_restore_off_a_terminal_needs_yes(notes: Operator, tmp_path: Path) -> None:
    backup = exported(notes, "alice", tmp_path / "alice.db")
    run_sql(notes, "alice", "INSERT INTO notes (body) VALUES ('later')")

    code, out, err = notes.cli("db", "restore", "alice", str(backup))

    assert (code, out) == (2, "")
    assert err == "tenantdb: db restore replaces alice's live database: pass --yes to confirm\n"
    assert run_sql(notes, "alice", "SELECT body FROM notes") == [[("later",)]]


@pytest.mark.parametrize("backend_kind", ["local"])
@pytest.mark.parametrize(("answer", "code", "rows"), [("n", 1, [("later",)]), ("y", 0, [])])
def test_restore_on_a_terminal_asks_first(
    notes: Operator, tmp_path: Path, answer: str, code: int, rows: list[tuple[str]]
) -> None:
    backup = exported(notes, "alice", tmp_path / "alice.db")
    run_sql(notes, "alice", "INSERT INTO notes (body) VALUES ('later')")
    terminal, keyboard = os.openpty()  # stdin is a terminal: the person answers
    os.write(terminal, f"{answer}\n".encode())  # typed ahead, read at the question
    try:
        done = subprocess.run(
            [sys.executable, "-m", "service.cli", "db", "restore", "alice", str(backup)],
            env={**os.environ, **notes.env()},
            stdin=keyboard,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(keyboard)

    assert done.stderr.startswith(
        f"Replace alice's live database with {backup}? Rows written since that backup are "
        "lost. [y/N] "
    )
    assert done.returncode == code
    if code:
        assert done.stderr.endswith("tenantdb: alice: not restored\n")
    assert run_sql(notes, "alice", "SELECT body FROM notes") == [rows]


def test_sync_reports_the_migration_script_it_ran(notes: Operator, tmp_path: Path) -> None:
    notes.cli("db", "sync", "alice")  # to 1.1.0
    registry = Path(notes.values["registry"])
    (registry / "1.2.0.sql").write_text((registry / "1.1.0.sql").read_text())
    (registry / "1.2.0.migrate.sql").write_text(
        "UPDATE notes SET body = trim(body);\nDELETE FROM tags WHERE name = '';\n"
    )
    with (registry / "registry.toml").open("a") as toml:
        toml.write(
            '\n[[versions]]\nversion = "1.2.0"\ndescription = "Tidy notes"\n'
            'created_at = "2026-01-03T00:00:00Z"\nschema = "1.2.0.sql"\n'
            'migration = "1.2.0.migrate.sql"\n'
        )

    code, out, err = notes.cli("db", "sync", "alice")

    assert (code, err) == (0, "")
    assert out == (
        "alice: applied migration script of 1.2.0 (2 statement(s)), 1.1.0 -> 1.2.0\n"
        "  - migration script of 1.2.0 (2 statement(s))\n"
    )


def test_inspect_fits_100_columns_and_json_keeps_the_names(notes: Operator) -> None:
    long = "t_" + "x" * 70
    indexes = [f"{long}_by_col_{i}" for i in range(4)]
    run_sql(
        notes,
        "alice",
        f"CREATE TABLE {long} (id INTEGER PRIMARY KEY, col TEXT)",
        *(f"CREATE INDEX {name} ON {long} (col, id)" for name in indexes),
        *(f"CREATE VIEW {long}_view_{i} AS SELECT * FROM {long}" for i in range(3)),
    )

    code, out, _ = notes.cli("db", "inspect", "alice")
    _, as_json, _ = notes.cli("db", "inspect", "alice", "--json")

    assert code == 0
    lines = out.splitlines()
    assert [line for line in lines if len(line) > 100 and "location" not in line] == []
    assert f"  {long[:47]}...        2     0        4         0" in lines
    assert lines[-1] == "views: 3"
    body = json.loads(as_json)
    [table] = [t for t in body["tables"] if t["name"] == long]
    assert table["indexes"] == indexes
    assert len(body["views"]) == 3
