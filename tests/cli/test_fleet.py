"""`tenantdb fleet status|sync` against real databases on both backends, and the 5,000-tenant
acceptance run (local): drift reported, re-runs change nothing, a killed rollout resumes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest

from service.backends.local.threaded import ThreadedSqlite
from service.catalog import Catalog, TenantRecord, TenantView
from service.catalog.tables import SCHEMA
from service.config import load_settings
from service.errors import Conflict
from service.rollouts.model import Counts, LeaseLost
from service.rollouts.run import reopen_job, rollout, start_job
from service.status import Stored, status_of
from service.tenants import SyncRequest, TenantService
from service.wiring import open_runtime
from tests.api.conftest import registry_upto
from tests.cli.clikit import record_of, run_sql
from tests.cli.conftest import Operator
from tests.conftest import ROOT
from tests.fleetkit import build_local_fleet, spoil_column, spoil_index

USERS = ("alice", "bob", "carol", "dave")
# trades.strategy_id given TEXT before 1.1.0 adds it as INTEGER REFERENCES strategies(id):
# the column differs, and so does the table's foreign key list.
STRATEGY_DRIFT = [("alter_column", "trades.strategy_id"), ("alter_table", "trades")]


@pytest.fixture
def fleet(operator: Operator, tmp_path: Path) -> Operator:
    """Four tenants at 1.0.0 of the example registry, whose current version is 1.2.0."""
    operator.provision(*USERS, registry=registry_upto(tmp_path, "1.0.0"))
    return operator


def lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def summary_of(out: str) -> dict[str, Any]:
    events = lines(out)
    assert events[-1]["event"] == "summary", events
    return events[-1]


def versions(operator: Operator, user: str) -> list[str]:
    rows = run_sql(operator, user, "SELECT version FROM schema_version ORDER BY id")[0]
    return [str(row[0]) for row in rows]


def spoil(operator: Operator, user: str) -> None:
    """Give trades.strategy_id another type before 1.1.0 adds it: the sync must refuse."""
    run_sql(operator, user, "ALTER TABLE trades ADD COLUMN strategy_id TEXT")


def test_sync_upgrades_every_tenant_then_finds_them_current(fleet: Operator) -> None:
    code, out, err = fleet.cli("fleet", "sync", "--concurrency", "2")

    assert (code, err) == (0, "")
    events = lines(out)
    assert {e["event"] for e in events[:-1]} == {"progress"}
    assert events[-2] | {"rate": 0, "elapsed_s": 0} == {
        "event": "progress",
        "job_id": events[0]["job_id"],
        "state": "finished",
        "target": "1.2.0",
        "dry_run": False,
        "total": 4,
        "done": 4,
        "upgraded": 4,
        "current": 0,
        "would_apply": 0,
        "failed": 0,
        "drifted": 0,
        "rate": 0,
        "elapsed_s": 0,
    }
    summary = summary_of(out)
    assert (summary["upgraded"], summary["current"], summary["failed"], summary["drifted"]) == (
        4,
        0,
        [],
        [],
    )
    for user in USERS:
        assert versions(fleet, user) == ["1.0.0", "1.1.0", "1.2.0"]
        assert record_of(fleet, user).schema_version == "1.2.0"

    code, out, _ = fleet.cli("fleet", "sync")

    again = summary_of(out)
    assert code == 0
    assert (again["upgraded"], again["current"], again["done"]) == (0, 4, 4)
    assert all(versions(fleet, user) == ["1.0.0", "1.1.0", "1.2.0"] for user in USERS)


def test_sync_records_a_fleet_audit_entry_per_upgraded_tenant(fleet: Operator) -> None:
    fleet.cli("fleet", "sync", "--to", "1.1.0")

    async def audit(tenants: TenantService) -> list[Any]:
        return await tenants.catalog.audit(limit=100)

    entries = [e for e in fleet.with_tenants(audit) if e.trigger == "fleet"]
    assert sorted((e.user_id, e.from_version, e.to_version, e.actor) for e in entries) == [
        (user, "1.0.0", "1.1.0", "cli") for user in sorted(USERS)
    ]


def test_dry_run_counts_what_would_apply_and_changes_nothing(fleet: Operator) -> None:
    code, out, _ = fleet.cli("fleet", "sync", "--dry-run")

    summary = summary_of(out)
    assert code == 0
    assert (summary["dry_run"], summary["would_apply"], summary["upgraded"]) == (True, 4, 0)
    assert all(versions(fleet, user) == ["1.0.0"] for user in USERS)


def test_dry_run_reports_drift_it_cannot_rule_out(fleet: Operator) -> None:
    spoil(fleet, "bob")

    code, out, _ = fleet.cli("fleet", "sync", "--dry-run")

    summary = summary_of(out)
    assert code == 1
    assert (summary["would_apply"], [d["user_id"] for d in summary["drifted"]]) == (3, ["bob"])
    [bob] = summary["drifted"]
    assert [(d["kind"], d["object"]) for d in bob["drift"]] == STRATEGY_DRIFT
    # 1.2.0 carries a migration script, which a dry run does not run.
    assert bob["reason"].endswith("(dry run: a pending migration script may resolve this)")


def test_sync_to_an_older_version_stops_there(fleet: Operator) -> None:
    code, out, _ = fleet.cli("fleet", "sync", "--to", "1.1.0")

    assert (code, summary_of(out)["upgraded"]) == (0, 4)
    assert versions(fleet, "alice") == ["1.0.0", "1.1.0"]


def test_drifted_and_failed_tenants_are_reported_and_the_others_upgraded(
    fleet: Operator,
) -> None:
    spoil(fleet, "bob")
    gone = record_of(fleet, "dave").location

    async def delete(tenants: TenantService) -> None:
        await tenants.backend.delete(gone)

    fleet.with_tenants(delete)

    code, out, _ = fleet.cli("fleet", "sync")

    summary = summary_of(out)
    assert code == 1
    assert (summary["upgraded"], summary["done"]) == (2, 4)
    [drifted] = summary["drifted"]
    assert drifted["user_id"] == "bob"
    assert drifted["from_version"] == "1.0.0"
    assert [(d["kind"], d["object"]) for d in drifted["drift"]] == STRATEGY_DRIFT
    assert "strategy_id" in drifted["reason"]
    [failed] = summary["failed"]
    assert (failed["user_id"], failed["kind"], failed["from_version"]) == (
        "dave",
        "failed",
        "1.0.0",
    )
    assert "database" in failed["reason"]
    assert versions(fleet, "bob") == ["1.0.0"]
    assert versions(fleet, "alice") == versions(fleet, "carol") == ["1.0.0", "1.1.0", "1.2.0"]


def test_status_lists_versions_and_drifted_tenants_with_reasons(fleet: Operator) -> None:
    spoil(fleet, "bob")
    fleet.cli("fleet", "sync", "--to", "1.1.0")

    code, out, err = fleet.cli("fleet", "status", "--json")

    assert (code, err) == (0, "")
    report = json.loads(out)
    job = report.pop("last_rollout")
    [bob] = report.pop("drifted_tenants")
    assert report == {
        "current_version": "1.2.0",
        "source": "catalog",
        "tenants": 4,
        "by_version": {"1.0.0": 1, "1.1.0": 3},
        "out_of_date": 4,
        "ahead": 0,
        "damaged": 0,
        "drifted": 1,
        "unreadable": 0,
    }
    assert (bob["user_id"], bob["schema_version"], bob["error"]) == ("bob", "1.0.0", None)
    assert [(d["kind"], d["object"]) for d in bob["drift"]] == STRATEGY_DRIFT
    assert (job["state"], job["target"], job["done"], job["total"]) == ("finished", "1.1.0", 4, 4)

    code, text, _ = fleet.cli("fleet", "status")

    assert code == 0
    assert text.splitlines()[:6] == [
        "current version 1.2.0; 4 tenant(s) (from the catalog)",
        "  1.0.0                1",
        "  1.1.0                3",
        "out of date: 4",
        "drifted: 1",
        "  bob (at 1.0.0)",
    ]
    assert "column trades.strategy_id differs" in text


def test_status_verify_reads_every_database(fleet: Operator) -> None:
    fleet.cli("fleet", "sync", "--to", "1.1.0")
    spoil_after = "CREATE INDEX idx_trades_symbol_lower ON trades (symbol)"
    run_sql(fleet, "carol", "DROP INDEX idx_trades_symbol_lower", spoil_after)

    _, catalog_view, _ = fleet.cli("fleet", "status", "--json")
    code, out, _ = fleet.cli("fleet", "status", "--verify", "--json")

    assert json.loads(catalog_view)["drifted"] == 0  # the catalog has not seen it yet
    report = json.loads(out)
    assert code == 0
    assert (report["source"], report["drifted"], report["by_version"]) == (
        "databases",
        1,
        {"1.1.0": 4},
    )
    [carol] = report["drifted_tenants"]
    assert carol["user_id"] == "carol"
    assert [(d["kind"], d["object"]) for d in carol["drift"]] == [
        ("replace_index", "idx_trades_symbol_lower")
    ]


def test_a_rollout_total_is_fixed_when_it_starts_and_late_sign_ups_are_not_counted(
    fleet: Operator,
) -> None:
    """Users who sign up while a job runs are created at the current version and left to
    their next sign-in: the job's done never passes its total."""

    async def go(tenants: TenantService) -> tuple[int, int, int]:
        job = await start_job(tenants)
        await asyncio.sleep(1.1)  # times are to the second
        await tenants.initialize("zed", None)  # signs up after the job started
        summary = await rollout(tenants, job_id=job.job_id)
        return job.total, summary.total, summary.done

    assert fleet.with_tenants(go) == (len(USERS), len(USERS), len(USERS))
    assert versions(fleet, "zed") == ["1.2.0"]


