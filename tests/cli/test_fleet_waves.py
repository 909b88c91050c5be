"""A non-additive change from `registry new --schema` to a finished rollout, on both
backends: rehearse on copies, waves that halt, a resume after the fix, and a fleet restore
from the backups the job took."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from schema_registry import Registry, load_registry
from service.status import status_of
from service.tenants import SyncRequest, TenantService
from tests.api.conftest import registry_upto
from tests.cli.clikit import local_file, record_of
from tests.cli.conftest import Operator
from tests.fleetkit import build_template, copy_fleet, locations, register_fleet

NOTES_100 = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);\n"
# 1.1.0: a note's body is unique. SQLite cannot add a UNIQUE constraint to a table in
# place: `registry new --schema` writes a rebuild whose copy of the rows fails on duplicates.
NOTES_110 = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL UNIQUE);\n"
ROWS = "INSERT INTO notes (body) VALUES ('groceries'), ('call mum');"
USERS = [f"user{n:03}" for n in range(200)]
BAD = ["user017", "user101", "user188"]  # hold a duplicate body
INTERNAL = [u for u in USERS if u not in BAD][:10]  # --first: the whole of wave 1 (5 %)


def registry_100(folder: Path) -> Path:
    folder.mkdir()
    (folder / "1.0.0.sql").write_text(NOTES_100)
    (folder / "registry.toml").write_text(
        '[[versions]]\nversion = "1.0.0"\ndescription = "Notes"\n'
        'created_at = "2026-01-01T00:00:00Z"\nschema = "1.0.0.sql"\n'
    )
    return folder


def sql_each(operator: Operator, statements: dict[str, list[str]]) -> dict[str, list[Any]]:
    """Run statements on many tenants' databases the way an app would, in one runtime."""

    async def work(tenants: TenantService) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for user, sqls in statements.items():
            record = await tenants.catalog.get(user)
            assert record is not None
            if tenants.backend.kind == "local":
                conn = sqlite3.connect(local_file(operator, record.location), isolation_level=None)
                try:
                    out[user] = [conn.execute(s).fetchall() for s in sqls]
                finally:
                    conn.close()
            else:
                db = tenants.backend.database(record.location)  # type: ignore[attr-defined]
                rows = await db.fetch_many([(s, ()) for s in sqls])
                out[user] = [[tuple(r) for r in result] for result in rows]
        return out

    result: dict[str, list[Any]] = operator.with_tenants(work)
    return result


def build_fleet(operator: Operator, tmp_path: Path) -> None:
    """200 tenants at 1.0.0 with two notes each; BAD ones with a duplicate."""
    if operator.settings.backend == "local":  # copies of one file, catalog rows written
        template = tmp_path / "template.db"
        build_template(template, operator_registry(operator), "1.0.0", rows=ROWS)
        places = locations(operator.settings.data_path, USERS)
        copy_fleet(template, places)
        register_fleet(operator.settings, places, template)
    else:
        operator.provision(*USERS)
        sql_each(operator, {u: [ROWS] for u in USERS})
    sql_each(operator, {u: ["INSERT INTO notes (body) VALUES ('groceries')"] for u in BAD})


def operator_registry(operator: Operator) -> Registry:
    return load_registry(operator.values["registry"])


def live_state(operator: Operator) -> dict[str, tuple[Any, ...]]:
    """Each tenant's schema cookie, history and rows (and, locally, its file's digest)."""
    sqls = [
        "PRAGMA schema_version",
        "SELECT version FROM schema_version ORDER BY id",
        "SELECT id, body FROM notes ORDER BY id",
    ]
    state = {
        u: tuple(map(tuple, r)) for u, r in sql_each(operator, {u: sqls for u in USERS}).items()
    }
    if operator.settings.backend != "local":
        return state

    async def files(tenants: TenantService) -> dict[str, str]:
        out = {}
        for user in USERS:
            record = await tenants.catalog.get(user)
            assert record is not None
            path = local_file(operator, record.location)
            out[user] = hashlib.sha256(path.read_bytes()).hexdigest()
        return out

    digests = operator.with_tenants(files)
    return {u: (*state[u], digests[u]) for u in USERS}


