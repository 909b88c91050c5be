"""`tenantdb registry validate|new|diff`: on registry folders only, no backend."""

from __future__ import annotations

import json
import shutil
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schema_registry import load_registry
from tests.cli.clikit import NOTES_110, notes_registry
from tests.cli.conftest import Cli
from tests.conftest import EXAMPLE_REGISTRY


def hashes(folder: Path) -> dict[str, str]:
    return {v.version: v.content_hash for v in load_registry(folder).versions}


def test_validate_lists_versions_with_their_content_hashes(cli: Cli, tmp_path: Path) -> None:
    folder = notes_registry(tmp_path / "reg")
    h = hashes(folder)

    code, out, err = cli("registry", "validate", str(folder))

    assert (code, err) == (0, "")
    assert out == (
        f"registry {folder} is valid: 2 version(s), current 1.1.0\n"
        f"  1.0.0  {h['1.0.0']}  Notes (1 tables)\n"
        f"  1.1.0  {h['1.1.0']}  Tags, a guard and a count (2 tables)\n"
    )


def test_validate_defaults_to_the_configured_registry(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENANTDB_REGISTRY", str(EXAMPLE_REGISTRY))

    code, out, _ = cli("registry", "validate")

    assert code == 0
    assert out.splitlines()[0] == (
        f"registry {EXAMPLE_REGISTRY} is valid: 3 version(s), current 1.2.0"
    )
    assert out.splitlines()[3].endswith(
        "(10 tables; migration: 1 statement(s); optional: rate_limit_violations)"
    )


def test_validate_json(cli: Cli, tmp_path: Path) -> None:
    folder = notes_registry(tmp_path / "reg", upto="1.0.0")

    code, out, _ = cli("registry", "validate", str(folder), "--json")

    assert code == 0
    assert json.loads(out) == {
        "valid": True,
        "path": str(folder),
        "current": "1.0.0",
        "versions": [
            {
                "version": "1.0.0",
                "description": "Notes",
                "created_at": "2026-01-01T00:00:00Z",
                "content_hash": hashes(folder)["1.0.0"],
                "tables": 1,
                "migration_statements": 0,
                "optional": [],
            }
        ],
        "error": None,
    }


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (
            lambda folder: (folder / "1.1.0.sql").write_text("CREATE TABLE tags (id INTEGER);"),
            "1.1.0.sql (version 1.1.0) is not additive to 1.0.0: ",
        ),
        (lambda folder: (folder / "1.0.0.sql").unlink(), "1.0.0.sql (version 1.0.0): no such file"),
        (
            lambda folder: (folder / "1.1.0.sql").write_text("CREATE TABLE (;"),
            "1.1.0.sql (version 1.1.0): SQLite refused it: ",
        ),
        (lambda folder: (folder / "registry.toml").unlink(), "registry.toml: no such file"),
    ],
    ids=["not-additive", "missing-schema", "bad-sql", "no-toml"],
)
def test_validate_fails_with_the_loaders_message(
    cli: Cli, tmp_path: Path, breakage: Callable[[Path], object], message: str
) -> None:
    folder = notes_registry(tmp_path / "reg")
    breakage(folder)

    code, out, err = cli("registry", "validate", str(folder))

    assert (code, out) == (1, "")
    assert err.startswith(f"tenantdb: the registry {folder} does not validate:\n")
    assert message in err


