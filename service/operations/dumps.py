"""Schema dumps of tenant databases: one file per table, so dumps diff cleanly in git.

A dump of USER goes to OUT_DIR/USER/ (one folder per user for a single user and for
`--all` alike, so both write the same tree):

    {table}.sql       CREATE TABLE, then the table's indexes and triggers, each by name
    _views.sql        the views (and triggers on views), by name
    _index.md         tables with column and row counts, indexes and status
    _table_list.txt   one table per line, sorted

Deterministic: no timestamps, objects sorted by name, and a file is rewritten only when
its bytes change, so re-dumping an unchanged database touches no file. A table's file name
is its name percent-encoded (RFC 3986 unreserved characters kept), a leading "_" encoded
too, so only tenantdb's own files start with "_".

Status compares with the previous dump in the folder: `new` (not in its _table_list.txt),
`updated` (its file changed), `unchanged`, `orphaned` (gone from the database; its file is
kept). A dump that changes no table file and adds or drops no table keeps the statuses of
the previous _index.md, so they describe the last change and nothing is rewritten.

Everything is read from one consistent export (`TenantService.export`: SQLite's backup API
locally, sqld's dump on sqld), so the schema and the row counts are of one moment and both
backends are read the same way. tenantdb's own `schema_version` table and SQLite's
internal tables are not dumped (the introspector leaves them out).
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import urllib.parse
from pathlib import Path
from typing import Final

import msgspec
import structlog

from schema_registry import (
    HistoryRow,
    Index,
    Schema,
    SqliteDatabase,
    Table,
    Trigger,
    drive,
    fold,
    introspect,
    quote,
    read_history,
)
from service.tenants import TenantService, remove_export

log = structlog.get_logger("tenantdb.dump")

TABLE_LIST: Final = "_table_list.txt"
INDEX: Final = "_index.md"
VIEWS: Final = "_views.sql"
STATUSES: Final = frozenset({"new", "updated", "unchanged", "orphaned"})
# A row of _index.md's table: "| [name](file.sql) | ...". Names have ] and | escaped.
_INDEX_ROW: Final = re.compile(r"^\| \[(?:\\.|[^\\\]])*\]\(([^)\s]+\.sql)\) \|")
_STATUS_NOTE: Final = (
    "Status compares with the previous dump in this folder: `new` and `updated` since the "
    "last dump that changed a table, `orphaned` when the table is gone from the database "
    "(its file is kept)."
)


class TableSummary(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    columns: int
    rows: int | None  # None when SQLite could not count (a virtual table's module is missing)
    indexes: tuple[str, ...]
    triggers: tuple[str, ...]


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """One tenant database at one moment: its user schema, row counts and history."""

    user_id: str
    schema: Schema
    rows: dict[str, int | None]
    history: tuple[HistoryRow, ...]

    @property
    def head(self) -> HistoryRow | None:
        return self.history[-1] if self.history else None

    def tables(self) -> list[TableSummary]:
        return [
            TableSummary(
                name=table.name,
                columns=len(table.columns),
                rows=self.rows.get(table.name),
                indexes=tuple(i.name for i in indexes_of(self.schema, table.name)),
                triggers=tuple(t.name for t in triggers_of(self.schema, table.name)),
            )
            for table in sorted(self.schema.tables, key=lambda t: t.name)
        ]


class DumpReport(msgspec.Struct, frozen=True, kw_only=True):
    """What one dump found and did."""

    user_id: str
    folder: str
    tables: int
    new: tuple[str, ...]
    updated: tuple[str, ...]
    orphaned: tuple[str, ...]
    written: tuple[str, ...]  # files whose bytes changed (or were created)


async def read_snapshot(tenants: TenantService, user_id: str) -> Snapshot:
    """Export the tenant's database, read it, and remove the export."""
    path = await tenants.export(user_id)
    try:
        return await asyncio.to_thread(_read_export, user_id, path)
    finally:
        await remove_export(path)


def _read_export(user_id: str, path: Path) -> Snapshot:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, isolation_level=None)
    try:
        db = SqliteDatabase(conn)
        schema = drive(introspect(db))
        history = drive(read_history(db))
        rows = {table.name: _count(conn, table.name) for table in schema.tables}
    finally:
        conn.close()
    return Snapshot(user_id=user_id, schema=schema, rows=rows, history=tuple(history))


def _count(conn: sqlite3.Connection, table: str) -> int | None:
    try:
        return int(conn.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()[0])
    except sqlite3.Error:
        return None


async def dump_tenant(tenants: TenantService, user_id: str, folder: Path) -> DumpReport:
    snapshot = await read_snapshot(tenants, user_id)
    report = await asyncio.to_thread(write_dump, snapshot, folder)
    log.info(
        "dump.written",
        user_id=user_id,
        tables=report.tables,
        new=len(report.new),
        updated=len(report.updated),
        orphaned=len(report.orphaned),
        files_written=len(report.written),
    )
    return report


# Files ---------------------------------------------------------------------------------


def file_name(table: str) -> str:
    encoded = urllib.parse.quote(table, safe="")
    if encoded.startswith("_"):
        encoded = "%5F" + encoded[1:]
    return encoded + ".sql"


def table_name(file: str) -> str:
    return urllib.parse.unquote(file.removesuffix(".sql"))


def indexes_of(schema: Schema, table: str) -> list[Index]:
    return sorted((i for i in schema.indexes if fold(i.table) == fold(table)), key=_by_name)


def triggers_of(schema: Schema, table: str) -> list[Trigger]:
    return sorted((t for t in schema.triggers if fold(t.table) == fold(table)), key=_by_name)


