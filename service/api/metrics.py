"""GET /metrics: Prometheus text, open by default, behind a static token when one is set.

Prometheus usually scrapes a private port without credentials, and these metrics carry
counts only (no user ids), so none is required by default. With TENANTDB_METRICS_TOKEN
set, a scrape needs `Authorization: Bearer <token>` (Prometheus `authorization:
credentials_file:`): a static token, because a JWT would expire under the scraper.
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Response, get
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.handlers.base import BaseRouteHandler

from service.api.deps import CATALOG_FAULTS, errors, provide_tenants
from service.config import Settings
from service.errors import Unauthorized
from service.operations.metrics import MEDIA_TYPE, Metrics
from service.tenants import TenantService


async def metrics_token(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    settings: Settings = connection.app.state.settings
    if settings.metrics_token is None:
        return
    given = connection.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), settings.metrics_token.encode()):
        raise Unauthorized("/metrics needs Authorization: Bearer TENANTDB_METRICS_TOKEN")


@get(
    "/metrics",
    tags=["health"],
    operation_id="metrics",
    summary="Prometheus metrics",
    description="Counters and gauges in Prometheus's text format: syncs by outcome and "
    "trigger, sync durations, provisioning, tenants by version, drift. Public by default "
    "(counts only, no user ids); with `TENANTDB_METRICS_TOKEN` set a scrape needs "
    "`Authorization: Bearer` that static token, else 401.",
    response_description="Prometheus text exposition format",
    responses=errors("unauthorized", *CATALOG_FAULTS),
    guards=[metrics_token],
    dependencies={"tenants": Provide(provide_tenants, sync_to_thread=False)},
    media_type=MEDIA_TYPE,
)
async def metrics(state: State, tenants: NamedDependency[TenantService]) -> Response[bytes]:
    """Syncs, requests, fast-path sign-ins, tenants by version, drift, the process."""
    counters: Metrics = state.metrics
    versions = [v.version for v in tenants.registry.versions]
    text = await counters.render(tenants.catalog, versions)
    return Response(text, media_type=MEDIA_TYPE)
