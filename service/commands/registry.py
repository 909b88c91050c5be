"""`tenantdb registry ...`: validate a registry folder, scaffold its next version, diff two.

These read (and, for `new`, extend) the registry folder only: no backend, no tenant.
A registry that does not validate is what these commands are about, so it fails the
command (exit 1) rather than counting as bad configuration (exit 2).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tomllib
from pathlib import Path

import msgspec
import structlog

from schema_registry import (
    BadDecision,
    GenerationFailed,
    MigrationRefused,
    Registry,
    RegistryError,
    RegistryFile,
    Version,
    compile_schema,
    diff,
    generate_migration,
    load_registry,
    make_plan,
    needs_migration,
    parse_decisions,
    utc_now,
    version_key,
)
from service.commands.common import (
    OK,
    USAGE,
    add_command,
    add_group,
    emit,
    emit_json,
    fail,
    usage,
)
from service.config import Settings

log = structlog.get_logger("tenantdb.commands.registry")

GROUP_EPILOG = """\
examples:
  tenantdb registry validate                          # the folder in TENANTDB_REGISTRY
  tenantdb registry new 1.3.0 -m "Trade notes" --dir ./registry
  tenantdb registry diff 1.1.0 1.2.0 > upgrade.sql
"""
VALIDATE_EPILOG = """\
examples:
  tenantdb registry validate                 # the folder in TENANTDB_REGISTRY
  tenantdb registry validate ./registry      # before committing a new version
  tenantdb registry validate ./registry --json
