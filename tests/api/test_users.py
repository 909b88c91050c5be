"""The sign-in endpoints over real HTTP, on both backends: local files and a real sqld."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import TenantSql, registry_upto

HISTORY = "SELECT version, changes_applied FROM schema_version ORDER BY id"
SCHEMA = "SELECT type, name, sql FROM sqlite_schema ORDER BY name"


@pytest.fixture(params=["local", pytest.param("sqld", marks=pytest.mark.sqld)])
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def versions(tenant: TenantSql) -> list[str]:
    return [str(v) for v, _ in tenant.query(HISTORY)]


def test_new_user_gets_a_database_at_the_current_version(serve: Any) -> None:
    server = serve()
    response = server.initialize("alice", "alice@example.com")
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("success", "schema_synced", "schema_version", "created")} == {
        "success": True,
        "schema_synced": True,
        "schema_version": "1.2.0",
        "created": True,
    }
    assert body["changes_applied"] == len(body["changes"]) == 30
    assert body["drift"] == []
    assert server.tenant(response).query(HISTORY) == [("1.2.0", 30)]


def test_returning_user_takes_the_fast_path_and_records_nothing(serve: Any) -> None:
    server = serve()
    first = server.initialize("bob", "bob@example.com")
    again = server.initialize("bob", "bob@example.com")
    assert again.status_code == 200
    body = again.json()
    assert body["created"] is False
    assert body["changes_applied"] == 0
    assert body["message"] == "User database initialized successfully; schema is up to date"
    assert body["database_url"] == first.json()["database_url"]
    assert server.tenant(again).query(HISTORY) == [("1.2.0", 30)]


def test_out_of_date_user_is_upgraded_through_every_version(serve: Any, tmp_path: Path) -> None:
    old = serve(registry=registry_upto(tmp_path, "1.0.0"))
    old.tenant(old.initialize("carol")).script("INSERT INTO accounts (name) VALUES ('main')")
    new = serve()
    response = new.initialize("carol")
    body = response.json()
    assert (body["schema_version"], body["schema_synced"]) == ("1.2.0", True)
    assert body["changes_applied"] > 0
    tenant = new.tenant(response)
    assert versions(tenant) == ["1.0.0", "1.1.0", "1.2.0"]
    assert tenant.query("SELECT name, risk_per_trade_pct FROM accounts") == [("main", 1.0)]


def test_an_index_dropped_behind_its_back_is_recreated(serve: Any) -> None:
    server = serve()
    tenant = server.tenant(server.initialize("dave"))
    tenant.script("DROP INDEX idx_trades_symbol")
    body = server.initialize("dave").json()
    assert body["changes"] == ["create index idx_trades_symbol on trades"]
    assert body["schema_synced"] is True
    assert tenant.query("SELECT count(*) FROM sqlite_schema WHERE name = 'idx_trades_symbol'") == [
        (1,)
    ]


def test_unfixable_drift_is_reported_and_nothing_is_applied(serve: Any) -> None:
    server = serve()
    tenant = server.tenant(server.initialize("erin"))
    tenant.script(
        "DROP INDEX idx_trades_symbol; CREATE INDEX idx_trades_symbol ON trades (price);"
        "DROP INDEX idx_trades_opened_at;"
    )
    before = tenant.query(SCHEMA)
    body = server.initialize("erin").json()
    assert body["success"] is True
    assert body["schema_synced"] is False
    assert [(d["kind"], d["object"]) for d in body["drift"]] == [
        ("replace_index", "idx_trades_symbol")
    ]
    assert tenant.query(SCHEMA) == before  # idx_trades_opened_at was not re-created either
    assert "drifted" in body["message"]


def test_verify_mode_reports_and_only_an_admin_sync_applies(serve: Any, tmp_path: Path) -> None:
    old = serve(registry=registry_upto(tmp_path, "1.1.0"))
    tenant = old.tenant(old.initialize("frank"))
    server = serve(sync_mode="verify")
    before = tenant.query(SCHEMA)
    body = server.initialize("frank").json()
    assert (body["schema_synced"], body["schema_version"]) == (False, "1.1.0")
    assert "out of date" in body["message"]
    assert tenant.query(SCHEMA) == before
    with server.client() as client:
        denied = client.post("/api/user/sync-schema/frank", headers=server.headers("frank"))
        assert denied.status_code == 403
        assert "verify" in denied.json()["message"]
        done = client.post("/api/user/sync-schema/frank", headers=server.headers("ops", admin=True))
    assert done.status_code == 200
    assert (done.json()["success"], done.json()["schema_version"]) == (True, "1.2.0")
    assert versions(tenant) == ["1.1.0", "1.2.0"]


def test_verify_mode_reports_pending_changes_apart_from_applied_ones(serve: Any) -> None:
    """A tenant missing only an optional table, in verify mode: nothing was applied, and
    the answer says so and names what is pending."""
    server = serve()
    tenant = server.tenant(server.initialize("opal"))
    tenant.script("DROP TABLE rate_limit_violations")
    server = serve(sync_mode="verify")

    body = server.initialize("opal").json()

    assert (body["changes_applied"], body["changes"]) == (0, [])
    assert body["pending"] == [
        "create table rate_limit_violations (5 columns)",
        "create index idx_rate_limit_violations_occurred_at on rate_limit_violations",
    ]
    assert "2 optional change(s) pending" in body["message"]
    assert [
        r
        for (r,) in tenant.query(
            "SELECT name FROM sqlite_schema WHERE name = 'rate_limit_violations'"
        )
    ] == []


def test_a_database_ahead_of_a_rolled_back_service_is_served_as_it_is(
    serve: Any, tmp_path: Path
) -> None:
    """The newer release took alice to 1.2.0; the service rolled back to 1.1.0 answers
    with her URL and a warning, writes nothing, and lists her as ahead."""
    server = serve()
    tenant = server.tenant(server.initialize("alice"))
    before = tenant.query(SCHEMA)
    rolled_back = serve(registry=registry_upto(tmp_path, "1.1.0"))

    response = rolled_back.initialize("alice")

    body = response.json()
    assert response.status_code == 200, response.text
    assert (body["schema_synced"], body["changes_applied"]) == (True, 0)
    assert body["database_url"]
    assert "newer than this service's 1.1.0" in body["warnings"][0]
    assert tenant.query(SCHEMA) == before
    assert versions(tenant) == ["1.2.0"]
    with rolled_back.client() as client:
        admin = rolled_back.headers("ops", admin=True)
        ahead = client.get("/api/admin/tenants", params={"status": "ahead"}, headers=admin)
    assert [t["user_id"] for t in ahead.json()["tenants"]] == ["alice"]
    assert ahead.json()["tenants"][0]["status"] == "ahead"


def test_verify_mode_still_provisions_a_new_user(serve: Any) -> None:
    server = serve(sync_mode="verify")
    body = server.initialize("gina").json()
    assert (body["created"], body["schema_synced"], body["schema_version"]) == (True, True, "1.2.0")


def test_sync_schema_reports_synced_at_and_changes(serve: Any) -> None:
    server = serve()
    server.tenant(server.initialize("hank")).script("DROP VIEW daily_summary")
    with server.client() as client:
        response = client.post("/api/user/sync-schema/hank", headers=server.headers("hank"))
    body = response.json()
    assert response.status_code == 200
    assert body["success"] is True
    assert body["changes"] == ["create view daily_summary"]
    assert body["synced_at"].endswith("Z")
    assert body["message"] == "Schema synchronized successfully; applied 1 schema change(s)"


def test_schema_version_compares_with_the_app(serve: Any, tmp_path: Path) -> None:
    old = serve(registry=registry_upto(tmp_path, "1.0.0"))
    old.initialize("ivy")
    server = serve(sync_mode="verify")
    with server.client() as client:
        response = client.get("/api/user/schema-version/ivy", headers=server.headers("ivy"))
        missing = client.get("/api/user/schema-version/nobody", headers=server.headers("nobody"))
    body = response.json()
    assert {
        k: body[k] for k in ("user_schema_version", "current_app_version", "is_up_to_date")
    } == {
        "user_schema_version": "1.0.0",
        "current_app_version": "1.2.0",
        "is_up_to_date": False,
    }
    assert body["user_schema_description"] == "Initial trading schema"
    assert missing.status_code == 404
    assert "initialize" in missing.json()["message"]


def test_sync_schema_for_unknown_user_is_404(serve: Any) -> None:
    server = serve()
    with server.client() as client:
        response = client.post("/api/user/sync-schema/ghost", headers=server.headers("ghost"))
    assert response.status_code == 404
    assert response.json()["success"] is False


def test_fifty_simultaneous_first_sign_ins_make_one_database(serve: Any) -> None:
    server = serve()
    headers = server.headers("jill")

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post("/api/user/initialize", json={"user_id": "jill"}, headers=headers)
                    for _ in range(50)
                )
            )

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 50
    assert sum(r.json()["created"] for r in responses) == 1
    assert len({r.json()["database_url"] for r in responses}) == 1
    assert server.tenant(responses[0]).query(HISTORY) == [("1.2.0", 30)]


def test_twenty_users_in_parallel_each_get_their_own_database(serve: Any) -> None:
    server = serve()
    users = [f"user-{i:02d}" for i in range(20)]

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/api/user/initialize",
                        json={"user_id": u, "email": f"{u}@example.com"},
                        headers=server.headers(u),
                    )
                    for u in users
                )
            )

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 20
    assert len({r.json()["database_url"] for r in responses}) == 20
    assert all(server.tenant(r).query(HISTORY) == [("1.2.0", 30)] for r in responses)
    with server.client() as client:
        health = client.get("/api/health/detailed", headers=server.headers("ops", admin=True))
    assert (health.json()["tenants"], health.json()["tenants_by_version"]) == (20, {"1.2.0": 20})


def test_admin_may_initialize_another_users_database(serve: Any) -> None:
    server = serve()
    with server.client() as client:
        response = client.post(
            "/api/user/initialize",
            json={"user_id": "kim"},
            headers=server.headers("ops", admin=True),
        )
    assert response.status_code == 200
    assert response.json()["created"] is True


def test_export_is_a_consistent_sqlite_file_and_delete_removes_everything(
    serve: Any, tmp_path: Path
) -> None:
    server = serve()
    tenant = server.tenant(server.initialize("lou"))
    tenant.script("INSERT INTO accounts (name) VALUES ('main'), ('side')")
    with server.client() as client:
        export = client.get("/api/user/lou/export", headers=server.headers("lou"))
        assert export.status_code == 200
        assert export.headers["content-type"] == "application/vnd.sqlite3"
        copy = tmp_path / "export.db"
        copy.write_bytes(export.content)
        deleted = client.delete("/api/user/lou", headers=server.headers("lou"))
        again = client.delete("/api/user/lou", headers=server.headers("lou"))
        version = client.get("/api/user/schema-version/lou", headers=server.headers("lou"))
    exported = TenantSql({"database_url": f"file:{copy}", "database_token": None})
    assert exported.query("SELECT name FROM accounts ORDER BY name") == [("main",), ("side",)]
    assert exported.query("PRAGMA integrity_check") == [("ok",)]
    assert exported.query(HISTORY) == [("1.2.0", 30)]
    assert (deleted.status_code, again.status_code, version.status_code) == (200, 404, 404)
    recreated = server.initialize("lou").json()
    assert recreated["created"] is True
    assert TenantSql(recreated).query("SELECT count(*) FROM accounts") == [(0,)]


def test_another_users_export_and_delete_are_forbidden(serve: Any) -> None:
    server = serve()
    server.initialize("mia")
    with server.client() as client:
        export = client.get("/api/user/mia/export", headers=server.headers("eve"))
        deleted = client.delete("/api/user/mia", headers=server.headers("eve"))
    assert (export.status_code, deleted.status_code) == (403, 403)
