"""A real tenantdb (and, on sqld, a real sqld) for the client tests; the pinned Node clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.config import load_settings
from tests.api.conftest import SECRET, Running
from tests.clients.clientkit import node_modules
from tests.sqld import SqldServer, free_port, make_keypair


@pytest.fixture(scope="session")
def modules() -> Path:
    """@libsql/client as pinned by tests/clients/package-lock.json (npm ci, once)."""
    return node_modules()


class Stack:
    """tenantdb on one backend, plus what a test needs to forge tokens for sqld."""

    def __init__(self, tenantdb: Running, sqld: SqldServer | None, key: Path | None) -> None:
        self.tenantdb = tenantdb
        self.sqld = sqld
        self.key = key


@pytest.fixture(params=["local", "sqld"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """tenantdb on the local backend, then on sqld with deploy/'s URL shape."""
    values: dict[str, object] = {"data_dir": str(tmp_path / "data"), "jwt_secret": SECRET}
    sqld: SqldServer | None = None
    key: Path | None = None
    if request.param == "sqld":
        key, public = make_keypair(tmp_path, "sqld")
        sqld = SqldServer(tmp_path / "sqld", [public]).start()
        values |= {
            "backend": "sqld",
            "sqld_url": (sqld.url,),
            "sqld_admin_url": (sqld.admin_url,),
            "sqld_jwt_key_file": str(key),
            # deploy/compose.yaml's default, on this sqld's port.
            "public_url_template": f"http://{{namespace}}.localhost:{sqld.port}",
        }
    running = Running(load_settings({}, **values), free_port())
    running.start()
    try:
        yield Stack(running, sqld, key)
    finally:
        running.stop()
        if sqld is not None:
            sqld.stop()


@pytest.fixture
def sqld_stack(tmp_path: Path) -> Iterator[Stack]:
    """tenantdb on sqld only."""
    key, public = make_keypair(tmp_path, "sqld")
    sqld = SqldServer(tmp_path / "sqld", [public]).start()
    settings = load_settings(
        {},
        data_dir=str(tmp_path / "data"),
        jwt_secret=SECRET,
        backend="sqld",
        sqld_url=(sqld.url,),
        sqld_admin_url=(sqld.admin_url,),
        sqld_jwt_key_file=str(key),
        public_url_template=f"http://{{namespace}}.localhost:{sqld.port}",
    )
    running = Running(settings, free_port())
    running.start()
    try:
        yield Stack(running, sqld, key)
    finally:
        running.stop()
        sqld.stop()
