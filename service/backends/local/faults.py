"""SQLite's result codes as the backend protocol's typed errors.

https://www.sqlite.org/rescode.html: the primary code is the low byte of the extended one.
"""

from __future__ import annotations

import errno
import sqlite3

from service.backends.base import (
    BackendError,
    BackendUnavailable,
    DatabaseBusy,
    DatabaseDamaged,
    StorageFull,
)

_TYPES: dict[int, type[BackendError]] = {
    sqlite3.SQLITE_BUSY: DatabaseBusy,
    sqlite3.SQLITE_LOCKED: DatabaseBusy,
    sqlite3.SQLITE_FULL: StorageFull,
    sqlite3.SQLITE_CORRUPT: DatabaseDamaged,
    sqlite3.SQLITE_NOTADB: DatabaseDamaged,
    sqlite3.SQLITE_CANTOPEN: BackendUnavailable,
    sqlite3.SQLITE_READONLY: BackendUnavailable,
    sqlite3.SQLITE_IOERR: BackendUnavailable,
    sqlite3.SQLITE_PERM: BackendUnavailable,
}
_ADVICE: dict[type[BackendError], str] = {
    DatabaseBusy: "another writer held it past the busy timeout; try again in a moment",
    StorageFull: "the disk is full; nothing was written",
    DatabaseDamaged: "the file is not a sound SQLite database; it was left as it is",
    BackendUnavailable: "the data directory cannot be opened or written now",
}


# What the file system says while a folder or file is made or copied (before SQLite).
_OS_TYPES: dict[int, type[BackendError]] = {
    errno.ENOSPC: StorageFull,
    errno.EDQUOT: StorageFull,
    errno.EROFS: BackendUnavailable,
    errno.EACCES: BackendUnavailable,
    errno.EPERM: BackendUnavailable,
    errno.EIO: BackendUnavailable,
    errno.ENOTDIR: BackendUnavailable,
}


def storage_fault(exc: sqlite3.Error | OSError) -> BackendError | None:
    """The typed error for a storage fault, or None for any other error."""
    if isinstance(exc, OSError):
        kind = _OS_TYPES.get(exc.errno or 0)
        return None if kind is None else kind(f"{_ADVICE[kind]} ({exc})")
    code = getattr(exc, "sqlite_errorcode", None)
    kind = None if code is None else _TYPES.get(code & 0xFF)
    if kind is None:
        return None
    return kind(f"{_ADVICE[kind]} ({exc})")