def versions(operator: Operator) -> dict[str, str]:
    """Each tenant's newest history row's version."""
    sql = "SELECT version FROM schema_version ORDER BY id DESC LIMIT 1"
    return {u: str(r[0][0][0]) for u, r in sql_each(operator, {u: [sql] for u in USERS}).items()}


def json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def test_a_unique_index_rolled_out_in_waves_halts_resumes_and_restores(
    operator: Operator, tmp_path: Path
) -> None:
    folder = registry_100(tmp_path / "registry")
    operator.values["registry"] = str(folder)
    build_fleet(operator, tmp_path)
    desired = tmp_path / "desired.sql"
    desired.write_text(NOTES_110)

    code, out, err = operator.cli(
        "registry", "new", "1.1.0", "-m", "Unique note bodies", "--dir", str(folder),
        "--schema", str(desired),
    )  # fmt: skip
    assert code == 0, err
    assert (folder / "1.1.0.migrate.sql").exists()

    # Rehearse on copies: exactly the three, with the statement and the constraint.
    before = live_state(operator)
    code, out, _ = operator.cli("fleet", "rehearse", "--all", "--json")
    events = json_lines(out)
    assert code == 1
    failed = [e for e in events if e["event"] == "tenant" and e["status"] == "failed"]
    assert sorted(e["user_id"] for e in failed) == BAD
    assert {e["constraint"] for e in failed} == {"UNIQUE"}
    for event in failed:
        assert event["message"].startswith("UNIQUE constraint failed: notes")
        assert event["statement"].startswith("INSERT INTO")
        assert event["size_before"] > 0
    assert events[-1] | {"seconds": 0} == {
        "event": "summary",
        "target": "1.1.0",
        "tenants": 200,
        "passed": 197,
        "failed": 3,
        "near_limit": 0,
        "failed_tenants": BAD,
        "seconds": 0,
    }
    assert live_state(operator) == before  # files, cookies, history, rows: untouched

    # Waves: the three are placed in the second wave (5 % to 50 %), which halts the job.
    first = tmp_path / "first.txt"
    first.write_text("# internal accounts, then the three\n" + "\n".join(INTERNAL + BAD) + "\n")
    code, out, err = operator.cli(
        "fleet", "sync", "--waves", "5,50,100", "--max-failure-rate", "1%",
        "--first", str(first), "--json",
    )  # fmt: skip
    summary = json_lines(out)[-1]
    job = summary["job_id"]
    assert code == 1
    assert summary["state"] == "halted"
    assert f"--resume {job}" in summary["error"]
    assert f"--resume {job}" in err
    assert [
        (w["tenants"], w["done"], w["upgraded"], w["failed"], w["state"]) for w in summary["waves"]
    ] == [
        (10, 10, 10, 0, "passed"),
        (90, 90, 87, 3, "halted"),
        (100, 0, 0, 0, "pending"),
    ]
    assert sorted(i["user_id"] for i in summary["failed"]) == BAD
    at = versions(operator)
    assert sum(v == "1.1.0" for v in at.values()) == 97
    assert all(at[u] == "1.0.0" for u in BAD)

    code, out, _ = operator.cli("fleet", "status", "--json")
    last = json.loads(out)["last_rollout"]
    assert (last["job_id"], last["state"]) == (job, "halted")
    assert [w["state"] for w in last["waves"]] == ["passed", "halted", "pending"]

    # Fix their rows; the resume syncs them again and finishes.
    sql_each(operator, {u: ["DELETE FROM notes WHERE id = 3"] for u in BAD})
    code, out, err = operator.cli("fleet", "sync", "--resume", job, "--json")
    summary = json_lines(out)[-1]
    assert (code, summary["state"], summary["upgraded"], summary["failed"]) == (
        0,
        "finished",
        200,
        [],
    ), err
    assert [w["state"] for w in summary["waves"]] == ["passed"] * 3
    assert set(versions(operator).values()) == {"1.1.0"}

    # Restore the job: every tenant back at 1.0.0 with its rows, served at once.
    code, out, _ = operator.cli("fleet", "restore", "--job", job)
    assert code == 2  # off a terminal it needs --yes
    code, out, _ = operator.cli("fleet", "restore", "--job", job, "--yes", "--json")
    events = json_lines(out)
    assert code == 0
    assert events[-1] == {
        "event": "summary",
        "job_id": job,
        "changed": 200,
        "restored": 200,
        "skipped": 0,
        "failed": 0,
        "already": 0,
    }
    restored = live_state(operator)
    for user in USERS:
        _cookie, history, rows, *_ = restored[user]
        assert history[-1] == ("1.0.0",)
        assert rows == before[user][2][:2]  # the fixed duplicates stay fixed: backup after fix

    async def served(tenants: TenantService) -> set[str]:
        current = tenants.registry.current.version
        statuses: set[str] = set()
        for user in USERS:
            record = await tenants.catalog.get(user, fresh=True)
            assert record is not None
            statuses.add(status_of(record.status, record.schema_version, current))
        audit = await tenants.catalog.audit(limit=1000)
        assert sum(e.trigger == "restore" and e.actor == f"job {job}" for e in audit) == 200
        return statuses

    assert operator.with_tenants(served) == {"out_of_date"}


