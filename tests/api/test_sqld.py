"""What only the sqld backend has: scoped tokens, key rotation, shards, several replicas."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import libsql_client
import pytest

from service.auth import mint_token
from service.backends.sqld import SqldBackend, namespace_for, place
from service.backends.sqld.streams import Held, StreamCache
from service.config import load_settings
from service.wiring import open_runtime
from tests.api.conftest import Running, TenantSql, settings_for
from tests.sqld import SqldServer, free_port, make_keypair

pytestmark = pytest.mark.sqld


def start(values: dict[str, Any]) -> Running:
    running = Running(load_settings({}, **values), free_port())
    running.start()
    return running


async def run_as_app(url: str, token: str, *statements: str) -> list[list[tuple[Any, ...]]]:
    async with libsql_client.create_client(url, auth_token=token) as client:
        results = await client.batch(list(statements))
    return [[tuple(r) for r in rs.rows] for rs in results]


def app_fails(url: str, token: str, statement: str) -> bool:
    try:
        asyncio.run(run_as_app(url, token, statement))
    except Exception:  # any refusal counts: the point is that it fails
        return True
    return False


@pytest.fixture
def sqld_pair(tmp_path: Path) -> Any:
    private, public = make_keypair(tmp_path, "k")
    server = SqldServer(tmp_path / "sqld", [public]).start()
    yield server, private
    server.stop()


def test_the_database_token_works_only_on_its_own_namespace(sqld_pair: Any, tmp_path: Path) -> None:
    server, private = sqld_pair
    service = start(settings_for(tmp_path, [server], private))
    try:
        alice = service.initialize("alice").json()
        bob = service.initialize("bob").json()
    finally:
        service.stop()
    claims = jwt.decode(alice["database_token"], options={"verify_signature": False})
    assert claims["p"] == {"rw": {"ns": [namespace_for("alice")]}}
    assert claims["sub"] == "alice"
    assert 3500 <= claims["exp"] - claims["iat"] <= 3600
    rows = asyncio.run(
        run_as_app(
            alice["database_url"],
            alice["database_token"],
            "INSERT INTO accounts (name) VALUES ('main')",
            "SELECT name FROM accounts",
        )
    )
    assert rows[1] == [("main",)]
    assert app_fails(bob["database_url"], alice["database_token"], "SELECT count(*) FROM accounts")
    key = private.read_text()
    now = int(time.time())
    namespace = namespace_for("alice")
    expired = jwt.encode(
        {"iat": now - 7200, "exp": now - 3600, "p": {"rw": {"ns": [namespace]}}}, key, "EdDSA"
    )
    assert app_fails(alice["database_url"], expired, "SELECT count(*) FROM accounts")
    read_only = jwt.encode({"exp": now + 600, "p": {"ro": {"ns": [namespace]}}}, key, "EdDSA")
    assert asyncio.run(
        run_as_app(alice["database_url"], read_only, "SELECT count(*) FROM accounts")
    )
    assert app_fails(alice["database_url"], read_only, "INSERT INTO accounts (name) VALUES ('x')")


def test_key_rotation_old_tokens_work_until_the_old_key_is_removed(tmp_path: Path) -> None:
    old_private, old_public = make_keypair(tmp_path, "old")
    new_private, new_public = make_keypair(tmp_path, "new")
    folder = tmp_path / "sqld"
    # Step 1: sqld trusts both public keys; tenantdb still signs with the old key.
    server = SqldServer(folder, [old_public, new_public]).start()
    try:
        service = start(settings_for(tmp_path, [server], old_private))
        old = service.initialize("alice").json()
        service.stop()
        # Step 2: tenantdb signs with the new key; tokens of both keys work.
        service = start(settings_for(tmp_path, [server], new_private))
        new = service.initialize("alice").json()
        service.stop()
        for body in (old, new):
            assert asyncio.run(run_as_app(body["database_url"], body["database_token"], "SELECT 1"))
    finally:
        server.stop()
    # Step 3: once old tokens have expired, sqld drops the old public key.
    server = SqldServer(folder, [new_public])
    server.port, server.admin_port = free_port(), free_port()
    server.start()
    try:
        port = str(server.port)
        old_url = old["database_url"].rsplit(":", 1)[0] + ":" + port
        new_url = new["database_url"].rsplit(":", 1)[0] + ":" + port
        assert app_fails(old_url, old["database_token"], "SELECT 1")
        assert asyncio.run(run_as_app(new_url, new["database_token"], "SELECT 1"))
    finally:
        server.stop()


def test_tenants_are_placed_on_shards_by_a_stable_rule(tmp_path: Path) -> None:
    private, public = make_keypair(tmp_path, "k")
    servers = [SqldServer(tmp_path / f"sqld{i}", [public]).start() for i in range(2)]
    users = [f"user-{i:02d}" for i in range(16)]
    try:
        service = start(settings_for(tmp_path, servers, private))
        try:
            for user in users:
                assert service.initialize(user).status_code == 200
        finally:
            service.stop()
        placed = {user: place(user, 2) for user in users}
        assert set(placed.values()) == {0, 1}
        for user, shard in placed.items():
            namespace = namespace_for(user)
            for index, server in enumerate(servers):
                status = httpx.get(
                    f"{server.admin_url}/v1/namespaces/{namespace}/config"
                ).status_code
                assert status == (200 if index == shard else 404), (user, index)
    finally:
        for server in servers:
            server.stop()
    assert all(place(user, 3) in (placed[user], 2) for user in users)  # a third shard moves none


def test_namespace_names_are_dns_labels_and_keep_ids_apart() -> None:
    names = {namespace_for(u) for u in ("alice", "Alice", "a_b", "a-b", "x" * 64)}
    assert len(names) == 5
    assert all(len(n) <= 63 and n == n.lower() and n.replace("-", "").isalnum() for n in names)


def serve_process(values: dict[str, Any], port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ}
    for key, value in values.items():
        env["TENANTDB_" + key.upper()] = ",".join(value) if isinstance(value, tuple) else str(value)
    env["TENANTDB_LOG_LEVEL"] = "warning"
    command = [sys.executable, "-m", "service.cli", "serve", "--port", str(port)]
    handle = log.open("wb")
    process = subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT)
    handle.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(log.read_text())


def test_two_service_processes_never_provision_or_apply_twice(
    sqld_pair: Any, tmp_path: Path
) -> None:
    server, private = sqld_pair
    values = settings_for(tmp_path, [server], private)
    ports = [free_port(), free_port()]
    processes = [serve_process(values, p, tmp_path / f"svc{p}.log") for p in ports]
    settings = load_settings({}, **values)
    users = [f"user-{i}" for i in range(8)]

    async def storm() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"http://127.0.0.1:{port}/api/user/initialize",
                        json={"user_id": user},
                        headers={"Authorization": f"Bearer {mint_token(settings, user)}"},
                    )
                    for user in users
                    for port in ports
                    for _ in range(3)
                )
            )

    try:
        responses = asyncio.run(storm())
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=15)
    assert [r.status_code for r in responses] == [200] * len(responses)
    # Each user's namespace was created by some request. (sqld may acknowledge two
    # concurrent creates of one namespace; what must never happen is a second apply.)
    created = {r.json()["database_url"] for r in responses if r.json()["created"]}
    assert len(created) == len(users)
    for user in users:
        body = next(
            r.json()
            for r in responses
            if r.json()["database_url"].startswith("ws://" + namespace_for(user))
        )
        assert TenantSql(body).query("SELECT version FROM schema_version") == [("1.2.0",)]


def test_false_404s_past_max_active_namespaces_never_reprovision(tmp_path: Path) -> None:
    """tursodatabase/libsql#1772: past --max-active-namespaces, sqld may say an existing
    namespace does not exist. tenantdb retries, then asks the admin API, and answers 503
    rather than provision a fresh database over the live one: no row is ever lost."""
    private, public = make_keypair(tmp_path, "k")
    folder = tmp_path / "sqld"
    users = [f"user-{i:02d}" for i in range(12)]

    def phase(max_active: int, work: Any) -> Any:
        server = SqldServer(folder, [public], max_active=max_active).start()
        service = start(settings_for(tmp_path, [server], private))
        try:
            return work(service)
        finally:
            service.stop()
            server.stop()

    def provision(service: Running) -> None:
        for user in users:
            body = service.initialize(user).json()
            assert body["created"] is True
            TenantSql(body).script(f"INSERT INTO accounts (name) VALUES ('{user}')")

    def storm(service: Running) -> list[httpx.Response]:
        with service.client() as client:
            return [
                client.post("/api/user/initialize", json={"user_id": u}, headers=service.headers(u))
                for _ in range(3)
                for u in users
            ]

    def contents(service: Running) -> dict[str, Any]:
        found = {}
        for user in users:
            tenant = service.tenant(service.initialize(user))
            found[user] = (
                tenant.query("SELECT name FROM accounts"),
                tenant.query("SELECT version FROM schema_version"),
            )
        return found

    phase(1000, provision)
    assert "NamespaceDoesntExist" not in (folder / "sqld.log").read_text()
    crowded = phase(3, storm)  # far fewer loaded namespaces allowed than exist
    assert "NamespaceDoesntExist" in (folder / "sqld.log").read_text()  # the bug showed up
    assert {r.status_code for r in crowded} <= {200, 503}
    assert not any(r.json().get("created") for r in crowded if r.status_code == 200)
    assert phase(1000, contents) == {u: ([(u,)], [("1.2.0",)]) for u in users}


def test_check_ttl_reuses_a_confirmed_check_until_it_expires_or_a_sync(
    sqld_pair: Any, tmp_path: Path
) -> None:
    server, private = sqld_pair
    values = settings_for(tmp_path, [server], private)

    async def go() -> None:
        async with open_runtime(load_settings({}, **values, sqld_check_ttl=0.5)) as tenants:
            backend, registry = tenants.backend, tenants.registry
            assert isinstance(backend, SqldBackend)
            record = (await tenants.initialize("alice", None)).record
            stamp, where = record.stamp, record.location
            assert stamp is not None
            assert await backend.check(where, registry, stamp) == stamp  # confirmed by sqld
            # The app changes its schema with its own token: the cookie moves.
            await backend.database(where).execute("CREATE TABLE app_side (x)")
            assert await backend.check(where, registry, stamp) == stamp  # within the TTL
            await asyncio.sleep(0.6)
            assert await backend.check(where, registry, stamp) is None  # expired: asked again
            outcome = await tenants.sync_schema("alice", admin=True)
            assert outcome.result is not None
            assert outcome.result.up_to_date
            new = outcome.record.stamp
            assert new is not None
            assert await backend.check(where, registry, new) == new
            await tenants.delete("alice")  # a delete (or sync) forgets the confirmation
            assert await backend.check(where, registry, new) is None

        async with open_runtime(load_settings({}, **values, sqld_check_ttl=0)) as tenants:
            backend, registry = tenants.backend, tenants.registry
            assert isinstance(backend, SqldBackend)
            record = (await tenants.initialize("bob", None)).record
            assert record.stamp is not None
            assert await backend.check(record.location, registry, record.stamp) == record.stamp
            await backend.database(record.location).execute("CREATE TABLE app_side (x)")
            assert await backend.check(record.location, registry, record.stamp) is None  # at once

    asyncio.run(go())


def test_checks_reuse_held_streams_up_to_the_cap_and_still_see_schema_changes(
    sqld_pair: Any, tmp_path: Path
) -> None:
    server, private = sqld_pair
    values = settings_for(tmp_path, [server], private)

    async def go() -> None:
        async with open_runtime(load_settings({}, **values, sqld_held_streams=2)) as tenants:
            backend, registry = tenants.backend, tenants.registry
            assert isinstance(backend, SqldBackend)
            streams = backend.streams[0]
            users = ("alice", "bob", "carol")
            records = [(await tenants.initialize(u, None)).record for u in users]
            alice, bob, carol = records
            ns_alice = backend.split(alice.location)[1]
            assert streams.open == 0  # a new user's sync holds nothing

            for record in records:
                assert await backend.check(record.location, registry, record.stamp) == record.stamp
            assert streams.open == 2  # carol's stream was closed by its own request
            held = streams.take(ns_alice)
            assert held is not None
            streams.give(ns_alice, held)

            # Concurrent checks of one user: each stream is used by one request at a time.
            checks = [backend.check(bob.location, registry, bob.stamp) for _ in range(5)]
            assert await asyncio.gather(*checks) == [bob.stamp] * 5
            assert await backend.check(alice.location, registry, alice.stamp) == alice.stamp
            again = streams.take(ns_alice)
            assert again is not None
            assert again.baton != held.baton  # the same stream, its next baton
            assert streams.open == 2

            # The app changes its schema on a connection of its own: the held stream's next
            # read sees the new cookie.
            streams.give(ns_alice, again)
            await backend.database(alice.location).execute("CREATE TABLE app_side (x)")
            assert await backend.check(alice.location, registry, alice.stamp) is None

            # A stream sqld no longer knows (expired after 10 s idle) is replaced.
            assert streams.take(ns_alice) is not None
            streams.give(ns_alice, type(held)("not-a-baton", None))
            assert await backend.check(carol.location, registry, carol.stamp) == carol.stamp
            assert await backend.check(alice.location, registry, alice.stamp) is None
            assert streams.open == 2

            await tenants.delete("alice")
            assert streams.take(ns_alice) is None  # never reused; counted until it expires
            assert streams.open == 2

    asyncio.run(go())


def test_held_streams_count_until_sqld_has_surely_closed_them() -> None:
    streams = StreamCache(3, idle_for=0.05, open_for=0.15)
    assert [streams.reserve() for _ in range(4)] == [True, True, True, False]
    streams.give("a", Held("baton-a", None))
    streams.give("b", Held("baton-b", None))
    streams.give("c", Held("baton-c", None))
    assert streams.take("a") == Held("baton-a", None)
    streams.lose(closed=True)  # sqld refused a's baton: nothing of ours is open there
    assert streams.take("b") == Held("baton-b", None)
    streams.lose(closed=False)  # no answer: b may be open until sqld expires it
    streams.forget("c")  # c's namespace is being deleted: never reused, still counted
    assert streams.take("c") is None
    assert streams.open == 2
    assert streams.reserve()
    streams.give("d", Held("baton-d", None))
    assert not streams.reserve()
    time.sleep(0.07)
    assert streams.take("d") is None  # too old to trust: sqld may be closing it
    assert streams.open == 3  # ... and until then it holds a connection there
    time.sleep(0.1)
    assert streams.open == 0
    assert streams.reserve()


def test_sqld_out_of_reach_is_a_503_with_a_message(sqld_pair: Any, tmp_path: Path) -> None:
    server, private = sqld_pair
    service = start(settings_for(tmp_path, [server], private))
    try:
        assert service.initialize("alice").status_code == 200
        server.stop()
        returning, new = service.initialize("alice"), service.initialize("bob")
    finally:
        service.stop()

    for response in (returning, new):
        assert response.status_code == 503, response.text
        assert "did not answer" in response.json()["message"]
