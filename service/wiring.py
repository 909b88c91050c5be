"""The service's parts, wired from settings: used by the web app and by the CLI alike."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import structlog

from schema_registry import Database, Registry, load_registry
from service.backends.base import Backend, BackendError, BackendUnavailable
from service.backends.local import LocalBackend
from service.backends.local.threaded import ThreadedSqlite
from service.backends.sqld import SqldBackend
from service.catalog import Catalog
from service.config import Settings
from service.operations.backups import Backups, backup_policy
from service.operations.metrics import Metrics
from service.tenants import TenantService

log = structlog.get_logger("tenantdb.wiring")


class StartupError(Exception):
    """What stops the service from starting, in one line that says what to set or start."""


async def open_backend(
    settings: Settings, *, inline: bool = False
) -> tuple[Backend, Database, Callable[[], Awaitable[None]]]:
    """The configured backend, the database its catalog lives in, and how to close both;
    `inline` as LocalBackend takes it (a process whose event loop serves no request)."""
    if settings.backend == "sqld":
        sqld = SqldBackend(settings)
        try:
            await _reach(sqld, settings)
        except BaseException:
            await sqld.close()  # its HTTP sessions, or they leak when sqld is down
            raise
        return sqld, sqld.catalog_store(), sqld.close
    local = LocalBackend(
        settings.data_path,
        workers=settings.threads,
        cache_size=settings.connection_cache,
        inline=inline,
    )
    store = ThreadedSqlite(settings.data_path / "catalog.db", inline=inline)

    async def close() -> None:
        await local.close()
        await store.close()

    return local, store, close


async def _reach(sqld: SqldBackend, settings: Settings) -> None:
    """Wait for sqld (it may still be starting beside us), with backoff, for at most
    TENANTDB_STARTUP_TIMEOUT seconds."""
    deadline = time.monotonic() + settings.startup_timeout
    delay = 0.2
    while True:
        try:
            await sqld.prepare()
        except BackendUnavailable as exc:
            if time.monotonic() + delay > deadline:
                urls = ", ".join(settings.sqld_admin_url)
                raise StartupError(
                    f"sqld's admin API at {urls} did not answer within "
                    f"{settings.startup_timeout:g} s ({exc.message}): start sqld, or set "
                    "TENANTDB_SQLD_URL and TENANTDB_SQLD_ADMIN_URL to where it listens "
                    "(TENANTDB_STARTUP_TIMEOUT: how long to wait)"
                ) from exc
            log.warning("startup.waiting_for_sqld", retry_in_s=delay, error=exc.message)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        else:
            return


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    registry: Registry | None = None,
    *,
    metrics: Metrics | None = None,
    backup: str | None = None,
    inline: bool = False,
) -> AsyncIterator[TenantService]:
    """A ready TenantService (backend and catalog open, its tables current), closed on exit.

    `metrics` counts its syncs (the web app's); `backup` overrides TENANTDB_BACKUP_POLICY;
    `inline`: a process whose event loop serves no request (LocalBackend).
    """
    registry = registry or load_registry(settings.registry)
    policy = backup_policy(settings, backup)
    backend, store, close = await open_backend(settings, inline=inline)
    try:
        catalog = Catalog(store)
        try:
            await catalog.open()
        except BackendError as exc:
            where = "sqld" if settings.backend == "sqld" else settings.data_path / "catalog.db"
            raise StartupError(
                f"the catalog ({where}) cannot be opened: {exc.message}; check that "
                "TENANTDB_DATA_DIR is a folder this user can write"
                if settings.backend == "local"
                else f"the catalog on sqld cannot be opened: {exc.message}"
            ) from exc
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
