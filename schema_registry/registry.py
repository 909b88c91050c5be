"""The versioned schema registry: a folder with registry.toml and one SQL file per version.

Each version's schema is compiled by letting SQLite run it in a fresh in-memory database
and reading it back with the same introspector used on live databases, so both sides of
every diff come from SQLite's own catalog.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import msgspec

from schema_registry.changes import Extra
from schema_registry.diff import diff
from schema_registry.errors import RegistryError
from schema_registry.introspect import introspect
from schema_registry.lru import LRU
from schema_registry.model import Model, Schema
from schema_registry.plan import Plan, make_plan
from schema_registry.sqlite_db import SqliteDatabase, drive
from schema_registry.sqltext import split_statements

EXAMPLE: Final = Path(__file__).parent / "example"
_SEMVER: Final = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)\Z")


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


def version_key(version: str) -> tuple[int, ...]:
    """(MAJOR, MINOR, PATCH) for ordering."""
    match = _SEMVER.match(version)
    if match is None:
        raise ValueError(f"{version!r} is not a MAJOR.MINOR.PATCH version")
    return tuple(int(part) for part in match.groups())


class Registry(Model, frozen=True):
    path: str
    versions: tuple[Version, ...]

    @property
    def current(self) -> Version:
        return self.versions[-1]

    def get(self, version: str) -> Version | None:
        return next((v for v in self.versions if v.version == version), None)

    def passed(self, from_version: str | None, to_version: str) -> tuple[Version, ...]:
        """The versions an upgrade from `from_version` to `to_version` goes through."""
        low = version_key(from_version) if from_version else None
        high = version_key(to_version)
        return tuple(v for v in self.versions if (low is None or v.key > low) and v.key <= high)


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
    for entry in entries:
        version = _compile(root, entry)
        if versions:
            _check_additive(versions[-1], version, entry)
        versions.append(version)
    return Registry(path=str(root), versions=tuple(versions))


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
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        conn.executescript(sql)
        return drive(introspect(SqliteDatabase(conn)))
    finally:
        conn.close()


def _compile(root: Path, entry: VersionEntry) -> Version:
    schema_path = root / entry.schema
    where = f"{schema_path} (version {entry.version})"
    try:
        schema = compile_schema(schema_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"{where}: no such file") from None
    except sqlite3.Error as exc:
        raise RegistryError(f"{where}: SQLite refused it: {exc}") from None
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
    """A version without a migration may only add to the previous one."""
    if version.migration:
        return
    plan = make_plan(diff(previous.schema, version.schema))
    removed = [extra for extra in plan.extras if isinstance(extra, Extra)]
    problems = [f"{r.change.describe()} ({r.reason})" for r in plan.drift]
    problems += [f"drops {extra.type} {extra.name}" for extra in removed]
    if problems:
        raise RegistryError(
            f"{entry.schema} (version {version.version}) is not additive to "
            f"{previous.version}: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
            + ": keep the old definition, or add a migration"
        )
