"""Generated migrations: the script that takes a database from one version's schema to the
next when the change is not additive.

Changed tables are rebuilt with SQLite's 12-step procedure
(https://www.sqlite.org/lang_altertable.html#otheralter): a new table, INSERT ... SELECT
with explicit column lists, drop the old one, rename the new one, then its indexes,
triggers and the views that name it. ALTER TABLE is used where it does the job alone
(renaming a table or a column, dropping a plain column); every other table is left alone.
The script is written for what the sync runs it against: the previous version plus the
additive steps the sync runs before a script, with foreign keys off, so that
dropping a parent never cascades into its children.

What a tool must not guess (a rename, a drop, the value of a new NOT NULL column) is a
decision passed in; without it the generator refuses, naming the change and the flag that
decides it. What depends on the data (a new UNIQUE, CHECK or foreign key) is a warning.

Every script is run here on an in-memory copy of the schema and must end at exactly the
target, or the generator fails instead of handing out a script that does not.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Final

from schema_registry.changes import Extra
from schema_registry.diff import diff
from schema_registry.errors import SchemaRegistryError
from schema_registry.introspect import introspect
from schema_registry.model import Column, ForeignKey, Model, Schema, Table
from schema_registry.plan import make_plan
from schema_registry.sqlite_db import SqliteDatabase, drive
from schema_registry.sqltext import (
    fold,
    literal,
    normalize,
    quote,
    table_body_parts,
    tokens,
    unquote,
)

DOCS: Final = "https://www.sqlite.org/lang_altertable.html#otheralter"
_ROWID_NAMES: Final = frozenset({"rowid", "oid", "_rowid_"})


class Decisions(Model, frozen=True):
    """What the operator decided, with the table names as written in the flags."""

    table_renames: tuple[tuple[str, str], ...] = ()  # (old, new)
    column_renames: tuple[tuple[str, str, str], ...] = ()  # (table, old, new)
    drops: tuple[tuple[str, str | None], ...] = ()  # (table, column or None for the table)
    backfills: tuple[tuple[str, str, str], ...] = ()  # (table, column, SQL expression)


class Undecided(Model, frozen=True):
    """A change the generator will not guess, and the flag that decides it."""

    change: str
    flag: str

    def describe(self) -> str:
        return f"{self.change}: pass {self.flag}"


class Migration(Model, frozen=True):
    script: str
    warnings: tuple[str, ...] = ()
    rebuilt: tuple[str, ...] = ()  # tables rebuilt with the 12-step procedure


class MigrationRefused(SchemaRegistryError):
    """Changes that need a decision; `undecided` names each and its flag."""

    def __init__(self, undecided: Sequence[Undecided]) -> None:
        self.undecided = tuple(undecided)
        super().__init__("; ".join(u.describe() for u in self.undecided))


class BadDecision(SchemaRegistryError):
    """A flag that names nothing in the schemas, or decides something impossible."""


class GenerationFailed(SchemaRegistryError):
    """The generated script did not reach the target on an empty copy (or SQLite refused
    a statement of it): no script is better than a wrong one."""


def needs_migration(previous: Schema, target: Schema) -> bool:
    """Whether the change is not additive: the loader's own rule (drift, or a removal)."""
    plan = make_plan(diff(previous, target))
    return bool(plan.drift) or any(isinstance(e, Extra) for e in plan.extras)


def parse_decisions(
    previous: Schema,
    target: Schema,
    *,
    renames: Iterable[str] = (),
    drops: Iterable[str] = (),
    backfills: Iterable[str] = (),
) -> Decisions:
    """Decisions from the CLI's flags: `OLD=NEW` or `TABLE.OLD=NEW`, `TABLE` or
    `TABLE.COLUMN`, `TABLE.COLUMN=SQL_EXPR`. A table may be named by its old or new name."""
    table_renames: list[tuple[str, str]] = []
    column_renames: list[tuple[str, str, str]] = []
    for text in renames:
        left, sep, new = text.partition("=")
        if not sep or not left or not new:
            raise BadDecision(f"--rename {text}: expected OLD=NEW or TABLE.OLD=NEW")
        if previous.table(left) is not None and "." not in new:
            table_renames.append((left, new))
        else:
            table, column = _split_column(previous, target, left, f"--rename {text}")
            column_renames.append((table, column, new))
    drop_list: list[tuple[str, str | None]] = []
    for text in drops:
        if previous.table(text) is not None:
            drop_list.append((text, None))
        else:
            drop_list.append(_split_column(previous, target, text, f"--allow-drop {text}"))
    backfill_list: list[tuple[str, str, str]] = []
    for text in backfills:
        left, sep, expression = text.partition("=")
        if not sep or not expression.strip():
            raise BadDecision(f"--backfill {text}: expected TABLE.COLUMN=SQL_EXPR")
        table, column = _split_column(previous, target, left, f"--backfill {text}")
        backfill_list.append((table, column, expression.strip()))
    return Decisions(
        table_renames=tuple(table_renames),
        column_renames=tuple(column_renames),
        drops=tuple(drop_list),
        backfills=tuple(backfill_list),
    )