def test_a_rollout_to_a_version_older_than_every_tenant_refuses_before_starting(
    fleet: Operator,
) -> None:
    assert fleet.cli("fleet", "sync")[0] == 0  # every tenant at 1.2.0
    jobs_before = fleet.with_tenants(lambda t: t.catalog.rollouts.jobs())

    code, _, err = fleet.cli("fleet", "sync", "--to", "1.1.0")
    db_code, _, db_err = fleet.cli("db", "sync", "alice", "--to", "1.1.0")
    status = json.loads(fleet.cli("fleet", "status", "--json")[1])

    assert code == 2
    assert "newer than 1.1.0" in err
    assert len(fleet.with_tenants(lambda t: t.catalog.rollouts.jobs())) == len(jobs_before)
    assert db_code == 1
    assert "does not downgrade" in db_err
    assert status["by_version"] == {"1.2.0": len(USERS)}
    assert record_of(fleet, "alice").status == "synced"  # not marked failed


def test_resume_continues_a_job_after_its_cursor(fleet: Operator) -> None:
    """A job that stopped after alice and bob: resuming it syncs carol and dave only."""

    async def interrupted(tenants: TenantService) -> str:
        for user in ("alice", "bob"):
            await tenants.sync(SyncRequest(user_id=user, trigger="fleet", target="1.1.0"))
        job = await start_job(tenants, target="1.1.0", concurrency=2)
        store = tenants.catalog.rollouts
        await store.save(msgspec.structs.replace(job, cursor="bob", counts=Counts(upgraded=2)))
        return job.job_id

    job_id = fleet.with_tenants(interrupted)

    code, out, _ = fleet.cli("fleet", "sync", "--resume", job_id)

    summary = summary_of(out)
    assert code == 0
    assert (summary["job_id"], summary["target"], summary["state"]) == (job_id, "1.1.0", "finished")
    assert (summary["upgraded"], summary["current"], summary["done"]) == (4, 0, 4)
    assert all(versions(fleet, user) == ["1.0.0", "1.1.0"] for user in USERS)

    code, out, _ = fleet.cli("fleet", "sync", "--resume", job_id)  # finished: only reports

    assert (code, summary_of(out)["upgraded"]) == (0, 4)
    assert [e["event"] for e in lines(out)] == ["summary"]


