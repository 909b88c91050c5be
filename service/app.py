"""The Litestar application, built from explicit settings by `create_app`; `worker_app`
builds it in each server process of `tenantdb serve --workers N`."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import msgspec
import structlog
from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.exceptions import TooManyRequestsException
from uvicorn.config import STARTUP_FAILURE

from schema_registry import Registry, load_registry
from service.api.admin import AdminController
from service.api.authentication import authentication
from service.api.docs import docs_assets, openapi_config
from service.api.health import HealthController, health
from service.api.limits import rate_limit_middleware, rate_limited_handler, sweep_counters
from service.api.metrics import metrics
from service.api.ready import ready
from service.api.request_log import request_logging
from service.api.rollout_jobs import rollout_jobs
from service.api.users import LimitedUserController, UserController
from service.api.validation import JsonRequest
from service.auth import Authenticator
from service.config import Settings
from service.errors import EXCEPTION_HANDLERS
from service.logs import configure_logging
from service.operations.metrics import Metrics
from service.wiring import open_runtime

log = structlog.get_logger("tenantdb.app")

# The settings `serve` validated, as JSON, for the server processes it starts (they share
# its environment, and would otherwise read, check and warn about it again, each).
WORKER_SETTINGS: Final = "TENANTDB_WORKER_SETTINGS"


def worker_app() -> Litestar:
    """The app of one server process under `tenantdb serve --workers N` (uvicorn's app
    factory: each worker is a fresh interpreter, started by spawn, that calls this once
    before it serves). Settings come from `serve`, logging is set up as `serve` set it up,
    and the registry is loaded from the same folder `serve` loaded and checked.

    An app that cannot be built exits with uvicorn's STARTUP_FAILURE, which its supervisor
    takes for a start that failed and stops on (so `serve` exits 3); any other exception
    out of the factory is a worker that died, started again and again.
    """
    settings = msgspec.json.decode(os.environ[WORKER_SETTINGS], type=Settings)
    configure_logging(settings.log_format, settings.log_level)
    try:
        return create_app(settings)
    except Exception as exc:
        log.exception(
            "service.worker_start_failed",
            pid=os.getpid(),  # the id `serve` names when it stops
            error=f"{type(exc).__name__}: {exc}",
            message="this server process could not build the app and exits with uvicorn's "
            "STARTUP_FAILURE",
        )
        raise SystemExit(STARTUP_FAILURE) from exc


def create_app(settings: Settings, registry: Registry | None = None) -> Litestar:
    """Build the app. The registry loads (and validates) here, so a bad one stops the start."""
    registry = registry or load_registry(settings.registry)
    counters = Metrics()  # the app's sync counters, shown by GET /metrics
    outer_limits, inner_limits = rate_limit_middleware(settings)

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
        route_handlers=[
            UserController,
            # sync-schema and export, behind the per-user limit (a sign-in never pays it)
            Router("/", route_handlers=[LimitedUserController], middleware=inner_limits),
            HealthController,
            health,
            metrics,
            ready,
            AdminController,
            docs_assets(),
        ],
        # rollout_jobs closes first: cancels rollouts
        lifespan=[lifespan, rollout_jobs, sweep_counters],
        state=State(
            {"authenticator": Authenticator(settings), "settings": settings, "metrics": counters}
        ),
        exception_handlers={**EXCEPTION_HANDLERS, TooManyRequestsException: rate_limited_handler},
        middleware=[request_logging, *outer_limits, authentication],
        cors_config=cors_config(settings),
        request_class=JsonRequest,
        logging_config=None,
        openapi_config=openapi_config(version="0.1.0"),
    )


def cors_config(settings: Settings) -> CORSConfig | None:
    """Browsers' cross-origin calls from TENANTDB_CORS_ORIGINS; none allowed when unset.

    Litestar answers a preflight (OPTIONS with Origin) before routing, so before any guard:
    a preflight carries no credentials (Fetch standard, CORS-preflight request).
    """
    if not settings.cors_origins:
        return None
    return CORSConfig(
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "X-Request-Id"],
        # Bearer tokens, never cookies: no credentials mode.
        allow_credentials=False,
        # What a page may read beyond the CORS-safelisted response headers.
        expose_headers=[
            "Retry-After",
            "WWW-Authenticate",
            "X-Request-Id",
            "Content-Disposition",
            "RateLimit-Limit",
            "RateLimit-Remaining",
            "RateLimit-Reset",
            "RateLimit-Policy",
        ],
    )