def _split_column(previous: Schema, target: Schema, text: str, flag: str) -> tuple[str, str]:
    """TABLE.COLUMN, split where the part before the dot names a table of either schema."""
    for at in range(len(text) - 1, 0, -1):
        if text[at] == "." and (previous.table(text[:at]) or target.table(text[:at])):
            return text[:at], text[at + 1 :]
    raise BadDecision(
        f"{flag}: {text.split('.', maxsplit=1)[0]!r} is not a table of either version"
    )


def generate_migration(
    previous: Schema, target: Schema, decisions: Decisions | None = None
) -> Migration:
    """The migration script from `previous` to `target`, with its warnings.

    Raises MigrationRefused naming every change that needs a flag, BadDecision for a
    flag that names nothing, GenerationFailed when the script would not reach `target`.
    """
    return _Generator(previous, target, decisions or Decisions()).run()


class _Generator:
    def __init__(self, previous: Schema, target: Schema, decisions: Decisions) -> None:
        self.previous = previous
        self.target = target
        self.decisions = decisions
        self.lines: list[str] = []
        self.warnings: list[str] = []
        self.undecided: list[Undecided] = []
        self.rebuilt: list[str] = []
        self.conn = sqlite3.connect(":memory:", isolation_level=None)
        # As the sync runs scripts: foreign keys off, so a dropped parent cascades nowhere.
        self.conn.execute("PRAGMA foreign_keys = OFF")

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> Migration:
        try:
            self._build_start()
            self._resolve()
            if self.undecided:
                raise MigrationRefused(self.undecided)
            self._header()
            self._drop_dependents()
            self._rename_tables()
            for want in self.target.tables:
                self._change_table(want)
            self._drop_tables()
            self._create_dependents()
            self._verify()
        finally:
            self.conn.close()
        return Migration(
            script="\n".join(self.lines) + "\n",
            warnings=tuple(self.warnings),
            rebuilt=tuple(self.rebuilt),
        )

    def _state(self) -> Schema:
        return drive(introspect(SqliteDatabase(self.conn)))

    def _exec(self, sql: str, *, comment: str | None = None) -> None:
        """Run one statement of the script on the copy, and write it down."""
        try:
            self.conn.execute(sql)
        except sqlite3.Error as exc:
            raise GenerationFailed(f"SQLite refused {sql!r} on an empty copy: {exc}") from None
        if comment:
            self.lines.append(f"-- {comment}")
        self.lines.append(sql.rstrip().rstrip(";") + ";")

    def _build_start(self) -> None:
        """The previous version, plus the additive steps the sync runs before a script."""
        for sql in _creation_statements(self.previous):
            self.conn.execute(sql)
        # The sync runs a version's additive steps, then its script (then what the plan
        # held back for the script: indexes on the columns it makes).
        self.engine_steps = make_plan(diff(self.previous, self.target)).steps
        for step in self.engine_steps:
            try:
                self.conn.execute(step.sql())
            except sqlite3.Error as exc:
                raise GenerationFailed(
                    f"the sync runs {step.describe()!r} before the migration script, and "
                    f"SQLite refuses it on the previous version: {exc}"
                ) from None
        self.start = self._state()

    # -- decisions ---------------------------------------------------------------------------

    def _resolve(self) -> None:  # noqa: PLR0912 - one pass over every kind of decision
        """Match the target's tables and columns to where their rows are now."""
        d = self.decisions
        self.renamed: dict[str, str] = {}  # folded new table name -> old name
        for old, new in d.table_renames:
            if self.target.table(new) is None:
                raise BadDecision(f"--rename {old}={new}: {new} is not a table of the new schema")
            if self.previous.table(new) is not None:
                raise BadDecision(
                    f"--rename {old}={new}: {new} is a table of the previous version too; "
                    "rename in two versions"
                )
            self.renamed[fold(new)] = self.previous.table(old).name  # type: ignore[union-attr]
        self.sources: dict[str, Table | None] = {}
        for want in self.target.tables:
            old_name = self.renamed.get(fold(want.name))
            if old_name is None and self.previous.table(want.name) is None:
                self.sources[fold(want.name)] = None  # new: the sync has made it already
            else:
                self.sources[fold(want.name)] = self.start.table(old_name or want.name)
        self.column_renames: dict[tuple[str, str], str] = {}  # (table, new) -> old
        for table, old, new in d.column_renames:
            want = self._target_table(table, f"--rename {table}.{old}={new}")
            source = self.sources.get(fold(want.name))
            if source is None or self._previous_column(want, old) is None:
                raise BadDecision(f"--rename {table}.{old}={new}: no column {old} to rename")
            if want.column(new) is None:
                raise BadDecision(f"--rename {table}.{old}={new}: {want.name} has no column {new}")
            self.column_renames[(fold(want.name), fold(new))] = old
        self.backfills: dict[tuple[str, str], str] = {}
        for table, column, expression in d.backfills:
            want = self._target_table(table, f"--backfill {table}.{column}")
            if want.column(column) is None:
                raise BadDecision(
                    f"--backfill {table}.{column}: {want.name} has no column {column}"
                )
            self.backfills[(fold(want.name), fold(column))] = expression
        self.allowed = {(fold(t), fold(c) if c else None) for t, c in d.drops}
        self.dropped_tables: list[Table] = []
        targets = {fold(n) for n in self.renamed.values()}
        for gone in self.previous.tables:
            if self.target.table(gone.name) is None and fold(gone.name) not in targets:
                if (fold(gone.name), None) in self.allowed:
                    self.dropped_tables.append(gone)
                else:
                    self.undecided.append(
                        Undecided(
                            change=f"table {gone.name} is not in the new schema",
                            flag=f"--allow-drop {gone.name} (its rows are lost), or "
                            f"--rename {gone.name}=NEW if it was renamed",
                        )
                    )
        self.plans = {fold(w.name): self._plan_table(w) for w in self.target.tables}

    def _target_table(self, name: str, flag: str) -> Table:
        want = self.target.table(name)
        if want is None:
            new = next((n for n, old in self.renamed.items() if fold(old) == fold(name)), None)
            want = self.target.table(new) if new else None
        if want is None:
            raise BadDecision(f"{flag}: {name} is not a table of the new schema")
        return want

    def _previous_column(self, want: Table, name: str) -> Column | None:
        old = self.previous.table(self.renamed.get(fold(want.name), want.name))
        return old.column(name) if old else None

    def _allowed_drop(self, want: Table, column: str) -> bool:
        old_name = self.renamed.get(fold(want.name), want.name)
        return any((fold(t), fold(column)) in self.allowed for t in (want.name, old_name))

    def _plan_table(self, want: Table) -> _TablePlan | None:
        """Where each of the target's columns comes from, or None for a new table."""
        source = self.sources[fold(want.name)]
        if source is None:
            return None
        plan = _TablePlan(want=want, source=source)
        used: set[str] = set()
        for column in want.columns:
            key = (fold(want.name), fold(column.name))
            old = self.column_renames.get(key)
            if old is not None:
                plan.renames.append((old, column.name))
                origin: Column | None = source.column(old)
            elif self._previous_column(want, column.name) is not None:
                origin = source.column(column.name)
            else:
                origin = None  # new, or made by the sync just now with its default
            if origin is not None:
                used.add(fold(origin.name))
            self._column_source(plan, column, origin, self.backfills.get(key))
        for column in source.columns:
            name = fold(column.name)
            if name in used or column.generated:
                continue
            was = self._previous_column(want, column.name)
            if was is None:
                continue  # an empty placeholder the sync added for a renamed column
            if self._allowed_drop(want, column.name):
                plan.drops.append(column.name)
            else:
                self.undecided.append(
                    Undecided(
                        change=f"column {source.name}.{column.name} is not in the new schema",
                        flag=f"--allow-drop {want.name}.{column.name} (its values are lost), "
                        f"or --rename {want.name}.{column.name}=NEW if it was renamed",
                    )
                )
        self._constraint_warnings(plan)
        return plan

    def _column_source(
        self, plan: _TablePlan, column: Column, origin: Column | None, backfill: str | None
    ) -> None:
        want = plan.want
        where = f"{want.name}.{column.name}"
        if column.generated:
            plan.changed |= origin is None or origin.signature() != column.signature()
            return
        if origin is None:
            if plan.source.column(column.name) is None:
                plan.changed = True
                plan.reasons.append(f"new column {column.name}")
            if backfill is not None:
                plan.copies.append((column.name, backfill))
                plan.changed = True

            elif (
                column.not_null
                and (column.default is None or normalize(column.default) == "null")
                and not _is_rowid_alias(want, column)
            ):
                self.undecided.append(
                    Undecided(
                        change=f"new column {where} is NOT NULL without a default",
                        flag=f"--backfill {where}=SQL_EXPR (its value for existing rows)",
                    )
                )
            return
        expression = quote(origin.name)
        if backfill is not None:
            expression = backfill
            plan.changed = True
        elif origin.type.upper() != column.type.upper() and column.type:
            expression = f"CAST({quote(origin.name)} AS {column.type})"
            self.warnings.append(
                f"{where}: type {origin.type or '(none)'} -> {column.type}, existing values "
                f"converted with {expression} (--backfill {where}=SQL_EXPR to convert "
                "otherwise)"
            )
        if origin.signature() != column.signature():
            plan.changed = True
            plan.reasons.append(f"column {column.name} changes")
        if column.not_null and not origin.not_null and backfill is None:
            self.warnings.append(
                f"{where} becomes NOT NULL: a NULL in an existing row fails the migration "
                f"(--backfill {where}=COALESCE({quote(origin.name)}, ...) to replace them); "
                "rehearse before rolling out"
            )
        plan.copies.append((column.name, expression))

    def _constraint_warnings(self, plan: _TablePlan) -> None:
        want, source = plan.want, plan.source
        names = {fold(new): fold(old) for old, new in plan.renames}
        old_fks = {self._fk_key(fk, names={}, renamed=True) for fk in source.foreign_keys}
        new_fks = {self._fk_key(fk, names=names): fk for fk in want.foreign_keys}
        for key, fk in new_fks.items():
            if key not in old_fks:
                self.warnings.append(
                    f"{want.name}: new foreign key ({', '.join(fk.columns)}) -> {fk.ref_table}: "
                    "existing rows may point at missing rows, and the sync's "
                    "foreign_key_check then refuses the migration; rehearse before rolling out"
                )
        if set(new_fks) != old_fks:
            plan.changed = True
            plan.reasons.append("foreign keys change")
        old_uniques = {tuple(sorted(u)) for u in source.uniques}
        new_uniques = {tuple(sorted(names.get(c, c) for c in u)): u for u in want.uniques}
        for key, unique in new_uniques.items():
            if key not in old_uniques:
                self.warnings.append(
                    f"{want.name}: new UNIQUE ({', '.join(unique)}): existing rows may hold "
                    "duplicates; rehearse before rolling out"
                )
        if set(new_uniques) != old_uniques:
            plan.changed = True
            plan.reasons.append("UNIQUE constraints change")
        for check in sorted(set(want.checks) - set(source.checks)):
            self.warnings.append(
                f"{want.name}: new CHECK ({check}): existing rows may violate it; "
                "rehearse before rolling out"
            )
        if set(want.checks) != set(source.checks):
            plan.changed = True
            plan.reasons.append("CHECK constraints change")
        if want.strict and not source.strict:
            self.warnings.append(
                f"{want.name} becomes STRICT: a value that does not fit its column's type "
                "fails the migration; rehearse before rolling out"
            )
        if (want.strict, want.without_rowid) != (source.strict, source.without_rowid):
            plan.changed = True
            plan.reasons.append("STRICT or WITHOUT ROWID changes")
        old_pk = [fold(c.name) for c in sorted(source.columns, key=_pk) if c.primary_key]
        new_pk = [
            names.get(fold(c.name), fold(c.name))
            for c in sorted(want.columns, key=_pk)
            if c.primary_key
        ]
        if old_pk != new_pk:
            plan.changed = True
            plan.reasons.append("the primary key changes")
            if new_pk:
                self.warnings.append(
                    f"{want.name}: new PRIMARY KEY: existing rows may hold duplicates; "
                    "rehearse before rolling out"
                )

    def _fk_key(
        self, fk: ForeignKey, *, names: dict[str, str], renamed: bool = False
    ) -> tuple[object, ...]:
        """A foreign key, its columns named as before the renames, its parent as after."""
        parent = fold(fk.ref_table)
        if renamed:
            parent = next((n for n, old in self.renamed.items() if fold(old) == parent), parent)
        return (
            tuple(names.get(fold(c), fold(c)) for c in fk.columns),
            parent,
            tuple(fold(c) if c else None for c in fk.ref_columns),
            fk.on_update.upper(),
            fk.on_delete.upper(),
        )

    # -- the script ----------------------------------------------------------------------

    def _header(self) -> None:
        self.lines += [
            "-- Generated by `tenantdb registry new --schema`: review it before committing.",
            "-- The sync runs it after this version's additive steps (new tables, columns",
            "-- SQLite can add, most indexes), in the same transaction, with foreign keys",
            "-- off and PRAGMA foreign_key_check before it commits: dropping a table never",
            "-- cascades into its children, and rows left pointing nowhere roll it all back.",
            f"-- Changed tables are rebuilt with SQLite's 12-step procedure ({DOCS});",
            "-- ALTER TABLE is used where it is enough. Every other table is left alone.",
        ]
        if self.engine_steps:
            self.lines.append("-- Already done by the sync when this runs:")
            self.lines += [f"--   {step.describe()}" for step in self.engine_steps]

    def _affected(self) -> set[str]:
        """Folded names of the tables the script renames, rebuilds, alters or drops."""
        names = {fold(t.name) for t in self.dropped_tables}
        names |= set(self.renamed) | {fold(old) for old in self.renamed.values()}
        for name, plan in self.plans.items():
            if plan is not None and plan.touched:
                names |= {name, fold(plan.source.name)}
        return names

    def _drop_dependents(self) -> None:
        """Views and triggers that name an affected table (SQLite re-checks them on every
        rename), and every index, view or trigger the new version changes or drops."""
        affected = self._affected()
        want_views = {fold(v.name): v.normalized for v in self.target.views}
        want_triggers = {fold(t.name): t.normalized for t in self.target.triggers}
        want_indexes = {fold(i.name): i.normalized for i in self.target.indexes}
        dropped_views: set[str] = set()
        changed = True
        while changed:  # views naming dropped views, until nothing more falls
            changed = False
            for view in self.start.views:
                name = fold(view.name)
                if name in dropped_views:
                    continue
                if want_views.get(name) != view.normalized or _names(
                    view.sql, affected | dropped_views
                ):
                    dropped_views.add(name)
                    changed = True
        first = True
        for view in reversed(self.start.views):
            if fold(view.name) in dropped_views:
                self._exec(
                    f"DROP VIEW {quote(view.name)}",
                    comment="views and triggers naming what changes, recreated at the end"
                    if first
                    else None,
                )
                first = False
        for trigger in self.start.triggers:
            name = fold(trigger.name)
            if want_triggers.get(name) != trigger.normalized or _names(
                trigger.sql, affected | dropped_views
            ):
                self._exec(
                    f"DROP TRIGGER {quote(trigger.name)}",
                    comment="views and triggers naming what changes, recreated at the end"
                    if first
                    else None,
                )
                first = False
        for index in self.start.indexes:
            if want_indexes.get(fold(index.name)) != index.normalized:
                self._exec(
                    f"DROP INDEX {quote(index.name)}",
                    comment=f"index {index.name}: changed or dropped by the new version",
                )

    def _rename_tables(self) -> None:
        for new, old in self.renamed.items():
            want = self.target.table(new)
            assert want is not None  # checked in _resolve  # noqa: S101
            self._exec(
                f"DROP TABLE IF EXISTS {quote(want.name)}",
                comment=f"rename table {old} to {want.name} (its rows move with the name); "
                "the sync has made an empty table of that name already",
            )
            self._exec(f"ALTER TABLE {quote(old)} RENAME TO {quote(want.name)}")

    def _change_table(self, want: Table) -> None:
        plan = self.plans[fold(want.name)]
        if plan is None or not plan.touched:
            return
        alter = plan.alter_statements()
        if alter:
            self.conn.execute("SAVEPOINT alter_table")
            try:
                for sql in alter:
                    self.conn.execute(sql)
                now = self._state().table(want.name)
                fits = now is not None and _reached(Schema(tables=(now,)), Schema(tables=(want,)))
            except sqlite3.Error:
                fits = False
            self.conn.execute("ROLLBACK TO alter_table")
            self.conn.execute("RELEASE alter_table")
            if fits:
                what = ", ".join(plan.describe())
                for i, sql in enumerate(alter):
                    self._exec(sql, comment=f"{want.name}: {what}" if i == 0 else None)
                return
        self._rebuild(plan)

    def _rebuild(self, plan: _TablePlan) -> None:
        want, source = plan.want, plan.source
        self.rebuilt.append(want.name)
        temporary = self._free_name(f"{want.name}__new")
        columns = [quote(name) for name, _ in plan.copies]
        values = [expression for _, expression in plan.copies]
        if _copies_rowid(source, want):
            columns.insert(0, "rowid")
            values.insert(0, "rowid")
        reasons = ", ".join(plan.describe()) or "its definition changed"
        self._exec(
            f"CREATE TABLE {quote(temporary)} {_table_body(want)}",
            comment=f"rebuild {want.name} ({reasons}): the new table, then its rows",
        )
        self._exec(
            f"INSERT INTO {quote(temporary)} ({', '.join(columns)})\n"
            f"  SELECT {', '.join(values)} FROM {quote(want.name)}"
        )
        if want.autoincrement:
            self._carry_sequence(source.name, temporary)
        self._exec(f"DROP TABLE {quote(want.name)}")
        self._exec(f"ALTER TABLE {quote(temporary)} RENAME TO {quote(want.name)}")

    def _carry_sequence(self, old: str, new: str) -> None:
        """AUTOINCREMENT never reuses a rowid, even one whose row was deleted: the new
        table's sequence starts where the old one's was (the copy set it only to the
        largest rowid still there), and the rename then gives it the old name."""
        seq = f"(SELECT seq FROM sqlite_sequence WHERE name = {literal(old)})"
        self._exec(
            f"UPDATE sqlite_sequence SET seq = max(seq, coalesce({seq}, 0)) "
            f"WHERE name = {literal(new)}",
            comment=f"{old}: its AUTOINCREMENT sequence carries over",
        )
        self._exec(
            f"INSERT INTO sqlite_sequence (name, seq) SELECT {literal(new)}, seq "
            f"FROM sqlite_sequence WHERE name = {literal(old)} AND NOT EXISTS "
            f"(SELECT 1 FROM sqlite_sequence WHERE name = {literal(new)})"
        )

    def _free_name(self, base: str) -> str:
        taken = {fold(str(r[0])) for r in self.conn.execute("SELECT name FROM sqlite_schema")}
        name, n = base, 1
        while fold(name) in taken:
            n += 1
            name = f"{base}{n}"
        return name

    def _drop_tables(self) -> None:
        for table in self.dropped_tables:
            children = [t.name for t in self.target.tables if fold(table.name) in t.references()]
            if children:
                self.warnings.append(
                    f"{table.name} is dropped while {', '.join(children)} still reference it: "
                    "their rows with a non-NULL key fail the sync's foreign_key_check"
                )
            self._exec(
                f"DROP TABLE {quote(table.name)}",
                comment=f"drop table {table.name} and its rows (--allow-drop {table.name})",
            )

    def _create_dependents(self) -> None:
        """The new version's indexes, views and triggers that are not there yet."""
        now = self._state()
        have = {
            (kind, fold(o.name)): o.normalized
            for kind, objects in (
                ("index", now.indexes),
                ("view", now.views),
                ("trigger", now.triggers),
            )
            for o in objects
        }
        first = True
        for kind, objects in (
            ("index", self.target.indexes),
            ("view", self.target.views),
            ("trigger", self.target.triggers),
        ):
            for o in objects:
                found = have.get((kind, fold(o.name)))
                if found == o.normalized:
                    continue
                if found is not None:
                    self._exec(f"DROP {kind.upper()} {quote(o.name)}")
                self._exec(
                    o.sql,
                    comment="the new version's indexes, views and triggers on what changed"
                    if first
                    else None,
                )
                first = False

    def _verify(self) -> None:
        left = make_plan(diff(self._state(), self.target))
        if not _reached(self._state(), self.target):
            raise GenerationFailed(
                "the generated script does not reach the new schema on an empty copy: "
                + "; ".join(
                    change.describe()
                    for change in (*left.steps, *(r.change for r in left.drift), *left.extras)
                )
            )
        for warning in self._data_warnings():
            self.warnings.append(warning)

    def _data_warnings(self) -> list[str]:
        before = {fold(i.name) for i in self.previous.indexes}
        return [
            f"new unique index {index.name} on {index.table}: existing rows may hold "
            "duplicates; rehearse before rolling out"
            for index in self.target.indexes
            if index.unique
            and fold(index.name) not in before
            and self.previous.table(self.renamed.get(fold(index.table), index.table))
        ]