def _by_name(item: Index | Trigger) -> str:
    return item.name


def _statement(sql: str) -> str:
    return sql.strip().rstrip(";").rstrip() + ";"


def render_table(schema: Schema, table: Table) -> str:
    statements = [table.sql]
    statements += [index.sql for index in indexes_of(schema, table.name)]
    statements += [trigger.sql for trigger in triggers_of(schema, table.name)]
    return "\n\n".join(_statement(s) for s in statements) + "\n"


def render_views(schema: Schema) -> str:
    statements: list[str] = []
    for view in sorted(schema.views, key=lambda v: v.name):
        statements.append(view.sql)
        statements += [trigger.sql for trigger in triggers_of(schema, view.name)]
    if not statements:
        return "-- no views\n"
    return "\n\n".join(_statement(s) for s in statements) + "\n"


def render_table_list(schema: Schema) -> str:
    return "".join(f"{name}\n" for name in sorted(t.name for t in schema.tables))


def _cell(text: str) -> str:
    """Markdown-table-safe text: the characters that would end a cell or a link escaped."""
    return re.sub(r"([\\|\[\]])", r"\\\1", text)


def render_index(snapshot: Snapshot, statuses: dict[str, str]) -> str:
    schema = snapshot.schema
    head = snapshot.head
    version = (
        f"Schema version {head.version} ({head.content_hash})."
        if head
        else "No schema_version row: tenantdb has not synced this database."
    )
    lines = [
        f"# Schema of {snapshot.user_id}",
        "",
        version,
        f"Tables: {len(schema.tables)}. Indexes: {len(schema.indexes)}. "
        f"Triggers: {len(schema.triggers)}. Views: {len(schema.views)}.",
        "",
        _STATUS_NOTE,
        "",
        "| table | columns | rows | indexes | status |",
        "|---|---:|---:|---|---|",
    ]
    summaries = {t.name: t for t in snapshot.tables()}
    for name in sorted(statuses):
        link = f"[{_cell(name)}]({file_name(name)})"
        summary = summaries.get(name)
        if summary is None:
            lines.append(f"| {link} | - | - | - | {statuses[name]} |")
            continue
        rows = "?" if summary.rows is None else str(summary.rows)
        indexes = _cell(", ".join(summary.indexes)) or "-"
        lines.append(f"| {link} | {summary.columns} | {rows} | {indexes} | {statuses[name]} |")
    views = ", ".join(_cell(v.name) for v in sorted(schema.views, key=lambda v: v.name))
    lines += ["", f"Views, in [{VIEWS}]({VIEWS}): {views}." if views else "No views."]
    return "\n".join(lines) + "\n"


def previous_statuses(index_text: str) -> dict[str, str]:
    """Table statuses from an _index.md this module wrote (others' lines are ignored)."""
    statuses: dict[str, str] = {}
    for line in index_text.splitlines():
        match = _INDEX_ROW.match(line)
        status = line.rstrip().removesuffix("|").rsplit("|", 1)[-1].strip()
        if match and status in STATUSES:
            statuses[table_name(match.group(1))] = status
    return statuses


def _read_text(path: Path) -> str | None:
    """The file as written, byte for byte (no newline translation), or None."""
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None


def _write_if_changed(path: Path, text: str) -> bool:
    """Write `text` unless the file already holds exactly it; atomically (rename)."""
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
    return True


def write_dump(snapshot: Snapshot, folder: Path) -> DumpReport:
    """Write (only what changed of) the dump of `snapshot` into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    schema = snapshot.schema
    files = {file_name(t.name): render_table(schema, t) for t in schema.tables}
    names = sorted(t.name for t in schema.tables)
    fresh = _compare(folder, names, files)
    shown = dict(fresh)
    listed = _read_text(folder / TABLE_LIST)
    if listed is not None and listed.splitlines() == names and set(fresh.values()) <= {"unchanged"}:
        # Nothing changed: keep the previous statuses, which describe the last change.
        kept = previous_statuses(_read_text(folder / INDEX) or "")
        shown = {
            n: kept[n] if kept.get(n, "orphaned") != "orphaned" else s for n, s in fresh.items()
        }
    orphaned = sorted(
        table_name(path.name)
        for path in folder.glob("*.sql")
        if not path.name.startswith("_") and path.name not in files
    )
    shown.update(dict.fromkeys(orphaned, "orphaned"))
    contents = {
        **files,
        VIEWS: render_views(schema),
        TABLE_LIST: render_table_list(schema),
        INDEX: render_index(snapshot, shown),
    }
    written = [
        name for name in sorted(contents) if _write_if_changed(folder / name, contents[name])
    ]
    return DumpReport(
        user_id=snapshot.user_id,
        folder=str(folder),
        tables=len(names),
        new=tuple(n for n in names if fresh[n] == "new"),
        updated=tuple(n for n in names if fresh[n] == "updated"),
        orphaned=tuple(orphaned),
        written=tuple(written),
    )


def _compare(folder: Path, names: list[str], files: dict[str, str]) -> dict[str, str]:
    """Each table against the previous dump: new, updated or unchanged."""
    listed = _read_text(folder / TABLE_LIST)
    previous = set() if listed is None else set(listed.splitlines())
    statuses: dict[str, str] = {}
    for name in names:
        file = file_name(name)
        if name not in previous:
            statuses[name] = "new"
        elif _read_text(folder / file) != files[file]:
            statuses[name] = "updated"
        else:
            statuses[name] = "unchanged"
    return statuses
