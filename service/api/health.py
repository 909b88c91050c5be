"""Liveness for load balancers, and a detailed report for operators (admin token)."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency, Provide

from service.api.authentication import ADMIN
from service.api.deps import CATALOG_FAULTS, errors, ok, provide_tenants
from service.api.docs import SECURED
from service.api.schemas import DetailedHealth, Health
from service.tenants import TenantService


@get(
    ["/health", "/api/health"],
    tags=["health"],
    operation_id=lambda _handler, _method, parts: "liveness" if len(parts) == 1 else "apiLiveness",
    summary="Check that the process is alive",
    description="The process answers: for load balancers and orchestrators. Touches no "
    "database and needs no token.",
    responses=ok(Health, "The process is alive", ("Alive", {"status": "ok"})),
)
async def health() -> Health:
    """Cheap liveness: the process answers. No database is touched."""
    return Health(status="ok")


_DETAILED = {
    "status": "ok",
    "registry_path": "/srv/tenantdb/registry",
    "registry_version": "1.2.0",
    "registry_versions": ["1.0.0", "1.1.0", "1.2.0"],
    "backend": "sqld",
    "backend_reachable": True,
    "sync_mode": "auto",
    "tenants": 1200,
    "tenants_by_version": {"1.1.0": 20, "1.2.0": 1180},
    "drifted_tenants": 0,
    "damaged_tenants": 0,
}


class HealthController(Controller):
    path = "/api/health/detailed"
    tags = ["health"]
    opt = ADMIN
    security = SECURED
    dependencies = {"tenants": Provide(provide_tenants, sync_to_thread=False)}

    @get(
        "/",
        operation_id="detailedHealth",
        summary="Detailed health report",
        description="The registry, whether the backend answers, tenants by version and how "
        "many have drifted (from the catalog, as of each tenant's last sync). `status` is "
        "`degraded` when the backend does not answer or a tenant has drifted or is damaged "
        "(admin token).",
        responses=errors("unauthorized", "forbidden_admin", *CATALOG_FAULTS)
        | ok(DetailedHealth, "The health report", ("Healthy", _DETAILED)),
    )
    async def detailed(self, tenants: NamedDependency[TenantService]) -> DetailedHealth:
        """Registry, backend reachability, catalog counts and drift (admin token required)."""
        reachable = await tenants.backend.ping()
        count, by_version, drifted = await tenants.catalog.summary()
        damaged = await tenants.catalog.count("damaged")
        registry = tenants.registry
        return DetailedHealth(
            status="ok" if reachable and not drifted and not damaged else "degraded",
            registry_path=registry.path,
            registry_version=registry.current.version,
            registry_versions=[v.version for v in registry.versions],
            backend=tenants.backend.kind,
            backend_reachable=reachable,
            sync_mode="auto" if tenants.auto_sync else "verify",
            tenants=count,
            tenants_by_version=by_version,
            drifted_tenants=drifted,
            damaged_tenants=damaged,
        )
