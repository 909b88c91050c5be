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


class HistoryRowUnreadable(SchemaRegistryError):
    """A schema_version row is not what the engine writes (a version that is not
    MAJOR.MINOR.PATCH, a value of the wrong type). A sync reports it as drift."""

    def __init__(self, row: int | None, detail: str) -> None:
        super().__init__(f"history row {row} unreadable: {detail}")
        self.row = row
        self.detail = detail

    def __reduce__(self) -> tuple[type[HistoryRowUnreadable], tuple[int | None, str]]:
        return type(self), (self.row, self.detail)


class StatementFailed(SyncError):
    """SQLite refused a statement of the sync (a step or a migration script's statement);
    the transaction was rolled back, so the database is as it was."""

    def __init__(self, version: str, statement: str, sqlite_message: str) -> None:
        super().__init__(
            f"applying {version}: SQLite refused {statement!r}: {sqlite_message}; rolled back"
        )
        self.version = version
        self.statement = statement
        self.sqlite_message = sqlite_message

    def __reduce__(self) -> tuple[type[StatementFailed], tuple[str, str, str]]:
        # Pickled as its fields: a fleet's worker processes hand failures to their parent.
        return type(self), (self.version, self.statement, self.sqlite_message)
