"""Admin endpoints over HTTP: tenants, detail, audit, rollout jobs (both backends)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from schema_registry import load_registry
from service.config import ConfigError, load_settings
from tests.api.conftest import Running, TenantSql, registry_upto
from tests.api.test_metrics import parse
from tests.fleetkit import build_local_fleet


@pytest.fixture(params=["local", pytest.param("sqld", marks=pytest.mark.sqld)])
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


ADMIN_GETS = [
    "/api/admin/tenants",
    "/api/admin/tenants/alice",
    "/api/admin/audit",
    "/api/admin/rollouts",
    "/api/admin/rollouts/0123456789abcdef",
]


def admin(server: Running) -> httpx.Client:
    client = server.client()
    client.headers.update(server.headers("ops", admin=True))
    return client


@pytest.fixture
def fleet(serve: Any, tmp_path: Path) -> Running:
    """alice, bob and carol signed in on release 1.0.0; the server now runs 1.2.0."""
    old = serve(registry=registry_upto(tmp_path, "1.0.0"))
    sql = {user: old.tenant(old.initialize(user)) for user in ("alice", "bob", "carol")}
    server: Running = serve()
    server.sql = sql  # type: ignore[attr-defined]
    return server


def spoil(server: Running, user: str) -> None:
    """trades.strategy_id with another type than 1.1.0's: a sync must refuse (drift)."""
    tenant: TenantSql = server.sql[user]  # type: ignore[attr-defined]
    tenant.script("ALTER TABLE trades ADD COLUMN strategy_id TEXT")
    server.initialize(user)  # the sign-in finds the drift and records it


