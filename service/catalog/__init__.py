"""The catalog of tenants: who has a database, where, and at which version."""

from service.catalog.catalog import (
    AuditEntry,
    Catalog,
    TenantRecord,
    TenantView,
)

__all__ = ["AuditEntry", "Catalog", "TenantRecord", "TenantView"]
