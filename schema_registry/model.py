"""The schema model: what a SQLite schema is made of, as frozen values.

Both sides of every diff are built by the same introspector from SQLite's own catalog,
so values compare field by field. Raw SQL is kept only to re-create an object and for
messages; comparisons use the normalised text (see sqltext.normalize).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TypeVar

import msgspec

from schema_registry.sqltext import fold, normalize


class Model(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base for every model value: immutable (hashable), keyword-built, strict when decoded."""


class Column(Model, frozen=True):
    name: str
    type: str
    not_null: bool = False
    default: str | None = None
    primary_key: int = 0  # position in the primary key, 0 when not part of it
    hidden: int = 0  # PRAGMA table_xinfo: 0 normal, 2 generated VIRTUAL, 3 generated STORED
    collation: str | None = None  # COLLATE, normalised; None for the default (BINARY)
    expression: str | None = None  # a generated column's expression, normalised
    sql: str = ""  # the definition as written in CREATE TABLE, for ADD COLUMN

    @property
    def generated(self) -> bool:
        return self.hidden in (2, 3)

    def signature(self) -> tuple[object, ...]:
        """What makes two columns the same column (the definition text is cosmetic)."""
        default = None if self.default is None else _normal_default(self.default)
        return (
            self.type.upper(),
            self.not_null,
            default,
            self.primary_key,
            self.hidden,
            self.collation,
            self.expression,
        )


def _normal_default(text: str) -> str:
    return normalize(text)


class ForeignKey(Model, frozen=True):
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str | None, ...]
    on_update: str = "NO ACTION"
    on_delete: str = "NO ACTION"

    def signature(self) -> tuple[object, ...]:
        return (
            tuple(fold(c) for c in self.columns),
            fold(self.ref_table),
            tuple(fold(c) if c else None for c in self.ref_columns),
            self.on_update.upper(),
            self.on_delete.upper(),
        )


class Table(Model, frozen=True):
    name: str
    columns: tuple[Column, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()
    without_rowid: bool = False
    strict: bool = False
    autoincrement: bool = False  # INTEGER PRIMARY KEY AUTOINCREMENT: rowids never reused
    uniques: tuple[tuple[str, ...], ...] = ()  # UNIQUE constraints' column lists
    checks: tuple[str, ...] = ()  # CHECK expressions, column and table level, normalised
    sql: str = ""

    def column(self, name: str) -> Column | None:
        folded = fold(name)
        return next((c for c in self.columns if fold(c.name) == folded), None)

    def references(self) -> set[str]:
        """Folded names of other tables this one points at."""
        return {fold(fk.ref_table) for fk in self.foreign_keys} - {fold(self.name)}


class Index(Model, frozen=True):
    name: str
    table: str
    columns: tuple[str, ...]  # column names; expressions appear as "<expr>"
    unique: bool = False
    partial: bool = False
    sql: str = ""
    normalized: str = ""


class Trigger(Model, frozen=True):
    name: str
    table: str
    sql: str
    normalized: str


class View(Model, frozen=True):
    name: str
    sql: str
    normalized: str


class Schema(Model, frozen=True):
    """A whole user schema, objects in creation order (which respects dependencies)."""

    tables: tuple[Table, ...] = ()
    indexes: tuple[Index, ...] = ()
    triggers: tuple[Trigger, ...] = ()
    views: tuple[View, ...] = ()

    def table(self, name: str) -> Table | None:
        folded = fold(name)
        return next((t for t in self.tables if fold(t.name) == folded), None)

    def fingerprint(self) -> str:
        """A hash of what the schema means, blind to cosmetic SQL differences and order.

        AUTOINCREMENT joined it later: it is hashed only for the tables that have it, so
        every schema without it keeps the hash it always had (see legacy_fingerprint).
        """
        return self._hash(autoincrement=True)

    def legacy_fingerprint(self) -> str:
        """The hash as it was before AUTOINCREMENT counted: history rows written then carry
        it, and must still mean "at this version" (it equals fingerprint() without one)."""
        return self._hash(autoincrement=False)

    def _hash(self, *, autoincrement: bool) -> str:
        canonical = {
            "tables": sorted(
                (
                    fold(t.name),
                    sorted((fold(c.name), *c.signature()) for c in t.columns),
                    sorted(fk.signature() for fk in t.foreign_keys),
                    t.without_rowid,
                    t.strict,
                    t.uniques,
                    t.checks,
                    *(("autoincrement",) if autoincrement and t.autoincrement else ()),
                )
                for t in self.tables
            ),
            "indexes": sorted((fold(i.name), i.normalized) for i in self.indexes),
            "triggers": sorted((fold(t.name), t.normalized) for t in self.triggers),
            "views": sorted((fold(v.name), v.normalized) for v in self.views),
        }
        encoded = msgspec.json.encode(canonical, order="deterministic")
        return "sha256:" + hashlib.sha256(encoded).hexdigest()


Named = TypeVar("Named", Table, Index, Trigger, View)


def by_name(items: Iterable[Named]) -> dict[str, Named]:
    """Index objects by folded name: SQLite names are case-insensitive (in ASCII)."""
    return {fold(item.name): item for item in items}
