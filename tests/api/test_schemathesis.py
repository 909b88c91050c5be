"""Schemathesis against a real server over HTTP: every response must match the OpenAPI
document the server publishes (status, headers, body, content type), no request may get
a 5xx, bad input must be refused and good input accepted.

Bounded by examples per operation (and a fixed seed, so a failure reproduces): the two
runs together take well under a minute.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
EXAMPLES = "25"  # per operation and phase
SEED = "20261127"


def run_schemathesis(server: Any, token: str, cwd: Path, *extra: str) -> None:
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{server.url}/schema/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        "--max-examples",
        EXAMPLES,
        "--seed",
        SEED,
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--output-truncate",
        "false",
        *extra,
    ]
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"schemathesis found problems:\n{done.stdout}\n{done.stderr}"
    assert "No issues found" in done.stdout or " passed" in done.stdout, done.stdout


@pytest.fixture
def server(serve: Any) -> Any:
    server = serve()
    # A user with a database, so the user routes reach their real work, not only 404s.
    assert server.initialize("alice", "alice@example.com").status_code == 200
    return server


def test_user_token_routes_match_the_document(server: Any, tmp_path: Path) -> None:
    """A user's token: the sign-in routes and the public ones (admin routes answer 403,
    which the admin run covers)."""
    run_schemathesis(
        server,
        server.token("alice"),
        tmp_path,
        "--exclude-path-regex",
        "^/api/(admin/|health/detailed)",
    )


def test_admin_token_routes_match_the_document(server: Any, tmp_path: Path) -> None:
    """An admin's token: every route, admin ones included.

    Without positive_data_acceptance: a rollout's `target` must be one of the registry's
    versions, a set the static document cannot enumerate (it says so in words), and
    another is refused with 400 by design (tests/api/test_admin.py). Schemathesis's
    per-operation switch does not reach its stateful phase, so the check is off for this
    run; the user run keeps it for the sign-in routes.
    """
    run_schemathesis(
        server,
        server.token("ops", admin=True),
        tmp_path,
        "--exclude-checks",
        "positive_data_acceptance",
    )
