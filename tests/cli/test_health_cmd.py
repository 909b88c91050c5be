"""`tenantdb health-check [--strict] [--json]` on both backends, and when things are off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.clikit import local_file, notes_registry, record_of, run_sql
from tests.cli.conftest import Operator
from tests.sqld import free_port, make_keypair


@pytest.fixture
def fleet(operator: Operator, tmp_path: Path) -> Operator:
    """The notes registry (current 1.1.0) and alice on it."""
    operator.values["registry"] = str(notes_registry(tmp_path / "registry"))
    operator.provision("alice")
    return operator


def test_a_healthy_fleet_passes_strict(fleet: Operator) -> None:
    registry = fleet.values["registry"]
    backend = fleet.settings.backend

    code, out, err = fleet.cli("health-check", "--strict")

    assert (code, err) == (0, "")
    assert out == (
        f"registry     valid: {registry} (1.0.0, 1.1.0; current 1.1.0)\n"
        f"backend      {backend}, reachable\n"
        "tenants      1 (1.1.0: 1)\n"
        "out of date  0\n"
        "drifted      0\n"
        "status       ok\n"
    )


def test_out_of_date_and_drifted_tenants_fail_strict(fleet: Operator, tmp_path: Path) -> None:
    old = notes_registry(tmp_path / "registry-1.0.0", upto="1.0.0")
    fleet.provision("bob", "carol", registry=old)
    run_sql(fleet, "carol", "CREATE TABLE tags (id INTEGER PRIMARY KEY, name INTEGER)")
    assert fleet.cli("db", "sync", "carol")[0] == 1  # the catalog now says drifted
    registry = fleet.values["registry"]
    backend = fleet.settings.backend

    normal = fleet.cli("health-check")
    strict = fleet.cli("health-check", "--strict")
    as_json = fleet.cli("health-check", "--json", "--strict")

    report = (
        f"registry     valid: {registry} (1.0.0, 1.1.0; current 1.1.0)\n"
        f"backend      {backend}, reachable\n"
        "tenants      3 (1.0.0: 2, 1.1.0: 1)\n"
        "out of date  2\n"
        "drifted      1 (carol)\n"
        "status       degraded: 2 tenant(s) not at 1.1.0; 1 tenant(s) drifted\n"
    )
    assert normal == (0, report, "")
    assert strict == (1, report, "")
    assert as_json[0] == 1
    assert json.loads(as_json[1]) == {
        "status": "degraded",
        "problems": ["2 tenant(s) not at 1.1.0", "1 tenant(s) drifted"],
        "registry_path": registry,
        "registry_valid": True,
        "registry_error": None,
        "registry_version": "1.1.0",
        "registry_versions": ["1.0.0", "1.1.0"],
        "backend": backend,
        "backend_reachable": True,
        "backend_error": None,
        "tenants": 3,
        "tenants_by_version": {"1.0.0": 2, "1.1.0": 1},
        "out_of_date": 2,
        "drifted": 1,
        "drifted_tenants": ["carol"],
        "damaged": 0,
    }


@pytest.mark.parametrize("backend_kind", ["local"])
def test_an_invalid_registry_is_reported(fleet: Operator, tmp_path: Path) -> None:
    broken = notes_registry(tmp_path / "broken")
    (broken / "1.1.0.sql").write_text("CREATE TABLE notes (id INTEGER PRIMARY KEY);")
    fleet.values["registry"] = str(broken)

    code, out, _ = fleet.cli("health-check")
    strict = fleet.cli("health-check", "--strict")

    assert code == 0
    assert out == (
        f"registry     INVALID: {broken}\n"
        "    1.1.0.sql (version 1.1.0) is not additive to 1.0.0: drops column notes.body "
        "(and 1 more): keep the old definition, or add a migration\n"
        "backend      local, reachable\n"
        "tenants      1 (1.1.0: 1)\n"
        "drifted      0\n"
        "status       degraded: the registry does not validate\n"
    )
    assert strict == (1, out, "")


@pytest.mark.parametrize("backend_kind", ["local"])
def test_an_unreachable_sqld_is_reported(operator: Operator, tmp_path: Path) -> None:
    private, _ = make_keypair(tmp_path, "nobody")
    port, admin_port = free_port(), free_port()  # nothing listens on them
    operator.values.update(
        backend="sqld",
        sqld_url=(f"http://127.0.0.1:{port}",),
        sqld_admin_url=(f"http://127.0.0.1:{admin_port}",),
        sqld_jwt_key_file=str(private),
        public_url_template="libsql://{namespace}.db.example.com",
    )

    code, out, _ = operator.cli("health-check")
    strict, strict_out, _ = operator.cli("health-check", "--strict", "--json")

    assert code == 0
    lines = out.splitlines()
    assert lines[1] == (
        "backend      sqld, UNREACHABLE: sqld's admin API does not answer at "
        f"http://127.0.0.1:{admin_port}"
    )
    assert lines[2:] == ["status       degraded: the sqld backend is unreachable"]
    assert strict == 1
    report = json.loads(strict_out)
    assert (report["backend_reachable"], report["tenants"], report["problems"]) == (
        False,
        None,
        ["the sqld backend is unreachable"],
    )


@pytest.mark.parametrize("backend_kind", ["local"])
def test_a_damaged_database_is_counted_by_health_check_and_fleet_status(fleet: Operator) -> None:
    path = local_file(fleet, record_of(fleet, "alice").location)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.write_bytes(b"this is not a database" * 200)
    before = path.read_bytes()

    sync = fleet.cli("db", "sync", "alice")
    code, out, _ = fleet.cli("health-check", "--strict")
    status = json.loads(fleet.cli("fleet", "status", "--json")[1])

    assert sync[0] == 1
    assert "not a sound SQLite database" in sync[2]
    assert code == 1
    assert "damaged      1\n" in out
    assert status["damaged"] == 1
    assert path.read_bytes() == before