def test_validate_json_reports_the_failure(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "nothing-here"

    code, out, _ = cli("registry", "validate", str(folder), "--json")

    assert code == 1
    assert json.loads(out) == {
        "valid": False,
        "path": str(folder),
        "current": None,
        "versions": [],
        "error": f"{folder}/registry.toml: no such file (a registry is a folder with "
        "registry.toml)",
    }


def test_new_scaffolds_the_next_version_from_the_last(cli: Cli, tmp_path: Path) -> None:
    folder = notes_registry(tmp_path / "reg")
    before = (folder / "registry.toml").read_text()
    started = datetime.now(UTC).replace(microsecond=0)

    code, out, err = cli(
        "registry", "new", "1.2.0", "-m", 'Say "hi"\nand more', "--dir", str(folder)
    )

    assert (code, err) == (0, "")
    assert (folder / "1.2.0.sql").read_text() == NOTES_110
    text = (folder / "registry.toml").read_text()
    assert text.startswith(before)
    entry = tomllib.loads(text)["versions"][-1]
    created = datetime.fromisoformat(entry.pop("created_at").replace("Z", "+00:00"))
    assert started <= created <= datetime.now(UTC) + timedelta(seconds=1)
    assert entry == {"version": "1.2.0", "description": 'Say "hi"\nand more', "schema": "1.2.0.sql"}
    h = hashes(folder)
    assert h["1.2.0"] == h["1.1.0"]
    assert out == (
        f"added version 1.2.0 to {folder}/registry.toml, schema 1.2.0.sql (a copy of 1.1.0.sql)\n"
        f"next: edit {folder}/1.2.0.sql (new tables; new columns at the end of a table; indexes, "
        f"triggers, views), then run: tenantdb registry validate {folder}\n"
        f"registry {folder} is valid: 3 version(s), current 1.2.0\n"
        f"  1.0.0  {h['1.0.0']}  Notes (1 tables)\n"
        f"  1.1.0  {h['1.1.0']}  Tags, a guard and a count (2 tables)\n"
        f'  1.2.0  {h["1.2.0"]}  Say "hi"\nand more (2 tables)\n'
    )


def test_new_carries_optional_tables_over(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "example"
    shutil.copytree(EXAMPLE_REGISTRY, folder)

    code, _, _ = cli("registry", "new", "1.3.0", "-m", "Next", "--dir", str(folder))

    assert code == 0
    entry = load_registry(folder).current
    assert (entry.version, entry.optional, entry.migration) == (
        "1.3.0",
        ("rate_limit_violations",),
        (),
    )


@pytest.mark.parametrize("version", ["1.1.0", "1.0.5", "0.9.0"])
def test_new_refuses_a_version_not_greater_than_the_last(
    cli: Cli, tmp_path: Path, version: str
) -> None:
    folder = notes_registry(tmp_path / "reg")
    before = sorted(p.name for p in folder.iterdir())

    code, out, err = cli("registry", "new", version, "-m", "x", "--dir", str(folder))

    assert (code, out) == (1, "")
    assert err == (
        f"tenantdb: version {version} is not greater than the newest version, 1.1.0: "
        "versions must increase strictly\n"
    )
    assert sorted(p.name for p in folder.iterdir()) == before


def test_new_refuses_to_overwrite_a_schema_file(cli: Cli, tmp_path: Path) -> None:
    folder = notes_registry(tmp_path / "reg")
    (folder / "1.2.0.sql").write_text("-- work in progress\n")

    code, _, err = cli("registry", "new", "1.2.0", "-m", "x", "--dir", str(folder))

    assert code == 1
    assert err == (
        f"tenantdb: {folder}/1.2.0.sql exists already: remove it or choose another version\n"
    )
    assert (folder / "1.2.0.sql").read_text() == "-- work in progress\n"


def test_new_with_a_malformed_version_is_bad_usage(cli: Cli, tmp_path: Path) -> None:
    folder = notes_registry(tmp_path / "reg")

    code, _, err = cli("registry", "new", "1.2", "-m", "x", "--dir", str(folder))

    assert code == 2
    assert "'1.2' is not a MAJOR.MINOR.PATCH version" in err


def test_diff_prints_the_sql_from_a_to_b(cli: Cli, tmp_path: Path) -> None:
    folder = notes_registry(tmp_path / "reg")

    code, out, err = cli("registry", "diff", "1.0.0", "1.1.0", "--dir", str(folder))

    assert (code, err) == (0, "")
    assert out == (
        "-- from 1.0.0 to 1.1.0\n"
        "-- 3 change(s) to apply, 0 drift item(s)\n"
        "-- create table tags (2 columns)\n"
        "CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);\n"
        "-- create view note_count\n"
        "CREATE VIEW note_count AS SELECT count(*) AS n FROM notes;\n"
        "-- create trigger notes_not_empty on notes\n"
        "CREATE TRIGGER notes_not_empty BEFORE INSERT ON notes WHEN NEW.body = ''\n"
        "BEGIN SELECT RAISE(ABORT, 'empty note'); END;\n"
    )


def test_diff_reaches_a_version_with_a_migration_script_first(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "reg"
    folder.mkdir()
    notes = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);\n"
    pinned = notes.replace("NOT NULL)", "NOT NULL, pinned INTEGER)")
    (folder / "1.0.0.sql").write_text(notes)
    (folder / "1.1.0.sql").write_text(pinned)
    (folder / "1.1.0.migrate.sql").write_text("-- pin nothing\nUPDATE notes SET pinned = 0;\n")
    (folder / "1.2.0.sql").write_text(pinned + "CREATE TABLE tags (id INTEGER PRIMARY KEY);\n")
    (folder / "registry.toml").write_text(
        "".join(
            f'[[versions]]\nversion = "{v}"\ndescription = "{v}"\n'
            f'created_at = "2026-01-01T00:00:00Z"\nschema = "{v}.sql"\n{extra}\n'
            for v, extra in [
                ("1.0.0", ""),
                ("1.1.0", 'migration = "1.1.0.migrate.sql"\n'),
                ("1.2.0", ""),
            ]
        )
    )

    code, out, _ = cli("registry", "diff", "1.0.0", "1.2.0", "--dir", str(folder))

    assert code == 0
    assert out == (
        "-- from 1.0.0 to 1.2.0\n"
        "-- step to 1.1.0\n"
        "-- 1 change(s) to apply, 0 drift item(s)\n"
        "-- add column notes.pinned: pinned INTEGER\n"
        'ALTER TABLE "notes" ADD COLUMN pinned INTEGER;\n'
        "-- migration script of 1.1.0 (runs after the steps above, in the same transaction)\n"
        "-- pin nothing\n"
        "UPDATE notes SET pinned = 0;\n"
        "-- step to 1.2.0\n"
        "-- 1 change(s) to apply, 0 drift item(s)\n"
        "-- create table tags (1 columns)\n"
        "CREATE TABLE tags (id INTEGER PRIMARY KEY);\n"
    )


def test_diff_of_the_example_ends_with_its_migration_script(cli: Cli) -> None:
    code, out, _ = cli("registry", "diff", "1.1.0", "1.2.0", "--dir", str(EXAMPLE_REGISTRY))

    assert code == 0
    lines = out.splitlines()
    assert lines[:2] == ["-- from 1.1.0 to 1.2.0", "-- 11 change(s) to apply, 0 drift item(s)"]
    assert lines[-9:] == [
        "-- migration script of 1.2.0 (runs after the steps above, in the same transaction)",
        "-- 1.2.0 data migration (runs after the additive changes, same transaction).",
        "-- Backfill trades.updated_at, added in 1.2.0, from the latest known",
        "-- timestamp of each trade. Idempotent: only touches rows still NULL.",
        "-- (updated_at is not in trg_trades_touch_updated_at's UPDATE OF list,",
        "-- so the trigger does not fire and the backfilled value is kept.)",
        "UPDATE trades",
        "SET updated_at = COALESCE(closed_at, opened_at)",
        "WHERE updated_at IS NULL;",
    ]


def test_diff_of_an_unknown_version_fails(cli: Cli, tmp_path: Path) -> None:
    folder = notes_registry(tmp_path / "reg")

    code, out, err = cli("registry", "diff", "1.0.0", "2.0.0", "--dir", str(folder))

    assert (code, out) == (1, "")
    assert err == f"tenantdb: version 2.0.0 is not in the registry {folder} (it has 1.0.0, 1.1.0)\n"


@pytest.mark.parametrize(
    "command",
    [
        ("registry", "validate"),
        ("registry", "new"),
        ("registry", "diff"),
        ("db", "inspect"),
        ("db", "diff"),
        ("db", "sync"),
        ("db", "restore"),
        ("health-check",),
        ("dump",),
    ],
    ids=" ".join,
)
def test_every_operator_command_has_examples_and_exit_codes(
    cli: Cli, command: tuple[str, ...]
) -> None:
    code, out, _ = cli(*command, "--help")

    assert code == 0
    assert f"examples:\n  tenantdb {' '.join(command)}" in out
    assert out.endswith(
        "exit codes: 0 success, 1 the command failed, 2 bad usage or configuration.\n"
    )