"""
NEW_EPILOG = """\
Copies the newest schema file to VERSION.sql and appends a [[versions]] entry (created_at
now, in UTC; the newest version's `optional` tables carried over). Edit VERSION.sql, then
run `tenantdb registry validate`.

With --schema FILE (the complete desired schema) it writes FILE as VERSION.sql and, when
the change is not additive, VERSION.migrate.sql: SQLite's 12-step table rebuild for each
changed table (ALTER TABLE where that is enough), for review. A rename, a drop and the
value of a new NOT NULL column are never guessed: without the flag that decides one the
command changes nothing and exits 2, naming the change and the flag. What depends on the
data (a new UNIQUE, CHECK or foreign key) is printed as a warning: rehearse first.

examples:
  tenantdb registry new 1.3.0 -m "Trade notes and a notes index"
  tenantdb registry new 2.0.0 -m "Split accounts" --dir ./registry
  tenantdb registry new 2.0.0 -m "Notes get a title" --schema desired.sql \\
      --rename notes.body=text --allow-drop notes.legacy --backfill "notes.title='untitled'"
"""
DIFF_EPILOG = """\
Prints the SQL an upgrade from A to B runs: the additive steps, what would be drift, and
the migration scripts of the versions passed (a version with a script is reached first,
as a tenant's sync does).

examples:
  tenantdb registry diff 1.1.0 1.2.0
  tenantdb registry diff 1.0.0 1.2.0 --dir ./registry > upgrade.sql
"""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = add_group(
        commands, "registry", "validate, extend and compare the schema registry", GROUP_EPILOG
    )
    validate = add_command(
        group,
        "validate",
        "check a registry folder as the service's loader does",
        VALIDATE_EPILOG,
        description="Check a registry folder as the service's loader does; on success, list "
        "its versions with their content hashes.",
    )
    validate.add_argument(
        "dir", nargs="?", metavar="DIR", help="the registry folder (default: TENANTDB_REGISTRY)"
    )
    validate.add_argument("--json", action="store_true", help="one JSON document on stdout")
    validate.set_defaults(run=_validate)

    new = add_command(group, "new", "scaffold the next version from the newest one", NEW_EPILOG)
    new.add_argument("version", metavar="VERSION", type=_semver, help="MAJOR.MINOR.PATCH")
    new.add_argument("-m", "--message", required=True, metavar="TEXT", help="its description")
    new.add_argument(
        "--dir", metavar="DIR", help="the registry folder (default: TENANTDB_REGISTRY)"
    )
    new.add_argument(
        "--schema",
        metavar="FILE",
        help="the complete desired schema; writes a migration script when it is not additive",
    )
    new.add_argument(
        "--rename",
        action="append",
        default=[],
        metavar="TABLE.OLD=NEW|OLD=NEW",
        help="a renamed column (TABLE.OLD=NEW) or table (OLD=NEW): its data moves with it",
    )
    new.add_argument(
        "--allow-drop",
        action="append",
        default=[],
        metavar="TABLE.COLUMN|TABLE",
        help="drop this column or table and its data (refused otherwise)",
    )
    new.add_argument(
        "--backfill",
        action="append",
        default=[],
        metavar="TABLE.COLUMN=SQL_EXPR",
        help="the value of a new NOT NULL column for existing rows, or the conversion of a "
        "column whose type changes (default CAST(column AS type)); SQL over the old row",
    )
    new.set_defaults(run=_new)

    compare = add_command(group, "diff", "the SQL that turns version A into version B", DIFF_EPILOG)
    compare.add_argument("a", metavar="A", help="the version upgraded from")
    compare.add_argument("b", metavar="B", help="the version upgraded to")
    compare.add_argument(
        "--dir", metavar="DIR", help="the registry folder (default: TENANTDB_REGISTRY)"
    )
    compare.set_defaults(run=_diff)


def _semver(text: str) -> str:
    try:
        version_key(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


class VersionSummary(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    description: str
    created_at: str
    content_hash: str
    tables: int
    migration_statements: int
    optional: tuple[str, ...]


class RegistrySummary(msgspec.Struct, frozen=True, kw_only=True):
    valid: bool
    path: str
    current: str | None = None
    versions: tuple[VersionSummary, ...] = ()
    error: str | None = None


def summarize(registry: Registry) -> RegistrySummary:
    return RegistrySummary(
        valid=True,
        path=registry.path,
        current=registry.current.version,
        versions=tuple(
            VersionSummary(
                version=v.version,
                description=v.description,
                created_at=v.created_at,
                content_hash=v.content_hash,
                tables=len(v.schema.tables),
                migration_statements=len(v.migration),
                optional=v.optional,
            )
            for v in registry.versions
        ),
    )


def describe(registry: Registry) -> str:
    """The registry in a few lines: one per version, with its content hash."""
    count = len(registry.versions)
    lines = [
        f"registry {registry.path} is valid: {count} version(s), current {registry.current.version}"
    ]
    width = max(len(v.version) for v in registry.versions)
    for v in registry.versions:
        notes = [f"{len(v.schema.tables)} tables"]
        if v.migration:
            notes.append(f"migration: {len(v.migration)} statement(s)")
        if v.optional:
            notes.append(f"optional: {', '.join(v.optional)}")
        lines.append(
            f"  {v.version:<{width}}  {v.content_hash}  {v.description} ({'; '.join(notes)})"
        )
    return "\n".join(lines)


def _validate(args: argparse.Namespace, settings: Settings) -> int:
    folder = str(args.dir or settings.registry)
    try:
        registry = load_registry(folder)
    except RegistryError as exc:
        if args.json:
            emit_json(RegistrySummary(valid=False, path=folder, error=str(exc)))
        log.info("registry.validate_failed", path=folder)
        return fail(f"the registry {folder} does not validate:\n{exc}")
    if args.json:
        emit_json(summarize(registry))
    else:
        emit(describe(registry))
    return OK


def _new(args: argparse.Namespace, settings: Settings) -> int:  # noqa: PLR0911 - a return per refusal
    folder = Path(args.dir or settings.registry)
    if decided_anything(args) and not args.schema:
        return usage("--rename, --allow-drop and --backfill need --schema FILE")
    try:
        registry = load_registry(folder)  # never extend a registry that is already broken
    except RegistryError as exc:
        return fail(f"the registry {folder} does not validate; fix it first:\n{exc}")
    last = registry.current
    if version_key(args.version) <= last.key:
        return fail(
            f"version {args.version} is not greater than the newest version, {last.version}: "
            "versions must increase strictly"
        )
    toml_path = folder / "registry.toml"
    toml_text = toml_path.read_text(encoding="utf-8")
    entry = msgspec.convert(tomllib.loads(toml_text), RegistryFile).versions[-1]
    schema_name = f"{args.version}.sql"
    schema_path = folder / schema_name
    if schema_path.exists():
        return fail(f"{schema_path} exists already: remove it or choose another version")
    if args.schema:
        return _new_from_schema(args, folder, last, entry.optional)
    shutil.copyfile(folder / entry.schema, schema_path)
    block = _entry_block(args.version, args.message, schema_name, entry.optional)
    extended = _extend(folder, toml_text, block, [schema_path])
    if isinstance(extended, int):
        return extended
    log.info("registry.version_added", path=str(folder), version=args.version)
    emit(
        f"added version {args.version} to {toml_path}, schema {schema_name} "
        f"(a copy of {entry.schema})\n"
        f"next: edit {schema_path} (new tables; new columns at the end of a table; indexes, "
        f"triggers, views), then run: tenantdb registry validate {folder}\n" + describe(extended)
    )
    return OK


def _new_from_schema(  # noqa: PLR0911 - a return per refusal
    args: argparse.Namespace, folder: Path, last: Version, optional: tuple[str, ...]
) -> int:
    """`registry new --schema FILE`: the desired schema, and a generated migration script
    when the change from the newest version is not additive."""
    source = Path(args.schema)
    try:
        sql = source.read_text(encoding="utf-8")
    except OSError as exc:
        return usage(f"--schema {source}: {exc.strerror or exc}")
    try:
        desired = compile_schema(sql)
    except sqlite3.Error as exc:
        return fail(f"--schema {source}: SQLite refused it: {exc}")
    optional = tuple(name for name in optional if desired.table(name) is not None)
    migration = None
    try:
        decisions = parse_decisions(
            last.schema,
            desired,
            renames=args.rename,
            drops=args.allow_drop,
            backfills=args.backfill,
        )
        if needs_migration(last.schema, desired) or decided_anything(args):
            migration = generate_migration(last.schema, desired, decisions)
    except MigrationRefused as exc:
        lines = [f"tenantdb: version {args.version} needs a decision; nothing was written:"]
        lines += [f"  {item.change}: pass {item.flag}" for item in exc.undecided]
        sys.stderr.write("\n".join(lines) + "\n")
        return USAGE
    except BadDecision as exc:
        return usage(str(exc))
    except GenerationFailed as exc:
        return fail(f"cannot generate a migration from {last.version}: {exc}")
    schema_path = folder / f"{args.version}.sql"
    written = [schema_path]
    migration_name = None
    if migration is not None and migration.script.strip():
        migration_name = f"{args.version}.migrate.sql"
        migration_path = folder / migration_name
        if migration_path.exists():
            return fail(f"{migration_path} exists already: remove it or choose another version")
        header = f"-- {args.version} migration from {last.version}: {args.message}\n"
        migration_path.write_text(header + migration.script, encoding="utf-8")
        written.append(migration_path)
    schema_path.write_text(sql, encoding="utf-8")
    toml_path = folder / "registry.toml"
    toml_text = toml_path.read_text(encoding="utf-8")
    block = _entry_block(
        args.version, args.message, schema_path.name, optional, migration=migration_name
    )
    extended = _extend(folder, toml_text, block, written)
    if isinstance(extended, int):
        return extended
    for warning in migration.warnings if migration else ():
        sys.stderr.write(f"tenantdb: warning: {warning}\n")
    log.info(
        "registry.version_added",
        path=str(folder),
        version=args.version,
        migration=migration_name,
    )
    what = f", migration {migration_name} (review it)" if migration_name else " (additive)"
    emit(
        f"added version {args.version} to {toml_path}, schema {schema_path.name} "
        f"from {source}{what}\n" + describe(extended)
    )
    return OK


def decided_anything(args: argparse.Namespace) -> bool:
    return bool(args.rename or args.allow_drop or args.backfill)


def _extend(folder: Path, toml_text: str, block: str, written: list[Path]) -> Registry | int:
    """Append the entry and load the registry again; on failure, leave things as found."""
    toml_path = folder / "registry.toml"
    separator = "" if toml_text.endswith("\n") else "\n"
    toml_path.write_text(toml_text + separator + block, encoding="utf-8")
    try:
        return load_registry(folder)
    except RegistryError as exc:  # e.g. a description TOML cannot hold
        toml_path.write_text(toml_text, encoding="utf-8")
        for path in written:
            path.unlink()
        return fail(f"the new version does not validate, nothing was changed:\n{exc}")


def _entry_block(
    version: str,
    description: str,
    schema: str,
    optional: tuple[str, ...],
    *,
    migration: str | None = None,
) -> str:
    created_at = utc_now()
    lines = [
        "",
        "[[versions]]",
        f"version = {_toml_string(version)}",
        f"description = {_toml_string(description)}",
        f"created_at = {_toml_string(created_at)}",
        f"schema = {_toml_string(schema)}",
    ]
    if migration:
        lines.append(f"migration = {_toml_string(migration)}")
    if optional:
        lines.append(f"optional = [{', '.join(_toml_string(name) for name in optional)}]")
    return "\n".join(lines) + "\n"


def _toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, except that TOML also wants DEL."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _diff(args: argparse.Namespace, settings: Settings) -> int:
    folder = str(args.dir or settings.registry)
    try:
        registry = load_registry(folder)
    except RegistryError as exc:
        return fail(f"the registry {folder} does not validate:\n{exc}")
    a, b = registry.get(args.a), registry.get(args.b)
    if a is None or b is None:
        missing = args.a if a is None else args.b
        known = ", ".join(v.version for v in registry.versions)
        return fail(f"version {missing} is not in the registry {folder} (it has {known})")
    emit(upgrade_sql(registry, a, b))
    return OK


def upgrade_sql(registry: Registry, a: Version, b: Version) -> str:
    """What a tenant's sync from A to B runs, as a script with comments.

    Like the sync, a version with a migration script is reached first (its additive steps,
    then its script), so each script meets the schema it was written for.
    """
    scripted = [v for v in registry.passed(a.version, b.version) if v.migration]
    stops = [*(v for v in scripted if v is not b), b]
    parts = [f"-- from {a.version} to {b.version}"]
    schema = a.schema
    for stop in stops:
        if len(stops) > 1:
            parts.append(f"-- step to {stop.version}")
        parts.append(make_plan(diff(schema, stop.schema)).render())
        if stop.migration:
            parts.append(
                f"-- migration script of {stop.version} "
                "(runs after the steps above, in the same transaction)"
            )
            parts += [statement.rstrip().rstrip(";") + ";" for statement in stop.migration]
        schema = stop.schema
    return "\n".join(parts)
