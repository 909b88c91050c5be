"""Errors of the schema pipeline. Messages name the file, version and object concerned."""

from __future__ import annotations


class SchemaRegistryError(Exception):
    """Base for everything this package raises on purpose."""


class RegistryError(SchemaRegistryError):
    """The registry folder does not load or validate."""


class SyncError(SchemaRegistryError):
    """A sync could not complete; the database was left as it was."""


class NewerDatabaseError(SyncError):
    """The database records a version the registry does not reach (a downgrade)."""
