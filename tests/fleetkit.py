"""Many local tenants fast: one database built at a version, copied, catalog rows inserted.

Initializing 5,000 tenants one by one costs minutes; copying one file 5,000 times to the
places `LocalBackend.location` computes, and writing the catalog rows a sync would have
written, costs seconds and gives the same databases and catalog.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from schema_registry import Registry, SqliteDatabase, SyncContext, connect, drive, sync
from service.backends.local import LocalBackend
from service.catalog import TenantRecord
from service.config import Settings
from service.wiring import open_runtime

FEW_ROWS = """
INSERT INTO accounts (name, broker, starting_balance)
VALUES ('Main', 'IBKR', 10000), ('Paper', NULL, 0);
INSERT INTO trades (account_id, symbol, side, quantity, price, exit_price, fee)
VALUES (1, 'AAPL', 'buy', 10, 190.5, 195.0, 1), (1, 'MSFT', 'sell', 5, 410, NULL, 1),
       (2, 'NVDA', 'buy', 2, 880, 905.5, 0);
INSERT INTO tags (name, color) VALUES ('breakout', 'green'), ('mistake', 'red');
INSERT INTO trade_tags (trade_id, tag_id) VALUES (1, 1), (2, 2);
"""


def build_template(path: Path, registry: Registry, version: str, *, rows: str = FEW_ROWS) -> None:
    """A database at `version` (synced by the engine, history row and all) with a few rows."""
    db = SqliteDatabase.open(path)
    try:
        result = drive(sync(db, registry, target=version, context=SyncContext(trigger="test")))
        assert result.status == "applied", result
        db.conn.executescript(rows)
        db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


def locations(data_dir: Path, users: Iterable[str]) -> dict[str, str]:
    """The path of each user's file where the local backend keeps it."""
    backend = LocalBackend(data_dir, workers=1, cache_size=0)
    try:
        return {user: backend.path(backend.location(user)) for user in users}
    finally:
        asyncio.run(backend.close())


def copy_fleet(template: Path, places: dict[str, str]) -> None:
    """Copy the template to every location (replacing what is there)."""
    for location in places.values():
        target = Path(location)
        target.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("-wal", "-shm"):
            Path(f"{location}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(template, target)


def stamp_of(template: Path) -> tuple[str, str, int]:
    """(version, content hash, schema cookie) of the template's newest history row."""
    conn = sqlite3.connect(template)
    try:
        version, content_hash, cookie = conn.execute(
            "SELECT version, content_hash, schema_cookie FROM schema_version ORDER BY id DESC"
        ).fetchone()
    finally:
        conn.close()
    return str(version), str(content_hash), int(cookie)


def register_fleet(settings: Settings, places: dict[str, str], template: Path) -> None:
    """Catalog rows as a sync to the template's version would have left them."""
    version, content_hash, cookie = stamp_of(template)

    # The catalog keeps locations relative to the data directory.
    relative = {user: os.path.relpath(path, settings.data_path) for user, path in places.items()}

    async def work() -> None:
        async with open_runtime(settings) as tenants:
            for user, location in relative.items():
                await tenants.catalog.put(
                    TenantRecord(
                        user_id=user,
                        email=None,
                        location=location,
                        created_at="2026-01-01T00:00:00Z",
                        schema_version=version,
                        content_hash=content_hash,
                        schema_cookie=cookie,
                        last_sync_at="2026-01-01T00:00:00Z",
                        status="synced",
                    )
                )

    asyncio.run(work())


def build_local_fleet(
    settings: Settings, registry: Registry, version: str, users: list[str], work: Path
) -> dict[str, str]:
    """Tenants `users` at `version` on the local backend of `settings`; their locations."""
    template = work / f"template-{version}.db"
    if not template.exists():
        build_template(template, registry, version)
    places = locations(settings.data_path, users)
    copy_fleet(template, places)
    register_fleet(settings, places, template)
    return places


def spoil_column(location: str) -> None:
    """Give trades a `strategy_id` TEXT column before 1.1.0 adds it as INTEGER REFERENCES."""
    conn = connect(location, create=False)
    try:
        conn.execute("ALTER TABLE trades ADD COLUMN strategy_id TEXT")
    finally:
        conn.close()


def spoil_index(location: str) -> None:
    """Create an index with a 1.1.0 index's name on other columns."""
    conn = connect(location, create=False)
    try:
        conn.execute("CREATE INDEX idx_trades_symbol_lower ON trades (symbol)")
    finally:
        conn.close()
