"""What the tenant service needs of a place where tenant databases live."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from schema_registry.history import HistoryRow, Stamp
from schema_registry.registry import Registry
from schema_registry.sync import SyncContext, SyncResult


class Backend(Protocol):
    kind: str

    def location(self, user_id: str) -> str:
        """Where a new tenant's database goes (recorded in the catalog, then used as is)."""
        ...

    def database_url(self, location: str) -> str:
        """What the app's client connects to."""
        ...

    def database_token(self, user_id: str, location: str) -> str | None:
        """A credential limited to this database, or None when there is nothing to check it."""
        ...

    async def check(self, location: str, registry: Registry, known: Stamp | None) -> Stamp | None:
        """The fast path: the stamp the database is at when it is current, else None."""
        ...

    async def sync(
        self,
        location: str,
        registry: Registry,
        *,
        apply: bool,
        known: Stamp | None,
        context: SyncContext,
        create: bool = False,
        target: str | None = None,
    ) -> tuple[SyncResult, bool]:
        """Sync one database (creating it when allowed); returns (result, created now)."""
        ...

    async def history(self, location: str) -> list[HistoryRow] | None:
        """The schema_version rows, or None when there is no database."""
        ...

    async def delete(self, location: str) -> bool:
        """Remove the database; False when there was none."""
        ...

    async def export(self, location: str, dest: Path) -> None:
        """Write a consistent SQLite file of the database to `dest`."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
