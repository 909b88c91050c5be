"""Each bench's --smoke run: every item once on tiny inputs, as operators run them
(`python -m bench.NAME`, a subprocess from the repo root), with its correctness guards
(the work measured is the work claimed) and no speed asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sqld import sqld_binary

ROOT = Path(__file__).resolve().parent.parent


def smoke(tmp_path: Path, bench: str, *args: str, sqld: bool = False) -> dict[str, int]:
    """Run one bench's smoke mode; its guards (what was checked, how often) when it passed."""
    out = tmp_path / f"{bench}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTDB_")}
    if sqld:
        env["TENANTDB_SQLD_BIN"] = str(sqld_binary())
    proc = subprocess.run(
        [sys.executable, "-m", f"bench.{bench}", "--smoke", "--json", str(out), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"{bench} --smoke exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    results = json.loads(out.read_text())
    assert results["meta"]["smoke"] is True
    guards: dict[str, int] = results["guards"]
    assert f"smoke: {len(guards)} guards held" in proc.stdout
    return guards


def test_engine_smoke(tmp_path: Path) -> None:
    guards = smoke(tmp_path, "engine")
    assert "provision: ours made exactly the registry's tables" in guards
    assert "provision: bare_recorded passes our check" in guards
    assert "upgrade: both sides pass our check at 1.1.0" in guards
    assert "check: every check said up to date" in guards


def test_api_smoke(tmp_path: Path) -> None:
    guards = smoke(tmp_path, "api")
    assert "after the warm-up, initialize is the fast path" in guards
    assert "the warm-up created every database once" in guards
    assert "tenantdb-info wrote its request log" in guards
    assert "new users: the first sign-in created the file" in guards
    assert guards["new users: every timed sign-in created a file"] == 3
    assert "new users: the floor creates the tables tenantdb made" in guards
    assert "no request failed" in guards


def test_fleet_local_smoke(tmp_path: Path) -> None:
    guards = smoke(tmp_path, "fleet", "--only", "local")
    assert guards["rollout: every tenant upgraded, none failed or drifted"] == 3  # c=1, c=2, procs
    assert "local: both sides' databases are at 1.1.0 with its tables" in guards


def test_rollout_load_smoke(tmp_path: Path) -> None:
    guards = smoke(tmp_path, "rollout_load")
    assert "registry: the new versions load" in guards
    assert "the warm-up created every user" in guards
    assert "after the warm-up, initialize is the fast path" in guards
    assert guards["rollout: every tenant upgraded"] == 1
    assert "rollout: sampled databases hold the target's history row" in guards
    assert "no request failed" in guards


def test_migrations_smoke(tmp_path: Path) -> None:
    guards = smoke(tmp_path, "migrations")
    assert "registry: the generated script rebuilds trades" in guards
    assert "rehearse: every tenant passed" in guards
    assert "rehearse: no live file changed (hash)" in guards
    assert "sync: every tenant upgraded, none failed or drifted" in guards
    for what in ("sync", "rebuild ours", "rebuild bare"):
        assert f"{what}: schema equals 1.3.0's (the engine's diff is empty)" in guards
        assert f"{what}: every row kept (rows per table, trades' totals)" in guards


def test_fleet_scale_smoke(tmp_path: Path) -> None:
    guards = smoke(tmp_path, "fleet_scale")
    assert guards["provision: every tenant made"] == 4  # ours and the floor, at 2 sizes
    assert guards["rollout: every tenant upgraded, none failed or drifted"] == 2
    assert "rollout: sampled files are at 1.4.0 with its tables" in guards
    assert "listings: the summary counts every tenant by version, and the drifted" in guards
    assert guards["listings: no plan scans a table that grows with the fleet"] == 42  # 21 x 2
    assert "listings: each ran under 200,000 steps" in guards


@pytest.mark.sqld
def test_fleet_sqld_smoke(tmp_path: Path) -> None:
    guards = smoke(tmp_path, "fleet", "--only", "sqld", sqld=True)
    assert "rollout: every tenant upgraded, none failed or drifted" in guards


@pytest.mark.sqld
def test_sqld_smoke(tmp_path: Path) -> None:
    guards = smoke(tmp_path, "sqld", sqld=True)
    assert "new user: sqld has the registry's tables" in guards
    assert "new user: the engine's check finds the namespace current" in guards
    assert "floor: the DDL batch made them" in guards
    assert "returning user: initialize finds it current and syncs nothing" in guards
    assert "after the warm-up, initialize is the fast path" in guards
    assert "no request failed" in guards


@pytest.mark.sqld
def test_sqld_scale_smoke(tmp_path: Path) -> None:
    guards = smoke(tmp_path, "sqld_scale", sqld=True)
    assert guards["every user asked"] == 2  # the baseline and the bigger run
    assert "non_200: none" in guards
    assert "failed_tenants: none" in guards
    assert "catalog_rows_missing: none" in guards
