"""Changes between two schemas, as a tagged union of small values.

Additive changes carry the SQL that makes them; the others describe drift that tenantdb
will not fix by itself (it never drops or rewrites what holds user data).
"""

from __future__ import annotations

from schema_registry.model import Column, Index, Model, Table, Trigger, View
from schema_registry.sqltext import quote


class Change(Model, frozen=True, tag_field="kind"):
    """One difference. `describe()` is the line for logs and the dry run."""

    @property
    def object(self) -> str:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class CreateTable(Change, frozen=True, tag="create_table"):
    table: Table

    @property
    def object(self) -> str:
        return self.table.name

    def sql(self) -> str:
        return self.table.sql

    def describe(self) -> str:
        return f"create table {self.table.name} ({len(self.table.columns)} columns)"


class AddColumn(Change, frozen=True, tag="add_column"):
    table: str
    column: Column

    @property
    def object(self) -> str:
        return f"{self.table}.{self.column.name}"

    def sql(self) -> str:
        return f"ALTER TABLE {quote(self.table)} ADD COLUMN {self.column.sql}"

    def describe(self) -> str:
        return f"add column {self.object}: {self.column.sql}"


class CreateIndex(Change, frozen=True, tag="create_index"):
    index: Index

    @property
    def object(self) -> str:
        return self.index.name

    def sql(self) -> str:
        return self.index.sql

    def describe(self) -> str:
        kind = "unique index" if self.index.unique else "index"
        return f"create {kind} {self.index.name} on {self.index.table}"


class CreateTrigger(Change, frozen=True, tag="create_trigger"):
    trigger: Trigger

    @property
    def object(self) -> str:
        return self.trigger.name

    def sql(self) -> str:
        return self.trigger.sql

    def describe(self) -> str:
        return f"create trigger {self.trigger.name} on {self.trigger.table}"


class CreateView(Change, frozen=True, tag="create_view"):
    view: View

    @property
    def object(self) -> str:
        return self.view.name

    def sql(self) -> str:
        return self.view.sql

    def describe(self) -> str:
        return f"create view {self.view.name}"


class AlterColumn(Change, frozen=True, tag="alter_column"):
    table: str
    expected: Column
    actual: Column

    @property
    def object(self) -> str:
        return f"{self.table}.{self.expected.name}"

    def describe(self) -> str:
        return (
            f"column {self.object} differs: expected {_column_text(self.expected)}, "
            f"found {_column_text(self.actual)}"
        )


class AlterTable(Change, frozen=True, tag="alter_table"):
    table: str
    detail: str

    @property
    def object(self) -> str:
        return self.table

    def describe(self) -> str:
        return f"table {self.table} differs: {self.detail}"


class ReplaceIndex(Change, frozen=True, tag="replace_index"):
    expected: Index
    actual: Index

    @property
    def object(self) -> str:
        return self.expected.name

    def describe(self) -> str:
        return f"index {self.object} has another definition: {self.actual.sql}"


class ReplaceTrigger(Change, frozen=True, tag="replace_trigger"):
    expected: Trigger
    actual: Trigger

    @property
    def object(self) -> str:
        return self.expected.name

    def describe(self) -> str:
        return f"trigger {self.object} has another definition"


class ReplaceView(Change, frozen=True, tag="replace_view"):
    expected: View
    actual: View

    @property
    def object(self) -> str:
        return self.expected.name

    def describe(self) -> str:
        return f"view {self.object} has another definition"


class Extra(Change, frozen=True, tag="extra"):
    """An object the registry does not know. Reported, never dropped."""

    type: str  # table, column, index, trigger, view
    name: str

    @property
    def object(self) -> str:
        return self.name

    def describe(self) -> str:
        return f"{self.type} {self.name} is not in the registry (kept)"


class ColumnOrder(Change, frozen=True, tag="column_order"):
    """A table whose columns, once the missing ones are added at the end, stand in another
    order than the registry's: `SELECT *` and INSERT without a column list see that order.
    A warning on a live database; a registry version may not cause it."""

    table: str
    expected: tuple[str, ...]
    actual: tuple[str, ...]  # the order the table would have after the plan

    @property
    def object(self) -> str:
        return self.table

    def describe(self) -> str:
        return (
            f"column order of {self.table} is ({', '.join(self.actual)}); "
            f"the registry's is ({', '.join(self.expected)})"
        )


class UnreadableHistory(Change, frozen=True, tag="unreadable_history"):
    """A schema_version row the engine cannot read: it cannot tell where the database is,
    so it changes nothing."""

    row: int | None  # the row's id, when even that is unreadable: None
    detail: str

    @property
    def object(self) -> str:
        return f"schema_version row {self.row}"

    def describe(self) -> str:
        return f"history row {self.row} unreadable: {self.detail}"


Additive = CreateTable | AddColumn | CreateIndex | CreateTrigger | CreateView


class RunScript(Model, frozen=True, tag_field="kind", tag="run_script"):
    """A version's migration script, run as written after that version's additive steps."""

    version: str
    statements: tuple[str, ...]

    @property
    def object(self) -> str:
        return self.version

    def describe(self) -> str:
        return f"migration script of {self.version} ({len(self.statements)} statement(s))"


# What a sync runs, in order: each step tied to the SQL it produced.
Step = CreateTable | AddColumn | CreateIndex | CreateTrigger | CreateView | RunScript


def step_statements(step: Step) -> tuple[str, ...]:
    """The SQL a step runs."""
    return step.statements if isinstance(step, RunScript) else (step.sql(),)


AnyChange = (
    CreateTable
    | AddColumn
    | CreateIndex
    | CreateTrigger
    | CreateView
    | AlterColumn
    | AlterTable
    | ReplaceIndex
    | ReplaceTrigger
    | ReplaceView
    | Extra
    | ColumnOrder
    | UnreadableHistory
)
ADDITIVE = (CreateTable, AddColumn, CreateIndex, CreateTrigger, CreateView)


def _column_text(column: Column) -> str:
    parts = [column.type or "(no type)"]
    if column.primary_key:
        parts.append("PRIMARY KEY")
    if column.not_null:
        parts.append("NOT NULL")
    if column.default is not None:
        parts.append(f"DEFAULT {column.default}")
    if column.collation is not None:
        parts.append(f"COLLATE {column.collation}")
    if column.generated:
        kind = "VIRTUAL" if column.hidden == 2 else "STORED"
        parts.append(f"GENERATED AS ({column.expression}) {kind}")
    return " ".join(parts)
