"""Liveness for load balancers, and a detailed report for operators (admin token)."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency, Provide

from service.api.auth_guard import admin_only
from service.api.deps import ADMIN_ERRORS, provide_tenants
from service.api.schemas import DetailedHealth, Health
from service.tenants import TenantService


@get(["/health", "/api/health"], tags=["health"])
async def health() -> Health:
    """Cheap liveness: the process answers. No database is touched."""
    return Health(status="ok")


class HealthController(Controller):
    path = "/api/health/detailed"
    tags = ["health"]
    guards = [admin_only]
    dependencies = {"tenants": Provide(provide_tenants, sync_to_thread=False)}

    @get("/", responses=ADMIN_ERRORS)
    async def detailed(self, tenants: NamedDependency[TenantService]) -> DetailedHealth:
        """Registry, backend reachability, catalog counts and drift (admin token required)."""
        reachable = await tenants.backend.ping()
        count, by_version, drifted = await tenants.catalog.summary()
        registry = tenants.registry
        return DetailedHealth(
            status="ok" if reachable and not drifted else "degraded",
            registry_path=registry.path,
            registry_version=registry.current.version,
            registry_versions=[v.version for v in registry.versions],
            backend=tenants.backend.kind,
            backend_reachable=reachable,
            sync_mode="auto" if tenants.auto_sync else "verify",
            tenants=count,
            tenants_by_version=by_version,
            drifted_tenants=drifted,
        )
