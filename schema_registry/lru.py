"""A small thread-safe LRU map: the engine's one keyed cache.

Keys are values, never `id()`s: an id is reused once its object is collected, so an
id-keyed entry could answer for another object. Syncs run on several worker threads,
hence the lock.

The few entries found or put last are also kept as pairs, and a lookup with one of those
very key objects is answered from them without hashing the key (a schema's hash walks all
of it) or taking the lock: a fleet's syncs ask again and again with the objects
introspection handed out (the schema before the steps and the one after). A pair holds its
key alive, so its identity cannot pass to another object.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Final, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

RECENT: Final = 4  # pairs kept for lookups by identity


class LRU(Generic[K, V]):
    """At most `size` entries; the least recently used one goes first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        # Newest first; replaced whole (under the lock), so it is read without it.
        self._recent: tuple[tuple[K, V], ...] = ()

    def get(self, key: K) -> V | None:
        for known, value in self._recent:
            if known is key:
                return value
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self._remember(key, found)
            return found

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
            self._remember(key, value)

    def _remember(self, key: K, value: V) -> None:
        """Under the lock: the pair goes first among the recent ones."""
        kept = tuple(pair for pair in self._recent if pair[0] is not key)
        self._recent = ((key, value), *kept[: RECENT - 1])
