"""The engine's small caches: the LRU's answers by identity, and the clock's text."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from schema_registry import utc_now
from schema_registry.lru import LRU


class Key:
    """A key whose hashing is counted (a schema's hash walks all of it)."""

    hashed = 0

    def __init__(self, name: str) -> None:
        self.name = name

    def __hash__(self) -> int:
        Key.hashed += 1
        return hash(self.name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and other.name == self.name


def test_a_recent_key_object_is_answered_without_hashing_it() -> None:
    cache: LRU[Key, str] = LRU(8)
    before, after = Key("before"), Key("after")
    cache.put(before, "plan 1")
    cache.put(after, "plan 2")
    Key.hashed = 0

    answers = [cache.get(before) for _ in range(5)] + [cache.get(after) for _ in range(5)]

    assert answers == ["plan 1"] * 5 + ["plan 2"] * 5
    assert Key.hashed == 0


def test_an_equal_key_of_another_object_is_looked_up_by_value() -> None:
    cache: LRU[Key, str] = LRU(8)
    cache.put(Key("schema"), "plan")
    Key.hashed = 0

    assert cache.get(Key("schema")) == "plan"
    assert cache.get(Key("other")) is None
    assert Key.hashed >= 2  # each looked up by its hash


def test_the_size_still_bounds_the_map() -> None:
    cache: LRU[Key, int] = LRU(2)
    keys = [Key(str(i)) for i in range(6)]
    for i, key in enumerate(keys):
        cache.put(key, i)

    assert [cache.get(Key(str(i))) for i in range(6)] == [None, None, None, None, 4, 5]


def test_the_clock_says_the_second_as_iso_8601_with_a_z() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    first, again = utc_now(), utc_now()
    after = datetime.now(UTC)

    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first)
    assert before <= datetime.fromisoformat(first) <= after
    assert again >= first
