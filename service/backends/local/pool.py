"""A bounded LRU of idle SQLite connections, keyed by file.

Reusing an open connection spares SQLite re-parsing the schema on the first statement
(about 380 µs for 28 tables), which is most of a returning user's cost. A connection is
checked out by one thread at a time; concurrent requests for one file get their own.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict

from schema_registry import connect


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
                evicted.append(conn)
            else:
                self._idle.setdefault(path, []).append(conn)
                self._idle.move_to_end(path)
                self._size += 1
            while self._size > self.capacity:
                _, conns = self._idle.popitem(last=False)
                self._size -= len(conns)
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
        for conn in conns:
            self.close_connection(conn)

    def close(self) -> None:
        with self._lock:
            conns = [c for group in self._idle.values() for c in group]
            self._idle.clear()
            self._size = 0
        for conn in conns:
            self.close_connection(conn)
