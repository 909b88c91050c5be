"""Idle Hrana streams kept open by their batons: sqld's counterpart of the local
backend's connection cache.

sqld opens a connection for every new stream and reads the namespace's schema into it
(about 1 ms of its CPU for a 27-table schema), while a statement on a held stream costs
it about 0.4 ms. A returning user's check therefore reuses a stream that the last check of
the same namespace left open.

sqld closes a stream 10 s after its last request, and until then the stream holds one of
its `--max-concurrent-connections` (and about 230 KB of its memory with a 27-table
schema). So the cache counts every stream that may still be open on the server: in use,
idle, or given up but not yet expired there (reused only within IDLE_FOR seconds of its
last request, counted for OPEN_FOR). It never has more than `capacity` counted; a stream
it cannot keep is closed by the request that opened it. Nothing here sends a request.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from typing import Final, NamedTuple

IDLE_FOR: Final = 8.0  # reused this long after its last request (sqld expires it at 10 s)
OPEN_FOR: Final = 11.0  # counted this long: until sqld has surely let it go


class Held(NamedTuple):
    baton: str
    base_url: str | None


class _Counted(NamedTuple):
    namespace: str | None  # None: given up, only counted until it expires on sqld
    held: Held | None
    since: float  # monotonic time of its last request


class StreamCache:
    """Streams per namespace, oldest first; single-threaded (one event loop)."""

    def __init__(
        self, capacity: int, *, idle_for: float = IDLE_FOR, open_for: float = OPEN_FOR
    ) -> None:
        self.capacity = capacity
        self.idle_for = idle_for
        self.open_for = open_for
        self._in_use = 0  # taken or reserved
        self._ids = itertools.count()
        self._counted: OrderedDict[int, _Counted] = OrderedDict()  # by `since`
        self._usable: dict[str, list[int]] = {}  # idle streams by namespace, oldest first

    @property
    def open(self) -> int:
        """Streams that may be open on the server because of this cache."""
        self._sweep()
        return self._in_use + len(self._counted)

    def take(self, namespace: str) -> Held | None:
        """An idle stream of this namespace, now in use: give it back or lose it."""
        self._sweep()
        ids = self._usable.get(namespace)
        if not ids or self._counted[ids[-1]].since + self.idle_for < time.monotonic():
            return None  # none, or too old to trust: left to expire
        key = ids.pop()
        if not ids:
            del self._usable[namespace]
        self._in_use += 1
        return self._counted.pop(key).held  # usable ones always have theirs

    def reserve(self) -> bool:
        """Room for one more open stream (then give it or lose it)?"""
        if self.open >= self.capacity:
            return False
        self._in_use += 1
        return True

    def give(self, namespace: str, held: Held) -> None:
        """A stream in use (taken or reserved) is idle again."""
        self._in_use -= 1
        key = next(self._ids)
        self._counted[key] = _Counted(namespace, held, time.monotonic())
        self._usable.setdefault(namespace, []).append(key)

    def lose(self, *, closed: bool) -> None:
        """A stream in use will not be used again; `closed`: sqld has closed it (else it
        stays counted until it would have expired there)."""
        self._in_use -= 1
        if not closed:
            self._counted[next(self._ids)] = _Counted(None, None, time.monotonic())

    def forget(self, namespace: str) -> None:
        """Never reuse this namespace's idle streams (it is being deleted)."""
        for key in self._usable.pop(namespace, []):
            self._counted[key] = self._counted[key]._replace(namespace=None, held=None)

    def _sweep(self) -> None:
        """Stop counting streams sqld has surely closed (the oldest come first)."""
        gone = time.monotonic() - self.open_for
        while self._counted:
            key, counted = next(iter(self._counted.items()))
            if counted.since > gone:
                return
            del self._counted[key]
            if counted.namespace is not None:
                ids = self._usable[counted.namespace]
                ids.remove(key)
                if not ids:
                    del self._usable[counted.namespace]
