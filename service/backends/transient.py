"""Transient faults retried inside a bounded budget, and how many retries there were.

A transient fault is one the server answered with and that changed nothing: SQLite busy
(another writer holds the lock), sqld's `Checkpoint failed ... error code 5` (SQLite busy
while sqld loads or unloads a namespace), a namespace sqld is still loading (a false 404).
Retrying it a moment later usually works; only what still fails once the budget is spent
is a failure. `RETRIES` counts every retry by kind for /metrics
(`tenantdb_transient_retries_total{kind}`): read it with `RETRIES.snapshot()`.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from typing import Final, Literal, get_args

TransientKind = Literal["busy", "checkpoint", "loading"]
KINDS: Final[tuple[TransientKind, ...]] = get_args(TransientKind)

# Above sqld's 5 s: a write transaction older than that is rolled back once another writer
# waits, so a lock left by a stuck writer is always broken inside the budget.
BUDGET_SECONDS: Final = 8.0
_BACKOFF: Final = (0.02, 0.05, 0.1, 0.2, 0.4, 0.8)  # then 1 s apart until the budget ends


class RetryCounter:
    """Retries per kind since the process started; thread-safe (the local backend's
    worker threads and the event loop may both count)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[TransientKind, int] = dict.fromkeys(KINDS, 0)

    def add(self, kind: TransientKind) -> None:
        with self._lock:
            self._counts[kind] += 1

    def snapshot(self) -> dict[TransientKind, int]:
        """Every kind, zeros included, so a scrape always shows all series."""
        with self._lock:
            return dict(self._counts)


RETRIES: Final = RetryCounter()


def delays(budget: float | None = None) -> Iterator[float]:
    """Waits between attempts, growing, until `budget` seconds (default BUDGET_SECONDS) of
    wall time have passed since the first call: attempts that themselves wait count too.
    When it is spent the iterator ends and the last error stands."""
    deadline = time.monotonic() + (BUDGET_SECONDS if budget is None else budget)
    for step in itertools.count():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        yield min(_BACKOFF[step] if step < len(_BACKOFF) else 1.0, left)


def kind_of(message: str, code: str | None = None) -> TransientKind | None:
    """The transient kind of a fault sqld (or SQLite) reported, from its code or text."""
    if "Checkpoint failed" in message or "wal_checkpoint" in message:
        return "checkpoint"
    if code in ("SQLITE_BUSY", "SQLITE_LOCKED") or "database is locked" in message:
        return "busy"
    return None
