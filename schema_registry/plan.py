"""Turn a diff into a plan: what may run (additive, in order) and what is drift.

A plan never holds a step that depends on something it refuses (an index on a column
that cannot be added, a view over such a view): that step is drift too, naming what it
waits for, so applying a plan cannot fail on a missing column or table.

SQLite's ALTER TABLE ADD COLUMN limits live in one predicate, `add_column_refusal`, and
are decided from the definition alone: SQLite only enforces some of them once the table
holds a row, and a plan must not depend on whether it does.
"""

from __future__ import annotations

from collections.abc import Iterable

from schema_registry.changes import (
    ADDITIVE,
    AddColumn,
    Additive,
    AnyChange,
    ColumnOrder,
    CreateIndex,
    CreateTable,
    CreateTrigger,
    CreateView,
    Extra,
    ReplaceView,
)
from schema_registry.model import Column, Model
from schema_registry.sqltext import fold, has_word, tokens, unquote

_CONSTANT_WORDS = frozenset({"null", "true", "false"})


def add_column_refusal(column: Column) -> str | None:  # noqa: PLR0911 - a return per rule
    """Why ALTER TABLE ADD COLUMN cannot add this column, or None when it can.

    The rules: https://www.sqlite.org/lang_altertable.html#alter_table_add_column
    """
    default = None if column.default is None or _is_null(column.default) else column.default
    if column.primary_key:
        return "SQLite cannot add a PRIMARY KEY column"
    if has_word(column.sql, "unique"):
        return "SQLite cannot add a UNIQUE column"
    if column.hidden == 3:
        return "SQLite can add generated columns only as VIRTUAL, not STORED"
    if column.not_null and default is None and not column.generated:
        return "SQLite cannot add a NOT NULL column without a non-NULL default"
    if default is not None and not _is_constant(default):
        return f"SQLite cannot add a column with a non-constant default ({default})"
    if default is not None and has_word(column.sql, "references"):
        return (
            "SQLite cannot add a REFERENCES column with a non-NULL default "
            "while foreign keys are on"
        )
    return None


def _is_null(text: str) -> bool:
    return [t.lower() for _, t in tokens(text) if t not in "()"] == ["null"]


def _is_constant(text: str) -> bool:
    """A literal, maybe signed and parenthesised: what SQLite accepts as an added default."""
    parts = [(kind, t) for kind, t in tokens(text) if t not in "()"]
    if parts and parts[0][1] in "+-":
        parts = parts[1:]
    if len(parts) != 1:
        return False
    kind, value = parts[0]
    return kind in ("string", "number", "blob") or value.lower() in _CONSTANT_WORDS


class Refusal(Model, frozen=True):
    """A difference the plan will not fix, and why."""

    change: AnyChange
    reason: str


class Plan(Model, frozen=True):
    steps: tuple[Additive, ...] = ()
    drift: tuple[Refusal, ...] = ()
    extras: tuple[Extra, ...] = ()
    optional: tuple[Additive, ...] = ()  # the steps that only concern optional tables
    warnings: tuple[ColumnOrder, ...] = ()  # tables whose column order is not the registry's

    @property
    def required_steps(self) -> tuple[Additive, ...]:
        return tuple(s for s in self.steps if s not in self.optional)

    def statements(self) -> list[str]:
        return [step.sql() for step in self.steps]

    def render(self) -> str:
        """The dry run: SQL that would run, then a human summary of the rest."""
        lines = [f"-- {len(self.steps)} change(s) to apply, {len(self.drift)} drift item(s)"]
        for step in self.steps:
            lines += [f"-- {step.describe()}", step.sql().rstrip(";") + ";"]
        lines += [f"-- DRIFT: {item.change.describe()} ({item.reason})" for item in self.drift]
        lines += [f"-- extra: {extra.describe()}" for extra in self.extras]
        return "\n".join(lines)


def make_plan(changes: Iterable[AnyChange], *, optional_tables: Iterable[str] = ()) -> Plan:
    """Split a diff into the additive steps to run, drift to report and extras to keep."""
    optional_names = {fold(name) for name in optional_tables}
    candidates: list[Additive] = []
    drift: list[Refusal] = []
    extras: list[Extra] = []
    warnings: list[ColumnOrder] = []
    for change in changes:
        if isinstance(change, Extra):
            extras.append(change)
        elif isinstance(change, ColumnOrder):
            warnings.append(change)
        elif isinstance(change, AddColumn) and (reason := add_column_refusal(change.column)):
            drift.append(Refusal(change=change, reason=reason))
        elif isinstance(change, ADDITIVE):
            candidates.append(change)
        else:
            drift.append(Refusal(change=change, reason="not additive: needs a migration"))
    steps, held = _hold_dependents(candidates, drift)
    optional = tuple(s for s in steps if _table_of(s) in optional_names)
    return Plan(
        steps=tuple(steps),
        drift=(*drift, *held),
        extras=tuple(extras),
        optional=optional,
        warnings=tuple(warnings),
    )


def _hold_dependents(
    candidates: list[Additive], drift: list[Refusal]
) -> tuple[list[Additive], list[Refusal]]:
    """Keep back each step that names a refused column (with its table) or a view that
    cannot be had, and what depends on those in turn (steps come in creation order).

    Names are matched as identifiers in the step's SQL, so a step is held back at worst
    needlessly, when the plan is drift anyway; it never runs against what is missing.
    """
    columns: dict[tuple[str, str], str] = {}  # (table, column) -> why it is missing
    views: dict[str, str] = {}  # view -> why it is missing or not as expected
    for refusal in drift:
        change = refusal.change
        if isinstance(change, AddColumn):
            columns[fold(change.table), fold(change.column.name)] = (
                f"{change.object}, which cannot be added: {refusal.reason}"
            )
        elif isinstance(change, ReplaceView):
            views[fold(change.object)] = f"{change.object}, which has another definition"
    steps: list[Additive] = []
    held: list[Refusal] = []
    for step in candidates:
        names = _identifiers(step)
        missing = next((why for (t, c), why in columns.items() if {t, c} <= names), None)
        missing = missing or next((why for v, why in views.items() if v in names), None)
        if missing is None:
            steps.append(step)
            continue
        reason = f"depends on {missing}"
        held.append(Refusal(change=step, reason=reason))
        if isinstance(step, CreateView):
            views[fold(step.view.name)] = f"{step.view.name}, which cannot be created: {reason}"
    return steps, held


def _identifiers(step: Additive) -> set[str]:
    """Folded identifiers a step's SQL names, besides the object it makes (a new table
    depends on nothing that can be refused: a foreign key needs no parent to exist)."""
    if isinstance(step, CreateTable):
        return set()
    sql = step.column.sql if isinstance(step, AddColumn) else step.sql()
    names = {fold(unquote(text)) for kind, text in tokens(sql) if kind in ("word", "quoted")}
    if isinstance(step, AddColumn):
        names = (names - {fold(step.column.name)}) | {fold(step.table)}
    else:
        names.discard(fold(step.object))
    return names


def _table_of(step: Additive) -> str | None:
    """The table a step creates or belongs to, if the step is tied to a single table."""
    if isinstance(step, CreateTable):
        return fold(step.table.name)
    if isinstance(step, CreateIndex):
        return fold(step.index.table)
    if isinstance(step, CreateTrigger):
        return fold(step.trigger.table)
    return None
