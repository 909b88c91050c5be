"""The embedded default: one SQLite file per user under the data directory.

Files fan out into two levels of folders by a hash of the user id, so no folder holds
more than a few thousand files. In the server, all SQLite work runs on a bounded thread
pool, one hop per operation: the engine's SqliteDatabase never suspends, so a whole sync
runs in the worker thread with `drive()`. (The CLI and rollout workers run it `inline`.)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, Literal, TypeVar

from schema_registry import (
    HistoryRow,
    Registry,
    SqliteDatabase,
    Stamp,
    SyncContext,
    SyncResult,
    check,
    connect,
    drive,
    is_current,
    read_history,
    sync,
)
from service.backends.base import DatabaseMissing
from service.backends.local.batcher import Batcher
from service.backends.local.faults import storage_fault
from service.backends.local.pool import ConnectionPool

T = TypeVar("T")


class LocalBackend:
    kind: Final[Literal["local"]] = "local"

    def __init__(
        self, data_dir: Path, *, workers: int, cache_size: int, inline: bool = False
    ) -> None:
        """`inline`: run the SQLite work on the calling thread, holding the event loop, for
        processes whose loop serves no request (the CLI's commands, rollout worker
        processes): there a local sync runs one at a time anyway, and the hop to a worker
        thread and back is pure cost (bench/fleet.py, sequential: 361-408 DBs/s with the
        hop, 419-423 without). Never in the server."""
        self.data_dir = data_dir
        self.root = data_dir / "tenants"
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sqlite")
        self._pool = ConnectionPool(cache_size)
        self._checks = Batcher(self._executor)
        self._inline = inline

    def location(self, user_id: str) -> str:
        """Relative to the data directory, so a data directory moved or restored elsewhere
        keeps every tenant's file (the catalog is moved with it)."""
        digest = hashlib.sha256(user_id.encode()).hexdigest()
        return f"tenants/{digest[:2]}/{digest[2:4]}/{user_id}.db"

    def path(self, location: str) -> str:
        """The file of a location in the current data directory."""
        return os.path.join(self.data_dir, location)

    def database_url(self, location: str) -> str:
        return f"file:{self.path(location)}"

    def database_token(self, user_id: str, location: str) -> str | None:
        return None  # a local file has nothing to authenticate against

    async def _run(self, fn: Callable[[], T], *, batched: bool = False) -> T:
        """Run `fn` on a worker thread (with the checks that arrive together when
        `batched`), or here when `inline`; SQLite's storage faults come back as the
        protocol's typed errors."""
        try:
            if self._inline:
                return fn()
            if batched:
                return await self._checks.run(fn)
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        except (sqlite3.Error, OSError) as exc:
            typed = storage_fault(exc)
            if typed is None:
                raise
            raise typed from exc

    def _with_db(
        self,
        location: str,
        create: bool,
        fn: Callable[[SqliteDatabase], T],
        *,
        keep: bool = True,
    ) -> T:
        """Run `fn` on a pooled connection to the file; with `keep=False` it is closed
        after, not pooled."""
        conn = self._pool.checkout(location, create=create)
        try:
            result = fn(SqliteDatabase(conn))
        except BaseException:
            self._pool.close_connection(conn)
            raise
        if keep:
            self._pool.checkin(location, conn)
        else:
            self._pool.close_connection(conn)
        return result

    async def sync(
        self,
        location: str,
        registry: Registry,
        *,
        apply: bool,
        known: Stamp | None,
        context: SyncContext,
        create: bool = False,
        target: str | None = None,
    ) -> tuple[SyncResult, bool]:
        """Sync one file; returns the result and whether the file was created now."""
        location = self.path(location)  # the catalog keeps it relative

        def work() -> tuple[SyncResult, bool]:
            created = False
            if not os.path.exists(location):
                if not create:
                    raise DatabaseMissing(
                        "the database file is missing: call POST /api/user/initialize"
                    )
                os.makedirs(os.path.dirname(location), exist_ok=True)
                created = _claim(location)
            result = self._with_db(
                location,
                create,
                lambda db: drive(
                    sync(
                        db,
                        registry,
                        target=target,
                        apply=apply or created,
                        known=known,
                        context=context,
                    )
                ),
                # A sign-in's connection serves the user's next check; a fleet sync
                # touches each tenant once, and closing at once (its checkpoint while the
                # pages are warm) costs about 0.3 ms less than closing when evicted later.
                keep=context.trigger == "sign-in",
            )
            return result, created

        return await self._run(work)

    async def check(self, location: str, registry: Registry, known: Stamp | None) -> Stamp | None:
        """The fast path: the stamp the file is at when it is current, else None."""
        location = self.path(location)  # the catalog keeps it relative
        if known is not None and self._pool.unchanged(location, known):
            # Found current by an earlier check, and no commit since: answered on the loop
            # from the wal-index's header (a read of memory, no SQLite call; pool.py).
            return known

        def work() -> Stamp | None:
            try:
                conn = self._pool.checkout(location, create=False)
            except sqlite3.OperationalError:
                return None  # no file: the slow path provisions it
            try:
                # Before the cookie: a commit after this mark shows at the next check.
                mark = self._pool.watch(location)
                if known is not None and is_current(
                    known, registry.current, self._pool.cookie(conn)
                ):
                    if mark is not None:
                        self._pool.arm(location, mark, known)
                    return known
                current, head, _ = drive(check(SqliteDatabase(conn), registry.current, known))
            finally:
                self._pool.checkin(location, conn)
            if not current:
                return None
            return known if head is None else head.stamp

        return await self._run(work, batched=True)

    async def history(self, location: str) -> list[HistoryRow] | None:
        """The file's history rows, or None when there is no file."""
        location = self.path(location)  # the catalog keeps it relative

        def work() -> list[HistoryRow] | None:
            if not os.path.exists(location):
                return None
            return self._with_db(location, False, lambda db: drive(read_history(db)))

        return await self._run(work)

    async def delete(self, location: str) -> bool:
        location = self.path(location)  # the catalog keeps it relative

        def work() -> bool:
            self._pool.discard(location)
            found = os.path.exists(location)
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(location + suffix)
            # Again: a check (it runs outside the tenant's lock) may have opened the file
            # between the first discard and the removal; that connection must not be reused.
            self._pool.discard(location)
            return found

        return await self._run(work)

    async def export(self, location: str, dest: Path) -> None:
        """SQLite's online backup: a consistent copy even while others write."""
        location = self.path(location)  # the catalog keeps it relative

        def work() -> None:
            if not os.path.exists(location):
                raise DatabaseMissing("no database file to export")
            source = self._pool.checkout(location, create=False)
            target = sqlite3.connect(dest)
            try:
                source.backup(target)
                target.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
            finally:
                target.close()
                self._pool.checkin(location, source)

        await self._run(work)

    async def exists(self, location: str) -> bool:
        location = self.path(location)  # the catalog keeps it relative
        return await self._run(lambda: os.path.exists(location))

    async def restore(self, location: str, source: Path) -> None:
        """SQLite's backup API into the live file: every page in one write transaction.

        Connections elsewhere see the old database or the restored one, and SQLite sets the
        schema cookie to one past the old one, so no stamp recorded before can match it.
        """
        location = self.path(location)  # the catalog keeps it relative

        def work() -> None:
            os.makedirs(os.path.dirname(location), exist_ok=True)
            backup = sqlite3.connect(source.resolve().as_uri() + "?mode=ro", uri=True)
            try:
                target = connect(location)  # a new file gets WAL, like every tenant file
                try:
                    backup.backup(target)  # pages=-1: one step, one transaction
                finally:
                    target.close()
            finally:
                backup.close()

        await self._run(work)

    async def databases(self) -> AsyncIterator[str]:
        """Every `tenants/AA/BB/USER.db`, listed in a worker thread one top folder at a time
        (a few thousand names in memory, not the fleet's)."""
        tops = await self._run(lambda: _folders(self.root))
        for top in tops:
            for location in await self._run(functools.partial(_files, self.root, top)):
                yield location

    def owner(self, location: str) -> str | None:
        """The file name is the user id, accepted when its hash folders match it."""
        name = os.path.basename(location)
        user_id = name.removesuffix(".db")
        if not name.endswith(".db") or not user_id or self.location(user_id) != location:
            return None
        return user_id

    async def ping(self) -> bool:
        return await self._run(
            lambda: self.root.parent.is_dir() and os.access(self.root.parent, os.W_OK)
        )

    async def close(self) -> None:
        await self._run(self._pool.close)
        self._executor.shutdown(wait=True)


def _folders(root: Path) -> list[str]:
    """The two-hex-digit folders under `root` (none when it is not there yet)."""
    if not root.is_dir():
        return []
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and len(e.name) == 2)


def _files(root: Path, top: str) -> list[str]:
    """The locations of the `*.db` files two levels under `root/top`."""
    found = []
    for middle in sorted(os.scandir(root / top), key=lambda e: e.name):
        if not middle.is_dir():
            continue
        for entry in os.scandir(middle.path):
            if entry.name.endswith(".db") and entry.is_file():
                found.append(f"tenants/{top}/{middle.name}/{entry.name}")
    return sorted(found)


def _claim(location: str) -> bool:
    """Make the empty file, atomically: of several server processes signing one new user
    in at once, exactly one says it created the database (the others sync the file it
    made, and SQLite's write lock orders their transactions)."""
    try:
        fd = os.open(location, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    os.close(fd)
    return True
