"""A migration script SQLite refuses: a clear 409 naming the version and the statement,
recorded in the audit trail, and the database exactly as it was."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from schema_registry import EXAMPLE
from tests.api.conftest import registry_upto

FAILING = "UPDATE trades SET no_such_column = 1"


def broken_registry(tmp_path: Path) -> Path:
    """The example registry whose 1.2.0 script ends with a statement SQLite refuses."""
    folder = tmp_path / "broken"
    shutil.copytree(EXAMPLE, folder)
    script = folder / "1.2.0.migrate.sql"
    script.write_text(script.read_text() + f"\n{FAILING};\n")
    return folder


def test_a_failing_migration_statement_is_409_sync_failed_and_audited(
    serve: Any, tmp_path: Path
) -> None:
    old = serve(registry=registry_upto(tmp_path, "1.1.0"))
    tenant = old.tenant(old.initialize("alice"))
    tenant.script("INSERT INTO accounts (name) VALUES ('kept')")
    before = tenant.query("SELECT version FROM schema_version ORDER BY id")

    server = serve(registry=broken_registry(tmp_path))
    response = server.initialize("alice")

    assert response.status_code == 409, response.text
    body = response.json()
    assert body["code"] == "sync_failed"
    assert "1.2.0" in body["message"]
    assert FAILING in body["message"]
    assert "rolled back" in body["message"]
    assert tenant.query("SELECT version FROM schema_version ORDER BY id") == before
    assert tenant.query("SELECT name FROM accounts") == [("kept",)]
    with server.client() as client:
        admin = server.headers("ops", admin=True)
        audit = client.get("/api/admin/audit", params={"user_id": "alice"}, headers=admin)
        row = client.get("/api/admin/tenants/alice", headers=admin)
    newest = audit.json()["entries"][0]
    assert (newest["to_version"], newest["statements"]) == ("1.2.0", [FAILING + ";"])
    assert newest["status"].startswith("failed: ")
    assert row.json()["tenant"]["status"] == "failed"
    assert server.initialize("bob").status_code == 200  # others are served