def test_backup_flag_backs_up_each_database_it_changes(fleet: Operator) -> None:
    code, out, err = fleet.cli("fleet", "sync", "--to", "1.1.0", "--backup")

    assert (code, err) == (0, "")
    assert summary_of(out)["upgraded"] == 4
    backups = Path(fleet.settings.backup_path)
    assert sorted(p.name for p in backups.iterdir()) == sorted(USERS)
    assert all(
        [f.name.endswith("-1.0.0-to-1.1.0.db") for f in (backups / u).iterdir()] == [True]
        for u in USERS
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--to", "9.9.9"), "version 9.9.9 is not in the registry (it has 1.0.0, 1.1.0, 1.2.0)"),
        (("--concurrency", "0"), "--concurrency and --processes must be at least 1"),
        (("--resume", "0123456789abcdef"), "no rollout job 0123456789abcdef"),
    ],
    ids=["unknown-version", "no-concurrency", "unknown-job"],
)
def test_bad_usage_exits_2_before_any_job(
    fleet: Operator, args: tuple[str, ...], message: str
) -> None:
    code, out, err = fleet.cli("fleet", "sync", *args)

    assert (code, out) == (2, "")
    assert message in err
    jobs = fleet.with_tenants(lambda t: t.catalog.rollouts.jobs())
    assert jobs == []