def wait_for(client: httpx.Client, job_id: str, seconds: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/api/admin/rollouts/{job_id}").json()
        if body["state"] != "running":
            return body
        time.sleep(0.1)
    raise AssertionError(f"rollout {job_id} still running after {seconds} s")


@pytest.mark.parametrize("backend_kind", ["local"])
@pytest.mark.parametrize("path", ADMIN_GETS)
def test_every_admin_endpoint_needs_the_admin_role(serve: Any, path: str) -> None:
    server = serve()
    with server.client() as client:
        assert client.get(path).status_code == 401
        response = client.get(path, headers=server.headers("alice"))
        started = client.post(
            "/api/admin/rollouts", json={}, headers=server.headers("alice")
        ).status_code

    assert response.status_code == 403
    assert response.json()["message"] == "this endpoint needs a token with the admin role"
    assert started == 403


def test_tenants_are_paged_and_filtered(fleet: Running) -> None:
    fleet.tenant(fleet.initialize("dave"))  # a new user: at 1.2.0
    with admin(fleet) as client:
        first = client.get("/api/admin/tenants", params={"limit": 2}).json()
        second = client.get(
            "/api/admin/tenants", params={"limit": 2, "after": first["next_after"]}
        ).json()
        old = client.get("/api/admin/tenants", params={"version": "1.0.0"}).json()
        new = client.get("/api/admin/tenants", params={"version": "1.2.0"}).json()
        bad = client.get("/api/admin/tenants", params={"limit": 0})

    assert [t["user_id"] for t in first["tenants"]] == ["alice", "bob"]
    assert first["next_after"] == "bob"
    assert [t["user_id"] for t in second["tenants"]] == ["carol", "dave"]
    assert [t["user_id"] for t in old["tenants"]] == ["alice", "bob", "carol"]
    assert old["next_after"] is None
    [dave] = new["tenants"]
    assert (dave["user_id"], dave["schema_version"], dave["status"]) == ("dave", "1.2.0", "current")
    assert bad.status_code == 400


def test_drifted_tenants_can_be_listed_by_status(fleet: Running) -> None:
    spoil(fleet, "bob")
    with admin(fleet) as client:
        drifted = client.get("/api/admin/tenants", params={"status": "drifted"}).json()

    [bob] = drifted["tenants"]
    assert (bob["user_id"], bob["status"], bob["schema_version"]) == ("bob", "drifted", "1.0.0")
    assert bob["drift_count"] == 2


def test_tenant_detail_has_history_last_change_and_a_dry_run(fleet: Running) -> None:
    with admin(fleet) as client:
        body = client.get("/api/admin/tenants/alice").json()
        missing = client.get("/api/admin/tenants/nobody")
        bad = client.get("/api/admin/tenants/no%20body")

    assert (body["tenant"]["user_id"], body["tenant"]["schema_version"]) == ("alice", "1.0.0")
    assert [(h["version"], h["trigger"]) for h in body["history"]] == [("1.0.0", "sign-in")]
    change = body["last_change"]
    assert (change["trigger"], change["from_version"], change["to_version"]) == (
        "sign-in",
        None,
        "1.0.0",
    )
    dry = body["dry_run"]
    assert (dry["status"], dry["from_version"], dry["to_version"], dry["drift"]) == (
        "out_of_date",
        "1.0.0",
        "1.2.0",
        [],
    )
    assert "create table strategies (7 columns)" in dry["changes"]
    assert any(s.startswith("CREATE TABLE strategies") for s in dry["statements"])
    assert missing.status_code == 404
    assert bad.status_code == 400


def test_tenant_detail_shows_drift_with_reasons(fleet: Running) -> None:
    spoil(fleet, "bob")
    with admin(fleet) as client:
        drift = client.get("/api/admin/tenants/bob").json()["dry_run"]["drift"]

    assert [(d["kind"], d["object"]) for d in drift] == [
        ("alter_column", "trades.strategy_id"),
        ("alter_table", "trades"),
    ]
    assert all(d["reason"] for d in drift)


def test_audit_is_newest_first_filtered_and_paged(fleet: Running) -> None:
    with admin(fleet) as client:
        job = client.post("/api/admin/rollouts", json={"target": "1.1.0"}).json()
        wait_for(client, job["job_id"])
        everything = client.get("/api/admin/audit").json()["entries"]
        page = client.get("/api/admin/audit", params={"limit": 4}).json()
        rest = client.get("/api/admin/audit", params={"before": page["next_before"]}).json()
        alice = client.get("/api/admin/audit", params={"user_id": "alice"}).json()["entries"]

    assert [(e["user_id"], e["trigger"]) for e in everything][-3:] == [
        ("carol", "sign-in"),
        ("bob", "sign-in"),
        ("alice", "sign-in"),
    ]
    assert sorted(e["user_id"] for e in everything[:3]) == ["alice", "bob", "carol"]
    assert {(e["trigger"], e["actor"], e["to_version"]) for e in everything[:3]} == {
        ("fleet", "ops", "1.1.0")
    }
    assert [e["id"] for e in page["entries"] + rest["entries"]] == [e["id"] for e in everything]
    assert rest["next_before"] is None
    assert [(e["trigger"], e["to_version"]) for e in alice] == [
        ("fleet", "1.1.0"),
        ("sign-in", "1.0.0"),
    ]
    assert alice[0]["statements"][0].startswith("CREATE TABLE strategies")


def test_rollout_job_upgrades_every_tenant_and_reports_drift(fleet: Running) -> None:
    spoil(fleet, "bob")
    with admin(fleet) as client:
        started = client.post("/api/admin/rollouts", json={"concurrency": 2})
        job = started.json()
        done = wait_for(client, job["job_id"])
        listed = client.get("/api/admin/rollouts").json()["rollouts"]
        alice = client.get("/api/admin/tenants/alice").json()

    assert started.status_code == 202
    assert job == {
        "job_id": job["job_id"],
        "target": "1.2.0",
        "dry_run": False,
        "poll": f"/api/admin/rollouts/{job['job_id']}",
    }
    assert (done["state"], done["total"], done["done"], done["upgraded"]) == ("finished", 3, 3, 2)
    assert (done["current"], done["failed"], done["concurrency"]) == (0, [], 2)
    [bob] = done["drifted"]
    assert (bob["user_id"], bob["kind"], bob["from_version"]) == ("bob", "drifted", "1.0.0")
    assert [d["object"] for d in bob["drift"]] == ["trades.strategy_id", "trades"]
    assert [r["job_id"] for r in listed] == [job["job_id"]]
    assert [h["version"] for h in alice["history"]] == ["1.0.0", "1.1.0", "1.2.0"]
    assert alice["dry_run"]["status"] == "up_to_date"


def test_dry_run_job_changes_nothing(fleet: Running) -> None:
    with admin(fleet) as client:
        rows = client.get("/api/admin/tenants").json()["tenants"]
        job = client.post("/api/admin/rollouts", json={"dry_run": True}).json()
        done = wait_for(client, job["job_id"])
        history = client.get("/api/admin/tenants/carol").json()["history"]  # a dry run too
        rows_after = client.get("/api/admin/tenants").json()["tenants"]

    assert (done["dry_run"], done["would_apply"], done["upgraded"]) == (True, 3, 0)
    assert [h["version"] for h in history] == ["1.0.0"]
    assert rows_after == rows  # status and last sync as the sign-ins left them


def test_a_rollout_to_an_older_version_leaves_tenants_out_of_date(fleet: Running) -> None:
    with admin(fleet) as client:
        job = client.post("/api/admin/rollouts", json={"target": "1.1.0"}).json()
        done = wait_for(client, job["job_id"])
        rows = client.get("/api/admin/tenants").json()["tenants"]

    assert (done["state"], done["upgraded"]) == ("finished", 3)
    assert {(t["schema_version"], t["status"]) for t in rows} == {("1.1.0", "out_of_date")}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"target": "9.9.9"}, 400, "version 9.9.9 is not in the registry"),
        ({"concurrency": 0}, 400, "concurrency"),
        ({"resume": "nosuchjob"}, 404, "no rollout job nosuchjob"),
        ({"targte": "1.1.0"}, 400, "targte"),
    ],
    ids=["unknown-version", "no-concurrency", "unknown-job", "unknown-field"],
)
@pytest.mark.parametrize("backend_kind", ["local"])
def test_bad_rollout_requests_are_refused(
    serve: Any, body: dict[str, Any], status: int, message: str
) -> None:
    server = serve()
    with admin(server) as client:
        response = client.post("/api/admin/rollouts", json=body)
        unknown = client.get("/api/admin/rollouts/nosuchjob")

    assert response.status_code == status
    assert message in response.json()["message"]
    assert unknown.status_code == 404


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: does it exist?
    except ProcessLookupError:
        return False
    return True


