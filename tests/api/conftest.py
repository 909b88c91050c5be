"""A real tenantdb server on a free loopback port, driven over HTTP with httpx."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from schema_registry.registry import load_registry
from service.app import create_app
from service.auth import mint_token
from service.config import Settings, load_settings
from tests.conftest import EXAMPLE_REGISTRY

SECRET = "test-secret-" + "x" * 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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

    def db_path(self, response: httpx.Response) -> Path:
        url = response.json()["database_url"]
        assert url.startswith("file:")
        return Path(url.removeprefix("file:"))


def open_db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """Start servers on demand: serve(registry=..., sync_mode=...) -> Running."""
    started: list[Running] = []
    data_dir = tmp_path / "data"

    def start(**overrides: Any) -> Running:
        for server in started:
            server.stop()
        values: dict[str, Any] = {"data_dir": str(data_dir), "jwt_secret": SECRET}
        values.update({k: str(v) if isinstance(v, Path) else v for k, v in overrides.items()})
        running = Running(load_settings({}, **values), free_port())
        running.start()
        started.append(running)
        return running

    yield start
    for server in started:
        server.stop()
