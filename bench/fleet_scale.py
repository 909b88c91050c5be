"""Fleet scale: what a tenant costs as the fleet grows, beside bare sqlite3, in the same run.

    .venv/bin/python -m bench.fleet_scale [--quick | --smoke] [--tenants N ...] [--dir PATH]

The contract: cost that must not grow with the fleet. Bare SQLite's cost per database does
not depend on N; ours must not either: at 100,000 tenants, provisioning and rollout cost per
tenant at most 10% above their 2,000 figures, and every admin listing under 5 ms, each
using an index. Registry: the example plus two additive versions (1.3.0, 1.4.0: a table
and its index each); local backend; 2 processes. For each N (default 2,000 and 20,000;
`--tenants 100000` needs about 14 GB of disk and 20 minutes), in a fresh directory:

1. provision: N new users through the service path in 2 spawned processes, each opening
   the runtime (`open_runtime`) and calling `TenantService.initialize` for its share (the
   registry up to 1.3.0). floor: bare sqlite3 in 2 processes making the same files (the
   same folders, WAL, synchronous=NORMAL, the tables ours made and one history row).
2. rollout to 1.4.0: `rollout(..., syncer=ProcessSyncer(settings, 2))` with concurrency 8,
   as `tenantdb fleet sync --processes 2` runs it. floor: bare sqlite3 in 2 processes (open,
   synchronous=NORMAL, BEGIN IMMEDIATE, the plan's statements, one history row, COMMIT,
   close).
3. every admin listing (tenants filtered by version, status and both, paged; the audit
   trail; rollouts; the counts health and metrics read), against the N-tenant catalog with a
   few tenants in each other state: median and p99 of 50 calls, target < 5 ms. Guards: its
   `EXPLAIN QUERY PLAN` scans no table with a row per tenant, and one call runs fewer than
   200,000 SQLite VM instructions (counted, so flat across sizes whatever the load).
4. catalog size per tenant: catalog.db after a checkpoint (no WAL left), over N.

Each side does items 1 and 2, then its tenant files go (the listings read the catalog
only): the disk holds one fleet at a time, about 136 KB a tenant (14 GB at 100,000, and
the catalog). Which side goes first alternates from size to size.

Times include closing what each side opened: the floor closes every file as it goes; ours
keeps up to TENANTDB_CONNECTION_CACHE (1,024) files open per process, so its clock runs
until every process has closed its runtime (a fleet of 2,000 in 2 processes would
otherwise leave every close, WAL checkpoint and fsync included, outside the clock).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import multiprocessing
import os
import resource
import shutil
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

import msgspec

from bench.harness import (
    HISTORY_INSERT,
    Run,
    add_common,
    example_plus,
    history_row,
    rotated,
    source,
    table,
)
from bench.servers import cpu_seconds
from schema_registry import Registry, diff, load_registry, make_plan
from service.backends.local.threaded import ThreadedSqlite
from service.catalog import Catalog
from service.config import Settings, load_settings
from service.logs import configure_logging
from service.rollouts.processes import ProcessSyncer
from service.rollouts.run import rollout
from service.status import Stored
from service.wiring import open_runtime
from tests.fleetkit import build_template, locations

FROM, TO = "1.3.0", "1.4.0"  # provisioned at the first added version, rolled out to the second
CONCURRENCY: Final = 8  # `fleet sync`'s default --concurrency (it takes max with --processes)
COST_TARGET: Final = 1.10  # cost per tenant at N over its figure at the smallest N
LISTING_TARGET_MS: Final = 5.0
FEW: Final = 5  # tenants put in each other state for the listings filtered to few rows
AHEAD: Final = "9.0.0"  # a version past the registry's (a rolled-back service)
# Tables with a row per tenant (or more): a listing must not scan them. `rollouts` has a row
# per job and is walked by its start-time index, newest first, up to the page size.
FLEET_TABLES: Final = ("tenants", "audit_log", "rollout_tenants", "rollout_issues")
# SQLite virtual machine instructions per listing call, counted STEP at a time: a page of
# 100 rows takes a few thousand at any N; reading every row of 20,000 takes far more.
STEP: Final = 10
STEPS_LIMIT: Final = 200_000
FLAT_FROM: Final = 400  # fleets from this size fill every page the listings read


# --------------------------------------------------------------------------- registry


def make_registries(run: Run, folder: Path) -> tuple[Path, Path]:
    """The example registry plus 1.3.0 and 1.4.0 (a table and its index each), and one
    that stops at 1.3.0 (the release the tenants are provisioned by)."""
    full = example_plus(folder / "registry", 2, "scale_notes")
    older = example_plus(folder / "registry-1.3.0", 1, "scale_notes")
    ok = load_registry(full).current.version == TO and load_registry(older).current.version == FROM
    run.guard(ok, "registry: 1.3.0 and 1.4.0 load, the older copy stops at 1.3.0")
    added = load_registry(full).versions[3:]
    run.guard(not any(v.migration for v in added), "registry: the added versions only add")
    return older, full


def user_ids(n: int) -> list[str]:
    """N user ids in no particular order, as an identity provider's subjects come: the
    catalog's B-trees then grow by random inserts, not appends."""
    return [f"u{hashlib.sha256(f'{n}-{i}'.encode()).hexdigest()[:20]}" for i in range(n)]


