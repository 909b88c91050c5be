"""Read a live database's user schema into the model, in a handful of queries.

Each query joins sqlite_schema with a table-valued PRAGMA, so the cost does not grow in
round trips with the number of tables: that matters on a libSQL server over the network.

Schemas are cached by the user rows of sqlite_schema they were read from. Everything the
PRAGMAs report is derived by SQLite from those rows (the CREATE statements), so equal rows
mean an equal schema, and the cache is keyed by those values, not by any object's id. That
is why it may stay process-wide, and should: its use is to span databases. A fleet at one
version costs one query each instead of six, and a database built from a registry
version's own statements is recognised without reading it back.
"""

from __future__ import annotations

import functools
from collections import defaultdict, deque
from typing import Final

import msgspec

from schema_registry.database import Row, Session
from schema_registry.history import HISTORY_TABLE
from schema_registry.lru import LRU
from schema_registry.model import Column, ForeignKey, Index, Schema, Table, Trigger, View
from schema_registry.sqltext import (
    clause,
    column_definitions,
    fold,
    has_word,
    normalize,
    table_checks,
)

OBJECTS_SQL: Final = "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY rowid"
TABLE_LIST_SQL: Final = "SELECT name, type, wr, strict FROM pragma_table_list WHERE schema = 'main'"
COLUMNS_SQL: Final = """
SELECT m.name, p.name, p.type, p."notnull", p.dflt_value, p.pk, p.hidden
FROM sqlite_schema AS m JOIN pragma_table_xinfo(m.name) AS p
WHERE m.type = 'table' ORDER BY m.rowid, p.cid
"""
FOREIGN_KEYS_SQL: Final = """
SELECT m.name, f.id, f."table", f."from", f."to", f.on_update, f.on_delete
FROM sqlite_schema AS m JOIN pragma_foreign_key_list(m.name) AS f
WHERE m.type = 'table' ORDER BY m.rowid, f.id, f.seq
"""
INDEX_LIST_SQL: Final = """
SELECT m.name, l.name, l."unique", l.origin, l.partial
FROM sqlite_schema AS m JOIN pragma_index_list(m.name) AS l
WHERE m.type = 'table'
"""
INDEX_COLUMNS_SQL: Final = """
SELECT m.name, x.cid, x.name
FROM sqlite_schema AS m JOIN pragma_index_xinfo(m.name) AS x
WHERE m.type = 'index' AND x.key = 1 ORDER BY m.rowid, x.seqno
"""


@functools.lru_cache(maxsize=4096)
def is_internal(name: str) -> bool:
    """SQLite's, libSQL's, Litestream's and tenantdb's own objects are not user schema.

    tenantdb's own is the history table, whose name the history module owns. Cached: every
    database of a fleet asks about the same few dozen names, twice a sync.
    """
    lowered = fold(name)
    return lowered.startswith(("sqlite_", "libsql_", "_litestream_")) or lowered in {
        "sqlite3_libsql_tasks",
        HISTORY_TABLE,
    }


_schemas: Final[LRU[tuple[Row, ...], Schema]] = LRU(256)  # see the module docstring
# The newest schemas read, by the rows exactly as OBJECTS_SQL returned them: rows equal to
# one of them (a list compare, no sorting or hashing) answer before `schema_key`. A sync
# reads two schemas, before and after its steps, and a fleet's syncs the same two again.
# Not an LRU: the rows are a fresh unhashable list each time, and hashing them into a key
# is the work this skips (~5 µs a read).
_recent: Final[deque[tuple[list[Row], Schema]]] = deque(maxlen=4)


def schema_key(objects: list[Row]) -> tuple[Row, ...]:
    """The user rows of sqlite_schema, in a canonical order: what a schema is made from.

    Sorted as whole rows: no two rows share a name (SQLite keeps one namespace for
    tables, indexes, views and triggers), so that is their order by (type, name).
    """
    return tuple(
        sorted(
            tuple(row)
            for row in objects
            if not is_internal(str(row[1])) and not is_internal(str(row[2]))
        )
    )


async def introspect(session: Session, objects: list[Row] | None = None) -> Schema:
    """The user schema of the database behind `session`.

    `objects` are OBJECTS_SQL's rows when the caller read them in a batch of its own (one
    round trip fewer on a server); a schema seen before needs nothing more.
    """
    if objects is None:
        objects = await session.fetch(OBJECTS_SQL)
    for rows, known in tuple(_recent):  # a copy: other threads' syncs append meanwhile
        if rows == objects:
            return known
    key = schema_key(objects)
    schema = _schemas.get(key)
    if schema is None:
        schema = await _read(session, objects)
        _schemas.put(key, schema)
    _recent.append((list(objects), schema))
    return schema


