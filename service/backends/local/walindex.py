"""Whether anyone committed to a WAL database since a moment, without asking SQLite.

Every connection to a database in WAL mode shares its wal-index, the `-shm` file, whose
first 96 bytes are two copies of a header that every commit rewrites: the last valid
frame, a change counter, the WAL's salts and checksums (https://sqlite.org/walformat.html,
"The WAL-Index Header"). The same 96 bytes at two moments mean that no transaction
committed in between, so nothing changed, the schema included. A checkpoint leaves them
alone (it changes no content); a WAL restart changes the salts.

The bytes are read with one `pread` on a descriptor kept open: a copy out of the page
cache, from pages every connection to the database maps and touches on each transaction
(SQLite reads this header before every read), so they stay in memory while the file is
in use; the read does not wait on the disk and may run on the event loop. A file cut
short reads short and compares unequal; a mapping would fault instead.
"""

from __future__ import annotations

import contextlib
import os
from typing import Final

HEADER: Final = 96  # two copies of the 48-byte WalIndexHdr


class WalIndex:
    """A read-only descriptor on one database's `-shm` file."""

    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def open(cls, database: str) -> WalIndex | None:
        """The database's wal-index, or None when it has none to read (not in WAL mode)."""
        try:
            fd = os.open(database + "-shm", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        index = cls(fd)
        if len(index.mark()) != HEADER:  # not set up yet: nothing to compare
            index.close()
            return None
        return index

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def mark(self) -> bytes:
        """The header now; anything but 96 bytes (a descriptor closed meanwhile, a file
        cut short) compares unequal to every mark taken before."""
        try:
            return os.pread(self._fd, HEADER, 0)
        except OSError:
            return b""

    def close(self) -> None:
        """Once only: the number may belong to another file right after."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
