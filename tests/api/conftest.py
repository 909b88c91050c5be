"""A real tenantdb server on a free loopback port, driven over HTTP with httpx."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import libsql_client
import pytest
import uvicorn

from schema_registry import load_registry, split_statements
from service.app import create_app
from service.auth import mint_token
from service.config import Settings, load_settings
from tests.conftest import EXAMPLE_REGISTRY
from tests.sqld import SqldServer, free_port, make_keypair

SECRET = "test-secret-" + "x" * 40


def settings_for(tmp: Path, servers: list[SqldServer], private: Path) -> dict[str, Any]:
    """Settings of a tenantdb on these sqld servers (one shard each), signing with `private`."""
    return {
        "data_dir": str(tmp / "data"),
        "jwt_secret": SECRET,
        "backend": "sqld",
        "sqld_url": tuple(s.url for s in servers),
        "sqld_admin_url": tuple(s.admin_url for s in servers),
        "sqld_jwt_key_file": str(private),
        "public_url_template": "ws://{namespace}.localhost:" + str(servers[0].port),
    }


def registry_upto(tmp: Path, version: str) -> Path:
    """A copy of the example registry that stops at `version` (an older app release)."""
    target = tmp / f"registry-{version}"
    shutil.copytree(EXAMPLE_REGISTRY, target)
    text = (target / "registry.toml").read_text()
    blocks = text.split("[[versions]]")
    kept = [b for b in blocks[1:] if _version_of(b) <= tuple(int(x) for x in version.split("."))]
    (target / "registry.toml").write_text(blocks[0] + "".join("[[versions]]" + b for b in kept))
    assert load_registry(target).current.version == version
    return target


def _version_of(block: str) -> tuple[int, ...]:
    line = next(line for line in block.splitlines() if line.strip().startswith("version"))
    return tuple(int(x) for x in line.split("=")[1].strip().strip('"').split("."))


class Running:
    """A started server: its URL, settings, and helpers to mint tokens and open files."""

    def __init__(self, settings: Settings, port: int) -> None:
        self.settings = settings
        self.url = f"http://127.0.0.1:{port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = port

    def start(self) -> None:
        app = create_app(self.settings)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_config=None, access_log=False, lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("tenantdb test server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)

    def token(self, user_id: str, *, admin: bool = False, ttl: int = 3600) -> str:
        return mint_token(self.settings, user_id, admin=admin, ttl=ttl)

    def headers(self, user_id: str, *, admin: bool = False) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id, admin=admin)}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def initialize(self, user_id: str, email: str | None = None, **kwargs: Any) -> httpx.Response:
        body: dict[str, Any] = {"user_id": user_id}
        if email is not None:
            body["email"] = email
        with self.client() as client:
            return client.post(
                "/api/user/initialize", json=body, headers=self.headers(user_id), **kwargs
            )

    def tenant(self, response: httpx.Response) -> TenantSql:
        assert response.status_code == 200, response.text
        return TenantSql(response.json())


def open_db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


class TenantSql:
    """SQL on a tenant database as the app would run it: its file, or libsql-client over ws."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.url: str = body["database_url"]
        self.token: str | None = body["database_token"]

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return self._run([sql])[0]

    def script(self, sql: str) -> None:
        self._run(split_statements(sql))

    def _run(self, statements: list[str]) -> list[list[tuple[Any, ...]]]:
        if self.url.startswith("file:"):
            conn = open_db(Path(self.url.removeprefix("file:")))
            try:
                return [conn.execute(s).fetchall() for s in statements]
            finally:
                conn.close()
        return asyncio.run(self._remote(statements))

    async def _remote(self, statements: list[str]) -> list[list[tuple[Any, ...]]]:
        async with libsql_client.create_client(self.url, auth_token=self.token) as client:
            results = await client.batch(statements)
        return [[tuple(row) for row in rs.rows] for rs in results]


@pytest.fixture
def backend_kind() -> str:
    """Which backend `serve` starts; test modules that run on both override it."""
    return "local"


@pytest.fixture
def serve(tmp_path: Path, backend_kind: str) -> Iterator[Any]:
    """Start servers on demand: serve(registry=..., sync_mode=...) -> Running.

    On the sqld backend one real sqld (JWT auth on) serves every restart within a test.
    """
    started: list[Running] = []
    data_dir = tmp_path / "data"
    sqld: SqldServer | None = None
    backend: dict[str, Any] = {}
    if backend_kind == "sqld":
        private, public = make_keypair(tmp_path, "sqld")
        sqld = SqldServer(tmp_path / "sqld", [public]).start()
        backend = {
            "backend": "sqld",
            "sqld_url": (sqld.url,),
            "sqld_admin_url": (sqld.admin_url,),
            "sqld_jwt_key_file": str(private),
            "public_url_template": f"ws://{{namespace}}.localhost:{sqld.port}",
        }

    def start(**overrides: Any) -> Running:
        for server in started:
            server.stop()
        # Rate limits off: tests fire bursts and bad tokens from one address by design;
        # tests/api/test_rate_limits.py turns them on.
        values: dict[str, Any] = {
            "data_dir": str(data_dir),
            "jwt_secret": SECRET,
            "rate_limit": "off",
            **backend,
        }
        values.update({k: str(v) if isinstance(v, Path) else v for k, v in overrides.items()})
        running = Running(load_settings({}, **values), free_port())
        running.start()
        started.append(running)
        return running

    yield start
    for server in started:
        server.stop()
    if sqld is not None:
        sqld.stop()
