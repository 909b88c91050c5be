"""`tenantdb fleet reconcile` on both backends: lost rows found and given back, rows whose
database is gone listed and kept, nothing deleted either way."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from service.backends.sqld import SqldBackend, namespace_for
from service.tenants import TenantService
from tests.cli.clikit import local_file, record_of, run_sql
from tests.cli.conftest import Operator


def reconcile(operator: Operator, tmp_path: Path, *args: str) -> tuple[int, Any, str]:
    """Run it with --json (and sqld's --db-path); (exit code, the report, stderr)."""
    where = ["--sqld-db-path", str(tmp_path / "sqld" / "data")]
    extra = where if operator.settings.backend == "sqld" else []
    code, out, err = operator.cli("fleet", "reconcile", "--json", *extra, *args)
    return code, json.loads(out) if out else None, err


def drop_row(operator: Operator, user: str) -> None:
    """The catalog loses a tenant's row (a restored old catalog, a bad manual edit)."""

    async def work(tenants: TenantService) -> None:
        await tenants.catalog.delete(user)

    operator.with_tenants(work)


def drop_database(operator: Operator, user: str) -> None:
    """The tenant's database disappears behind the catalog's back."""

    async def work(tenants: TenantService) -> None:
        record = await tenants.catalog.get(user)
        assert record is not None
        assert await tenants.backend.delete(record.location)

    operator.with_tenants(work)


def test_a_database_whose_row_was_lost_is_listed_then_registered(
    operator: Operator, tmp_path: Path
) -> None:
    operator.provision("alice", "bob")
    run_sql(operator, "alice", "INSERT INTO accounts (name) VALUES ('kept')")
    before = record_of(operator, "alice")
    drop_row(operator, "alice")

    code, report, _ = reconcile(operator, tmp_path)
    assert code == 1
    assert report["databases"] == 2
    assert report["rows"] == 1
    assert report["unregistered"] == [
        {
            "location": before.location,
            "user_id": "alice",
            "schema_version": before.schema_version,
            "verdict": "registrable",
            "reason": None,
        }
    ]
    assert report["rows_without_database"] == []
    assert record_of(operator, "alice") is None  # a dry look changes nothing

    code, report, _ = reconcile(operator, tmp_path, "--apply")
    assert code == 0
    assert report["unregistered"][0]["verdict"] == "registered"
    after = record_of(operator, "alice")
    assert after.location == before.location
    assert after.stamp == before.stamp
    assert after.status == "synced"
    assert run_sql(operator, "alice", "SELECT name FROM accounts") == [[("kept",)]]

    async def work(tenants: TenantService) -> Any:
        entries = await tenants.catalog.audit(user_id="alice", limit=1)
        outcome = await tenants.initialize("alice", None)
        return entries[0], outcome

    entry, outcome = operator.with_tenants(work)
    assert (entry.trigger, entry.status) == ("reconcile", "registered")
    assert not outcome.created  # the next sign-in finds it, current
    assert outcome.result is None

    code, report, _ = reconcile(operator, tmp_path)
    assert code == 0
    assert report["unregistered"] == []
    assert report["settled"] is True


def test_a_row_whose_database_is_gone_is_listed_and_kept(
    operator: Operator, tmp_path: Path
) -> None:
    operator.provision("alice", "carol")
    carol = record_of(operator, "carol")
    drop_database(operator, "carol")

    code, report, _ = reconcile(operator, tmp_path, "--apply")
    assert code == 1
    assert report["rows_without_database"] == [
        {"user_id": "carol", "location": carol.location, "schema_version": carol.schema_version}
    ]
    assert report["unregistered"] == []
    assert record_of(operator, "carol") == carol  # kept, untouched

    code, out, _ = operator.cli(
        "fleet",
        "reconcile",
        *(
            ["--sqld-db-path", str(tmp_path / "sqld" / "data")]
            if operator.settings.backend == "sqld"
            else []
        ),
    )
    assert code == 1
    assert "carol" in out
    assert "(kept)" in out


def test_databases_without_history_or_a_provable_owner_are_not_registered(
    operator: Operator, tmp_path: Path
) -> None:
    operator.provision("alice", "Alice.Smith")
    drop_row(operator, "Alice.Smith")

    async def bare(tenants: TenantService) -> str:
        """A database tenantdb never synced, where dave's would be."""
        location = tenants.backend.location("dave")
        if isinstance(tenants.backend, SqldBackend):
            await tenants.backend.create_namespace(0, namespace_for("dave"))
        else:
            path = local_file(operator, location)
            path.parent.mkdir(parents=True, exist_ok=True)
            sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
        return location

    dave = operator.with_tenants(bare)
    code, report, _ = reconcile(operator, tmp_path, "--apply")
    assert code == 1
    verdicts = {item["location"]: item["verdict"] for item in report["unregistered"]}
    assert verdicts[dave] == "no_history"
    # A namespace's slug drops case and punctuation: "alice-smith" is not whose it is.
    smith = "registered" if operator.settings.backend == "local" else "unknown_owner"
    assert sorted(verdicts.values()) == sorted(["no_history", smith])
    assert record_of(operator, "dave") is None
    assert (record_of(operator, "Alice.Smith") is None) == (smith == "unknown_owner")


def test_sqld_without_a_way_to_list_namespaces_says_so(operator: Operator) -> None:
    if operator.settings.backend != "sqld":
        code, _, err = operator.cli("fleet", "reconcile", "--sqld-db-path", "/nowhere")
        assert code == 2
        assert "--sqld-db-path is for the sqld backend" in err
        return
    operator.provision("alice")
    code, out, err = operator.cli("fleet", "reconcile")
    assert code == 1
    assert out == ""
    assert "cannot list its namespaces over the admin API" in err