class _TablePlan:
    """How one kept table gets from its rows now to the target definition."""

    def __init__(self, *, want: Table, source: Table) -> None:
        self.want = want
        self.source = source
        self.copies: list[tuple[str, str]] = []  # (target column, SQL over the old row)
        self.renames: list[tuple[str, str]] = []  # (old, new) column names
        self.drops: list[str] = []
        self.changed = False  # anything beyond renames and drops
        self.reasons: list[str] = []  # what changed, for the script's comments

    @property
    def touched(self) -> bool:
        return self.changed or bool(self.renames) or bool(self.drops)

    def describe(self) -> list[str]:
        parts = [f"rename column {old} to {new}" for old, new in self.renames]
        parts += [f"drop column {name}" for name in self.drops]
        return parts + self.reasons

    def alter_statements(self) -> list[str]:
        """ALTER TABLE alone, when the change is only renames and drops (SQLite checks the
        rest: a dropped column must not be indexed, a key, or named by a constraint)."""
        if self.changed:
            return []
        table = quote(self.want.name)
        statements = [
            f"ALTER TABLE {table} RENAME COLUMN {quote(old)} TO {quote(new)}"
            for old, new in self.renames
            if fold(old) != fold(new) and self.source.column(new) is None
        ]
        if len(statements) != len([1 for old, new in self.renames if fold(old) != fold(new)]):
            return []  # the sync added the new name already: only a rebuild clears it
        statements += [f"ALTER TABLE {table} DROP COLUMN {quote(name)}" for name in self.drops]
        return statements


