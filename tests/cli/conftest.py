"""Operator-command fixtures: settings for either backend, tenants made through the
service itself, and the `tenantdb` CLI run in-process with its output captured."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

import service.cli
from service.cli import main
from service.config import Settings, load_settings
from service.logs import configure_logging
from service.tenants import TenantService
from service.wiring import open_runtime
from tests.sqld import SqldServer, make_keypair

SECRET = "cli-test-secret-" + "z" * 40


class Operator:
    """One deployment under test: its settings, and ways to act on it."""

    def __init__(
        self,
        values: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        self.values = values
        self._monkeypatch = monkeypatch
        self._capsys = capsys

    @property
    def settings(self) -> Settings:
        return load_settings({}, **self.values)

    def env(self) -> dict[str, str]:
        """The settings as TENANTDB_* variables (for a subprocess)."""
        return {
            "TENANTDB_" + k.upper(): ",".join(v) if isinstance(v, tuple) else str(v)
            for k, v in self.values.items()
        }

    def with_tenants(self, work: Any, **overrides: Any) -> Any:
        """Run `await work(tenants)` against this deployment (overrides: other settings)."""

        async def go() -> Any:
            async with open_runtime(load_settings({}, **{**self.values, **overrides})) as t:
                return await work(t)

        return asyncio.run(go())

    def provision(self, *users: str, registry: Path | None = None) -> None:
        """Create tenants the way sign-in does (optionally at an older registry)."""
        overrides = {"registry": str(registry)} if registry else {}

        async def work(tenants: TenantService) -> None:
            for user in users:
                await tenants.initialize(user, None)

        self.with_tenants(work, **overrides)

    def cli(self, *args: str) -> tuple[int, str, str]:
        """Run `tenantdb ARGS` in-process; returns (exit code, stdout, stderr)."""
        for key, value in self.env().items():
            self._monkeypatch.setenv(key, value)
        self._capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        out, err = self._capsys.readouterr()
        return code, out, err


# `tenantdb ARGS` run in this process: (exit code, stdout, stderr).
Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    """`tenantdb ARGS` in-process: (exit code, stdout, stderr)."""
    monkeypatch.setenv("TENANTDB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TENANTDB_LOG_LEVEL", "warning")

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(params=["local", pytest.param("sqld", marks=pytest.mark.sqld)])
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def operator(
    tmp_path: Path,
    backend_kind: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Operator]:
    """A deployment on the backend under test (a real sqld with JWT auth for sqld)."""
    values: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "jwt_secret": SECRET,
        "log_level": "warning",
        "log_format": "json",
    }
    server: SqldServer | None = None
    if backend_kind == "sqld":
        private, public = make_keypair(tmp_path, "sqld")
        server = SqldServer(tmp_path / "sqld", [public]).start()
        values.update(
            backend="sqld",
            sqld_url=(server.url,),
            sqld_admin_url=(server.admin_url,),
            sqld_jwt_key_file=str(private),
            public_url_template=f"ws://{{namespace}}.localhost:{server.port}",
        )
    try:
        yield Operator(values, monkeypatch, capsys)
    finally:
        if server is not None:
            server.stop()


@pytest.fixture(autouse=True)
def uncached_loggers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep in-process CLI runs from leaking their logging setup into later tests.

    main() configures structlog to cache each logger on first use with the level of the
    moment (`warning` here), so a logger first used by a CLI test would drop `info` events
    for the rest of the session (tests/api/test_logging.py), and would write to this test's
    captured stderr once it is closed.
    """
    configure = configure_logging  # the function service.cli calls, patched there

    def uncached(fmt: str = "auto", level: str = "info") -> None:
        configure(fmt, level)
        structlog.configure(cache_logger_on_first_use=False)

    monkeypatch.setattr(service.cli, "configure_logging", uncached)
    yield
    structlog.reset_defaults()
