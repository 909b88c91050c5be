"""The CLI as a person at a terminal meets it: version, quiet logs, a missing catalog,
which secret signed a token, `serve`'s banner and port, Ctrl-C and the progress bar."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console
from structlog.testing import capture_logs

from schema_registry import load_registry
from service.auth import Authenticator
from service.cli import main
from service.commands.fleet import ProgressBar, _summary_text
from service.config import load_settings
from service.errors import Unauthorized
from service.rollouts.model import Progress, RolloutSummary, TenantIssue
from tests.api.conftest import registry_upto
from tests.cli.clikit import notes_registry
from tests.cli.conftest import Operator
from tests.conftest import ROOT
from tests.fleetkit import build_local_fleet
from tests.sqld import free_port

JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")


@contextlib.contextmanager
def sigint_taken() -> Iterator[None]:
    """Start children that take Ctrl-C even when this process ignores it: a shell runs its
    background jobs with SIGINT ignored (POSIX), and an ignored signal stays ignored across
    exec, while a caught one is reset to its default (Python then raises
    KeyboardInterrupt)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def child_env(operator: Operator, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTDB_")}
    return {
        **env,
        **operator.env(),
        "TENANTDB_SQLD_BIN": os.environ.get("TENANTDB_SQLD_BIN", ""),
        **extra,
    }


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])

    assert stopped.value.code == 0
    assert capsys.readouterr().out == "tenantdb 0.1.0\n"