def progress(client: httpx.Client, job_id: str, seconds: float = 60) -> dict[str, Any]:
    """The job once it has saved some tenants done (and is still running)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/api/admin/rollouts/{job_id}").json()
        if body["done"] > 0:
            assert body["state"] == "running", body
            return body
        time.sleep(0.02)
    raise AssertionError(f"rollout {job_id} did nothing in {seconds} s")


def assert_resumed_to_the_end(again: httpx.Response, done: dict[str, Any], users: int) -> None:
    """The resume was accepted and the job finished every tenant, none failed or drifted."""
    assert again.status_code == 202
    assert (done["state"], done["done"], done["failed"], done["drifted"]) == (
        "finished",
        users,
        [],
        [],
    )
    assert done["upgraded"] + done["current"] == users


@pytest.mark.parametrize("backend_kind", ["local"])
def test_shutdown_cancels_a_rollout_and_a_restart_resumes_it(serve: Any, tmp_path: Path) -> None:
    server = serve()
    registry = load_registry(server.settings.registry)
    users = [f"user-{i:04d}" for i in range(600)]
    build_local_fleet(server.settings, registry, "1.0.0", users, tmp_path)
    with capture_logs() as events, admin(server) as client:
        job = client.post("/api/admin/rollouts", json={"concurrency": 1}).json()
        progress(client, job["job_id"])  # its worker has started and synced some
    server.stop()
    [workers] = [e for e in events if e["event"] == "fleet.workers_started"]
    assert [pid for pid in workers["pids"] if alive(pid)] == []  # stopped with the server

    server = serve()
    with admin(server) as client:
        stopped = client.get(f"/api/admin/rollouts/{job['job_id']}").json()
        again = client.post("/api/admin/rollouts", json={"resume": job["job_id"]})
        done = wait_for(client, job["job_id"])

    assert stopped["state"] == "cancelled"
    assert stopped["error"] == "cancelled"
    assert 0 < stopped["done"] < len(users)
    assert_resumed_to_the_end(again, done, len(users))


@pytest.mark.parametrize("backend_kind", ["local"])
def test_openapi_documents_the_admin_endpoints(serve: Any) -> None:
    server = serve()
    with server.client() as client:
        spec = client.get("/schema/openapi.json").json()

    paths = spec["paths"]
    expected = {
        ("/api/admin/tenants", "get", "200"): "TenantPage",
        ("/api/admin/tenants/{user_id}", "get", "200"): "TenantDetail",
        ("/api/admin/audit", "get", "200"): "AuditPage",
        ("/api/admin/rollouts", "post", "202"): "RolloutStarted",
        ("/api/admin/rollouts", "get", "200"): "RolloutList",
        ("/api/admin/rollouts/{job_id}", "get", "200"): "RolloutSummary",
    }
    for (path, method, status), schema in expected.items():
        responses = paths[path][method]["responses"]
        ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith(schema), (path, ref)
        assert {"401", "403"} <= set(responses)
    assert "RolloutRequest" in spec["components"]["schemas"]
    params = {p["name"] for p in paths["/api/admin/tenants"]["get"]["parameters"]}
    assert params == {"version", "status", "after", "limit"}


def test_a_rollout_in_waves_reports_each_wave(fleet: Running) -> None:
    spoil(fleet, "bob")
    body = {"waves": [33, 100], "max_failure_rate": 0, "first": ["bob"]}
    with admin(fleet) as client:
        job = client.post("/api/admin/rollouts", json=body).json()
        halted = wait_for(client, job["job_id"])
        resumed = client.post(
            "/api/admin/rollouts", json={"resume": job["job_id"], "max_failure_rate": 100}
        )
        done = wait_for(client, job["job_id"])

    assert (halted["state"], halted["max_failure_rate"], halted["upgraded"]) == ("halted", 0, 0)
    assert f"--resume {job['job_id']}" in halted["error"]
    assert [(w["tenants"], w["drifted"], w["state"]) for w in halted["waves"]] == [
        (1, 1, "halted"),
        (2, 0, "pending"),
    ]
    assert resumed.status_code == 202
    assert (done["state"], done["upgraded"], done["max_failure_rate"]) == ("finished", 2, 1.0)
    assert [(w["done"], w["state"]) for w in done["waves"]] == [(1, "passed"), (2, "passed")]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"waves": [50, 10, 100]}, "increasing cumulative percentages ending at 100"),
        ({"waves": [10, 50]}, "ending at 100"),
        ({"max_failure_rate": 2}, "give waves as well"),
        ({"waves": [100], "max_failure_rate": 101}, "max_failure_rate"),
    ],
    ids=["decreasing", "not-100", "rate-alone", "rate-too-high"],
)
@pytest.mark.parametrize("backend_kind", ["local"])
def test_bad_waves_are_refused(serve: Any, body: dict[str, Any], message: str) -> None:
    server = serve()
    with admin(server) as client:
        response = client.post("/api/admin/rollouts", json=body)

    assert response.status_code == 400
    assert message in response.json()["message"]


def test_an_admin_rollout_syncs_in_worker_processes_of_its_own(fleet: Running, serve: Any) -> None:
    """The contract: a rollout started through the admin API runs in worker processes of
    its own (as many as its concurrency, at most TENANTDB_ROLLOUT_PROCESSES), so the server
    process keeps only the books: it neither syncs nor backs up one tenant. Its metrics
    still count the workers' syncs."""
    server = serve(rollout_processes=2)
    with capture_logs() as events, admin(server) as client:
        job = client.post("/api/admin/rollouts", json={"concurrency": 8}).json()
        done = wait_for(client, job["job_id"])
    with admin(server) as client:
        history = client.get("/api/admin/tenants/carol").json()["history"]
        _, samples = parse(client.get("/metrics").text)

    assert (done["state"], done["total"], done["upgraded"], done["failed"]) == (
        "finished",
        3,
        3,
        [],
    )
    assert [h["version"] for h in history] == ["1.0.0", "1.1.0", "1.2.0"]
    in_server = [e["event"] for e in events if e["event"].startswith(("schema.", "backup."))]
    assert in_server == []
    [workers] = [e for e in events if e["event"] == "fleet.workers_started"]
    assert workers["processes"] == 2
    assert workers["pids"]
    assert os.getpid() not in workers["pids"]
    assert [e["event"] for e in events if e["event"].startswith("fleet.rollout_")] == [
        "fleet.rollout_started",
        "fleet.rollout_finished",
    ]
    syncs = {labels: n for (name, labels), n in samples.items() if name == "tenantdb_syncs_total"}
    assert syncs[(("status", "applied"), ("trigger", "fleet"))] == 3


