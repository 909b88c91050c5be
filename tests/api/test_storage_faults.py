"""Storage faults through the real server: each gets its status and stable code, the
tenant's file is never overwritten, and the other users keep being served."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import registry_upto
from tests.api.disk import Disk, disk

pytestmark = pytest.mark.parametrize("backend_kind", ["local"])  # faults of local files
__all__ = ["disk"]  # the fixture, used by name


def file_of(response: httpx.Response) -> Path:
    assert response.status_code == 200, response.text
    return Path(response.json()["database_url"].removeprefix("file:"))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def expect_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["status_code"] == status
    assert body["message"]
    return body


def test_a_full_disk_is_507_and_the_other_users_are_served(serve: Any, disk: Disk) -> None:
    server = serve(data_dir=disk.path)
    bob = file_of(server.initialize("bob"))
    filler = disk.fill()

    expect_error(server.initialize("alice"), 507, "storage_full")
    assert server.initialize("bob").status_code == 200  # a returning user reads only
    assert bob.exists()

    filler.unlink()
    assert server.initialize("alice").status_code == 200  # nothing half-made is in the way


def test_a_read_only_folder_is_503_and_the_other_users_are_served(
    serve: Any, disk: Disk, tmp_path: Path
) -> None:
    """alice's folder (tenants/2b, by her id's hash) is a read-only file system; bob's is
    not. (Root writes through permission bits, so a read-only mount is the real fault.)"""
    data = tmp_path / "data"
    server = serve(data_dir=data)
    before = digest(file_of(server.initialize("bob")))
    disk.read_only()
    folder = data / "tenants" / "2b"
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.symlink_to(disk.path)

    expect_error(server.initialize("alice"), 503, "storage_unavailable")
    assert server.initialize("bob").status_code == 200
    assert list(disk.path.iterdir()) == []

    folder.unlink()
    assert digest(file_of(server.initialize("bob"))) == before
    assert server.initialize("alice").status_code == 200


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: b"this is not a database" * 300, id="not-a-database"),
        pytest.param(lambda data: data[: len(data) // 3], id="truncated"),
        # The schema's page overwritten, and the schema cookie moved so it is read.
        pytest.param(
            lambda data: (
                data[:40] + b"\x00\x00\x7f\x7f" + data[44:100] + b"\xff" * 3900 + data[4000:]
            ),
            id="malformed",
        ),
    ],
)
def test_a_damaged_file_is_409_left_as_it_is_and_shown_as_damaged(serve: Any, damage: Any) -> None:
    server = serve()
    alice = file_of(server.initialize("alice"))
    server.initialize("bob")
    server = serve()  # stopped and started: alice's file is closed, its WAL checkpointed
    for suffix in ("-wal", "-shm"):
        Path(f"{alice}{suffix}").unlink(missing_ok=True)
    alice.write_bytes(damage(alice.read_bytes()))
    before = digest(alice)

    body = expect_error(server.initialize("alice"), 409, "database_damaged")
    assert "left as it is" in body["message"]
    assert digest(alice) == before
    assert server.initialize("bob").status_code == 200
    with server.client() as client:
        listed = client.get(
            "/api/admin/tenants",
            params={"status": "damaged"},
            headers=server.headers("ops", admin=True),
        )
        scraped = client.get("/metrics").text
        health = client.get(
            "/api/health/detailed", headers=server.headers("ops", admin=True)
        ).json()
    assert [t["user_id"] for t in listed.json()["tenants"]] == ["alice"]
    assert "tenantdb_tenants_damaged 1.0" in scraped
    assert (health["status"], health["damaged_tenants"]) == ("degraded", 1)


def test_a_write_lock_held_past_the_busy_timeout_is_503_with_retry_after(
    serve: Any, tmp_path: Path
) -> None:
    old = serve(registry=registry_upto(tmp_path, "1.1.0"))
    alice = file_of(old.initialize("alice"))
    server = serve()  # 1.2.0: alice's sign-in must write
    history = "SELECT count(*) FROM schema_version"
    holder = sqlite3.connect(alice, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    responses: dict[str, httpx.Response] = {}

    def sign_in() -> None:
        responses["alice"] = server.initialize("alice")

    try:
        waiting = threading.Thread(target=sign_in)
        waiting.start()
        time.sleep(0.5)
        started = time.monotonic()
        assert server.initialize("bob").status_code == 200  # served meanwhile
        assert time.monotonic() - started < 5
        waiting.join()
        rows = holder.execute(history).fetchone()
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    body = expect_error(responses["alice"], 503, "database_busy")
    assert "try again" in body["message"]
    assert responses["alice"].headers["retry-after"] == "1"
    assert rows == (1,)  # its 1.1.0 row only: nothing of 1.2.0 was written
    assert server.initialize("alice").status_code == 200


def test_a_sign_in_whose_catalog_write_failed_registers_the_tenant_on_the_next(
    serve: Any, tmp_path: Path
) -> None:
    """The database and its history row committed, then the catalog write failed (its lock
    held past the busy timeout): the next sign-in must write the row, not take the fast
    path on a row that was only ever cached."""
    server = serve()
    server.initialize("bob")
    catalog = sqlite3.connect(tmp_path / "data" / "catalog.db", isolation_level=None)
    catalog.execute("BEGIN IMMEDIATE")
    try:
        expect_error(server.initialize("alice"), 503, "database_busy")
    finally:
        catalog.execute("ROLLBACK")
    assert catalog.execute("SELECT count(*) FROM tenants WHERE user_id = 'alice'").fetchone() == (
        0,
    )

    again = server.initialize("alice")

    assert again.status_code == 200, again.text
    rows = catalog.execute("SELECT schema_version FROM tenants WHERE user_id = 'alice'").fetchall()
    catalog.close()
    assert rows == [("1.2.0",)]


def test_delete_racing_sign_in_export_and_sync_never_answers_500(serve: Any) -> None:
    """One user deleted over and over while the same user signs in, exports and syncs:
    each request waits for the others on the user's lock, so the loser finds no database
    (404) or a fresh one (200), never a half-deleted file."""
    server = serve()
    server.initialize("alice")
    seen: dict[str, set[int]] = {
        "delete": set(),
        "initialize": set(),
        "export": set(),
        "sync": set(),
    }
    headers = server.headers("alice", admin=True)

    def hammer(kind: str) -> None:
        with server.client() as client:
            for _ in range(25):
                if kind == "delete":
                    response = client.delete("/api/user/alice", headers=headers)
                elif kind == "initialize":
                    body = {"user_id": "alice"}
                    response = client.post("/api/user/initialize", json=body, headers=headers)
                elif kind == "export":
                    response = client.get("/api/user/alice/export", headers=headers)
                else:
                    response = client.post("/api/user/sync-schema/alice", headers=headers)
                seen[kind].add(response.status_code)

    threads = [threading.Thread(target=hammer, args=(kind,)) for kind in seen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert seen["initialize"] == {200}
    for kind in ("delete", "export", "sync"):
        assert seen[kind] <= {200, 404}, (kind, seen)


def test_a_moved_data_directory_keeps_every_users_data(serve: Any, tmp_path: Path) -> None:
    """The data directory copied elsewhere and the service pointed at the copy: users get
    their own databases there, and nothing is made at the old place."""
    first = tmp_path / "first"
    server = serve(data_dir=first)
    old_file = file_of(server.initialize("alice"))
    sqlite3.connect(old_file, isolation_level=None).execute(
        "INSERT INTO accounts (name) VALUES ('kept')"
    ).connection.close()
    server.initialize("bob")
    server = serve(data_dir=tmp_path / "elsewhere")  # stops the first server
    shutil.rmtree(tmp_path / "elsewhere")
    shutil.copytree(first, tmp_path / "elsewhere")
    before = digest(old_file)
    server = serve(data_dir=tmp_path / "elsewhere")

    moved = file_of(server.initialize("alice"))

    assert moved.is_relative_to(tmp_path / "elsewhere")
    conn = sqlite3.connect(moved)
    assert conn.execute("SELECT name FROM accounts").fetchall() == [("kept",)]
    conn.close()
    assert digest(old_file) == before  # the old place untouched
