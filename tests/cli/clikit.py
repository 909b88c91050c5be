"""Helpers for the operator-command tests: a tiny registry, SQL on a tenant, ids in output."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

from service.tenants import TenantService
from tests.cli.conftest import Operator

NOTES_100 = """\
CREATE TABLE notes (
    id INTEGER PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE INDEX notes_by_body ON notes(body);
"""
NOTES_110 = (
    NOTES_100
    + """\
CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TRIGGER notes_not_empty BEFORE INSERT ON notes WHEN NEW.body = ''
BEGIN SELECT RAISE(ABORT, 'empty note'); END;
CREATE VIEW note_count AS SELECT count(*) AS n FROM notes;
"""
)
VERSIONS = {
    "1.0.0": ("Notes", NOTES_100),
    "1.1.0": ("Tags, a guard and a count", NOTES_110),
}


def notes_registry(folder: Path, upto: str = "1.1.0") -> Path:
    """A two-version registry (notes, then tags), cut at `upto`."""
    folder.mkdir(parents=True, exist_ok=True)
    blocks: list[str] = []
    for version, (description, sql) in VERSIONS.items():
        (folder / f"{version}.sql").write_text(sql)
        blocks.append(
            f'[[versions]]\nversion = "{version}"\ndescription = "{description}"\n'
            f'created_at = "2026-01-0{len(blocks) + 1}T00:00:00Z"\nschema = "{version}.sql"\n'
        )
        if version == upto:
            break
    (folder / "registry.toml").write_text("\n".join(blocks))
    return folder


def local_file(operator: Operator, location: str) -> Path:
    """The file of a local tenant's location (the catalog keeps it relative to the data dir)."""
    return operator.settings.data_path / location


def run_sql(operator: Operator, user: str, *statements: str) -> list[list[tuple[Any, ...]]]:
    """Run statements on a tenant's database the way an app would: the file, or sqld."""

    async def work(tenants: TenantService) -> list[list[tuple[Any, ...]]]:
        record = await tenants.catalog.get(user)
        assert record is not None
        if tenants.backend.kind == "local":
            conn = sqlite3.connect(local_file(operator, record.location), isolation_level=None)
            try:
                return [conn.execute(s).fetchall() for s in statements]
            finally:
                conn.close()
        db = tenants.backend.database(record.location)  # type: ignore[attr-defined]
        rows = await db.fetch_many([(s, ()) for s in statements])
        return [[tuple(r) for r in result] for result in rows]

    result: list[list[tuple[Any, ...]]] = operator.with_tenants(work)
    return result


def record_of(operator: Operator, user: str) -> Any:
    async def work(tenants: TenantService) -> Any:
        return await tenants.catalog.get(user, fresh=True)

    return operator.with_tenants(work)


TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def masked(text: str) -> str:
    """Output with its timestamps replaced by <time>."""
    return TIMESTAMP.sub("<time>", text)