@pytest.mark.parametrize("backend_kind", ["local"])
def test_sync_in_worker_processes_upgrades_and_reports_like_one_process(
    operator: Operator, tmp_path: Path
) -> None:
    from schema_registry import load_registry  # noqa: PLC0415

    registry = load_registry(operator.settings.registry)
    users = [f"user-{i:03d}" for i in range(60)]
    places = build_local_fleet(operator.settings, registry, "1.0.0", users, tmp_path)
    spoil_index(places["user-042"])
    Path(places.pop("user-017")).unlink()  # a failure, sent back from its worker

    code, out, _ = operator.cli("fleet", "sync", "--processes", "2", "--to", "1.1.0")

    summary = summary_of(out)
    assert code == 1
    assert (summary["upgraded"], summary["done"]) == (58, 60)
    assert [d["user_id"] for d in summary["drifted"]] == ["user-042"]
    [failed] = summary["failed"]
    assert (failed["user_id"], failed["from_version"]) == ("user-017", "1.0.0")
    assert "the database of user-017 is gone" in failed["reason"]
    assert record_of(operator, "user-042").status == "drifted"
    assert record_of(operator, "user-017").status == "failed"
    rows = history(places)
    assert all(rows[u] == ["1.0.0", "1.1.0"] for u in places if u != "user-042")


