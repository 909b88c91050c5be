"""The service's parts, wired from settings: used by the web app and by the CLI alike."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from schema_registry import Database, Registry, load_registry
from service.backends.base import Backend
from service.backends.local import LocalBackend
from service.backends.local.threaded import ThreadedSqlite
from service.backends.sqld import SqldBackend
from service.catalog import Catalog
from service.config import Settings
from service.operations.backups import Backups, backup_policy
from service.operations.metrics import Metrics
from service.tenants import TenantService


async def open_backend(
    settings: Settings,
) -> tuple[Backend, Database, Callable[[], Awaitable[None]]]:
    """The configured backend, the database its catalog lives in, and how to close both."""
    if settings.backend == "sqld":
        sqld = SqldBackend(settings)
        try:
            await sqld.prepare()
        except BaseException:
            await sqld.close()  # its HTTP sessions, or they leak when sqld is down
            raise
        return sqld, sqld.catalog_store(), sqld.close
    local = LocalBackend(
        settings.data_path, workers=settings.workers, cache_size=settings.connection_cache
    )
    store = ThreadedSqlite(settings.data_path / "catalog.db")

    async def close() -> None:
        await local.close()
        await store.close()

    return local, store, close


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    registry: Registry | None = None,
    *,
    metrics: Metrics | None = None,
    backup: str | None = None,
) -> AsyncIterator[TenantService]:
    """A ready TenantService (backend and catalog open, its tables current), closed on exit.

    `metrics` counts its syncs (the web app's); `backup` overrides TENANTDB_BACKUP_POLICY.
    """
    registry = registry or load_registry(settings.registry)
    policy = backup_policy(settings, backup)
    backend, store, close = await open_backend(settings)
    try:
        catalog = Catalog(store)
        await catalog.open()
        yield TenantService(
            registry=registry,
            catalog=catalog,
            backend=backend,
            auto_sync=settings.sync_mode == "auto",
            environment=settings.environment,
            safeguard=Backups(settings, registry, backend, policy),
            observer=metrics,
        )
    finally:
        await close()
