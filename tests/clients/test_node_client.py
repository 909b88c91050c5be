"""@libsql/client (pinned, under Node) on the database_url and database_token tenantdb hands
out for sqld: what an app does with them, and what the token must not open."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.clients.clientkit import HERE, hosts_for, last_json, run_node
from tests.clients.conftest import Stack

pytestmark = pytest.mark.sqld


def expired_copy(token: str, key_file: Path) -> str:
    """The same claims, expired two minutes ago (past sqld's 60 s leeway), same key."""
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["exp"] = int(time.time()) - 120
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    return jwt.encode(claims, key, algorithm="EdDSA")  # type: ignore[arg-type]


def test_node_client_reads_writes_transactions_replica_and_refusals(
    sqld_stack: Stack, tmp_path: Path, modules: Path
) -> None:
    tenantdb = sqld_stack.tenantdb
    alice = tenantdb.initialize("alice").json()
    bob = tenantdb.initialize("bob").json()
    assert sqld_stack.key is not None
    env = {
        "DATABASE_URL": alice["database_url"],
        "DATABASE_TOKEN": alice["database_token"],
        "OTHER_URL": bob["database_url"],
        "EXPIRED_TOKEN": expired_copy(alice["database_token"], sqld_stack.key),
        "REPLICA_FILE": str(tmp_path / "replica.db"),
    }
    hosts = hosts_for(alice["database_url"], bob["database_url"])
    result = last_json(
        run_node((HERE / "checks.mjs").read_text(), tmp_path, modules, hosts=hosts, env=env)
    )
    assert result["read"] == [["Cash", "none"]]
    assert result["after_transactions"] == [["Cash", "none"], ["Margin", "ib"]]
    assert result["replica_before"] == 2
    assert result["replica_after_sync"] == 3
    assert result["primary_sees_replica_write"] == 1
    # The token opens alice's namespace only, and only until it expires.
    assert result["other_namespace"] != "accepted", result
    assert result["expired"] != "accepted", result
    # Bob's database is untouched by anything alice's client did.
    assert tenantdb.tenant(tenantdb.initialize("bob")).query("SELECT count(*) FROM accounts") == [
        (0,)
    ]
