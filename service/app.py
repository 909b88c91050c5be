"""The Litestar application, built from explicit settings by `create_app`."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from schema_registry import Registry, load_registry
from service.api.admin import AdminController, rollout_jobs
from service.api.health import HealthController, health
from service.api.metrics import metrics
from service.api.request_log import request_logging
from service.api.users import UserController
from service.auth import Authenticator
from service.config import Settings
from service.errors import EXCEPTION_HANDLERS
from service.operations.metrics import Metrics
from service.wiring import open_runtime

log = structlog.get_logger("tenantdb.app")


def create_app(settings: Settings, registry: Registry | None = None) -> Litestar:
    """Build the app. The registry loads (and validates) here, so a bad one stops the start."""
    registry = registry or load_registry(settings.registry)
    counters = Metrics()  # the app's sync counters, shown by GET /metrics

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_runtime(settings, registry, metrics=counters) as tenants:
            app.state.tenants = tenants
            log.info(
                "service.started",
                backend=tenants.backend.kind,
                data_dir=str(settings.data_path) if settings.backend == "local" else None,
                registry=registry.path,
                registry_version=registry.current.version,
                sync_mode=settings.sync_mode,
            )
            # Everything alive now (libraries, the registry) lives as long as the process:
            # keep it out of every later garbage collection, which otherwise pauses
            # requests for tens of milliseconds.
            gc.freeze()
            yield
        log.info("service.stopped")

    return Litestar(
        route_handlers=[UserController, HealthController, health, metrics, AdminController],
        lifespan=[lifespan, rollout_jobs],  # rollout_jobs closes first: cancels rollouts
        state=State(
            {"authenticator": Authenticator(settings), "settings": settings, "metrics": counters}
        ),
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
