"""`tenantdb registry new VERSION --schema FILE`: generated migrations, each flag and each
refusal. A generated version is then synced on a real SQLite file by the engine."""

from __future__ import annotations

import sqlite3
import tomllib
from contextlib import closing
from pathlib import Path

import pytest

from schema_registry import SqliteDatabase, diff, drive, introspect, load_registry, make_plan, sync
from tests.cli.clikit import notes_registry
from tests.cli.conftest import Cli

NOTES = """\
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, legacy TEXT, stars TEXT);
CREATE TABLE tags (id INTEGER PRIMARY KEY, note_id INTEGER REFERENCES notes(id)
    ON DELETE CASCADE, name TEXT NOT NULL);
CREATE INDEX notes_by_body ON notes(body);
"""
ROWS = (
    "INSERT INTO notes VALUES (1, 'one', 'old', '5'), (2, 'two', NULL, 'x');"
    "INSERT INTO tags (note_id, name) VALUES (1, 'a'), (2, 'b'), (2, 'c');"
)


def registry(tmp_path: Path) -> Path:
    folder = tmp_path / "reg"
    folder.mkdir()
    (folder / "1.0.0.sql").write_text(NOTES)
    (folder / "registry.toml").write_text(
        '[[versions]]\nversion = "1.0.0"\ndescription = "Notes"\n'
        'created_at = "2026-01-01T00:00:00Z"\nschema = "1.0.0.sql"\n'
    )
    return folder


def desired(tmp_path: Path, sql: str) -> str:
    path = tmp_path / "desired.sql"
    path.write_text(sql)
    return str(path)


def synced(tmp_path: Path, folder: Path) -> Path:
    """A tenant made at 1.0.0, filled, then synced to the registry's newest version."""
    db_path = tmp_path / "tenant.db"
    registry = load_registry(folder)
    db = SqliteDatabase.open(db_path)
    try:
        drive(sync(db, registry, target="1.0.0"))
        db.conn.executescript(ROWS)
        result = drive(sync(db, registry))
        assert result.status == "applied", result
        left = make_plan(diff(drive(introspect(db)), registry.current.schema))
        assert (left.steps, left.drift, left.extras) == ((), (), ())
    finally:
        db.close()
    return db_path


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


def test_an_additive_schema_needs_no_migration(cli: Cli, tmp_path: Path) -> None:
    folder = registry(tmp_path)
    sql = NOTES + "CREATE TABLE folders (id INTEGER PRIMARY KEY);\n"

    code, out, err = cli(
        "registry", "new", "1.1.0", "-m", "Folders", "--dir", str(folder),
        "--schema", desired(tmp_path, sql),
    )  # fmt: skip

    assert (code, err) == (0, "")
    assert "(additive)" in out
    assert (folder / "1.1.0.sql").read_text() == sql
    assert not (folder / "1.1.0.migrate.sql").exists()
    assert load_registry(folder).current.migration == ()


def test_rename_moves_the_data_with_the_name(cli: Cli, tmp_path: Path) -> None:
    folder = registry(tmp_path)
    sql = """\
CREATE TABLE memos (id INTEGER PRIMARY KEY, text TEXT NOT NULL, legacy TEXT, stars TEXT);
CREATE TABLE tags (id INTEGER PRIMARY KEY, note_id INTEGER REFERENCES memos(id)
    ON DELETE CASCADE, name TEXT NOT NULL);
CREATE INDEX notes_by_body ON memos(text);
"""

    code, out, err = cli(
        "registry", "new", "1.1.0", "-m", "Memos", "--dir", str(folder),
        "--schema", desired(tmp_path, sql), "--rename", "notes=memos",
        "--rename", "memos.body=text",
    )  # fmt: skip

    assert code == 0, err
    script = (folder / "1.1.0.migrate.sql").read_text()
    assert 'ALTER TABLE "notes" RENAME TO "memos";' in script
    assert 'ALTER TABLE "memos" RENAME COLUMN "body" TO "text";' in script
    assert "migration 1.1.0.migrate.sql" in out
    db = synced(tmp_path, folder)
    assert rows(db, "SELECT id, text, legacy FROM memos") == [(1, "one", "old"), (2, "two", None)]
    assert rows(db, "SELECT count(*) FROM tags") == [(3,)]


