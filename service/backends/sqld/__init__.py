"""Tenant databases as namespaces on sqld (the libSQL server)."""

from service.backends.sqld.backend import SqldBackend, namespace_for, place

__all__ = ["SqldBackend", "namespace_for", "place"]
