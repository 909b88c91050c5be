"""Compare two schemas. Pure and complete: every difference, additive or not.

Deciding what may run is the planner's job (plan.py), so a policy change never touches
the comparison. Comparisons are per object kind, one function each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from schema_registry.changes import (
    AddColumn,
    AlterColumn,
    AlterTable,
    AnyChange,
    ColumnOrder,
    CreateIndex,
    CreateTable,
    CreateTrigger,
    CreateView,
    Extra,
    ReplaceIndex,
    ReplaceTrigger,
    ReplaceView,
)
from schema_registry.model import Index, Schema, Table, Trigger, View, by_name
from schema_registry.sqltext import checks, fold, has_word

D = TypeVar("D", Index, Trigger, View)


def diff(actual: Schema, expected: Schema) -> list[AnyChange]:
    """What turns `actual` into `expected`: creates in dependency order, then the rest."""
    return [
        *_create_tables(actual, expected),
        *_compare_tables(actual, expected),
        *_compare_indexes(actual, expected),
        *_compare_views(actual, expected),
        *_compare_triggers(actual, expected),
        *_extras(actual, expected),
    ]


def _create_tables(actual: Schema, expected: Schema) -> list[AnyChange]:
    have = by_name(actual.tables)
    missing = [t for t in expected.tables if fold(t.name) not in have]
    return [CreateTable(table=t) for t in dependency_order(missing)]


def dependency_order(tables: list[Table]) -> list[Table]:
    """Parents before children (foreign keys); ties and cycles keep the registry's order."""
    pending = {fold(t.name): t for t in tables}
    ordered: list[Table] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        table = pending.get(name)
        if table is None or name in visiting:
            return  # created already, not being created, or a cycle (SQLite allows those)
        visiting.add(name)
        for parent in sorted(table.references()):
            visit(parent)
        visiting.discard(name)
        if name in pending:
            ordered.append(pending.pop(name))

    for table in tables:
        visit(fold(table.name))
    return ordered


def _compare_tables(actual: Schema, expected: Schema) -> list[AnyChange]:
    have = by_name(actual.tables)
    changes: list[AnyChange] = []
    for want in expected.tables:
        found = have.get(fold(want.name))
        if found is not None:
            changes.extend(_compare_table(found, want))
    return changes


def _compare_table(actual: Table, expected: Table) -> list[AnyChange]:
    changes: list[AnyChange] = []
    added: set[str] = set()
    for column in expected.columns:
        found = actual.column(column.name)
        if found is None:
            changes.append(AddColumn(table=actual.name, column=column))
            added.add(fold(column.name))
        elif found.signature() != column.signature():
            changes.append(AlterColumn(table=actual.name, expected=column, actual=found))
    for column in actual.columns:
        if expected.column(column.name) is None:
            changes.append(Extra(type="column", name=f"{actual.name}.{column.name}"))
    for detail in _table_differences(actual, expected, added):
        changes.append(AlterTable(table=actual.name, detail=detail))
    order = _column_order(actual, expected)
    return [*changes, order] if order else changes


def _column_order(actual: Table, expected: Table) -> ColumnOrder | None:
    """The table's order after ADD COLUMN appends what is missing, when it is not the
    registry's. Columns the registry does not know are left out (they are extras)."""
    wanted = tuple(c.name for c in expected.columns)
    known = {fold(name) for name in wanted}
    kept = [c.name for c in actual.columns if fold(c.name) in known]
    have = {fold(name) for name in kept}
    after = (*kept, *(name for name in wanted if fold(name) not in have))
    if [fold(name) for name in after] == [fold(name) for name in wanted]:
        return None
    return ColumnOrder(table=actual.name, expected=wanted, actual=after)


