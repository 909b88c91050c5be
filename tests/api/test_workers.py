"""`tenantdb serve --workers 2`: what holds for one server process holds for two.

Real `tenantdb serve` subprocesses over HTTP. Each request carries its own X-Request-Id,
and the server's JSON log says which process (`pid`) answered it; a client holds one
keep-alive connection, so it stays with the process that accepted it (every request is
checked against that, so a connection the server closed cannot fool a test).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from schema_registry import load_registry
from service.auth import mint_token
from service.config import Settings, load_settings
from tests.api.conftest import SECRET, registry_upto
from tests.api.test_metrics import parse
from tests.fleetkit import build_local_fleet, locations
from tests.sqld import free_port

SHM = Path("/dev/shm")  # noqa: S108 - where `serve` keeps the workers' metric files
SERVE = (sys.executable, "-m", "service.cli", "serve", "--workers", "2")
_ids = itertools.count()


def _request_id() -> str:
    return f"test-{os.getpid()}-{next(_ids)}"


class Workers:
    """One `tenantdb serve --workers 2` on a free port, logging JSON lines to a file."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.data_dir = tmp_path / "data"
        self.log_path = tmp_path / f"serve-{next(_ids)}.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        base = {k: v for k, v in os.environ.items() if not k.startswith("TENANTDB_")}
        self.env = {
            **base,
            "TENANTDB_DATA_DIR": str(self.data_dir),
            "TENANTDB_JWT_SECRET": SECRET,
            "TENANTDB_RATE_LIMIT": "off",  # bursts from one address, by design
            "TENANTDB_LOG_FORMAT": "json",
            **env,
        }
        self.settings: Settings = load_settings(
            {},
            data_dir=str(self.data_dir),
            jwt_secret=SECRET,
            registry=env.get("TENANTDB_REGISTRY"),
        )
        self.process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._served: dict[str, int] = {}
        self.clients: list[Pinned] = []  # closed by stop()

    def start(self) -> Workers:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*SERVE, "--port", str(self.port)],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 90
        while sum(e["event"] == "service.started" for e in self.events()) < 2:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"serve --workers 2 did not start:\n{self.log_text()}")
            time.sleep(0.05)
        return self

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        for client in self.clients:
            client.close()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """The JSON events written so far: a line still being written (no newline yet, the
        processes write while this reads) is not an event yet."""
        complete = self.log_text().rpartition("\n")[0]
        return [json.loads(line) for line in complete.splitlines() if line.startswith("{")]

    def served_by(self, request_ids: list[str]) -> dict[str, int]:
        """Which process answered each request, from its `request.completed` line."""
        deadline = time.monotonic() + 10
        while True:
            for event in self.events():
                if event["event"] == "request.completed" and "request_id" in event:
                    self._served[event["request_id"]] = event["pid"]
            if all(r in self._served for r in request_ids):
                return {r: self._served[r] for r in request_ids}
            assert time.monotonic() < deadline, f"no log line for {request_ids}"
            time.sleep(0.02)

    def token(self, user_id: str, *, admin: bool = False) -> str:
        return mint_token(self.settings, user_id, admin=admin, ttl=600)

    def connections(self, each: int) -> dict[int, list[Pinned]]:
        """`each` kept-alive connections on each of the two processes."""
        pinned: dict[int, list[Pinned]] = {}
        for _ in range(50):
            fresh = [Pinned(self) for _ in range(4 * each)]
            probes = [c.probe() for c in fresh]
            served = self.served_by(probes)
            for client, request_id in zip(fresh, probes, strict=True):
                client.pid = served[request_id]
                group = pinned.setdefault(client.pid, [])
                if len(group) < each:
                    group.append(client)
                else:
                    client.close()
            if len(pinned) == 2 and all(len(g) == each for g in pinned.values()):
                return pinned
        raise AssertionError(f"connections never reached both processes: {pinned.keys()}")

    def one_each(self) -> tuple[Pinned, Pinned]:
        first, second = (group[0] for group in self.connections(1).values())
        return first, second


class Pinned:
    """One keep-alive connection to the server, on the process that accepted it."""

    def __init__(self, server: Workers) -> None:
        self.server = server
        self.pid = 0
        self.client = httpx.Client(
            base_url=server.url, timeout=60, limits=httpx.Limits(max_connections=1)
        )
        server.clients.append(self)

    def probe(self) -> str:
        request_id = _request_id()
        assert self.client.get("/health", headers={"X-Request-Id": request_id}).status_code == 200
        return request_id

    def request(
        self, method: str, url: str, *, as_user: str, admin: bool = False, **kwargs: Any
    ) -> httpx.Response:
        """A request on this connection, checked to have been answered by `self.pid`."""
        request_id = _request_id()
        headers = {
            "Authorization": f"Bearer {self.server.token(as_user, admin=admin)}",
            "X-Request-Id": request_id,
        }
        response = self.client.request(method, url, headers=headers, **kwargs)
        assert self.server.served_by([request_id]) == {request_id: self.pid}
        return response

    def initialize(self, user_id: str) -> httpx.Response:
        return self.request(
            "POST", "/api/user/initialize", as_user=user_id, json={"user_id": user_id}
        )

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        response = self.request("GET", "/metrics", as_user="prometheus")
        assert response.status_code == 200, response.text
        return parse(response.text)[1]

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Any]:
    started: list[Workers] = []

    def start(**env: str) -> Workers:
        server = Workers(tmp_path, **env).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def tenant_file(settings: Settings, user_id: str) -> Path:
    return Path(locations(settings.data_path, [user_id])[user_id])