# --------------------------------------------------------------------------- workers

# Each worker process is spawned (the parent has threads), opens what its side needs, says
# ready, waits for the go and reports (items done, start, the last item done, end, CPU
# seconds): perf_counter is CLOCK_MONOTONIC, the same clock in every process.
Report = tuple[int, float, float, float, float]


def _provision_ours(settings: Settings, users: list[str], ready: Connection) -> None:
    """The service path of a first sign-in, for this process's share of the users; the
    clock stops once its runtime (and every cached tenant connection) is closed."""
    configure_logging(settings.log_format, settings.log_level)

    async def go() -> Report:
        async with open_runtime(settings) as tenants:
            ready.send("ready")
            ready.recv()
            cpu, start = time.process_time(), time.perf_counter()
            made = 0
            for user in users:
                outcome = await tenants.initialize(user, f"{user}@example.com")
                made += outcome.created and outcome.synced
            last = time.perf_counter()
        return made, start, last, time.perf_counter(), time.process_time() - cpu

    ready.send(asyncio.run(go()))


def _bare(job: tuple[str, list[str], list[str], tuple[object, ...]], ready: Connection) -> None:
    """The floor: "provision" creates each file (its folder too) with the statements and
    one history row; "upgrade" applies the statements to each and adds one history row."""
    kind, paths, statements, row = job
    ready.send("ready")
    ready.recv()
    cpu, start = time.process_time(), time.perf_counter()
    for path in paths:
        if kind == "provision":
            os.makedirs(os.path.dirname(path), exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None)
        if kind == "provision":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        for statement in statements:
            conn.execute(statement)
        conn.execute(HISTORY_INSERT, row)
        conn.execute("COMMIT")
        conn.close()
    end = time.perf_counter()
    ready.send((len(paths), start, end, end, time.process_time() - cpu))


def in_processes(
    target: Callable[..., None], shares: Sequence[tuple[object, ...]]
) -> dict[str, float]:
    """Run `target(*share, pipe)` in one spawned process per share, started before the
    clock; wall seconds from the go to the last end, CPU seconds summed, items done."""
    spawn = multiprocessing.get_context("spawn")
    pipes, procs = [], []
    for share in shares:
        parent, child = spawn.Pipe()
        proc = spawn.Process(target=target, args=(*share, child), daemon=True)
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    try:
        for pipe in pipes:
            if pipe.recv() != "ready":
                raise RuntimeError("a worker did not start")
        go = time.perf_counter()
        for pipe in pipes:
            pipe.send("go")
        reports: list[Report] = [pipe.recv() for pipe in pipes]
    finally:
        for proc in procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.kill()
    return {
        "done": sum(r[0] for r in reports),
        "seconds": round(max(r[3] for r in reports) - go, 3),
        "seconds_to_last_tenant": round(max(r[2] for r in reports) - go, 3),
        "cpu_seconds": round(sum(r[4] for r in reports), 3),
    }


