"""`tenantdb serve` that cannot start says what is wrong in one line, with a documented
exit code, instead of a traceback; a sqld still starting beside it is waited for."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.api.disk import Disk, disk
from tests.conftest import ROOT
from tests.sqld import SqldServer, free_port, make_keypair

__all__ = ["disk"]  # the fixture, used by name
SECRET = "startup-secret-" + "s" * 40


def serve_env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTDB_")}
    env.update(
        TENANTDB_DATA_DIR=str(tmp_path / "data"),
        TENANTDB_JWT_SECRET=SECRET,
        TENANTDB_LOG_FORMAT="json",
    )
    env.update({f"TENANTDB_{k.upper()}": v for k, v in values.items()})
    return env


def serve(env: dict[str, str], port: int, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def sqld_env(
    tmp_path: Path, url: str, admin_url: str, private: Path, **values: str
) -> dict[str, str]:
    return serve_env(
        tmp_path,
        backend="sqld",
        sqld_url=url,
        sqld_admin_url=admin_url,
        sqld_jwt_key_file=str(private),
        public_url_template="http://{namespace}.localhost:8080",
        **values,
    )


def last_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if not line.startswith("{")]  # json logs
    assert len(lines) == 1, stderr
    return lines[0]


def test_sqld_not_answering_is_one_line_and_exit_1_after_the_startup_timeout(
    tmp_path: Path,
) -> None:
    private, _ = make_keypair(tmp_path, "sqld")
    closed = f"http://127.0.0.1:{free_port()}"
    env = sqld_env(tmp_path, closed, closed, private, startup_timeout="1.5")

    started = time.monotonic()
    done = serve(env, free_port())
    took = time.monotonic() - started

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    line = last_line(done.stderr)
    assert line.startswith(f"tenantdb: cannot start: sqld's admin API at {closed} did not answer")
    assert "TENANTDB_SQLD_URL" in line
    assert 1.0 < took < 20
    assert "startup.waiting_for_sqld" in done.stderr  # it retried before giving up


def test_a_sqld_that_starts_late_is_waited_for(tmp_path: Path) -> None:
    private, public = make_keypair(tmp_path, "sqld")
    sqld = SqldServer(tmp_path / "sqld", [public])
    env = sqld_env(tmp_path, sqld.url, sqld.admin_url, private, startup_timeout="30")
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2)
        assert child.poll() is None  # still waiting, not dead
        threading.Thread(target=sqld.start).start()
        answered = _health(port, deadline=time.monotonic() + 40)
    finally:
        child.terminate()
        _, stderr = child.communicate(timeout=30)
        sqld.stop()
    assert answered, stderr
    assert "startup.waiting_for_sqld" in stderr


def _health(port: int, *, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return True
        except httpx.TransportError:
            time.sleep(0.1)
    return False


def test_a_read_only_data_directory_is_one_line_and_exit_1(tmp_path: Path, disk: Disk) -> None:
    disk.read_only()
    done = serve(serve_env(tmp_path, data_dir=str(disk.path)), free_port())

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    line = last_line(done.stderr)
    assert line.startswith("tenantdb: cannot start: the catalog")
    assert "TENANTDB_DATA_DIR" in line