@pytest.mark.parametrize("backend_kind", ["local"])
def test_worker_processes_find_their_next_chunk_waiting(operator: Operator, tmp_path: Path) -> None:
    """With every worker busy, a chunk more per worker is in flight: a worker that hands
    one back takes the next at once. Below one chunk per worker, no more than asked. The
    run's last tenants are shared out in smaller chunks, not left to one worker's chunk."""
    from schema_registry import load_registry  # noqa: PLC0415
    from service.rollouts.processes import ProcessSyncer  # noqa: PLC0415
    from service.rollouts.syncing import share  # noqa: PLC0415

    registry = load_registry(operator.settings.registry)
    users = [f"user-{i:03d}" for i in range(200)]
    places = build_local_fleet(operator.settings, registry, "1.0.0", users, tmp_path)

    class Counted(ProcessSyncer):
        in_flight = peak = 0
        sizes: ClassVar[list[int]] = []  # of each call, in order

        async def __call__(self, records: list[TenantRecord], job: Any) -> Any:
            self.sizes.append(len(records))
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                return await super().__call__(records, job)
            finally:
                self.in_flight -= 1

    async def work(tenants: TenantService) -> tuple[int, int, int]:
        syncer = Counted(operator.settings, 2, chunk=10)
        async with syncer:
            summary = await rollout(tenants, target="1.1.0", concurrency=2, syncer=syncer)
            return summary.upgraded, syncer.peak, syncer.calls(1)

    assert operator.with_tenants(work) == (200, 4, 1)
    assert all(rows == ["1.0.0", "1.1.0"] for rows in history(places).values())
    sizes = Counted.sizes
    assert (sum(sizes), max(sizes), sizes[:4]) == (200, 10, [10] * 4)
    assert sizes[-4:] == sorted(sizes[-4:], reverse=True)
    assert sizes[-1] < 10
    assert [share(10, left, 4) for left in (200, 40, 39, 12, 5, 1)] == [10, 10, 10, 3, 2, 1]


@pytest.mark.parametrize("backend_kind", [pytest.param("sqld", marks=pytest.mark.sqld)])
def test_worker_processes_are_for_the_local_backend(operator: Operator) -> None:
    code, out, err = operator.cli("fleet", "sync", "--processes", "2")

    assert (code, out) == (2, "")
    assert "--processes is for the local backend" in err


# --------------------------------------------------------------------------- 5,000 tenants

FLEET_SIZE = 5000


@pytest.fixture
def big_fleet(operator: Operator, tmp_path: Path) -> tuple[Operator, list[str], dict[str, str]]:
    """5,000 local tenants at 1.0.0 (one file copied), two of them unsyncable."""
    from schema_registry import load_registry  # noqa: PLC0415

    registry = load_registry(operator.settings.registry)
    users = [f"user-{i:05d}" for i in range(FLEET_SIZE)]
    places = build_local_fleet(operator.settings, registry, "1.0.0", users, tmp_path)
    spoil_column(places["user-01234"])
    spoil_index(places["user-03456"])
    return operator, users, places