@pytest.mark.parametrize("backend_kind", ["local"])
def test_logs_stay_out_of_a_commands_output_unless_verbose(
    operator: Operator, tmp_path: Path
) -> None:
    operator.values["registry"] = str(notes_registry(tmp_path / "registry"))
    operator.provision("alice")
    env = child_env(operator, TENANTDB_LOG_LEVEL="info", TENANTDB_LOG_FORMAT="json")
    command = [sys.executable, "-m", "service.cli"]

    quiet = subprocess.run(
        [*command, "db", "inspect", "alice"], env=env, capture_output=True, text=True, check=False
    )
    loud = subprocess.run(
        [*command, "-v", "db", "inspect", "alice"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert (quiet.returncode, quiet.stderr) == (0, "")
    assert quiet.stdout.startswith("tenant alice\n")
    assert loud.returncode == 0
    assert loud.stdout == quiet.stdout
    assert [json.loads(line)["event"] for line in loud.stderr.splitlines()] == ["tenant.exported"]


@pytest.mark.parametrize(
    "command",
    [
        ("fleet", "status"),
        ("fleet", "sync"),
        ("health-check", "--strict"),
        ("db", "inspect", "alice"),
        ("dump", "--all", "out"),
    ],
)
def test_commands_refuse_a_missing_catalog_and_create_none(
    operator: Operator, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """Run from the wrong directory: no "0 tenant(s)", no "ok", no new catalog."""
    code, out, err = operator.cli(*command)

    settings = operator.settings
    if settings.backend == "sqld":
        where = f"namespace tenantdb-catalog on {settings.sqld_url[0]}"
    else:
        where = str(tmp_path / "data" / "catalog.db")
    assert (code, out) == (2, "")
    assert err.startswith(f"tenantdb: no catalog at {where} (TENANTDB_DATA_DIR is ")
    assert "only `tenantdb serve` creates a catalog" in err
    assert not (tmp_path / "data" / "catalog.db").exists()


def test_token_says_which_secret_signed_it(operator: Operator, tmp_path: Path) -> None:
    del operator.values["jwt_secret"]
    secret = tmp_path / "data" / ".dev-jwt-secret"

    first = operator.cli("token", "alice")
    second = operator.cli("token", "alice")
    operator.values["jwt_secret"] = "operator-secret-" + "o" * 32
    configured = operator.cli("token", "alice")

    assert first[0] == second[0] == configured[0] == 0
    assert all(JWT.fullmatch(out.strip()) for _, out, _ in (first, second, configured))
    assert first[2] == (
        f"tenantdb: created a new development secret {secret} and signed with it: only a "
        "server using this data directory (TENANTDB_DATA_DIR) accepts this token\n"
    )
    assert second[2] == f"tenantdb: signed with the development secret {secret}\n"
    assert configured[2] == "tenantdb: signed with TENANTDB_JWT_SECRET\n"


@pytest.mark.parametrize("backend_kind", ["local"])
@pytest.mark.parametrize(("environment", "logged"), [("development", True), ("production", False)])
def test_a_token_from_another_dev_secret_is_logged_in_development(
    operator: Operator, tmp_path: Path, environment: str, logged: bool
) -> None:
    del operator.values["jwt_secret"]
    _, token, _ = operator.cli("token", "alice")  # signed by tmp/data's dev secret
    server = load_settings(
        {},
        data_dir=str(tmp_path / "elsewhere"),
        registry=str(notes_registry(tmp_path / "registry")),
        jwt_secret="x" * 40,
        environment=environment,
    )

    with capture_logs() as logs, pytest.raises(Unauthorized) as refused:
        asyncio.run(Authenticator(server).authenticate(f"Bearer {token.strip()}"))

    assert refused.value.message == "token signature or format is invalid"
    events = [e["event"] for e in logs if e["log_level"] == "warning"]
    assert events == (["auth.token_not_signed_by_this_server"] if logged else [])


@pytest.mark.parametrize("backend_kind", ["local"])
def test_serve_on_a_port_in_use_says_so_in_one_line(operator: Operator, tmp_path: Path) -> None:
    del operator.values["jwt_secret"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        code, out, err = operator.cli("serve", "--port", str(port))

    assert (code, out) == (2, "")
    assert err == (
        f"tenantdb: port {port} on 127.0.0.1 is already in use: stop that process or pass --port\n"
    )
    assert not (tmp_path / "data" / ".dev-jwt-secret").exists()


def start_serving(env: dict[str, str], port: int) -> tuple[subprocess.Popen[str], list[str]]:
    """`tenantdb serve` in a child until it answers; its banner (stdout up to the docs)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout is not None
    banner: list[str] = []
    for line in child.stdout:
        banner.append(line)
        if "API docs" in line:
            break
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return child, banner
        except httpx.TransportError:
            time.sleep(0.05)
    child.kill()
    raise RuntimeError("".join(banner))


def stop(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGINT)
    child.wait(timeout=30)
    if child.stdout is not None:
        child.stdout.close()


@pytest.mark.parametrize("backend_kind", ["local"])
def test_serve_prints_a_token_only_with_a_dev_secret_it_created(
    operator: Operator, tmp_path: Path
) -> None:
    del operator.values["jwt_secret"]
    env = child_env(operator, TENANTDB_LOG_LEVEL="warning")

    port = free_port()
    child, banner = start_serving(env, port)
    try:
        tokens = JWT.findall("".join(banner))
        assert len(tokens) == 1  # the curl example's, and it works
        answer = httpx.post(
            f"http://127.0.0.1:{port}/api/user/initialize",
            json={"user_id": "demo-user"},
            headers={"Authorization": f"Bearer {tokens[0]}"},
        )
        assert answer.status_code == 200
    finally:
        stop(child)

    for extra in ({}, {"TENANTDB_JWT_SECRET": "operator-secret-" + "o" * 32}):
        port = free_port()
        child, banner = start_serving({**env, **extra}, port)
        stop(child)
        assert banner[0] == f"tenantdb is starting on http://127.0.0.1:{port}\n"
        assert JWT.findall("".join(banner)) == []


@pytest.mark.parametrize("backend_kind", ["local"])
def test_ctrl_c_during_fleet_sync_names_the_job_to_resume(
    operator: Operator, tmp_path: Path
) -> None:
    operator.values["registry"] = str(registry_upto(tmp_path, "1.2.0"))
    registry = load_registry(operator.settings.registry)
    users = [f"user-{i:04d}" for i in range(1500)]
    build_local_fleet(operator.settings, registry, "1.0.0", users, tmp_path)
    with sigint_taken():
        child = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "fleet", "sync", "--concurrency", "1"],
            cwd=ROOT,
            env=child_env(operator),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    assert child.stdout is not None
    assert child.stderr is not None
    first = json.loads(child.stdout.readline())
    child.send_signal(signal.SIGINT)
    rest, err = child.communicate(timeout=60)

    assert (first["event"], first["done"] < len(users)) == ("progress", True), first
    assert child.returncode == 130, (rest[-1500:], err[-3000:])  # what it did instead
    assert (
        "tenantdb: interrupted; the job's progress is saved: "
        f"`tenantdb fleet sync --resume {first['job_id']}` continues it"
    ) in err.splitlines()
    assert "Traceback" not in err
    assert "summary" not in rest
    code, out, _ = operator.cli("fleet", "sync", "--resume", first["job_id"])
    last = json.loads(out.splitlines()[-1])
    assert (code, last["state"], last["done"]) == (0, "finished", len(users))


def progress(**counts: Any) -> Progress:
    values: dict[str, Any] = dict(
        job_id="3f9c2a7d41b0e6c8",
        state="running",
        target="1.2.0",
        dry_run=False,
        total=123_456,
        done=61_234,
        upgraded=61_000,
        current=200,
        would_apply=0,
        failed=12,
        drifted=22,
        rate=1234.5,
        elapsed_s=50.0,
    )
    return Progress(**(values | counts))


@pytest.mark.parametrize("width", [80, 100, 140])
def test_the_progress_bar_is_one_line_that_fits_the_terminal(width: int) -> None:
    screen = io.StringIO()
    bar = ProgressBar(Console(file=screen, width=width, force_terminal=True, color_system=None))
    bar(progress())
    bar(progress(done=70_000, upgraded=69_700))

    shown = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    shown.print(bar.progress.make_tasks_table(bar.progress.tasks))
    bar.stop()

    [line] = shown.export_text().splitlines()
    assert len(line) <= width
    assert "70,000/123,456" in line
    assert "57%" in line
    assert "1,234/s" in line or "1,2…" in line  # cropped, never wrapped, when narrow
    if width >= 100:
        assert "upgraded 69,700 failed 12 drifted 22" in line
        assert "left 0:43" in line  # 53,456 left at 1,234.5/s
    assert screen.getvalue().startswith("rollout 3f9c2a7d41b0e6c8 to 1.2.0: 123,456 tenant(s)\n")


def summary(failed: int, drifted: int) -> RolloutSummary:
    def issues(kind: str, n: int) -> tuple[TenantIssue, ...]:
        return tuple(
            TenantIssue(user_id=f"{kind}-{i}", kind=kind, from_version="1.0.0", reason="why")  # type: ignore[arg-type]
            for i in range(n)
        )

    return RolloutSummary(
        job_id="3f9c2a7d41b0e6c8",
        state="finished",
        target="1.2.0",
        dry_run=False,
        concurrency=8,
        started_at="2026-01-01T00:00:00Z",
        updated_at="2026-01-01T00:00:10Z",
        finished_at="2026-01-01T00:00:10Z",
        total=500,
        done=500,
        upgraded=500 - failed - drifted,
        current=0,
        would_apply=0,
        failed=issues("failed", failed)[:2],
        drifted=issues("drifted", drifted)[:2],
        seconds=10.0,
        rate=50.0,
    )


def test_the_summary_text_says_how_many_more_than_listed() -> None:
    text = _summary_text(summary(5, 2), 5, 2)

    assert text.splitlines()[3:] == [
        "  failed: 5",
        "  drifted: 2",
        "failed:",
        "  failed-0 (at 1.0.0): why",
        "  failed-1 (at 1.0.0): why",
        "  ... and 3 more (--limit)",
        "drifted:",
        "  drifted-0 (at 1.0.0): why",
        "  drifted-1 (at 1.0.0): why",
    ]
