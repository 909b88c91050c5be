"""The local backend's fast path: a returning user's check answered on the event loop
from the wal-index header, while nothing has committed to the file since the last check
that went to SQLite; anything else still goes to a worker thread and SQLite."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any, ParamSpec

import pytest

from schema_registry import EXAMPLE, Registry, Stamp, SyncContext, load_registry
from service.backends.local import LocalBackend
from service.config import load_settings
from service.wiring import open_runtime

SIGN_IN = SyncContext(trigger="sign-in")
P = ParamSpec("P")


def on_a_loop(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run the coroutine test on a new event loop (the suite's tests are sync)."""

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(EXAMPLE)


@asynccontextmanager
async def backend(
    tmp_path: Path, *, cache_size: int = 8, inline: bool = False
) -> AsyncIterator[LocalBackend]:
    local = LocalBackend(tmp_path, workers=1, cache_size=cache_size, inline=inline)
    try:
        yield local
    finally:
        await local.close()


async def provision(local: LocalBackend, registry: Registry, user_id: str) -> tuple[str, Stamp]:
    """A new user's file, as a first sign-in makes it; its location and stamp."""
    location = local.location(user_id)
    result, created = await local.sync(
        location, registry, apply=True, known=None, context=SIGN_IN, create=True
    )
    assert created
    assert result.stamp is not None
    return location, result.stamp


@asynccontextmanager
async def threads_busy(local: LocalBackend) -> AsyncIterator[None]:
    """The backend's one SQLite thread held until the block ends."""
    gate, started = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        gate.wait(10)

    held = asyncio.ensure_future(local._run(hold))
    try:
        await asyncio.to_thread(started.wait, 10)
        yield
    finally:
        gate.set()
        await held


def sqlite_threads_since(before: set[threading.Thread]) -> list[str]:
    """The names of the SQLite threads (the backend's, the catalog's) started since."""
    started = set(threading.enumerate()) - before
    return [t.name for t in started if t.name.startswith("sqlite")]


def app_runs(path: str, sql: str) -> None:
    """The app's own driver writing to the user's database."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute(sql)


@on_a_loop
async def test_a_returning_check_does_not_wait_for_the_sqlite_threads(
    tmp_path: Path, registry: Registry
) -> None:
    async with backend(tmp_path) as local:
        location, stamp = await provision(local, registry, "alice")
        assert await local.check(location, registry, stamp) == stamp  # arms the fast path

        async with threads_busy(local):
            answer = await asyncio.wait_for(local.check(location, registry, stamp), 2)

        assert answer == stamp


@on_a_loop
async def test_a_commit_since_the_last_check_sends_the_next_one_to_sqlite(
    tmp_path: Path, registry: Registry
) -> None:
    """A row the app wrote: the check waits for a thread, finds the schema unchanged and
    arms again. A table the app made: the next check finds the file not current."""
    async with backend(tmp_path) as local:
        location, stamp = await provision(local, registry, "alice")
        path = local.path(location)
        assert await local.check(location, registry, stamp) == stamp

        app_runs(path, "INSERT INTO tags (name) VALUES ('swing')")
        async with threads_busy(local):
            waiting = asyncio.ensure_future(local.check(location, registry, stamp))
            await asyncio.sleep(0.2)
            assert not waiting.done()
        assert await waiting == stamp
        async with threads_busy(local):  # armed again by that check
            assert await asyncio.wait_for(local.check(location, registry, stamp), 2) == stamp

        app_runs(path, "CREATE TABLE notes (body TEXT)")
        assert await local.check(location, registry, stamp) is None


@on_a_loop
async def test_the_fast_path_goes_with_the_files_connections(
    tmp_path: Path, registry: Registry
) -> None:
    """Once the pool closes a file's connections, SQLite may delete its -shm file and a
    new one be made: a change made then is still found."""
    async with backend(tmp_path, cache_size=1) as local:
        alice, alice_stamp = await provision(local, registry, "alice")
        assert await local.check(alice, registry, alice_stamp) == alice_stamp
        bob, bob_stamp = await provision(local, registry, "bob")  # alice's connection evicted
        assert await local.check(bob, registry, bob_stamp) == bob_stamp

        app_runs(local.path(alice), "CREATE TABLE notes (body TEXT)")

        assert await local.check(alice, registry, alice_stamp) is None


@on_a_loop
async def test_a_deleted_file_is_not_answered_from_its_old_arm(
    tmp_path: Path, registry: Registry
) -> None:
    async with backend(tmp_path) as local:
        location, stamp = await provision(local, registry, "alice")
        assert await local.check(location, registry, stamp) == stamp

        assert await local.delete(location)
        assert await local.check(location, registry, stamp) is None


@on_a_loop
async def test_an_inline_backend_does_its_sqlite_work_on_the_calling_thread(
    tmp_path: Path, registry: Registry
) -> None:
    """The CLI's and rollout workers' backend: no hop to a worker thread (none started)."""
    before = set(threading.enumerate())
    async with backend(tmp_path, inline=True) as local:
        location, stamp = await provision(local, registry, "alice")
        assert await local.check(location, registry, stamp) == stamp
        assert await local.history(location) is not None

        assert sqlite_threads_since(before) == []


@on_a_loop
async def test_an_inline_runtime_keeps_its_catalog_on_the_calling_thread(tmp_path: Path) -> None:
    """The catalog of an inline runtime (the CLI's, a rollout worker's) is local SQLite
    too: its calls run on the loop, and no catalog thread takes the GIL from it."""
    before = set(threading.enumerate())
    async with open_runtime(load_settings({}, data_dir=str(tmp_path)), inline=True) as tenants:
        outcome = await tenants.initialize("alice", "alice@example.com")
        assert outcome.created
        record = await tenants.catalog.get("alice", fresh=True)
        assert record is not None
        assert record.schema_version == outcome.record.schema_version

        assert sqlite_threads_since(before) == []


@on_a_loop
async def test_a_file_answered_on_the_loop_stays_the_most_recently_used(
    tmp_path: Path, registry: Registry
) -> None:
    """The pool evicts the least recently used file: a user whose checks are answered on
    the loop is in use, and keeps the fast path while others come and go."""
    async with backend(tmp_path, cache_size=2) as local:
        alice, alice_stamp = await provision(local, registry, "alice")
        assert await local.check(alice, registry, alice_stamp) == alice_stamp
        bob, bob_stamp = await provision(local, registry, "bob")
        assert await local.check(bob, registry, bob_stamp) == bob_stamp

        assert await local.check(alice, registry, alice_stamp) == alice_stamp  # on the loop
        await provision(local, registry, "carol")  # evicts the least recently used: bob

        async with threads_busy(local):
            assert await asyncio.wait_for(local.check(alice, registry, alice_stamp), 2) == (
                alice_stamp
            )
