"""Idle Hrana streams kept open by their batons: sqld's counterpart of the local
backend's connection cache.

sqld opens a connection for every new stream and reads the namespace's schema into it
(about 1 ms of its CPU for a 27-table schema), while a statement on a held stream costs
it about 0.4 ms. A returning user's check therefore reuses a stream that the last check of
the same namespace left open.

sqld closes a stream after 10 s without a request, and every open stream holds one of its
`--max-concurrent-connections` (and about 230 KB of its memory with a 27-table schema),
so the cache never has more than `capacity` streams open on a server, counting the ones in
use; a stream is only reused within IDLE_FOR seconds of its last request, and one that
cannot be kept (the cache is full) is closed by the request that opened it. Nothing here
ever sends a request of its own.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from typing import Final, NamedTuple

IDLE_FOR: Final = 8.0  # sqld expires an idle stream after 10 s; keep a margin


class Held(NamedTuple):
    baton: str
    base_url: str | None


class StreamCache:
    """Open streams per namespace, oldest first; single-threaded (one event loop)."""

    def __init__(self, capacity: int, idle_for: float = IDLE_FOR) -> None:
        self.capacity = capacity
        self.idle_for = idle_for
        self._open = 0  # streams this cache holds open on the server: idle or in use
        self._ids = itertools.count()
        self._idle: OrderedDict[int, tuple[str, Held, float]] = OrderedDict()
        self._by_namespace: dict[str, list[int]] = {}

    @property
    def open(self) -> int:
        self._sweep()
        return self._open

    def take(self, namespace: str) -> Held | None:
        """An idle stream of this namespace, now in use: give it back or lose it."""
        self._sweep()
        ids = self._by_namespace.get(namespace)
        if not ids:
            return None
        key = ids.pop()
        if not ids:
            del self._by_namespace[namespace]
        return self._idle.pop(key)[1]

    def reserve(self) -> bool:
        """Room for one more open stream (then give it or lose it)?"""
        self._sweep()
        if self._open >= self.capacity:
            return False
        self._open += 1
        return True

    def give(self, namespace: str, held: Held) -> None:
        """A stream in use (taken or reserved) is idle again."""
        key = next(self._ids)
        self._idle[key] = (namespace, held, time.monotonic() + self.idle_for)
        self._by_namespace.setdefault(namespace, []).append(key)

    def lose(self) -> None:
        """A stream in use is closed (or expired, or failed): its place is free."""
        self._open -= 1

    def forget(self, namespace: str) -> None:
        """Drop a namespace's idle streams (it is being deleted); sqld expires them."""
        for key in self._by_namespace.pop(namespace, []):
            del self._idle[key]
            self._open -= 1

    def _sweep(self) -> None:
        """Drop idle streams sqld has expired or is about to (the oldest come first)."""
        now = time.monotonic()
        while self._idle:
            key, (namespace, _, deadline) = next(iter(self._idle.items()))
            if deadline > now:
                return
            del self._idle[key]
            ids = self._by_namespace[namespace]
            ids.remove(key)
            if not ids:
                del self._by_namespace[namespace]
            self._open -= 1
