"""The catalog's own tables, kept current by tenantdb's engine, like any tenant's.

Their registry is `service/catalog/schema/`: opening a catalog syncs it there, so adding a
column is a new registry version, applied once by whichever process opens it first (the
engine's transaction serialises processes that open it together) and recorded in the
catalog's own schema_version table.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Final

from schema_registry import (
    Database,
    Registry,
    SyncContext,
    SyncResult,
    load_registry,
    newest_history,
    sync,
)
from service.errors import CatalogError

SCHEMA: Final = Path(__file__).parent / "schema"
# The catalog as it was before it had a registry: a catalog holding these tables and no
# history rows is adopted at this version first, so the later versions' scripts run on it.
BASELINE: Final = "1.0.0"
_LEGACY_SQL: Final = "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'tenants'"


@functools.cache
def catalog_registry() -> Registry:
    """The registry of the catalog's tables (loaded and validated once per process)."""
    return load_registry(SCHEMA)


async def open_tables(store: Database) -> SyncResult:
    """Bring the catalog's tables to the current catalog version; CatalogError if they
    drifted (someone changed them by hand), naming what differs."""
    registry = catalog_registry()
    context = SyncContext(trigger="catalog")
    if await newest_history(store) is None and await store.fetch(_LEGACY_SQL):
        await _synced(store, registry, context, BASELINE)
    return await _synced(store, registry, context, None)


async def _synced(
    store: Database, registry: Registry, context: SyncContext, target: str | None
) -> SyncResult:
    result = await sync(store, registry, target=target, context=context)
    if not result.up_to_date:
        drift = "; ".join(f"{r.change.describe()}: {r.reason}" for r in result.drift)
        raise CatalogError(
            f"the catalog's tables differ from catalog version {result.to_version} "
            f"({drift or result.status}): restore the catalog from a backup or repair it by hand"
        )
    return result
