"""Readiness for orchestrators: may this process take traffic now?

Liveness (`/health`) says the process answers; readiness says it can do its work: the
registry is loaded and both the catalog and the backend answer. No secret is needed, so
the answer says only which part is not ready: never a path, a count or an error's text
(those go to the log).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Final

import structlog
from litestar import Request, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example

from service.api.schemas import Reply
from service.errors import ErrorBody, Unavailable
from service.tenants import TenantService

log = structlog.get_logger("tenantdb.ready")

TIMEOUT: Final = 3.0  # seconds a check may take before it counts as not reachable


class Ready(Reply, frozen=True):
    status: str  # "ready"


class NotReady(Unavailable):
    code = "not_ready"


@get(
    "/ready",
    tags=["health"],
    operation_id="readiness",
    summary="Check that the process can take traffic",
    description="Readiness for load balancers and orchestrators: the registry is loaded and "
    "the catalog and the backend answer (3 s each). No token; a 503 names the part that is "
    "not ready and nothing more.",
    responses={
        503: ResponseSpec(
            ErrorBody,
            description="Not ready: the registry, the catalog or the backend",
            examples=[
                Example(
                    summary="The backend does not answer",
                    value={
                        "success": False,
                        "message": "not ready: the tenant storage (backend) is not reachable",
                        "status_code": 503,
                        "code": "not_ready",
                    },
                )
            ],
        )
    },
)
async def ready(request: Request[Any, Any, Any]) -> Ready:
    """Readiness: 200 when the registry is loaded and the catalog and backend answer."""
    tenants: TenantService | None = getattr(request.app.state, "tenants", None)
    if tenants is None:  # set once the lifespan has loaded the registry and opened both
        raise NotReady("not ready: the schema registry is not loaded yet")
    if not await _answers("catalog", _catalog(tenants)):
        raise NotReady("not ready: the catalog is not reachable")
    if not await _answers("backend", tenants.backend.ping()):
        raise NotReady("not ready: the tenant storage (backend) is not reachable")
    return Ready(status="ready")


async def _catalog(tenants: TenantService) -> bool:
    await tenants.catalog.store.fetch("SELECT 1")
    return True


async def _answers(part: str, check: Awaitable[bool]) -> bool:
    """Whether `check` (an awaitable of bool) says yes within TIMEOUT; why not is logged."""
    try:
        async with asyncio.timeout(TIMEOUT):
            ok = bool(await check)
    except TimeoutError:
        log.warning("ready.not_ready", part=part, reason=f"no answer within {TIMEOUT} s")
        return False
    except Exception as exc:  # any failure of the check means "not ready"
        log.warning("ready.not_ready", part=part, error_type=type(exc).__name__, error=str(exc))
        return False
    if not ok:
        log.warning("ready.not_ready", part=part, reason="check failed")
    return ok