def rollout_ours(run: Run, settings: Settings, n: int, processes: int) -> dict[str, float]:
    """`fleet sync --processes P` as the CLI runs it, its workers started before the clock;
    the clock stops once they have closed their runtimes and exited. CPU: the parent's and
    the workers' (theirs from the kernel's count of reaped children, less their start)."""

    async def go() -> tuple[dict[str, float], Any]:
        async with open_runtime(settings, inline=True) as tenants:  # as the CLI opens it
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            syncer = ProcessSyncer(settings, processes)
            try:
                await syncer.warm()
                started_cpu = sum(cpu_seconds(pid) for pid in syncer.pool._processes)
                cpu, start = time.process_time(), time.perf_counter()
                summary = await rollout(
                    tenants, concurrency=max(CONCURRENCY, processes), syncer=syncer, actor="bench"
                )
                synced = time.perf_counter()
            finally:
                await syncer.close()
            end = time.perf_counter()
            parent = time.process_time() - cpu
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        children = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        return {
            "done": summary.upgraded,
            "seconds": round(end - start, 3),
            "seconds_to_last_tenant": round(synced - start, 3),
            "cpu_seconds": round(parent + children - started_cpu, 3),
        }, summary

    figures, summary = asyncio.run(go())
    ok = summary.upgraded == n and not summary.failed and not summary.drifted
    run.guard(ok, "rollout: every tenant upgraded, none failed or drifted")
    return figures


# --------------------------------------------------------------------------- files


def tables_of(path: str) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE sql IS NOT NULL")}
    finally:
        conn.close()


def history_of(path: str) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY id")]
    finally:
        conn.close()


def disk_bytes(folder: Path) -> int:
    """Bytes allocated on disk under a folder (what --tenants 100000 needs, per tenant)."""
    total = 0
    for top, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(top, name)).st_blocks * 512
    return total


def provision_ddl(template: Path) -> list[str]:
    """The statements that make what our provisioning makes (the engine's history table
    included), in the order SQLite recorded them."""
    conn = sqlite3.connect(template)
    try:
        return [
            str(sql)
            for name, sql in conn.execute("SELECT name, sql FROM sqlite_schema ORDER BY rowid")
            if sql and not str(name).startswith("sqlite_")
        ]
    finally:
        conn.close()


# --------------------------------------------------------------------------- one size


def per_tenant(figures: dict[str, float], n: int, processes: int) -> None:
    """DBs/s, and per tenant: wall ms per process (processes x wall / N) and CPU ms."""
    figures["dbs_per_s"] = round(n / figures["seconds"], 1)
    figures["dbs_per_s_to_last_tenant"] = round(n / figures["seconds_to_last_tenant"], 1)
    figures["ms_per_tenant"] = round(processes * figures["seconds"] * 1000 / n, 4)
    figures["cpu_ms_per_tenant"] = round(figures["cpu_seconds"] * 1000 / n, 4)


class Fleet:
    """One size: its folders, settings, users, and the work each side does on them."""

    def __init__(self, run: Run, n: int, registries: tuple[Path, Path], processes: int):
        older, full = registries
        self.run, self.n, self.processes = run, n, processes
        self.where = run.work / f"n{n}"
        self.data, self.bare_root = self.where / "data", self.where / "bare"
        values = {"data_dir": str(self.data), "log_level": "warning"}
        self.provisioning = load_settings({}, registry=str(older), **values)
        self.settings = load_settings({}, registry=str(full), **values)
        self.registry = load_registry(full)
        v_from, v_to = self.registry.get(FROM), self.registry.get(TO)
        assert v_from is not None
        assert v_to is not None
        self.where.mkdir()
        template = self.where / "template.db"
        build_template(template, load_registry(older), FROM, rows="")
        ddl = provision_ddl(template)
        self.tables = tables_of(str(template))
        upgrade = make_plan(diff(v_from.schema, v_to.schema)).statements()
        self.floor = {
            "provision": (ddl, history_row(v_from, len(ddl))),
            "upgrade": (upgrade, history_row(v_to, len(upgrade))),
        }
        self.users = user_ids(n)
        self.bare_paths = list(locations(self.bare_root, self.users).values())
        self.out: dict[str, Any] = {"tenants": n, "processes": processes}
        self.shares = range(processes)

    def side(self, side: str) -> None:
        """Items 1 and 2 for one side, checked; then its tenant files go (the listings read
        the catalog only), so the disk holds one fleet at a time."""
        run, n, out = self.run, self.n, self.out
        if side == "ours":
            share = [(self.provisioning, self.users[w :: self.processes]) for w in self.shares]
            out["provision_ours"] = in_processes(_provision_ours, share)
            places = locations(self.data, self.users)
            files, root = [places[self.users[0]], places[self.users[-1]]], self.data / "tenants"
        else:
            out["provision_bare"] = in_processes(_bare, self._bare_jobs("provision"))
            files, root = [self.bare_paths[0], self.bare_paths[-1]], self.bare_root
        print(f"  {n}: provision, {side}: {out[f'provision_{side}']['seconds']} s", flush=True)
        run.guard(out[f"provision_{side}"]["done"] == n, "provision: every tenant made")
        ok = all(history_of(p) == [FROM] and tables_of(p) == self.tables for p in files)
        run.guard(ok, "provision: sampled files have 1.3.0's tables and history row")
        out.setdefault("disk_bytes_per_tenant", {})[side] = disk_bytes(root) // n
        if side == "ours":
            out["rollout_ours"] = rollout_ours(run, self.settings, n, self.processes)
        else:
            out["rollout_bare"] = in_processes(_bare, self._bare_jobs("upgrade"))
        print(f"  {n}: rollout, {side}: {out[f'rollout_{side}']['seconds']} s", flush=True)
        run.guard(out[f"rollout_{side}"]["done"] == n, "rollout: every tenant upgraded")
        for path in files:
            ok = history_of(path) == [FROM, TO] and "scale_notes_2" in tables_of(path)
            run.guard(ok, "rollout: sampled files are at 1.4.0 with its tables")
        shutil.rmtree(root)

    def _bare_jobs(self, kind: str) -> list[tuple[object, ...]]:
        statements, row = self.floor[kind]
        paths, step = self.bare_paths, self.processes
        return [((kind, paths[w::step], statements, row),) for w in self.shares]


