"""What the tenant service needs of a place where tenant databases live, and how it fails.

Everything outside `service/backends/` talks to a backend through `Backend` and catches
the typed errors below: none imports a concrete backend or reads an error's text. Each
backend turns its own faults (SQLite result codes, sqld's answers) into these types.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal, Protocol

from schema_registry import HistoryRow, Registry, Stamp, SyncContext, SyncResult

BackendKind = Literal["local", "sqld"]


class BackendError(Exception):
    """A fault of the place a tenant's database lives; `message` says what to do next."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DatabaseMissing(BackendError):
    """No database at this location (checked, never assumed from one ambiguous answer)."""


class BackendUnavailable(BackendError):
    """The storage or server cannot be reached or opened now; the same call may work later."""


class DatabaseBusy(BackendError):
    """Another writer held the database's write lock past the wait; retry shortly."""


class StorageFull(BackendError):
    """The disk (or quota) is full: nothing was written."""


class DatabaseDamaged(BackendError):
    """The file is not a database, or is malformed or truncated: it is left as it is."""


# Worth another try by a caller that retries (a rollout): the state did not change.
TRANSIENT: tuple[type[BackendError], ...] = (BackendUnavailable, DatabaseBusy)


class Backend(Protocol):
    @property
    def kind(self) -> BackendKind:
        """Which backend this is (shown in health reports and logs)."""
        ...

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
        """Sync one database (creating it when allowed); returns (result, created now).

        DatabaseMissing when there is none and `create` is false.
        """
        ...

    async def history(self, location: str) -> list[HistoryRow] | None:
        """The schema_version rows, or None when there is no database."""
        ...

    async def exists(self, location: str) -> bool:
        """Whether a database is there, asked in a way that cannot be a false "no"."""
        ...

    async def delete(self, location: str) -> bool:
        """Remove the database; False when there was none."""
        ...

    async def export(self, location: str, dest: Path) -> None:
        """Write a consistent SQLite file of the database to `dest` (DatabaseMissing if none)."""
        ...

    async def restore(self, location: str, source: Path) -> None:
        """Replace the database's content with the SQLite file `source`, in one transaction
        that every open connection sees (made again when it was lost); on failure the
        database is unchanged."""
        ...

    def databases(self) -> AsyncIterator[str]:
        """The location of every tenant database there is (the catalog's own left out), so
        `tenantdb fleet reconcile` can find databases the catalog lost; BackendUnavailable
        when the backend cannot list them (never a short list passed off as whole)."""
        ...

    def owner(self, location: str) -> str | None:
        """The user id a location belongs to when its name proves it (`location(user)` is
        this location), else None: an unknown owner, never a guess."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