async def _read(session: Session, objects: list[Row]) -> Schema:
    listed_rows, column_rows, fk_rows, index_rows, index_column_rows = await session.fetch_many(
        [
            (sql, ())
            for sql in (
                TABLE_LIST_SQL,
                COLUMNS_SQL,
                FOREIGN_KEYS_SQL,
                INDEX_LIST_SQL,
                INDEX_COLUMNS_SQL,
            )
        ]
    )
    table_kinds = {str(r[0]): r for r in listed_rows}
    columns = _group(column_rows)
    foreign_keys = _group(fk_rows)
    index_list = {str(r[1]): r for r in index_rows}
    index_columns = _group(index_column_rows)

    tables: list[Table] = []
    indexes: list[Index] = []
    triggers: list[Trigger] = []
    views: list[View] = []
    for kind, name_v, table_v, sql_v in objects:
        name, table, sql = str(name_v), str(table_v), str(sql_v or "")
        if is_internal(name) or is_internal(table):
            continue
        if kind == "table":
            listed = table_kinds.get(name)
            if listed is not None and listed[1] == "shadow":
                continue  # virtual-table storage: made by the virtual table itself
            tables.append(_table(name, sql, listed, columns[name], foreign_keys[name]))
        elif kind == "index" and sql:
            indexes.append(_index(name, table, sql, index_list.get(name), index_columns[name]))
        elif kind == "trigger":
            triggers.append(Trigger(name=name, table=table, sql=sql, normalized=normalize(sql)))
        elif kind == "view":
            views.append(View(name=name, sql=sql, normalized=normalize(sql)))
    tables = [_with_uniques(t, index_list, index_columns) for t in tables]
    return Schema(
        tables=tuple(tables), indexes=tuple(indexes), triggers=tuple(triggers), views=tuple(views)
    )


def _group(rows: list[Row]) -> defaultdict[str, list[Row]]:
    grouped: defaultdict[str, list[Row]] = defaultdict(list)
    for row in rows:
        grouped[str(row[0])].append(row[1:])
    return grouped


def _table(
    name: str, sql: str, listed: Row | None, column_rows: list[Row], fk_rows: list[Row]
) -> Table:
    definitions = column_definitions(sql)
    columns = tuple(_column(row, definitions.get(fold(str(row[0])), "")) for row in column_rows)
    return Table(
        name=name,
        columns=columns,
        foreign_keys=_foreign_keys(fk_rows),
        without_rowid=bool(listed[2]) if listed else False,
        strict=bool(listed[3]) if listed else False,
        autoincrement=has_word(sql, "autoincrement"),
        checks=table_checks(sql),
        sql=sql,
    )


def _column(row: Row, definition: str) -> Column:
    """One PRAGMA table_xinfo row; collation and generated expression come from the
    definition text, which is the only place SQLite keeps them."""
    name, ctype, notnull, default, pk, hidden = row
    generated = int(hidden or 0) in (2, 3)
    return Column(
        name=str(name),
        type=str(ctype or ""),
        not_null=bool(notnull),
        default=None if default is None else str(default),
        primary_key=int(pk or 0),
        hidden=int(hidden or 0),
        collation=clause(definition, "collate"),
        expression=clause(definition, "as") if generated else None,
        sql=definition,
    )


def _foreign_keys(rows: list[Row]) -> tuple[ForeignKey, ...]:
    by_id: dict[object, list[Row]] = defaultdict(list)
    for row in rows:
        by_id[row[0]].append(row)
    return tuple(
        ForeignKey(
            columns=tuple(str(r[2]) for r in parts),
            ref_table=str(parts[0][1]),
            ref_columns=tuple(None if r[3] is None else str(r[3]) for r in parts),
            on_update=str(parts[0][4]),
            on_delete=str(parts[0][5]),
        )
        for parts in by_id.values()
    )


def _index(name: str, table: str, sql: str, listed: Row | None, column_rows: list[Row]) -> Index:
    return Index(
        name=name,
        table=table,
        columns=tuple("<expr>" if cid == -2 else str(col) for cid, col in column_rows),
        unique=bool(listed[2]) if listed else False,
        partial=bool(listed[4]) if listed else False,
        sql=sql,
        normalized=normalize(sql),
    )


def _with_uniques(
    table: Table, index_list: dict[str, Row], index_columns: defaultdict[str, list[Row]]
) -> Table:
    """Fold UNIQUE constraints (SQLite's automatic indexes) into the table they belong to."""
    uniques = sorted(
        tuple(fold(str(c)) for _, c in index_columns[name])
        for name, row in index_list.items()
        if str(row[0]) == table.name and row[3] == "u"
    )
    return msgspec.structs.replace(table, uniques=tuple(uniques)) if uniques else table