@pytest.mark.parametrize("backend_kind", ["local"])
def test_a_rollout_whose_worker_dies_stops_and_a_resume_finishes_it(
    serve: Any, tmp_path: Path
) -> None:
    server = serve()
    registry = load_registry(server.settings.registry)
    users = [f"user-{i:04d}" for i in range(600)]
    build_local_fleet(server.settings, registry, "1.0.0", users, tmp_path)
    with capture_logs() as events, admin(server) as client:
        job = client.post("/api/admin/rollouts", json={"concurrency": 1}).json()
        progress(client, job["job_id"])
        [workers] = [e for e in events if e["event"] == "fleet.workers_started"]
        os.kill(workers["pids"][0], signal.SIGKILL)
        stopped = wait_for(client, job["job_id"])
        again = client.post("/api/admin/rollouts", json={"resume": job["job_id"]})
        done = wait_for(client, job["job_id"])

    # Not one tenant is blamed for the lost worker: the run stops, a resume goes on.
    assert (stopped["state"], stopped["failed"], stopped["drifted"]) == ("failed", [], [])
    assert "worker process ended abruptly" in stopped["error"]
    assert 0 < stopped["done"] < len(users)
    assert_resumed_to_the_end(again, done, len(users))


@pytest.mark.parametrize("value", ["0", "65", "two"])
def test_rollout_processes_out_of_range_stop_the_start(value: str) -> None:
    with pytest.raises(ConfigError, match="TENANTDB_ROLLOUT_PROCESSES"):
        load_settings({"TENANTDB_ROLLOUT_PROCESSES": value})