def bench_size(
    run: Run, n: int, registries: tuple[Path, Path], processes: int, *, calls: int, flip: bool
) -> dict[str, Any]:
    """Items 1 to 4 at one size, in a fresh folder removed afterwards."""
    fleet = Fleet(run, n, registries, processes)
    for side in ["bare", "ours"] if flip else ["ours", "bare"]:  # the next size flips it
        fleet.side(side)
    out = fleet.out
    for key in ("provision_ours", "provision_bare", "rollout_ours", "rollout_bare"):
        per_tenant(out[key], n, processes)
    out["listings"], out["catalog"] = asyncio.run(
        listings(run, fleet.settings, fleet.registry, fleet.users, calls)
    )
    shutil.rmtree(fleet.where)
    return out


# --------------------------------------------------------------------------- listings


async def others(catalog: Catalog, users: list[str], few: int) -> dict[str, list[str]]:
    """`few` tenants in each state other than current (catalog rows only: the listings read
    nothing else), so that filters to few rows have rows to find."""
    states: dict[str, tuple[Stored, str | None]] = {
        "provisioned": ("provisioned", None),
        "pending": ("pending", FROM),
        "behind": ("synced", FROM),
        "ahead": ("synced", AHEAD),
        "drifted": ("drifted", FROM),
        "failed": ("failed", TO),
        "damaged": ("damaged", TO),
    }
    step = max(1, len(users) // (len(states) * few + 1))
    picks = iter(users[step::step])
    chosen: dict[str, list[str]] = {}
    for name, (status, version) in states.items():
        chosen[name] = [next(picks) for _ in range(few)]
        for user in chosen[name]:
            record = await catalog.get(user, fresh=True)
            assert record is not None
            await catalog.put(
                msgspec.structs.replace(record, status=status, schema_version=version)
            )
    return chosen


Call = Callable[[], Awaitable[Any]]


async def listings(
    run: Run, settings: Settings, registry: Registry, users: list[str], calls: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Items 3 and 4, in one runtime on the N-tenant catalog."""
    n = len(users)
    few = max(1, min(FEW, n // 40))
    async with open_runtime(settings) as tenants:
        catalog, store = tenants.catalog, tenants.catalog.store
        assert isinstance(store, ThreadedSqlite)
        chosen = await others(catalog, users, few)
        versions = [v.version for v in registry.versions]
        middle = sorted(users)[n // 2]
        newest = await catalog.audit(limit=1)
        mid_id = (newest[0].id or 2) // 2
        [job] = await catalog.rollouts.jobs(limit=1)

        def tenants_page(**filters: Any) -> Call:
            return lambda: catalog.tenants(versions=versions, **filters)

        async def rollout_detail() -> object:  # what GET /api/admin/rollouts/{job} reads
            jobs = catalog.rollouts
            await jobs.get(job.job_id)
            await jobs.plan(job.job_id)
            return await jobs.issues(job.job_id)

        page = min(100, n)
        # name -> (the call, the rows it must return; None: checked below)
        checks: dict[str, tuple[Call, int | None]] = {
            "tenants: first page": (tenants_page(), page),
            "tenants: page after the middle": (
                tenants_page(after=middle),
                min(100, n - n // 2 - 1),
            ),
            f"tenants: version={TO} (most)": (tenants_page(version=TO), min(100, n - 5 * few)),
            f"tenants: version={FROM} (few)": (tenants_page(version=FROM), 3 * few),
            "tenants: version=none (few)": (tenants_page(version="none"), few),
            "tenants: status=current (most)": (
                tenants_page(status="current"),
                min(100, n - 7 * few),
            ),
            "tenants: status=out_of_date (few)": (tenants_page(status="out_of_date"), 2 * few),
            "tenants: status=ahead (few)": (tenants_page(status="ahead"), few),
            **{
                f"tenants: status={s} (few)": (tenants_page(status=s), few)
                for s in ("provisioned", "drifted", "failed", "damaged")
            },
            f"tenants: version={FROM}, status=out_of_date (few)": (
                tenants_page(version=FROM, status="out_of_date"),
                2 * few,
            ),
            f"tenants: version={FROM}, status=drifted (few)": (
                tenants_page(version=FROM, status="drifted"),
                few,
            ),
            "audit: newest page": (catalog.audit, min(100, 2 * n)),
            "audit: page before the middle": (
                lambda: catalog.audit(before=mid_id),
                min(100, mid_id - 1),
            ),
            "audit: one tenant (a tenant's detail too)": (
                lambda: catalog.audit(user_id=chosen["drifted"][0]),
                2,  # its sign-in and the rollout
            ),
            "rollouts: list": (catalog.rollouts.jobs, 1),
            "rollouts: one job (row, plan, issues)": (rollout_detail, 0),
            "summary (health, metrics, a rollout's start)": (catalog.summary, None),
            "count damaged (health, metrics)": (lambda: catalog.count("damaged"), None),
        }
        results: dict[str, Any] = {}
        for name, (call, want) in checks.items():
            got = await call()
            if want is not None:
                rows = len(got)
                run.guard(rows == want, f"listings: {name} returned its rows")
                results[name] = {"rows": rows}
        total, by_version, drifted = await catalog.summary()
        counts = {TO: n - 5 * few, FROM: 3 * few, AHEAD: few, "none": few}
        ok = (total, by_version, drifted) == (n, counts, few)
        run.guard(ok, "listings: the summary counts every tenant by version, and the drifted")
        run.guard(await catalog.count("damaged") == few, "listings: count finds the damaged")
        plans = await query_plans(store, {name: call for name, (call, _) in checks.items()})
        timed = await rotated({name: _ignore(call) for name, (call, _) in checks.items()}, calls)
        for name, figures in timed.items():
            steps, plan = plans[name]
            scans = [
                line
                for _sql, lines in plan
                for line in lines
                if any(line.startswith(f"SCAN {t}") for t in FLEET_TABLES)
            ]
            results.setdefault(name, {}).update(ms=figures, vm_steps=steps, plan=plan, scans=scans)
            run.guard(plan, "listings: each ran SQL we could explain")
            if scans or steps > STEPS_LIMIT:
                print(f"  {name}: {steps} steps, {plan}", flush=True)
            run.guard(not scans, "listings: no plan scans a table that grows with the fleet")
            run.guard(steps <= STEPS_LIMIT, f"listings: each ran under {STEPS_LIMIT:,} steps")
        size = await catalog_size(store, n)
    return results, size


def _ignore(call: Callable[[], Awaitable[Any]]) -> Callable[[int], Awaitable[object]]:
    async def timed(_i: int) -> object:
        return await call()

    return timed


async def query_plans(
    store: ThreadedSqlite, calls: dict[str, Callable[[], Awaitable[Any]]]
) -> dict[str, tuple[int, list[tuple[str, list[str]]]]]:
    """Each call once with SQLite's trace on the catalog's own connection: the virtual
    machine instructions it ran (a count that does not depend on the machine's load: it
    grows with the fleet when a listing reads more of it), the statements (parameters
    bound), and `EXPLAIN QUERY PLAN` of each read."""
    plans: dict[str, tuple[int, list[tuple[str, list[str]]]]] = {}
    for name, call in calls.items():
        seen: list[str] = []
        ticks = [0]

        def trace(
            conn: sqlite3.Connection, sink: list[str] = seen, count: list[int] = ticks
        ) -> None:
            def tick() -> int:
                count[0] += 1
                return 0  # go on

            conn.set_trace_callback(sink.append)
            conn.set_progress_handler(tick, STEP)

        def untrace(conn: sqlite3.Connection) -> None:
            conn.set_trace_callback(None)
            conn.set_progress_handler(None, STEP)

        await store.run(trace)
        try:
            await call()
        finally:
            await store.run(untrace)
        reads = [s for s in seen if s.lstrip().upper().startswith(("SELECT", "WITH"))]

        def explain(conn: sqlite3.Connection, sqls: list[str] = reads) -> list[list[str]]:
            return [[str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {s}")] for s in sqls]

        plans[name] = (ticks[0] * STEP, list(zip(reads, await store.run(explain), strict=True)))
    return plans


async def catalog_size(store: ThreadedSqlite, n: int) -> dict[str, Any]:
    """catalog.db's bytes per tenant once its WAL is checkpointed away, and by table."""

    def measure(conn: sqlite3.Connection) -> dict[str, Any]:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        by_table: dict[str, int] = {}
        with contextlib.suppress(sqlite3.OperationalError):  # dbstat is not always built in
            for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
                by_table[str(name)] = int(size)
        return {"by_table_bytes_per_tenant": {k: round(v / n, 1) for k, v in by_table.items()}}

    out = await store.run(measure)
    files = [store.path, Path(f"{store.path}-wal")]
    total = sum(p.stat().st_size for p in files if p.exists())
    return {"bytes": total, "bytes_per_tenant": round(total / n, 1), **out}


# --------------------------------------------------------------------------- report


def scaling(sizes: dict[str, Any]) -> dict[str, Any]:
    """Cost per tenant at each N over its figure at the smallest N (wall and CPU), and
    whether every listing's median stayed under the target."""
    first = sizes[min(sizes, key=int)]
    out: dict[str, Any] = {}
    for n, r in sizes.items():
        ratios = {}
        for item in ("provision_ours", "provision_bare", "rollout_ours", "rollout_bare"):
            for key in ("ms_per_tenant", "cpu_ms_per_tenant"):
                ratios[f"{item}.{key}"] = round(r[item][key] / first[item][key], 3)
            key = "dbs_per_s_to_last_tenant"  # cost per tenant: the inverse
            ratios[f"{item}.ms_per_tenant_to_last"] = round(first[item][key] / r[item][key], 3)
        slowest = max(r["listings"].values(), key=lambda e: e["ms"]["median"])
        out[n] = {
            "cost_vs_smallest": ratios,
            **{
                f"{item}_met_{how}": ratios[f"{item}_ours.{key}"] <= COST_TARGET
                for item in ("provision", "rollout")
                for how, key in (("wall", "ms_per_tenant"), ("cpu", "cpu_ms_per_tenant"))
            },
            "slowest_listing_median_ms": slowest["ms"]["median"],
            "listings_met": slowest["ms"]["median"] < LISTING_TARGET_MS,
        }
    return out


def flat_steps(run: Run, sizes: dict[str, Any]) -> None:
    """Guard: at sizes whose pages are full, each listing runs about as many VM
    instructions at every size as at the smallest (a scan would grow with N)."""
    if len(sizes) < 2 or min(map(int, sizes)) < FLAT_FROM:
        return
    first = sizes[min(sizes, key=int)]["listings"]
    for r in sizes.values():
        for name, entry in r["listings"].items():
            flat = entry["vm_steps"] <= 1.5 * first[name]["vm_steps"] + 1000
            run.guard(flat, "listings: VM instructions per call flat across sizes")


def verdict(growth: float, smallest: str) -> str:
    return f"<= {COST_TARGET}x at {smallest}: {'ok' if growth <= COST_TARGET else 'MISSED'}"


def report(results: dict[str, Any]) -> str:
    sizes, scale = results["sizes"], results["scaling"]
    smallest = f"{int(min(sizes, key=int)):,}"
    rows: list[list[object]] = []
    for n, r in sizes.items():
        s = scale[n]["cost_vs_smallest"]
        for item, label in (("provision", "provision"), ("rollout", f"fleet sync to {TO}")):
            ours, bare = r[f"{item}_ours"], r[f"{item}_bare"]
            rows.append(
                [
                    f"{int(n):,}: {label}, DBs/s",
                    ours["dbs_per_s"],
                    bare["dbs_per_s"],
                    round(bare["dbs_per_s"] / ours["dbs_per_s"], 2),
                    s[f"{item}_ours.ms_per_tenant"],
                    s[f"{item}_bare.ms_per_tenant"],
                    verdict(s[f"{item}_ours.ms_per_tenant"], smallest),
                ]
            )
            rows.append(
                [
                    f"{int(n):,}:   CPU ms per tenant",
                    ours["cpu_ms_per_tenant"],
                    bare["cpu_ms_per_tenant"],
                    round(ours["cpu_ms_per_tenant"] / bare["cpu_ms_per_tenant"], 2),
                    s[f"{item}_ours.cpu_ms_per_tenant"],
                    s[f"{item}_bare.cpu_ms_per_tenant"],
                    verdict(s[f"{item}_ours.cpu_ms_per_tenant"], smallest),
                ]
            )
            rows.append(
                [
                    f"{int(n):,}:   to the last tenant, DBs/s",
                    ours["dbs_per_s_to_last_tenant"],
                    "",
                    "",
                    s[f"{item}_ours.ms_per_tenant_to_last"],
                    "",
                    "(info: the clock stopped before the runtimes closed)",
                ]
            )
        cat = r["catalog"]
        rows.append(
            [f"{int(n):,}: catalog bytes per tenant", cat["bytes_per_tenant"], "", "", "", ""]
        )
        disk = r["disk_bytes_per_tenant"]
        rows.append(
            [f"{int(n):,}: tenant file, disk bytes", disk["ours"], disk["bare"], "", "", ""]
        )
    head = ["measurement", "ours", "floor", "ours/floor", "ours vs N0", "floor vs N0"]
    first = table(head, rows, first=40)
    names = list(next(iter(sizes.values()))["listings"])
    listing_rows: list[list[object]] = []
    for name in names:
        row: list[object] = [name]
        worst = 0.0
        for r in sizes.values():
            entry = r["listings"][name]
            row += [entry["ms"]["median"], entry["ms"]["p99"], f"{entry['vm_steps'] / 1000:.1f}"]
            worst = max(worst, entry["ms"]["median"])
        row.append(f"< {LISTING_TARGET_MS:g} ms: {'ok' if worst < LISTING_TARGET_MS else 'MISSED'}")
        listing_rows.append(row)
    lhead = ["listing"] + [f"{h} {int(n):,}" for n in sizes for h in ("p50 ms", "p99 ms", "kVM")]
    second = table(lhead, listing_rows, first=52)
    note = (
        "ours vs N0: cost per tenant over its figure at the smallest N (wall: processes x "
        "seconds / N; CPU: the processes' CPU, the steadier figure on a shared machine; a "
        "floor that grew too says the machine slowed); ours/floor: in time. Listings: median "
        "and p99 of the calls in ms, and thousands of SQLite VM instructions one call ran (kVM: "
        "flat when a listing reads no more of a bigger fleet); every plan is guarded (no "
        "scan of a table with a row per tenant)."
    )
    return f"{first}\n\n{second}\n{note}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_common(parser)
    parser.add_argument(
        "--tenants",
        type=int,
        action="append",
        help="fleet sizes, repeatable (2000 and 20000; quick 500 and 5000; 100000: ~15 GB)",
    )
    parser.add_argument("--processes", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--calls", type=int, help="calls per listing (50; smoke 1)")
    parser.add_argument("--dir", type=Path, help="where the fleets go (default: temp)")
    args = parser.parse_args(argv)
    configure_logging("json", "warning")
    default = [20, 40] if args.smoke else [500, 5000] if args.quick else [2000, 20000]
    sizes = sorted(set(args.tenants or default))
    calls = args.calls or (1 if args.smoke else 50)
    run = Run("fleet_scale", args, source=source("service", "schema_registry"))
    try:
        registries = make_registries(run, run.work)
        run.results["sizes"] = {}
        for k, n in enumerate(sizes):
            print(f"{n} tenants, {args.processes} processes ...", flush=True)
            figures = bench_size(run, n, registries, args.processes, calls=calls, flip=k % 2 == 0)
            run.results["sizes"][str(n)] = figures
        run.results["scaling"] = scaling(run.results["sizes"])
        flat_steps(run, run.results["sizes"])
        return run.finish(report(run.results))
    finally:
        shutil.rmtree(run.work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