def _pk(column: Column) -> int:
    return column.primary_key


def _reached(actual: Schema, target: Schema) -> bool:
    """Whether the engine finds nothing to add, no drift and nothing extra (a column order
    the engine only warns about aside)."""
    plan = make_plan(diff(actual, target))
    return not (plan.steps or plan.drift or plan.extras)


def _creation_statements(schema: Schema) -> list[str]:
    """A schema's CREATE statements in an order SQLite accepts (a trigger may be on a view)."""
    return [
        *(t.sql for t in schema.tables),
        *(i.sql for i in schema.indexes),
        *(v.sql for v in schema.views),
        *(t.sql for t in schema.triggers),
    ]


def _names(sql: str, tables: set[str]) -> bool:
    """Whether SQL text names one of the tables (folded names); a column of the same name
    counts too, which only costs dropping and recreating an object that did not need it."""
    return any(
        fold(unquote(text)) in tables for kind, text in tokens(sql) if kind in ("word", "quoted")
    )


def _table_body(table: Table) -> str:
    """CREATE TABLE's definition after the name, one part a line for review."""
    parts = [
        part + "\n" if "--" in part.splitlines()[-1] else part  # a line comment ends the part
        for part in table_body_parts(table.sql)
    ]
    options = [
        o for o, on in (("STRICT", table.strict), ("WITHOUT ROWID", table.without_rowid)) if on
    ]
    return "(\n    " + ",\n    ".join(parts) + "\n)" + (" " + ", ".join(options) if options else "")


def _is_rowid_alias(table: Table, column: Column) -> bool:
    """INTEGER PRIMARY KEY of a rowid table: SQLite fills it in by itself."""
    keys = [c for c in table.columns if c.primary_key]
    return not table.without_rowid and keys == [column] and column.type.upper() == "INTEGER"


def _copies_rowid(source: Table, want: Table) -> bool:
    """Whether the rebuild must carry the implicit rowid (no INTEGER PRIMARY KEY keeps it)."""
    if source.without_rowid or want.without_rowid:
        return False
    if any(_is_rowid_alias(want, c) for c in want.columns):
        return False
    names = {fold(c.name) for c in (*source.columns, *want.columns)}
    return not names & _ROWID_NAMES
