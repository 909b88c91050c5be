"""The Litestar application, built from explicit settings by `create_app`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import structlog
from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from schema_registry.registry import Registry, load_registry
from service.api.health import HealthController, health
from service.api.request_log import request_logging
from service.api.users import UserController
from service.auth import Authenticator
from service.backends.base import Backend
from service.backends.local import LocalBackend
from service.backends.sqld import SqldBackend
from service.backends.threaded import ThreadedSqlite
from service.catalog import Catalog, CatalogStore
from service.config import Settings
from service.errors import EXCEPTION_HANDLERS
from service.tenants import TenantService

log = structlog.get_logger("tenantdb.app")


async def open_backend(
    settings: Settings,
) -> tuple[Backend, CatalogStore, Callable[[], Awaitable[None]]]:
    """The configured backend, the store its catalog lives in, and how to close both."""
    if settings.backend == "sqld":
        sqld = SqldBackend(settings)
        await sqld.prepare()
        return sqld, sqld.catalog_store(), sqld.close
    local = LocalBackend(
        settings.data_path, workers=settings.workers, cache_size=settings.connection_cache
    )
    store = ThreadedSqlite(settings.data_path / "catalog.db")

    async def close() -> None:
        await local.close()
        await store.close()

    return local, store, close


def create_app(settings: Settings, registry: Registry | None = None) -> Litestar:
    """Build the app. The registry loads (and validates) here, so a bad one stops the start."""
    registry = registry or load_registry(settings.registry)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        backend, store, close = await open_backend(settings)
        catalog = Catalog(store)
        await catalog.open()
        app.state.tenants = TenantService(
            registry=registry,
            catalog=catalog,
            backend=backend,
            auto_sync=settings.sync_mode == "auto",
            environment=settings.environment,
        )
        log.info(
            "service.started",
            backend=backend.kind,
            data_dir=str(settings.data_path) if backend.kind == "local" else None,
            registry=registry.path,
            registry_version=registry.current.version,
            sync_mode=settings.sync_mode,
        )
        try:
            yield
        finally:
            await close()
            log.info("service.stopped")

    return Litestar(
        route_handlers=[UserController, HealthController, health],
        lifespan=[lifespan],
        state=State({"authenticator": Authenticator(settings), "settings": settings}),
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[request_logging],
        logging_config=None,
        openapi_config=OpenAPIConfig(
            title="tenantdb",
            version="0.1.0",
            description="A database per user, kept on the current schema.",
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")
                }
            ),
            security=[{"bearer": []}],
            path="/schema",
        ),
    )