def test_a_dropped_column_is_refused_without_allow_drop(cli: Cli, tmp_path: Path) -> None:
    folder = registry(tmp_path)
    before = sorted(p.name for p in folder.iterdir())
    sql = NOTES.replace(" legacy TEXT,", "")

    code, out, err = cli(
        "registry", "new", "1.1.0", "-m", "x", "--dir", str(folder),
        "--schema", desired(tmp_path, sql),
    )  # fmt: skip

    assert (code, out) == (2, "")
    assert "column notes.legacy is not in the new schema" in err
    assert "--allow-drop notes.legacy" in err
    assert "--rename notes.legacy=NEW" in err
    assert sorted(p.name for p in folder.iterdir()) == before

    code, _, err = cli(
        "registry", "new", "1.1.0", "-m", "x", "--dir", str(folder),
        "--schema", desired(tmp_path, sql), "--allow-drop", "notes.legacy",
    )  # fmt: skip

    assert code == 0, err
    db = synced(tmp_path, folder)
    assert rows(db, "SELECT * FROM notes") == [(1, "one", "5"), (2, "two", "x")]
    assert rows(db, "SELECT count(*) FROM tags") == [(3,)]


def test_a_dropped_table_is_refused_without_allow_drop(cli: Cli, tmp_path: Path) -> None:
    folder = registry(tmp_path)
    sql = (
        NOTES.split("CREATE TABLE tags", maxsplit=1)[0]
        + "CREATE INDEX notes_by_body ON notes(body);\n"
    )

    code, _, err = cli(
        "registry", "new", "1.1.0", "-m", "x", "--dir", str(folder),
        "--schema", desired(tmp_path, sql),
    )  # fmt: skip

    assert code == 2
    assert "table tags is not in the new schema: pass --allow-drop tags" in err

    code, _, err = cli(
        "registry", "new", "1.1.0", "-m", "x", "--dir", str(folder),
        "--schema", desired(tmp_path, sql), "--allow-drop", "tags",
    )  # fmt: skip

    assert code == 0, err
    assert 'DROP TABLE "tags";' in (folder / "1.1.0.migrate.sql").read_text()
    db = synced(tmp_path, folder)
    assert rows(db, "SELECT name FROM sqlite_schema WHERE name = 'tags'") == []
    assert rows(db, "SELECT count(*) FROM notes") == [(2,)]


def test_a_new_not_null_column_needs_a_backfill(cli: Cli, tmp_path: Path) -> None:
    folder = registry(tmp_path)
    sql = NOTES.replace("stars TEXT)", "stars TEXT, title TEXT NOT NULL)")
    sql += "CREATE INDEX notes_by_title ON notes(title);\n"

    code, _, err = cli(
        "registry", "new", "1.1.0", "-m", "x", "--dir", str(folder),
        "--schema", desired(tmp_path, sql),
    )  # fmt: skip

    assert code == 2
    assert "new column notes.title is NOT NULL without a default" in err
    assert "--backfill notes.title=SQL_EXPR" in err

    code, _, err = cli(
        "registry", "new", "1.1.0", "-m", "x", "--dir", str(folder),
        "--schema", desired(tmp_path, sql), "--backfill", "notes.title='untitled ' || id",
    )  # fmt: skip

    assert code == 0, err
    script = (folder / "1.1.0.migrate.sql").read_text()
    assert 'INSERT INTO "notes__new"' in script
    db = synced(tmp_path, folder)
    assert rows(db, "SELECT id, title FROM notes") == [(1, "untitled 1"), (2, "untitled 2")]
    assert rows(db, "SELECT note_id, name FROM tags ORDER BY id") == [
        (1, "a"),
        (2, "b"),
        (2, "c"),
    ]  # the rebuilt parent cascaded nothing
    assert rows(db, "PRAGMA foreign_key_check") == []


def test_a_type_change_is_cast_by_default_or_backfilled(cli: Cli, tmp_path: Path) -> None:
    folder = registry(tmp_path)
    sql = NOTES.replace("stars TEXT", "stars INTEGER")

    code, _, err = cli(
        "registry", "new", "1.1.0", "-m", "x", "--dir", str(folder),
        "--schema", desired(tmp_path, sql),
    )  # fmt: skip

    assert code == 0
    assert (
        "warning: notes.stars: type TEXT -> INTEGER, existing values converted with "
        'CAST("stars" AS INTEGER)' in err
    )
    db = synced(tmp_path, folder)
    assert rows(db, "SELECT id, stars FROM notes") == [(1, 5), (2, 0)]

    other = tmp_path / "other"
    other.mkdir()
    folder = registry(other)
    code, _, err = cli(
        "registry", "new", "1.1.0", "-m", "x", "--dir", str(folder),
        "--schema", desired(other, sql),
        "--backfill", "notes.stars=CASE WHEN stars GLOB '[0-9]*' THEN CAST(stars AS INTEGER) END",
    )  # fmt: skip

    assert code == 0, err
    db = synced(other, folder)
    assert rows(db, "SELECT id, stars FROM notes") == [(1, 5), (2, None)]