def history(places: dict[str, str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for user, location in places.items():
        conn = sqlite3.connect(location)
        try:
            found[user] = [r[0] for r in conn.execute("SELECT version FROM schema_version")]
        finally:
            conn.close()
    return found


def expect_rolled_out(places: dict[str, str]) -> None:
    """Every syncable tenant has exactly one row per version; the two spoiled only 1.0.0."""
    rows = history(places)
    spoiled = {"user-01234", "user-03456"}
    assert {u: v for u, v in rows.items() if u in spoiled} == {u: ["1.0.0"] for u in spoiled}
    wrong = {u: v for u, v in rows.items() if u not in spoiled and v != ["1.0.0", "1.1.0", "1.2.0"]}
    assert wrong == {}
    for location in sorted(places.values())[::200]:  # a sample of 25
        conn = sqlite3.connect(location)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        finally:
            conn.close()


def expect_drift_reported(summary: dict[str, Any]) -> None:
    drifted = {d["user_id"]: d for d in summary["drifted"]}
    assert sorted(drifted) == ["user-01234", "user-03456"]
    assert [(d["kind"], d["object"]) for d in drifted["user-01234"]["drift"]] == STRATEGY_DRIFT
    assert [(d["kind"], d["object"]) for d in drifted["user-03456"]["drift"]] == [
        ("replace_index", "idx_trades_symbol_lower")
    ]
    assert all(d["reason"] for d in summary["drifted"])


@pytest.mark.slow
@pytest.mark.parametrize("backend_kind", ["local"])
def test_rollout_over_5000_tenants_reports_the_two_drifted_and_reruns_change_nothing(
    big_fleet: tuple[Operator, list[str], dict[str, str]],
) -> None:
    operator, _, places = big_fleet

    code, out, _ = operator.cli("fleet", "sync", "--processes", "2")

    summary = summary_of(out)
    assert code == 1
    assert (summary["upgraded"], summary["current"], summary["failed"]) == (4998, 0, [])
    assert (summary["total"], summary["done"]) == (FLEET_SIZE, FLEET_SIZE)
    expect_drift_reported(summary)
    expect_rolled_out(places)

    code, out, _ = operator.cli("fleet", "sync", "--concurrency", "4")

    again = summary_of(out)
    assert code == 1
    assert (again["upgraded"], again["current"], again["failed"]) == (0, 4998, [])
    expect_drift_reported(again)
    expect_rolled_out(places)


@pytest.mark.slow
@pytest.mark.parametrize("backend_kind", ["local"])
def test_rollout_killed_half_way_resumes_without_applying_anything_twice(
    big_fleet: tuple[Operator, list[str], dict[str, str]],
) -> None:
    operator, _, places = big_fleet
    child = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "fleet", "sync", "--concurrency", "4"],
        cwd=ROOT,
        env={**os.environ, **operator.env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout is not None
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 120
    for line in child.stdout:
        seen.append(json.loads(line))
        if seen[-1]["done"] >= FLEET_SIZE // 2 or time.monotonic() > deadline:
            break
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    job_id, killed_at = seen[-1]["job_id"], seen[-1]["done"]
    assert FLEET_SIZE // 2 <= killed_at < FLEET_SIZE, seen[-1]

    async def saved_done(tenants: TenantService) -> int:
        job = await tenants.catalog.rollouts.get(job_id)
        assert job is not None
        return sum(msgspec.structs.astuple(job.counts))

    saved = operator.with_tenants(saved_done)
    assert 0 < saved <= killed_at

    code, out, _ = operator.cli("fleet", "sync", "--resume", job_id)

    summary = summary_of(out)
    assert code == 1
    assert (summary["job_id"], summary["state"], summary["done"]) == (job_id, "finished", 5000)
    assert summary["upgraded"] + summary["current"] == 4998
    # Only tenants done after the job's last saved cursor are synced again (found current).
    assert summary["current"] <= killed_at - saved + 2 * 4  # + what 4 workers had begun
    expect_drift_reported(summary)
    expect_rolled_out(places)

    async def audit(tenants: TenantService) -> list[Any]:
        return await tenants.catalog.audit(limit=2 * FLEET_SIZE)

    entries = operator.with_tenants(audit)
    per_user: dict[str, int] = {}
    for entry in entries:
        per_user[entry.user_id] = per_user.get(entry.user_id, 0) + 1
    # Each upgrade applied once and audited once: the ones whose catalog write the kill
    # lost are found on resume and audited as "recovered".
    assert len(per_user) == 4998
    assert set(per_user.values()) == {1}
    recovered = [e for e in entries if e.trigger == "recovered"]
    assert len(recovered) <= summary["current"]
    assert all((e.from_version, e.to_version) == ("1.0.0", "1.2.0") for e in recovered)


def test_a_job_another_run_holds_is_not_run_twice(fleet: Operator) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    here = socket.gethostname()

    async def go(tenants: TenantService) -> None:
        store = tenants.catalog.rollouts
        job = await start_job(tenants, concurrency=2)
        elsewhere = await store.claim(job, "elsewhere:1:abcd")  # a run on another machine
        assert elsewhere is not None
        for attempt in (rollout(tenants, job_id=job.job_id), reopen_job(tenants, job.job_id)):
            with pytest.raises(Conflict, match="is being run by elsewhere:1:abcd"):
                await attempt
        # That run stops saving progress (it hangs): once its lease lapses the job moves on.
        await tenants.catalog.store.execute(
            "UPDATE rollouts SET lease_until = 0 WHERE job_id = ?", (job.job_id,)
        )
        summary = await rollout(tenants, job_id=job.job_id)
        assert (summary.state, summary.upgraded) == ("finished", len(USERS))
        with pytest.raises(LeaseLost):  # the run that lost it cannot save any more
            await store.save(elsewhere)

        # A run of this machine whose process is gone (killed) holds nothing.
        again = await start_job(tenants, dry_run=True)
        assert await store.claim(again, f"{here}:{dead.pid}:abcd") is not None
        summary = await rollout(tenants, job_id=again.job_id)
        assert (summary.state, summary.current) == ("finished", len(USERS))

    fleet.with_tenants(go)


def _opened(path: Path) -> tuple[Catalog, ThreadedSqlite]:
    store = ThreadedSqlite(path)
    return Catalog(store), store


def test_a_catalog_from_before_leases_gets_their_columns(tmp_path: Path) -> None:
    old_ddl = (
        (SCHEMA / "1.0.0.sql")
        .read_text()
        .replace(",\n    owner TEXT,\n    lease_until REAL NOT NULL DEFAULT 0", "")
    )
    assert "owner TEXT" not in old_ddl
    path = tmp_path / "catalog.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(old_ddl)
        conn.execute(
            "INSERT INTO rollouts (job_id, target, dry_run, concurrency, state, started_at, "
            "updated_at, total) VALUES ('j1', '1.2.0', 0, 8, 'cancelled', 'a', 'a', 4)"
        )
    conn.close()

    async def go() -> Any:
        catalog, store = _opened(path)
        try:
            await catalog.open()
            job = await catalog.rollouts.get("j1")
            columns = [str(r[1]) for r in await store.fetch("PRAGMA table_info(rollouts)")]
        finally:
            await store.close()
        return job, columns

    job, columns = asyncio.run(go())
    assert columns[-2:] == ["owner", "lease_until"]
    assert job is not None
    assert (job.state, job.owner, job.leased) == ("cancelled", None, False)


def test_the_counts_health_and_metrics_read_follow_every_write(tmp_path: Path) -> None:
    """The summary and the status counts come from rows the catalog's triggers keep, not
    from counting tenants: after inserts, replacements that move a tenant to another
    status or version, deferred writes and deletes, they still equal a count of the table;
    and a catalog made before the counts existed gets them filled when it opens."""
    path = tmp_path / "catalog.db"
    with sqlite3.connect(path) as conn:
        conn.executescript((ROOT / "tests" / "catalogs" / "catalog-0.1.sql").read_text())
    conn.close()
    statuses: list[Stored] = ["provisioned", "synced", "pending", "drifted", "failed", "damaged"]
    versions = [None, "1.0.0", "1.1.0", "1.2.0"]

    def record(i: int, step: int) -> TenantRecord:
        version = versions[(i + step) % len(versions)]
        return TenantRecord(
            user_id=f"u{i:03d}",
            email=None,
            location=f"tenants/u{i:03d}.db",
            created_at="2026-01-01T00:00:00Z",
            schema_version=version,
            status="provisioned" if version is None else statuses[(i * 7 + step) % 6],
        )

    async def counted(catalog: Catalog, store: ThreadedSqlite) -> None:
        total, by_version, drifted = await catalog.summary()
        rows = await store.fetch(
            "SELECT coalesce(schema_version, 'none'), count(*) FROM tenants GROUP BY 1"
        )
        assert by_version == {str(v): int(str(n)) for v, n in rows}
        assert total == sum(by_version.values())
        [(want_drifted,)] = await store.fetch(
            "SELECT count(*) FROM tenants WHERE status = 'drifted'"
        )
        assert drifted == want_drifted
        for status in statuses:
            [(want,)] = await store.fetch(
                "SELECT count(*) FROM tenants WHERE status = ?", (status,)
            )
            assert await catalog.count(status) == want, status

    async def go() -> None:
        catalog, store = _opened(path)
        try:
            await catalog.open()
            await counted(catalog, store)  # the rows catalog-0.1.sql holds
            for i in range(60):
                await catalog.put(record(i, 0))
            await counted(catalog, store)
            for i in range(0, 60, 2):  # another status and version
                await catalog.put(record(i, 1))
            for i in range(1, 60, 3):  # deferred, as a rollout writes
                await catalog.put(record(i, 2), defer=True)
            await catalog.flush()
            await counted(catalog, store)
            for i in range(0, 60, 5):
                await catalog.delete(f"u{i:03d}")
            await counted(catalog, store)
        finally:
            await store.close()

    asyncio.run(go())


def test_a_catalog_made_by_tenantdb_0_1_opens_and_upgrades_without_loss(tmp_path: Path) -> None:
    """tests/catalogs/catalog-0.1.sql was dumped from a catalog the code before the catalog
    had a registry made: every row survives, stored statuses that could go stale (current,
    out_of_date) become synced, read back against the registry as before, and absolute
    file paths become relative to the data directory."""
    path = tmp_path / "catalog.db"
    with sqlite3.connect(path) as conn:
        conn.executescript((ROOT / "tests" / "catalogs" / "catalog-0.1.sql").read_text())
    conn.close()
    tables = ("tenants", "audit_log", "rollouts", "rollout_issues")
    before = {t: _rows(path, f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables}
    before["audit_log"] = [(*row, None) for row in before["audit_log"]]  # + statements_digest

    async def go() -> tuple[list[TenantView], list[str]]:
        catalog, store = _opened(path)
        try:
            await catalog.open()
            await catalog.open()  # a second process opening it changes nothing
            records = await catalog.tenants()
            versions = [str(r[0]) for r in await store.fetch("SELECT version FROM schema_version")]
        finally:
            await store.close()
        return [TenantView.of(r, "1.2.0") for r in records], versions

    views, versions = asyncio.run(go())
    assert versions == ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0", "1.5.0"]
    assert [(v.user_id, v.status) for v in views] == [
        ("ann", "current"),
        ("ben", "out_of_date"),
        ("cal", "drifted"),
        ("dee", "failed"),
        ("eve", "provisioned"),
    ]
    after = {t: _rows(path, f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables}
    stored = {"current": "synced", "out_of_date": "synced"}
    location_column, status_column = 2, 8
    assert (
        after["tenants"]
        == [
            (
                *row[:location_column],
                f"tenants/ab/cd/{row[0]}.db",  # relative to the data directory
                *row[location_column + 1 : status_column],
                stored.get(str(row[status_column]), row[status_column]),
                row[-1],
            )
            for row in before["tenants"]
        ]
    )
    assert {t: after[t] for t in tables[1:]} == {t: before[t] for t in tables[1:]}


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_a_sign_in_on_another_replica_leaves_the_row_current(fleet: Operator) -> None:
    settings = load_settings({}, **fleet.values)

    async def go() -> tuple[str | None, str, str | None, str]:
        async with open_runtime(settings) as a, open_runtime(settings) as b:
            staged = await a.sync(SyncRequest(user_id="alice", trigger="cli", target="1.1.0"))
            await b.sync(SyncRequest(user_id="alice", trigger="cli"))  # B: to the current version
            await a.initialize("alice", None)  # her sign-in lands on A, which cached 1.1.0
            row = await b.catalog.get("alice", fresh=True)
        assert row is not None
        current = a.registry.current.version
        return (
            staged.record.schema_version,
            status_of(staged.record.status, staged.record.schema_version, current),
            row.schema_version,
            status_of(row.status, row.schema_version, current),
        )

    assert asyncio.run(go()) == ("1.1.0", "out_of_date", "1.2.0", "current")


def test_the_summary_lists_at_most_limit_tenants_with_whole_counts(fleet: Operator) -> None:
    for user in ("bob", "carol", "dave"):
        spoil(fleet, user)

    code, out, _ = fleet.cli("fleet", "sync", "--limit", "1")

    summary = summary_of(out)
    assert code == 1
    assert [d["user_id"] for d in summary["drifted"]] == ["bob"]
    assert (summary["drifted_count"], summary["failed_count"], summary["upgraded"]) == (3, 0, 1)