def sql(path: Path, statement: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        return conn.execute(statement).fetchall()
    finally:
        conn.close()


def test_fifty_first_sign_ins_over_two_processes_make_one_database(workers: Any) -> None:
    server = workers()
    pinned = server.connections(25)
    clients = [c for group in pinned.values() for c in group]
    barrier = threading.Barrier(len(clients))
    answers: list[httpx.Response] = []

    def sign_in(client: Pinned) -> None:
        barrier.wait()
        answers.append(client.initialize("zoe"))

    threads = [threading.Thread(target=sign_in, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(answers) == 50
    assert {r.status_code for r in answers} == {200}, [r.text for r in answers if r.is_error]
    assert len({r.json()["database_url"] for r in answers}) == 1
    path = tenant_file(server.settings, "zoe")
    assert [p.name for p in path.parent.iterdir() if p.suffix == ".db"] == [path.name]
    assert sql(path, "SELECT version FROM schema_version") == [("1.2.0",)]
    any_client = clients[0]
    detail = any_client.request("GET", "/api/admin/tenants/zoe", as_user="ops", admin=True)
    assert [h["version"] for h in detail.json()["history"]] == ["1.2.0"]
    samples = any_client.scrape()
    assert samples[("tenantdb_provisioned_total", ())] == 1
    assert samples[("tenantdb_syncs_total", (("status", "applied"), ("trigger", "sign-in")))] == 1


def test_metrics_add_up_every_process_and_count_tenants_once(workers: Any) -> None:
    server = workers()
    first, second = server.one_each()
    new: list[tuple[Pinned, list[str]]] = [(first, ["ann", "ben", "cy"]), (second, ["dee", "eve"])]
    back = [(first, ["ann", "dee", "eve", "ann"]), (second, ["ben", "cy", "cy"])]  # fast path
    for client, users in new + back:
        for user in users:
            assert client.initialize(user).status_code == 200

    for client in (first, second):  # whichever process answers the scrape
        samples = client.scrape()
        assert samples[("tenantdb_provisioned_total", ())] == 5
        sign_ins = (("method", "POST"), ("route", "/api/user/initialize"), ("status", "200"))
        assert samples[("tenantdb_http_requests_total", sign_ins)] == 12
        assert samples[("tenantdb_http_request_duration_seconds_count", sign_ins)] == 12
        assert samples[("tenantdb_fast_path_hits_total", ())] == 7
        syncs = (("status", "applied"), ("trigger", "sign-in"))
        assert samples[("tenantdb_syncs_total", syncs)] == 5
        assert samples[("tenantdb_sync_duration_seconds_count", ())] == 5
        # From the catalog, read once by the process answering: never summed twice.
        assert samples[("tenantdb_tenants", (("version", "1.2.0"),))] == 5
        assert samples[("tenantdb_tenants_drifted", ())] == 0


def test_serve_makes_and_removes_the_metrics_folder_and_names_the_threads(
    workers: Any,
) -> None:
    before = set(SHM.glob("tenantdb-metrics-*"))
    server = workers(TENANTDB_WORKERS="3")  # the old name of TENANTDB_THREADS
    made = set(SHM.glob("tenantdb-metrics-*")) - before
    assert len(made) == 1
    first, _ = server.one_each()
    assert first.initialize("fay").status_code == 200
    assert any(f.name.startswith("counter_") for f in next(iter(made)).iterdir())
    server.stop()
    assert server.process is not None
    assert server.process.returncode == 0, server.log_text()
    assert not made & set(SHM.glob("tenantdb-metrics-*"))
    events = server.events()
    [warning] = [e for e in events if e["event"] == "config.deprecated_variable"]
    assert (warning["variable"], warning["use"]) == ("TENANTDB_WORKERS", "TENANTDB_THREADS")
    [started] = [e for e in events if e["event"] == "service.workers"]
    assert (started["workers"], started["threads_each"]) == (2, 3)


def test_a_rollout_runs_in_one_process_only(workers: Any, tmp_path: Path) -> None:
    server = workers()
    registry = load_registry(server.settings.registry)
    users = [f"user-{i:03d}" for i in range(150)]
    build_local_fleet(server.settings, registry, "1.0.0", users, tmp_path)
    runner, other = server.one_each()
    started = runner.request(
        "POST", "/api/admin/rollouts", as_user="ops", admin=True, json={"concurrency": 1}
    )
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]
    # The other process may not run it too: the job's lease in the catalog says who does.
    again = other.request(
        "POST", "/api/admin/rollouts", as_user="ops", admin=True, json={"resume": job_id}
    )
    deadline = time.monotonic() + 120
    while True:  # progress is in the catalog: either process answers the poll
        done = other.request("GET", f"/api/admin/rollouts/{job_id}", as_user="ops", admin=True)
        if done.json()["state"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.2)

    assert again.status_code == 409, again.text
    assert "is being run by" in again.json()["message"]
    body = done.json()
    assert (body["state"], body["total"], body["done"], body["upgraded"]) == (
        "finished",
        len(users),
        len(users),
        len(users),
    )
    runs = [e for e in server.events() if e["event"] == "fleet.rollout_started"]
    assert [e["job_id"] for e in runs] == [job_id]
    for user in users[:: len(users) // 5]:
        history = sql(tenant_file(server.settings, user), "SELECT version FROM schema_version")
        assert history == [("1.0.0",), ("1.1.0",), ("1.2.0",)]


def test_a_schema_change_through_one_process_is_seen_by_the_other(workers: Any) -> None:
    server = workers()
    first, second = server.one_each()
    assert first.initialize("gus").json()["created"] is True
    assert second.initialize("gus").json()["changes_applied"] == 0  # now cached in both
    path = tenant_file(server.settings, "gus")
    index = "SELECT name FROM sqlite_schema WHERE name = 'idx_trades_symbol'"

    # The app's own write moves the schema cookie: the other process re-syncs.
    sql(path, "DROP INDEX idx_trades_symbol")
    repaired = second.initialize("gus").json()
    assert repaired["changes"] == ["create index idx_trades_symbol on trades"]
    assert sql(path, index) == [("idx_trades_symbol",)]
    # The first process, whose cached stamp is older, finds it current and changes nothing.
    assert first.initialize("gus").json()["changes_applied"] == 0

    # A sync-schema through one process; a sign-in through the other sees it done.
    sql(path, "DROP INDEX idx_trades_symbol")
    synced = first.request("POST", "/api/user/sync-schema/gus", as_user="gus").json()
    assert synced["changes"] == ["create index idx_trades_symbol on trades"]
    assert second.initialize("gus").json()["changes_applied"] == 0
    assert sql(path, index) == [("idx_trades_symbol",)]
    (cookie,) = sql(path, "PRAGMA schema_version")[0]
    for client in (first, second):
        detail = client.request("GET", "/api/admin/tenants/gus", as_user="ops", admin=True)
        assert detail.json()["tenant"]["schema_cookie"] == cookie
        assert detail.json()["tenant"]["status"] == "current"


def test_an_older_release_then_a_newer_one_over_two_processes(workers: Any, tmp_path: Path) -> None:
    old = workers(TENANTDB_REGISTRY=str(registry_upto(tmp_path, "1.1.0")))
    for client in old.one_each():
        assert client.initialize("hal").status_code == 200
    old.stop()
    new = workers()
    for client in new.one_each():  # the first upgrades; the second finds it done
        body = client.initialize("hal").json()
        assert body["schema_version"] == "1.2.0"
    rows = sql(tenant_file(new.settings, "hal"), "SELECT version FROM schema_version")
    assert rows == [("1.1.0",), ("1.2.0",)]


def test_serve_stopped_by_sigint_exits_0(workers: Any) -> None:
    server = workers()
    server.stop(signal.SIGINT)
    assert server.process is not None
    assert server.process.returncode == 0, server.log_text()
    assert not [e for e in server.events() if e["level"] == "error"], server.log_text()


def test_server_processes_that_cannot_start_stop_serve_with_exit_code_3(tmp_path: Path) -> None:
    """A public key file that is not there passes serve's own checks (the settings only
    name it; each server process reads it when it builds the app), so every worker fails
    to start: serve must stop and exit with uvicorn's STARTUP_FAILURE, not restart them
    for ever nor exit 0 as after a stop signal."""
    missing = tmp_path / "missing.pem"
    server = Workers(
        tmp_path, TENANTDB_JWT_ALGORITHMS="RS256", TENANTDB_JWT_PUBLIC_KEY_FILE=str(missing)
    )
    with server.log_path.open("ab") as log:
        process = subprocess.Popen(
            [*SERVE, "--port", str(server.port)],
            env=server.env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        code = process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"serve did not stop:\n{server.log_text()}") from None

    assert code == 3, server.log_text()
    events = server.events()
    [stopped] = [e for e in events if e["event"] == "service.workers_failed_to_start"]
    assert (stopped["level"], stopped["exit_code"], stopped["workers"]) == ("error", 3, 2)
    causes = {e["pid"]: e for e in events if e["event"] == "service.worker_start_failed"}
    assert 1 <= len(causes) <= 2, server.log_text()  # never a worker started again
    assert set(stopped["failed"]) <= set(causes), server.log_text()
    for cause in causes.values():
        assert cause["level"] == "error"
        assert cause["error"].startswith("FileNotFoundError")
        assert str(missing) in cause["error"]
    assert not any(e["event"] == "service.started" for e in events)