def test_constraints_the_data_may_violate_are_warnings(cli: Cli, tmp_path: Path) -> None:
    folder = registry(tmp_path)
    sql = NOTES.replace("stars TEXT)", "stars TEXT, UNIQUE (body), CHECK (length(body) > 0))")

    code, out, err = cli(
        "registry", "new", "1.1.0", "-m", "x", "--dir", str(folder),
        "--schema", desired(tmp_path, sql),
    )  # fmt: skip

    assert code == 0
    assert "notes: new UNIQUE (body): existing rows may hold duplicates; rehearse" in err
    assert "notes: new CHECK (length ( body ) > 0): existing rows may violate it" in err
    assert "added version 1.1.0" in out
    entry = tomllib.loads((folder / "registry.toml").read_text())["versions"][-1]
    assert entry["migration"] == "1.1.0.migrate.sql"
    synced(tmp_path, folder)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--rename", "nope.body=text"], "'nope' is not a table of either version"),
        (["--rename", "notes.nothing=text"], "no column nothing to rename"),
        (["--backfill", "notes.body"], "expected TABLE.COLUMN=SQL_EXPR"),
        (["--allow-drop", "nope"], "'nope' is not a table of either version"),
    ],
    ids=["rename-table", "rename-column", "backfill-form", "drop-table"],
)
def test_flags_that_name_nothing_are_bad_usage(
    cli: Cli, tmp_path: Path, flags: list[str], message: str
) -> None:
    folder = registry(tmp_path)
    sql = NOTES.replace("body TEXT", "text TEXT").replace("notes(body)", "notes(text)")

    code, _, err = cli(
        "registry", "new", "1.1.0", "-m", "x", "--dir", str(folder),
        "--schema", desired(tmp_path, sql), *flags,
    )  # fmt: skip

    assert code == 2
    assert message in err
    assert not (folder / "1.1.0.sql").exists()


def test_decision_flags_need_a_schema(cli: Cli, tmp_path: Path) -> None:
    folder = notes_registry(tmp_path / "reg")

    code, _, err = cli(
        "registry", "new", "1.2.0", "-m", "x", "--dir", str(folder), "--allow-drop", "notes"
    )

    assert code == 2
    assert "need --schema FILE" in err


def test_a_rebuilt_autoincrement_table_never_reuses_a_deleted_rowid(
    cli: Cli, tmp_path: Path
) -> None:
    """AUTOINCREMENT promises rowids are never reused: the rebuilt table keeps the old
    table's sequence, not only the largest rowid still there."""
    folder = tmp_path / "reg"
    folder.mkdir()
    old = "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT);\n"
    (folder / "1.0.0.sql").write_text(old)
    (folder / "registry.toml").write_text(
        '[[versions]]\nversion = "1.0.0"\ndescription = "Events"\n'
        'created_at = "2026-01-01T00:00:00Z"\nschema = "1.0.0.sql"\n'
    )
    new = "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE);\n"
    code, _, err = cli(
        "registry", "new", "1.1.0", "-m", "Unique names", "--dir", str(folder),
        "--schema", desired(tmp_path, new),
    )  # fmt: skip
    assert code == 0, err
    assert "RENAME TO" in (folder / "1.1.0.migrate.sql").read_text()  # a rebuild
    registry_ = load_registry(folder)
    db_path = tmp_path / "tenant.db"
    db = SqliteDatabase.open(db_path)
    try:
        drive(sync(db, registry_, target="1.0.0"))
        db.conn.executescript(
            "INSERT INTO events (name) VALUES ('a'), ('b'), ('c'), ('d');"
            "DELETE FROM events WHERE id > 2;"
        )
        assert drive(sync(db, registry_)).status == "applied"
        db.conn.execute("INSERT INTO events (name) VALUES ('e')")
    finally:
        db.close()
    assert rows(db_path, "SELECT id, name FROM events") == [(1, "a"), (2, "b"), (5, "e")]