def _table_differences(actual: Table, expected: Table, added: set[str]) -> list[str]:
    details: list[str] = []
    if actual.without_rowid != expected.without_rowid:
        details.append(f"WITHOUT ROWID expected {expected.without_rowid}")
    if actual.strict != expected.strict:
        details.append(f"STRICT expected {expected.strict}")
    if actual.autoincrement != expected.autoincrement:
        details.append(f"AUTOINCREMENT expected {expected.autoincrement}")
    have_fks = {fk.signature() for fk in actual.foreign_keys}
    for fk in expected.foreign_keys:
        comes_with_column = _declared_by_new_column(expected, fk.columns, added, "references")
        if fk.signature() not in have_fks and not comes_with_column:
            details.append(f"missing foreign key ({', '.join(fk.columns)}) -> {fk.ref_table}")
    want_fks = {fk.signature() for fk in expected.foreign_keys}
    for fk in actual.foreign_keys:
        if fk.signature() not in want_fks:
            details.append(f"unexpected foreign key ({', '.join(fk.columns)}) -> {fk.ref_table}")
    for columns in set(expected.uniques) - set(actual.uniques):
        if not _declared_by_new_column(expected, columns, added, "unique"):
            details.append(f"missing UNIQUE ({', '.join(columns)})")
    for columns in set(actual.uniques) - set(expected.uniques):
        details.append(f"unexpected UNIQUE ({', '.join(columns)})")
    # A column's own CHECK comes with ADD COLUMN; a table CHECK never does.
    brought = {c for col in expected.columns if fold(col.name) in added for c in checks(col.sql)}
    for check in sorted(set(expected.checks) - set(actual.checks) - brought):
        details.append(f"missing CHECK ({check})")
    for check in sorted(set(actual.checks) - set(expected.checks)):
        details.append(f"unexpected CHECK ({check})")
    return details


def _declared_by_new_column(
    table: Table, columns: tuple[str, ...], added: set[str], keyword: str
) -> bool:
    """Whether a constraint comes with ADD COLUMN: one new column declaring it itself.

    A table constraint such as `UNIQUE (a)` or `FOREIGN KEY (a) REFERENCES p` is not part of
    the column definition that ADD COLUMN repeats, so adding `a` would silently lose it.
    (A column-level UNIQUE is then refused by the planner, with its own reason.)
    """
    if len(columns) != 1 or fold(columns[0]) not in added:
        return False
    column = table.column(columns[0])
    return column is not None and has_word(column.sql, keyword)


def _compare_indexes(actual: Schema, expected: Schema) -> list[AnyChange]:
    return _compare_definitions(
        actual.indexes,
        expected.indexes,
        lambda want: CreateIndex(index=want),
        lambda want, found: ReplaceIndex(expected=want, actual=found),
    )


def _compare_views(actual: Schema, expected: Schema) -> list[AnyChange]:
    return _compare_definitions(
        actual.views,
        expected.views,
        lambda want: CreateView(view=want),
        lambda want, found: ReplaceView(expected=want, actual=found),
    )


def _compare_triggers(actual: Schema, expected: Schema) -> list[AnyChange]:
    return _compare_definitions(
        actual.triggers,
        expected.triggers,
        lambda want: CreateTrigger(trigger=want),
        lambda want, found: ReplaceTrigger(expected=want, actual=found),
    )


def _compare_definitions(
    actual: tuple[D, ...],
    expected: tuple[D, ...],
    create: Callable[[D], AnyChange],
    replace: Callable[[D, D], AnyChange],
) -> list[AnyChange]:
    """Objects defined wholly by their SQL: missing ones are created, changed ones reported."""
    have = by_name(actual)
    changes: list[AnyChange] = []
    for want in expected:
        found = have.get(fold(want.name))
        if found is None:
            changes.append(create(want))
        elif found.normalized != want.normalized:
            changes.append(replace(want, found))
    return changes


def _extras(actual: Schema, expected: Schema) -> list[AnyChange]:
    kinds: tuple[tuple[str, Sequence[HasName], Sequence[HasName]], ...] = (
        ("table", actual.tables, expected.tables),
        ("index", actual.indexes, expected.indexes),
        ("view", actual.views, expected.views),
        ("trigger", actual.triggers, expected.triggers),
    )
    extras: list[AnyChange] = []
    for kind, have, want in kinds:
        known = {fold(o.name) for o in want}
        extras.extend(Extra(type=kind, name=o.name) for o in have if fold(o.name) not in known)
    return extras


class HasName(Protocol):
    @property
    def name(self) -> str: ...
