"""Transient faults on a real sqld: a writer holding a namespace's lock is waited out
within the budget (and counted); past the budget the sign-in gets DatabaseBusy and the
database is unchanged."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from service.backends import transient
from service.backends.base import DatabaseBusy
from service.backends.sqld import SqldBackend, namespace_for
from service.config import load_settings
from service.tenants import TenantService
from service.wiring import open_runtime
from tests.api.conftest import SECRET
from tests.cli.clikit import notes_registry
from tests.sqld import SqldServer, make_keypair

pytestmark = pytest.mark.sqld


@pytest.fixture
def values(tmp_path: Path) -> Iterator[dict[str, Any]]:
    private, public = make_keypair(tmp_path, "sqld")
    server = SqldServer(tmp_path / "sqld", [public]).start()
    yield {
        "data_dir": str(tmp_path / "data"),
        "jwt_secret": SECRET,
        "backend": "sqld",
        "sqld_url": (server.url,),
        "sqld_admin_url": (server.admin_url,),
        "sqld_jwt_key_file": str(private),
        "public_url_template": "http://{namespace}.localhost:8080",
        "registry": str(notes_registry(tmp_path / "v100", "1.0.0")),
    }
    server.stop()


@asynccontextmanager
async def runtime(values: dict[str, Any], **overrides: Any) -> AsyncIterator[TenantService]:
    async with open_runtime(load_settings({}, **{**values, **overrides})) as tenants:
        yield tenants


async def hold_write_lock(folder: Path, user_id: str, seconds: float) -> threading.Thread:
    """A write transaction on the user's namespace file for `seconds`, then rolled back:
    SQLite's own lock, as a backup tool or sqld's checkpoint of the namespace holds it.

    (One held through another Hrana stream is queued by sqld itself: the waiting writer gets
    the lock when it is released, or at 5 s when sqld rolls the holder back, and never sees
    a busy answer; SQLite's lock on the file is what sqld answers SQLITE_BUSY for.)
    """
    path = folder / "data" / "dbs" / namespace_for(user_id) / "data"
    locked = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            locked.set()
            time.sleep(seconds)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    thread = threading.Thread(target=hold)
    thread.start()
    await asyncio.to_thread(locked.wait, 10)
    return thread


async def tables(tenants: TenantService, user_id: str) -> set[str]:
    backend = tenants.backend
    assert isinstance(backend, SqldBackend)
    record = await tenants.catalog.get(user_id)
    assert record is not None
    rows = await backend.database(record.location).fetch(
        "SELECT name FROM sqlite_schema WHERE type = 'table'"
    )
    return {str(r[0]) for r in rows}


def test_a_held_write_lock_is_waited_out_and_counted(
    values: dict[str, Any], tmp_path: Path
) -> None:
    folder = tmp_path / "sqld"

    async def go() -> None:
        async with runtime(values) as tenants:
            await tenants.initialize("alice", None)
        newer = str(notes_registry(tmp_path / "v110", "1.1.0"))
        async with runtime(values, registry=newer) as tenants:
            before = transient.RETRIES.snapshot()
            # Longer than the retries of BEGIN alone (BUSY_DELAYS: about 3 s with sqld's
            # own waits): the whole sync is tried again, within the budget.
            holder = await hold_write_lock(folder, "alice", 5.0)
            outcome = await tenants.initialize("alice", None)
            await asyncio.to_thread(holder.join)
            after = transient.RETRIES.snapshot()
            assert outcome.result is not None
            assert outcome.result.status == "applied"
            assert outcome.record.schema_version == "1.1.0"
            assert after["busy"] > before["busy"]
            assert "tags" in await tables(tenants, "alice")

    asyncio.run(go())


def test_a_lock_held_past_the_budget_is_busy_and_changes_nothing(
    values: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transient, "BUDGET_SECONDS", 0.3)
    folder = tmp_path / "sqld"

    async def go() -> None:
        async with runtime(values) as tenants:
            await tenants.initialize("alice", None)
        newer = str(notes_registry(tmp_path / "v110", "1.1.0"))
        async with runtime(values, registry=newer) as tenants:
            before = transient.RETRIES.snapshot()
            holder = await hold_write_lock(folder, "alice", 6.0)
            with pytest.raises(DatabaseBusy, match="another writer held this database"):
                await tenants.initialize("alice", None)
            assert transient.RETRIES.snapshot()["busy"] > before["busy"]
            assert "tags" not in await tables(tenants, "alice")  # nothing applied
            await asyncio.to_thread(holder.join)
            again = await tenants.initialize("alice", None)  # the lock is gone: it applies
            assert again.result is not None
            assert again.result.status == "applied"

    asyncio.run(go())


def test_sqlds_failed_checkpoint_and_busy_are_transient_other_faults_not() -> None:
    checkpoint = "Checkpoint failed: wal_checkpoint_v2 error code 5"
    assert transient.kind_of(checkpoint) == "checkpoint"
    assert transient.kind_of("database is locked") == "busy"
    assert transient.kind_of("anything", "SQLITE_BUSY") == "busy"
    assert transient.kind_of("no such table: notes", "SQLITE_ERROR") is None
    assert transient.kind_of("Too many open files (os error 24)") is None


def test_retry_delays_stay_within_the_budget() -> None:
    started, waits = time.monotonic(), []
    for wait in transient.delays(0.5):
        waits.append(wait)
        time.sleep(wait)
    assert len(waits) > 2
    assert time.monotonic() - started < 0.5 + 0.1  # the last wait ends at the deadline
    assert waits[:3] == sorted(waits[:3])  # backing off
