"""The versioned schema registry: a folder with registry.toml and one SQL file per version.

Each version's schema is compiled by letting SQLite run it in a fresh in-memory database
and reading it back with the same introspector used on live databases, so both sides of
every diff come from SQLite's own catalog. SQLite checks a view's query and a trigger's
body only when they are used, so the loader uses each one there (see check_objects):
a registry that loads never hands a tenant an object that cannot run.
"""

from __future__ import annotations

import functools
import sqlite3
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import msgspec

from schema_registry.changes import ColumnOrder, Extra
from schema_registry.diff import diff
from schema_registry.errors import RegistryError
from schema_registry.history import version_key as version_key  # noqa: PLC0414 - its old home
from schema_registry.introspect import introspect
from schema_registry.lru import LRU
from schema_registry.model import Model, Schema
from schema_registry.plan import Plan, make_plan
from schema_registry.sqlite_db import SqliteDatabase, drive
from schema_registry.sqltext import quote, split_statements, tokens

EXAMPLE: Final = Path(__file__).parent / "example"


_PASSED_KEPT: Final = 1024  # pairs Registry.passed remembers before it starts again


class VersionEntry(Model, frozen=True):
    """One `[[versions]]` entry of registry.toml, as written."""

    version: str
    description: str
    created_at: str
    schema: str
    migration: str | None = None
    optional: tuple[str, ...] = ()


class RegistryFile(Model, frozen=True):
    versions: tuple[VersionEntry, ...]


class Version(Model, frozen=True, dict=True):
    """A compiled version: its entry plus the schema SQLite built from it.

    What is worked out from a version once (its key, its plans) is cached on the version
    itself, so it lives exactly as long as the loaded registry: `dict=True` gives each
    instance room for it outside the fields, which alone decide equality, hash and encoding.
    """

    version: str
    description: str
    created_at: str
    schema: Schema
    content_hash: str
    migration: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()

    @functools.cached_property
    def key(self) -> tuple[int, ...]:
        """(MAJOR, MINOR, PATCH), parsed once: every sync compares a few."""
        return version_key(self.version)

    @functools.cached_property
    def accepted_hashes(self) -> frozenset[str]:
        """Content hashes a history row may carry to be at this version: the hash, and the
        one written before AUTOINCREMENT counted (see Schema.legacy_fingerprint)."""
        return frozenset({self.content_hash, self.schema.legacy_fingerprint()})

    def accepts(self, content_hash: str) -> bool:
        """Whether a history row's (or a mirrored stamp's) hash means this version's schema."""
        return content_hash in self.accepted_hashes

    @functools.cached_property
    def _plans(self) -> LRU[Schema, Plan]:
        """Where Python's cached_property has no lock (3.12+), two threads' first calls may
        each make one; one is kept, and the other's plan is only made again."""
        return LRU(256)

    def plan_from(self, actual: Schema) -> Plan:
        """The plan from `actual` to this version, made once per distinct schema.

        Keyed by the schema's value, so a fleet of databases in the same state diffs once.
        Introspection hands out one object per distinct schema, so the lookup usually
        matches by identity before comparing anything.
        """
        if actual == self.schema:
            return Plan()
        plan = self._plans.get(actual)
        if plan is None:
            plan = make_plan(diff(actual, self.schema), optional_tables=self.optional)
            self._plans.put(actual, plan)
        return plan


class Registry(Model, frozen=True, dict=True):
    """A loaded registry. Like a Version's, what is worked out from it once (the versions
    between two) is cached on the instance (`dict=True`), outside the fields."""

    path: str
    versions: tuple[Version, ...]
    warnings: tuple[str, ...] = ()  # what loads but looks like a mistake, for the CLI to show

    @property
    def current(self) -> Version:
        return self.versions[-1]

    def get(self, version: str) -> Version | None:
        return next((v for v in self.versions if v.version == version), None)

    @functools.cached_property
    def _passed(self) -> dict[tuple[str | None, str], tuple[Version, ...]]:
        return {}

    def passed(self, from_version: str | None, to_version: str) -> tuple[Version, ...]:
        """The versions an upgrade from `from_version` to `to_version` goes through.

        Remembered per pair: a sync asks four times, a fleet for the same pair or two.
        The versions come from history rows, so their number is bounded by what a fleet
        holds; the map is emptied past _PASSED_KEPT pairs all the same.
        """
        key = (from_version, to_version)
        found = self._passed.get(key)
        if found is None:
            low = version_key(from_version) if from_version else None
            high = version_key(to_version)
            found = tuple(
                v for v in self.versions if (low is None or v.key > low) and v.key <= high
            )
            if len(self._passed) >= _PASSED_KEPT:
                self._passed.clear()
            self._passed[key] = found
        return found


def load_registry(folder: str | Path) -> Registry:
    """Load and validate a registry folder; RegistryError names what is wrong and where."""
    root = Path(folder)
    toml_path = root / "registry.toml"
    try:
        raw = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        entries = msgspec.convert(raw, RegistryFile).versions
    except FileNotFoundError:
        raise RegistryError(
            f"{toml_path}: no such file (a registry is a folder with registry.toml)"
        ) from None
    except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise RegistryError(f"{toml_path}: {exc}") from None
    if not entries:
        raise RegistryError(f"{toml_path}: lists no [[versions]]")
    _check_order(toml_path, entries)
    versions: list[Version] = []
    warnings: list[str] = []
    for entry in entries:
        version = _compile(root, entry)
        if versions:
            _check_additive(versions[-1], version, entry)
            warnings += _identical(versions[-1], version, entry)
        versions.append(version)
    return Registry(path=str(root), versions=tuple(versions), warnings=tuple(warnings))


