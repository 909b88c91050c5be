"""README.md's "Use it from your app" snippets, run verbatim with the pinned clients on both
backends: if the docs drift from what works, this fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.clients.clientkit import hosts_for, readme_snippet, run_node, run_python
from tests.clients.conftest import Stack

pytestmark = pytest.mark.sqld


def _initialized_url(stack: Stack, user_id: str) -> str:
    """The database_url tenantdb gives this user (to know which name the client resolves)."""
    response = stack.tenantdb.initialize(user_id)
    assert response.status_code == 200, response.text
    return str(response.json()["database_url"])


def test_python_snippet(stack: Stack, tmp_path: Path) -> None:
    user = "alice"
    url = _initialized_url(stack, user)
    prelude = (
        f"tenantdb_url = {stack.tenantdb.url!r}\n"
        f"user_id = {user!r}\n"
        f"user_jwt = {stack.tenantdb.token(user)!r}\n"
    )
    source = prelude + readme_snippet("python")
    first = run_python(source, tmp_path, hosts=hosts_for(url), env={})
    second = run_python(source, tmp_path, hosts=hosts_for(url), env={})
    # Each run adds one account that the next run (a fresh process) sees: the write reached
    # the user's database, not only a local copy.
    assert (first.strip().splitlines()[-1], second.strip().splitlines()[-1]) == ("1", "2")
    if stack.sqld is not None:
        assert url.startswith("http://")
        assert url.endswith(f".localhost:{stack.sqld.port}")
        assert (tmp_path / f"{user}.db").exists()  # the embedded replica's file


def test_typescript_snippet(stack: Stack, tmp_path: Path, modules: Path) -> None:
    user = "bob"
    url = _initialized_url(stack, user)
    prelude = (
        f"const tenantdbUrl = {json.dumps(stack.tenantdb.url)};\n"
        f"const userId = {json.dumps(user)};\n"
        f"const userJwt = {json.dumps(stack.tenantdb.token(user))};\n"
    )
    source = prelude + readme_snippet("ts")
    first = run_node(source, tmp_path, modules, hosts=hosts_for(url), env={})
    second = run_node(source, tmp_path, modules, hosts=hosts_for(url), env={})
    assert (first.strip().splitlines()[-1], second.strip().splitlines()[-1]) == ("1", "2")
    # The row is in the database tenantdb manages, as tenantdb's own view of it shows.
    rows = stack.tenantdb.tenant(stack.tenantdb.initialize(user)).query("SELECT name FROM accounts")
    assert rows == [("Main",), ("Main",)]
