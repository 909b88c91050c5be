"""`tenantdb dump (USER | --all) OUT_DIR` on both backends: files, determinism, statuses."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from schema_registry import load_registry
from service.operations.dumps import file_name, previous_statuses, table_name
from tests.cli.clikit import local_file, notes_registry, record_of, run_sql
from tests.cli.conftest import Operator

NOTES_SQL = """\
CREATE TABLE notes (
    id INTEGER PRIMARY KEY,
    body TEXT NOT NULL
);

CREATE INDEX notes_by_body ON notes(body);

CREATE TRIGGER notes_not_empty BEFORE INSERT ON notes WHEN NEW.body = ''
BEGIN SELECT RAISE(ABORT, 'empty note'); END;
"""
STATUS_NOTE = (
    "Status compares with the previous dump in this folder: `new` and `updated` since the "
    "last dump that changed a table, `orphaned` when the table is gone from the database "
    "(its file is kept)."
)


@pytest.fixture
def notes(operator: Operator, tmp_path: Path) -> Operator:
    """alice at 1.1.0 of the notes registry, with two notes."""
    operator.values["registry"] = str(notes_registry(tmp_path / "registry"))
    operator.provision("alice")
    run_sql(operator, "alice", "INSERT INTO notes (body) VALUES ('a'), ('b')")
    return operator


def files(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def stamps(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.iterdir())}


def age(folder: Path) -> None:
    """Set every file's mtime far in the past, so any rewrite shows."""
    for path in folder.iterdir():
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))


def index_rows(folder: Path) -> list[str]:
    return [line for line in (folder / "_index.md").read_text().splitlines() if line[:3] == "| ["]


def test_dump_writes_a_file_per_table_an_index_and_a_list(notes: Operator, tmp_path: Path) -> None:
    out = tmp_path / "schemas"
    content_hash = load_registry(notes.values["registry"]).current.content_hash

    code, stdout, err = notes.cli("dump", "alice", str(out))

    assert (code, err) == (0, "")
    assert stdout == f"alice: 2 tables -> {out}/alice (2 new, 5 file(s) written)\n"
    assert files(out / "alice") == {
        "_index.md": (
            "# Schema of alice\n\n"
            f"Schema version 1.1.0 ({content_hash}).\n"
            "Tables: 2. Indexes: 1. Triggers: 1. Views: 1.\n\n"
            f"{STATUS_NOTE}\n\n"
            "| table | columns | rows | indexes | status |\n"
            "|---|---:|---:|---|---|\n"
            "| [notes](notes.sql) | 2 | 2 | notes_by_body | new |\n"
            "| [tags](tags.sql) | 2 | 0 | - | new |\n\n"
            "Views, in [_views.sql](_views.sql): note_count.\n"
        ),
        "_table_list.txt": "notes\ntags\n",
        "_views.sql": "CREATE VIEW note_count AS SELECT count(*) AS n FROM notes;\n",
        "notes.sql": NOTES_SQL,
        "tags.sql": "CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);\n",
    }


def test_a_redump_of_an_unchanged_database_touches_no_file(notes: Operator, tmp_path: Path) -> None:
    out = tmp_path / "schemas"
    notes.cli("dump", "alice", str(out))
    age(out / "alice")
    before = (files(out / "alice"), stamps(out / "alice"))

    code, stdout, _ = notes.cli("dump", "alice", str(out))

    assert (code, stdout) == (0, f"alice: 2 tables -> {out}/alice (no file changed)\n")
    assert (files(out / "alice"), stamps(out / "alice")) == before


def test_added_tables_are_new_changed_ones_updated_dropped_ones_orphaned(
    notes: Operator, tmp_path: Path
) -> None:
    out = tmp_path / "schemas"
    folder = out / "alice"
    notes.cli("dump", "alice", str(out))
    run_sql(notes, "alice", "CREATE TABLE archive (id INTEGER PRIMARY KEY, note_id INTEGER)")

    added = notes.cli("dump", "alice", str(out))
    added_rows = index_rows(folder)
    age(folder)
    before = (files(folder), stamps(folder))
    stable = notes.cli("dump", "alice", str(out))
    assert (files(folder), stamps(folder)) == before
    run_sql(notes, "alice", "DROP TABLE tags", "ALTER TABLE notes ADD COLUMN pinned INTEGER")
    dropped = notes.cli("dump", "alice", str(out))
    age(folder)
    before = (files(folder), stamps(folder))
    stable_again = notes.cli("dump", "alice", str(out))

    assert added == (0, f"alice: 3 tables -> {folder} (1 new, 3 file(s) written)\n", "")
    assert added_rows == [
        "| [archive](archive.sql) | 2 | 0 | - | new |",
        "| [notes](notes.sql) | 2 | 2 | notes_by_body | unchanged |",
        "| [tags](tags.sql) | 2 | 0 | - | unchanged |",
    ]
    assert stable == (0, f"alice: 3 tables -> {folder} (no file changed)\n", "")
    assert dropped == (
        0,
        f"alice: 2 tables -> {folder} (1 updated, 1 orphaned, 3 file(s) written)\n",
        "",
    )
    assert stable_again == (0, f"alice: 2 tables -> {folder} (1 orphaned, no file changed)\n", "")
    assert (files(folder), stamps(folder)) == before
    assert index_rows(folder) == [
        "| [archive](archive.sql) | 2 | 0 | - | unchanged |",
        "| [notes](notes.sql) | 3 | 2 | notes_by_body | updated |",
        "| [tags](tags.sql) | - | - | - | orphaned |",
    ]
    assert files(folder)["_table_list.txt"] == "archive\nnotes\n"
    assert files(folder)["tags.sql"].startswith("CREATE TABLE tags")  # kept
    assert "    body TEXT NOT NULL\n, pinned INTEGER)" in files(folder)["notes.sql"]


