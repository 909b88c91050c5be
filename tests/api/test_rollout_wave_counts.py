"""A job in waves, as `GET /api/admin/rollouts/{job}` and `fleet status` show it: each
wave's counts come from SQLite counting the job's rows per wave and outcome, so the read
returns a row per wave and outcome, never one per tenant, and the counts are the ones the
run's own tally of its tenants gives."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from pathlib import Path

from service.backends.local.threaded import ThreadedSqlite
from service.catalog import Catalog
from service.rollouts.model import Job, Plan, TenantChange
from service.rollouts.waves import saved_wave_counts, tally_waves, wave_counts
from service.status import ROLLOUT_OUTCOMES

TENANTS = 2_000
PLAN = Plan(waves=(1, 10, 50, 100), max_failure_rate=0.05)


def changes_of(job_id: str) -> list[TenantChange]:
    """Waves 0 and 1 done, wave 2 part way, wave 3 not started; every outcome in each, and
    a few rows of no wave (the tenants a plain run of the job did before it had a plan)."""
    outcomes = itertools.cycle(ROLLOUT_OUTCOMES)
    done = [(0, 20), (1, 180), (2, 450)]
    changes = [
        TenantChange(user_id=f"{job_id}-w{wave}-{n:05d}", outcome=next(outcomes), wave=wave)
        for wave, count in done
        for n in range(count)
    ]
    changes += [TenantChange(user_id=f"plain-{n}", outcome="upgraded") for n in range(7)]
    return changes


async def _read(tmp_path: Path) -> None:
    store = ThreadedSqlite(tmp_path / "catalog.db")
    try:
        catalog = Catalog(store)
        await catalog.open()
        rollouts = catalog.rollouts
        stamp = "2026-11-28T00:00:00Z"
        jobs = [
            Job(
                job_id=job_id,
                target="1.2.0",
                dry_run=False,
                concurrency=4,
                actor="ops",
                state="running",
                started_at=stamp,
                updated_at=stamp,
                total=TENANTS,
            )
            for job_id in ("job-a", "job-b")  # job-b's rows must not count for job-a
        ]
        for job in jobs:
            await rollouts.create(job)
            await rollouts.create_plan(job.job_id, PLAN)
            claimed = await rollouts.claim(job, "test-run")
            assert claimed is not None
            await rollouts.record_changes(claimed, changes_of(job.job_id))
        job = jobs[0]
        changes = [c for c in changes_of("job-a") if c.wave is not None]

        statements: list[str] = []
        await store.run(lambda conn: conn.set_trace_callback(statements.append))
        shown = await saved_wave_counts(rollouts, job, await rollouts.plan(job.job_id))
        await store.run(lambda conn: conn.set_trace_callback(None))

        assert shown == wave_counts(job, PLAN, tally_waves(changes))
        assert [(w.tenants, w.done, w.state) for w in shown] == [
            (20, 20, "halted"),  # 2 in 5 failed or drifted, above 5 %
            (180, 180, "halted"),
            (800, 450, "running"),
            (1000, 0, "pending"),
        ]
        assert [(w.upgraded, w.failed, w.drifted) for w in shown][:2] == [(4, 4, 4), (36, 36, 36)]
        [read] = [s for s in statements if "rollout_tenants" in s]
        assert "GROUP BY wave, outcome" in read

        def explain(conn: sqlite3.Connection) -> tuple[list[str], int]:
            plan = [str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {read}")]
            return plan, len(conn.execute(read).fetchall())

        query_plan, rows = await store.run(explain)
        assert query_plan[0] == "SEARCH rollout_tenants USING PRIMARY KEY (job_id=?)"
        assert not any(step.startswith("SCAN") for step in query_plan), query_plan
        assert rows == 3 * len(ROLLOUT_OUTCOMES)  # a row per wave and outcome seen
    finally:
        await store.close()


def test_wave_counts_are_counted_by_sqlite_per_wave_and_outcome(tmp_path: Path) -> None:
    asyncio.run(_read(tmp_path))