def test_restore_skips_a_tenant_changed_since_and_restores_the_rest_once(
    operator: Operator, tmp_path: Path
) -> None:
    users = ("alice", "bob", "carol")
    operator.provision(*users, registry=registry_upto(tmp_path, "1.0.0"))
    code, out, _ = operator.cli("fleet", "sync", "--to", "1.1.0", "--waves", "100", "--json")
    job = json_lines(out)[-1]["job_id"]
    assert code == 0

    async def move_alice(tenants: TenantService) -> None:  # a later sync: 1.1.0 -> 1.2.0
        await tenants.sync(SyncRequest(user_id="alice", trigger="cli"))

    operator.with_tenants(move_alice)

    code, out, _ = operator.cli("fleet", "restore", "--job", job, "--yes")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("alice: skipped (at 1.2.0): changed since the job left it at 1.1.0")
    assert lines[1:] == [
        "bob: restored (at 1.0.0)",
        "carol: restored (at 1.0.0)",
        f"job {job} changed 3 tenant(s): restored 2, skipped 1, failed 0",
    ]
    assert [record_of(operator, u).schema_version for u in users] == ["1.2.0", "1.0.0", "1.0.0"]

    code, out, _ = operator.cli("fleet", "restore", "--job", job, "--yes")
    assert (code, out.splitlines()[-1]) == (
        1,
        f"job {job} changed 3 tenant(s): restored 0, skipped 1, failed 0, restored before 2",
    )


@pytest.mark.parametrize("backend_kind", ["local"])
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--waves", "50,10,100"], "increasing cumulative percentages ending at 100"),
        (["--waves", "a,b"], "give percentages such as 1,10,50,100"),
        (["--waves", "100", "--max-failure-rate", "lots"], "give a percentage such as 2%"),
        (["--max-failure-rate", "2%"], "go with --waves"),
        (["--resume", "j", "--waves", "100"], "a resumed job keeps its waves"),
        (["--waves", "100", "--first", "/no/such/file"], "--first /no/such/file"),
    ],
)
def test_bad_waves_are_bad_usage(operator: Operator, args: list[str], message: str) -> None:
    operator.provision("alice")
    code, _, err = operator.cli("fleet", "sync", *args)

    assert code == 2
    assert message in err


@pytest.mark.parametrize("backend_kind", ["local"])
def test_restore_of_an_unknown_job_is_bad_usage(operator: Operator) -> None:
    operator.provision("alice")
    code, _, err = operator.cli("fleet", "restore", "--job", "nosuchjob", "--yes")

    assert code == 2
    assert "no rollout job nosuchjob" in err