def _check_order(toml_path: Path, entries: Iterable[VersionEntry]) -> None:
    previous: VersionEntry | None = None
    for entry in entries:
        try:
            key = version_key(entry.version)
        except ValueError as exc:
            raise RegistryError(f"{toml_path}: {exc}") from None
        if previous is not None:
            if entry.version == previous.version:
                raise RegistryError(f"{toml_path}: version {entry.version} is listed twice")
            if key < version_key(previous.version):
                raise RegistryError(
                    f"{toml_path}: version {entry.version} comes after {previous.version}; "
                    "versions must increase strictly"
                )
        previous = entry


def compile_schema(sql: str) -> Schema:
    """Let SQLite parse the DDL in a fresh in-memory database and read back what it built."""
    return _build(sql, check=False)


def _build(sql: str, *, check: bool) -> Schema:
    """compile_schema; with `check`, every view and trigger is also used once (Unusable)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        conn.executescript(sql)
        schema = drive(introspect(SqliteDatabase(conn)))
        if check:
            check_objects(conn, schema)
        return schema
    finally:
        conn.close()


class Unusable(Exception):
    """A view or trigger SQLite accepted but cannot run; the message names it."""


def check_objects(conn: sqlite3.Connection, schema: Schema) -> None:
    """Use every view (`SELECT * ... LIMIT 0`) and compile every trigger's body.

    A trigger's body is compiled into the statement that fires it, so EXPLAIN of that
    statement prepares it without running anything. The other triggers are dropped for it
    (in a savepoint rolled back after) so a failure names the right one.
    """
    for view in schema.views:
        try:
            conn.execute(f"SELECT * FROM {quote(view.name)} LIMIT 0").fetchall()
        except sqlite3.Error as exc:
            raise Unusable(f"view {view.name} does not run: {exc}") from None
    for trigger in schema.triggers:
        firing = _firing(conn, trigger.table, trigger.sql)
        conn.execute("SAVEPOINT check_trigger")
        try:
            for other in schema.triggers:
                if other is not trigger:
                    conn.execute(f"DROP TRIGGER {quote(other.name)}")
            conn.execute(f"EXPLAIN {firing}").fetchall()
        except sqlite3.Error as exc:
            raise Unusable(f"trigger {trigger.name} does not compile: {exc}") from None
        finally:
            conn.execute("ROLLBACK TO check_trigger")
            conn.execute("RELEASE check_trigger")


def _firing(conn: sqlite3.Connection, table: str, trigger_sql: str) -> str:
    """A statement on `table` that fires a trigger with this definition (its first INSERT,
    UPDATE or DELETE keyword is its event; UPDATE sets every column, so UPDATE OF fires)."""
    event = next(
        text.lower()
        for kind, text in tokens(trigger_sql)
        if kind == "word" and text.lower() in ("insert", "update", "delete")
    )
    name = quote(table)
    if event == "insert":
        return f"INSERT INTO {name} DEFAULT VALUES"
    if event == "delete":
        return f"DELETE FROM {name}"
    rows = conn.execute("SELECT name FROM pragma_table_xinfo(?) WHERE hidden = 0", (table,))
    columns = [quote(str(row[0])) for row in rows.fetchall()]
    return f"UPDATE {name} SET " + ", ".join(f"{c} = {c}" for c in columns)


def _compile(root: Path, entry: VersionEntry) -> Version:
    schema_path = root / entry.schema
    where = f"{schema_path} (version {entry.version})"
    try:
        schema = _build(schema_path.read_text(encoding="utf-8"), check=True)
    except FileNotFoundError:
        raise RegistryError(f"{where}: no such file") from None
    except sqlite3.Error as exc:
        raise RegistryError(f"{where}: SQLite refused it: {exc}") from None
    except Unusable as exc:
        raise RegistryError(f"{where}: {exc}") from None
    for name in entry.optional:
        if schema.table(name) is None:
            raise RegistryError(f"{where}: optional table {name} is not in the schema")
    migration: tuple[str, ...] = ()
    if entry.migration:
        migration_path = root / entry.migration
        try:
            migration = tuple(split_statements(migration_path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise RegistryError(
                f"{migration_path} (version {entry.version}): no such file"
            ) from None
    return Version(
        version=entry.version,
        description=entry.description,
        created_at=entry.created_at,
        schema=schema,
        content_hash=schema.fingerprint(),
        migration=migration,
        optional=entry.optional,
    )


def _check_additive(previous: Version, version: Version, entry: VersionEntry) -> None:
    """A version without a migration may only add to the previous one, new columns at the
    end of their table: a new database and an upgraded one must have the same column order
    (`SELECT *`, INSERT without a column list)."""
    if version.migration:
        return
    plan = make_plan(diff(previous.schema, version.schema))
    removed = [extra for extra in plan.extras if isinstance(extra, Extra)]
    problems = [f"{r.change.describe()} ({r.reason})" for r in plan.drift]
    problems += [f"drops {extra.type} {extra.name}" for extra in removed]
    problems += [_order_problem(order) for order in plan.warnings]
    if problems:
        raise RegistryError(
            f"{entry.schema} (version {version.version}) is not additive to "
            f"{previous.version}: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
            + ": keep the old definition, or add a migration"
        )


def _order_problem(order: ColumnOrder) -> str:
    return (
        f"changes the column order of table {order.table}: an upgraded database would have "
        f"({', '.join(order.actual)}), a new one ({', '.join(order.expected)}); "
        "add new columns at the end"
    )


def _identical(previous: Version, version: Version, entry: VersionEntry) -> list[str]:
    """A version that changes nothing, schema or data, is most likely a forgotten edit."""
    if version.migration or version.content_hash != previous.content_hash:
        return []
    return [
        f"{entry.schema} (version {version.version}) is identical to {previous.version}: "
        "it changes nothing (was its schema file not edited?)"
    ]