def test_dump_all_writes_a_folder_per_tenant(notes: Operator, tmp_path: Path) -> None:
    notes.provision("bob")
    out = tmp_path / "schemas"

    code, stdout, _ = notes.cli("dump", "--all", str(out))
    as_json = notes.cli("dump", "--all", str(out), "--json")

    assert (code, stdout) == (
        0,
        f"alice: 2 tables -> {out}/alice (2 new, 5 file(s) written)\n"
        f"bob: 2 tables -> {out}/bob (2 new, 5 file(s) written)\n",
    )
    assert files(out / "alice")["notes.sql"] == files(out / "bob")["notes.sql"] == NOTES_SQL
    assert as_json[0] == 0
    assert [json.loads(line) for line in as_json[1].splitlines()] == [
        {
            "user_id": user,
            "folder": str(out / user),
            "tables": 2,
            "new": [],
            "updated": [],
            "orphaned": [],
            "written": [],
        }
        for user in ("alice", "bob")
    ]


def test_dump_of_an_unknown_user_fails(notes: Operator, tmp_path: Path) -> None:
    code, stdout, err = notes.cli("dump", "nobody", str(tmp_path / "schemas"))

    assert (code, stdout) == (1, "")
    assert err == "tenantdb: no database for user nobody: nothing to export\n"
    assert not (tmp_path / "schemas").exists()


@pytest.mark.parametrize("backend_kind", ["local"])
def test_one_failing_tenant_does_not_stop_dump_all(notes: Operator, tmp_path: Path) -> None:
    notes.provision("bob")
    os.remove(local_file(notes, record_of(notes, "alice").location))
    out = tmp_path / "schemas"

    code, stdout, _ = notes.cli("dump", "--all", str(out))

    assert (code, stdout) == (
        1,
        "alice: FAILED: no database file to export\n"
        f"bob: 2 tables -> {out}/bob (2 new, 5 file(s) written)\n",
    )


@pytest.mark.parametrize("arguments", [(), ("alice", "--all")], ids=["neither", "both"])
@pytest.mark.parametrize("backend_kind", ["local"])
def test_user_or_all_is_required(notes: Operator, tmp_path: Path, arguments: tuple[str]) -> None:
    code, _, _ = notes.cli("dump", *arguments, str(tmp_path / "schemas"))

    assert code == 2


@pytest.mark.parametrize(
    ("table", "file"),
    [
        ("notes", "notes.sql"),
        ("trade_tags", "trade_tags.sql"),
        ("_views", "%5Fviews.sql"),
        ("__x", "%5F_x.sql"),
        ('we"ird/na me', "we%22ird%2Fna%20me.sql"),
        ("Ünï", "%C3%9Cn%C3%AF.sql"),
        ("..", "...sql"),
    ],
)
def test_file_names_are_percent_encoded_and_reversible(table: str, file: str) -> None:
    assert file_name(table) == file
    assert table_name(file) == table


@pytest.mark.parametrize("backend_kind", ["local"])
def test_odd_table_names_survive_redumps(notes: Operator, tmp_path: Path) -> None:
    run_sql(notes, "alice", 'CREATE TABLE "_views" (x)', 'CREATE TABLE "a|b]c" (x)')
    out = tmp_path / "schemas"
    notes.cli("dump", "alice", str(out))
    run_sql(notes, "alice", "CREATE TABLE later (x)")

    code, stdout, _ = notes.cli("dump", "alice", str(out))

    assert code == 0
    assert stdout == f"alice: 5 tables -> {out}/alice (1 new, 3 file(s) written)\n"
    rows = index_rows(out / "alice")
    assert rows == [
        "| [_views](%5Fviews.sql) | 1 | 0 | - | unchanged |",
        "| [a\\|b\\]c](a%7Cb%5Dc.sql) | 1 | 0 | - | unchanged |",
        "| [later](later.sql) | 1 | 0 | - | new |",
        "| [notes](notes.sql) | 2 | 2 | notes_by_body | unchanged |",
        "| [tags](tags.sql) | 2 | 0 | - | unchanged |",
    ]
    assert previous_statuses("\n".join(rows)) == {
        "_views": "unchanged",
        "a|b]c": "unchanged",
        "later": "new",
        "notes": "unchanged",
        "tags": "unchanged",
    }


def test_a_folder_that_cannot_be_written_is_bad_usage(notes: Operator, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")

    code, out, err = notes.cli("dump", "alice", str(blocker / "dumps"))

    assert (code, out) == (2, "")
    assert err == f"tenantdb: cannot write to {blocker / 'dumps'}: {blocker} is not a folder\n"
