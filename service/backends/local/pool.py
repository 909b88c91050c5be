"""A bounded LRU of idle SQLite connections, keyed by file.

Reusing an open connection spares SQLite re-parsing the schema on the first statement
(about 380 µs for 28 tables), which is most of a returning user's cost. A connection is
checked out by one thread at a time; concurrent requests for one file get their own.

While a file has a connection here, the pool can also keep it *armed*: the stamp a check
found current, with the file's wal-index header as it was before that check. A later
check finding the same header knows that nothing committed since (walindex.py) and
answers on the event loop. The arm goes with the file's connections: once none is open,
the `-shm` file may be deleted and made again, and the descriptor would watch the old one.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict

from schema_registry import Stamp, connect
from service.backends.local.walindex import WalIndex


class ConnectionPool:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._idle: OrderedDict[str, list[sqlite3.Connection]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        # One cursor per connection for the cookie read: a new cursor per call leaves a
        # dead weak reference in the connection, which CPython prunes only every 200.
        self._cursors: dict[int, sqlite3.Cursor] = {}
        # Checked-out connections by file, and those whose file was discarded meanwhile
        # (deleted or replaced): they are closed when they come back, never pooled, or
        # the next user of that path would write into the unlinked old file.
        self._out: dict[str, set[sqlite3.Connection]] = {}
        self._stale: set[sqlite3.Connection] = set()
        # Discards so far (of any file): a connection opened while one happened is not
        # pooled (it may be a discarded file's; at worst a sound one is opened again).
        self._discards = 0
        # Files with an open connection here: their wal-index, and the stamp a check found
        # current with the header taken before it.
        self._indexes: dict[str, WalIndex] = {}
        self._armed: dict[str, tuple[bytes, Stamp]] = {}

    def unchanged(self, path: str, stamp: Stamp) -> bool:
        """Whether `stamp` was found current for the file and nothing has committed to it
        since: dict lookups and a 96-byte read of the wal-index, no SQLite call (safe on
        the event loop; see walindex.py)."""
        armed = self._armed.get(path)
        index = self._indexes.get(path)
        if armed is None or index is None or armed[1] != stamp or index.mark() != armed[0]:
            return False
        # Used now, as a checkout would mark it: a user answered here is not the least
        # recently used. The lock guards a few dict operations in any thread, never I/O.
        with self._lock:
            if path in self._idle:
                self._idle.move_to_end(path)
        return True

    def watch(self, path: str) -> bytes | None:
        """The file's wal-index header now, taken before a check reads the file (on a
        checked-out connection, which keeps the `-shm` file there); None without one."""
        index = self._indexes.get(path)
        if index is None:
            opened = WalIndex.open(path)
            if opened is None:
                return None
            with self._lock:  # another check may have opened one first
                index = self._indexes.setdefault(path, opened) if path in self._out else None
            if index is not opened:
                opened.close()
            if index is None:
                return None
        return index.mark()

    def arm(self, path: str, mark: bytes, stamp: Stamp) -> None:
        """Keep `stamp` as current for the file until its wal-index header moves from
        `mark` (not once the file's connections, and so its index, are gone)."""
        with self._lock:
            if path in self._indexes:
                self._armed[path] = (mark, stamp)

    def _forget(self, path: str) -> None:
        """Under the lock: drop a file's index and arm (its connections are closing)."""
        self._armed.pop(path, None)
        index = self._indexes.pop(path, None)
        if index is not None:
            index.close()

    def cookie(self, conn: sqlite3.Connection) -> int:
        """PRAGMA schema_version on a checked-out connection."""
        cursor = self._cursors.get(id(conn))
        if cursor is None:
            cursor = self._cursors[id(conn)] = conn.cursor()
        row = cursor.execute("PRAGMA schema_version").fetchone()
        return int(row[0])

    def close_connection(self, conn: sqlite3.Connection) -> None:
        """Close a connection (idle or checked out) and forget it."""
        with self._lock:
            self._cursors.pop(id(conn), None)
            self._stale.discard(conn)
            for path, out in list(self._out.items()):
                if conn in out:
                    self._forget(path)
                out.discard(conn)
                if not out:
                    del self._out[path]
        conn.close()

    def checkout(self, path: str, *, create: bool) -> sqlite3.Connection:
        with self._lock:
            idle = self._idle.get(path)
            if idle:
                conn = idle.pop()
                self._size -= 1
                if not idle:
                    del self._idle[path]
                self._out.setdefault(path, set()).add(conn)
                return conn
            seen = self._discards
        conn = connect(path, create=create)
        with self._lock:
            self._out.setdefault(path, set()).add(conn)
            if self._discards != seen:  # a discard happened while it was opening
                self._stale.add(conn)
        return conn

    def checkin(self, path: str, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            conn.rollback()
        evicted: list[sqlite3.Connection] = []
        with self._lock:
            out = self._out.get(path)
            if out is not None:
                out.discard(conn)
                if not out:
                    del self._out[path]
            if conn in self._stale:  # its file was discarded while it was out
                self._stale.discard(conn)
                self._forget(path)
                evicted.append(conn)
            else:
                self._idle.setdefault(path, []).append(conn)
                self._idle.move_to_end(path)
                self._size += 1
            while self._size > self.capacity:
                gone, conns = self._idle.popitem(last=False)
                self._size -= len(conns)
                self._forget(gone)
                evicted += conns
        for old in evicted:
            self.close_connection(old)

    def discard(self, path: str) -> None:
        """Close the idle connections of one file (before deleting or replacing it); the
        checked-out ones are closed when they come back."""
        with self._lock:
            conns = self._idle.pop(path, [])
            self._size -= len(conns)
            self._stale.update(self._out.get(path, ()))
            self._discards += 1
            self._forget(path)
        for conn in conns:
            self.close_connection(conn)

    def close(self) -> None:
        with self._lock:
            conns = [c for group in self._idle.values() for c in group]
            self._idle.clear()
            self._size = 0
            for path in list(self._indexes):
                self._forget(path)
        for conn in conns:
            self.close_connection(conn)
