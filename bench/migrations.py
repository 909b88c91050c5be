"""Non-additive migrations: `fleet rehearse` beside `fleet sync`, and the generated rebuild
beside bare sqlite3, in the same run.

    .venv/bin/python -m bench.migrations [--quick | --smoke] [--tenants N] [--rows N]

The change: a copy of the example registry gets 1.3.0 from `generate_migration` (what
`registry new 1.3.0 --schema desired.sql --rename trades.fee=fees` writes): 1.2.0 with
trades.fee renamed to fees and trades.exit_price REAL -> NUMERIC, so trades is rebuilt
(12 steps: its views and triggers dropped and recreated, rows copied with a CAST).

1. rehearsal: N tenants (2,000) at 1.2.0 with a few rows (one built by the engine, copied,
   catalog rows written as a sync would have). `rehearse(tenants, target="1.3.0",
   sample=None)` (`fleet rehearse --all`, concurrency 4 as the CLI's default) beside
   `rollout(tenants, target="1.3.0")` (`fleet sync`, concurrency 8, the CLI's default) of
   the same fleet afterwards, both through `open_runtime`. Both are ours: the ratio is
   rehearse / sync in tenants/s. A rehearsal exports each database to a scratch copy first,
   so it was expected to be slower; but this sync backs each tenant up first too (a target
   past a migration script forces it), so both copy every database.
2. rebuild: one database at 1.2.0 with R trades (10,000), copied afresh before each run.
   ours: open, `drive(sync(db, registry, target="1.3.0"))`, close. floor: bare sqlite3:
   connect, synchronous=NORMAL, foreign_keys=OFF, `executescript` of BEGIN, the statements
   the engine's sync ran (the additive step, then the generated script), one history row,
   COMMIT, close. Ours also runs `PRAGMA foreign_key_check` before commit; the floor does not.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import shutil
import sqlite3
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench.harness import (
    HISTORY_INSERT,
    Run,
    add_common,
    history_row,
    ratio,
    remove_db,
    row_counts,
    source,
    stats,
    table,
)
from schema_registry import (
    EXAMPLE,
    HISTORY_TABLE,
    Registry,
    SqliteDatabase,
    SyncContext,
    compile_schema,
    diff,
    drive,
    generate_migration,
    introspect,
    load_registry,
    make_plan,
    parse_decisions,
    sync,
)
from service.config import Settings, load_settings
from service.logs import configure_logging
from service.rollouts.rehearse import rehearse
from service.rollouts.run import rollout
from service.wiring import open_runtime
from tests.fleetkit import build_template, copy_fleet, locations, register_fleet

OLD, NEW = "1.2.0", "1.3.0"
REHEARSE_N, SYNC_N = 4, 8  # the CLI's defaults
MANY_TRADES = """
INSERT INTO accounts (name, broker, starting_balance) VALUES ('Main', 'IBKR', 10000);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
INSERT INTO trades (account_id, symbol, side, quantity, price, exit_price, fee, notes)
SELECT 1, 'SYM' || (i % 97), CASE i % 2 WHEN 0 THEN 'buy' ELSE 'sell' END, 1 + i % 50,
       10 + i % 400, CASE WHEN i % 3 = 0 THEN NULL ELSE 11 + i % 390 END, i % 5,
       'trade number ' || i FROM n;
"""


def make_registry(run: Run, folder: Path) -> tuple[Registry, str]:
    """The example registry plus 1.3.0 with its generated migration, written as `registry
    new --schema` writes it; the registry and the script."""
    shutil.copytree(EXAMPLE, folder)
    old = load_registry(folder).current
    sql = (folder / f"{OLD}.sql").read_text(encoding="utf-8")
    sql = re.sub(r"\bfee\b", "fees", sql).replace("exit_price REAL,", "exit_price NUMERIC,")
    desired = compile_schema(sql)
    decisions = parse_decisions(old.schema, desired, renames=["trades.fee=fees"])
    migration = generate_migration(old.schema, desired, decisions)
    run.guard(migration.rebuilt == ("trades",), "registry: the generated script rebuilds trades")
    (folder / f"{NEW}.sql").write_text(sql, encoding="utf-8")
    header = f"-- {NEW} migration from {OLD}: fee renamed, exit_price NUMERIC\n"
    (folder / f"{NEW}.migrate.sql").write_text(header + migration.script, encoding="utf-8")
    with (folder / "registry.toml").open("a", encoding="utf-8") as toml:
        toml.write(
            f'\n[[versions]]\nversion = "{NEW}"\ndescription = "Fees, NUMERIC exit price"\n'
            f'created_at = "2026-04-01T00:00:00Z"\nschema = "{NEW}.sql"\n'
            f'migration = "{NEW}.migrate.sql"\noptional = ["rate_limit_violations"]\n'
        )
    registry = load_registry(folder)
    run.guard(registry.current.version == NEW, "registry: 1.3.0 loads with its migration")
    return registry, migration.script


def file_hashes(paths: list[str]) -> list[str]:
    return [hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in paths]


def same_files(run: Run, paths: list[str], before: list[str]) -> None:
    run.guard(file_hashes(paths) == before, "rehearse: no live file changed (hash)")


def contents(path: str | Path) -> tuple[dict[str, int], tuple[float, ...]]:
    """Rows per table (history aside) and trades' totals of fee(s) and exit_price."""
    counts = row_counts(path)
    counts.pop(HISTORY_TABLE)
    conn = sqlite3.connect(path)
    names = [r[1] for r in conn.execute("PRAGMA table_info(trades)")]
    fee = "fees" if "fees" in names else "fee"
    totals = conn.execute(f"SELECT total({fee}), total(exit_price) FROM trades").fetchone()
    conn.close()
    return counts, tuple(totals)


def at_target(run: Run, what: str, path: str | Path, registry: Registry, old: object) -> None:
    """The database's schema is 1.3.0's (the engine's diff is empty) and it kept every row
    (`old`: the `contents` of the database it was)."""
    db = SqliteDatabase.open(path, create=False)
    try:
        left = make_plan(diff(drive(introspect(db)), registry.current.schema))
    finally:
        db.close()
    ok = (left.steps, left.drift, left.extras) == ((), (), ())
    run.guard(ok, f"{what}: schema equals 1.3.0's (the engine's diff is empty)")
    run.guard(contents(path) == old, f"{what}: every row kept (rows per table, trades' totals)")


def bench_rehearsal(run: Run, registry: Registry, n: int, rounds: int) -> dict[str, Any]:
    template = run.work / f"fleet-{OLD}.db"
    build_template(template, registry, OLD)
    expected = contents(template)
    seconds: dict[str, list[float]] = {"rehearse": [], "sync": []}
    for k in range(rounds):
        data = run.work / f"fleet-{k}"
        values = {"data_dir": str(data), "registry": registry.path, "log_level": "warning"}
        settings = load_settings({}, **values)
        places = locations(settings.data_path, [f"u{i:05d}" for i in range(n)])
        copy_fleet(template, places)
        register_fleet(settings, places, template)
        paths = sorted(places.values())
        unchanged = partial(same_files, run, paths, file_hashes(paths))
        rehearsed, synced = asyncio.run(measure_fleet(settings, unchanged))
        took, summary = rehearsed
        run.guard(summary.passed == n and not summary.failed, "rehearse: every tenant passed")
        seconds["rehearse"].append(round(took, 3))
        took, result = synced
        ok = result.upgraded == n and not result.failed and not result.drifted
        run.guard(ok, "sync: every tenant upgraded, none failed or drifted")
        for path in (paths[0], paths[-1]):
            at_target(run, "sync", path, registry, expected)
        seconds["sync"].append(round(took, 3))
        print(f"  round {k + 1}/{rounds} done", flush=True)
        shutil.rmtree(data)
    rate = {side: round(n * rounds / sum(s), 1) for side, s in seconds.items()}
    return {
        "tenants": n,
        "rounds": rounds,
        "concurrency": {"rehearse": REHEARSE_N, "sync": SYNC_N},
        "seconds_per_round": seconds,
        "tenants_per_s": rate,
        "rehearse_share_of_sync": ratio(rate["rehearse"], rate["sync"]),
    }


async def measure_fleet(
    settings: Settings, between: Callable[[], None]
) -> tuple[tuple[float, Any], tuple[float, Any]]:
    """Seconds and summary of `fleet rehearse --all`, then (after `between`) of `fleet
    sync`, to 1.3.0, in one runtime."""
    async with open_runtime(settings) as tenants:
        start = time.perf_counter()
        rehearsed = await rehearse(tenants, target=NEW, sample=None, concurrency=REHEARSE_N)
        rehearse_s = time.perf_counter() - start
        between()
        start = time.perf_counter()
        synced = await rollout(tenants, target=NEW, concurrency=SYNC_N)
        return (rehearse_s, rehearsed), (time.perf_counter() - start, synced)


def bench_rebuild(run: Run, registry: Registry, rows: int, repeats: int) -> dict[str, Any]:
    template = run.work / f"rebuild-{OLD}.db"
    build_template(template, registry, OLD, rows=MANY_TRADES.format(rows=rows))
    expected = contents(template)
    run.guard(expected[0]["trades"] == rows, "rebuild: the template holds the trades asked for")
    work = run.work / "rebuild.db"
    statements: list[str] = []  # what the engine's sync ran, in order

    def ours() -> None:
        db = SqliteDatabase.open(work, create=False)
        result = drive(sync(db, registry, target=NEW, context=SyncContext(trigger="bench")))
        db.close()
        if result.status != "applied":
            raise RuntimeError(f"rebuild: the sync ended {result.status}")
        statements[:] = result.statements

    remove_db(work)
    shutil.copyfile(template, work)
    ours()  # a warm-up, which gives the floor the statements the engine ran
    at_target(run, "rebuild ours", work, registry, expected)
    row = history_row(registry.current, len(statements))
    script = "BEGIN;\n" + ";\n".join(s.rstrip().rstrip(";") for s in statements) + ";\n"

    def bare() -> None:
        conn = sqlite3.connect(work, isolation_level=None)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.executescript(script)
        conn.execute(HISTORY_INSERT, row)
        conn.execute("COMMIT")
        conn.close()

    samples: dict[str, list[float]] = {"ours": [], "bare": []}
    for i in range(repeats):
        for side in ("ours", "bare") if i % 2 == 0 else ("bare", "ours"):
            remove_db(work)
            shutil.copyfile(template, work)
            start = time.perf_counter()
            ours() if side == "ours" else bare()
            samples[side].append((time.perf_counter() - start) * 1000)
            at_target(run, f"rebuild {side}", work, registry, expected)
    remove_db(work)
    figures = {side: stats(values) for side, values in samples.items()}
    return {
        "trades": rows,
        "repeats": repeats,
        "database_bytes": template.stat().st_size,
        "statements": len(statements),
        "ms": figures,
        "median_ratio": ratio(figures["ours"]["median"], figures["bare"]["median"]),
    }


def report(results: dict[str, Any]) -> str:
    rows: list[list[object]] = []
    if "rehearsal" in results:
        r = results["rehearsal"]
        rate = r["tenants_per_s"]
        label = f"1. rehearse --all vs fleet sync, {r['tenants']} tenants, tenants/s"
        note = "rehearse copies each database first; this sync backs each one up first"
        rows.append([label, rate["rehearse"], rate["sync"], r["rehearse_share_of_sync"], note])
    if "rebuild" in results:
        r = results["rebuild"]
        for stat in ("median", "p90"):
            ours, bare = r["ms"]["ours"][stat], r["ms"]["bare"][stat]
            label = f"2. rebuild trades, {r['trades']} rows, {stat} ms"
            rows.append([label, ours, bare, ratio(ours, bare), "ours / bare sqlite3, in time"])
    note = (
        "1: ours = rehearse, floor = fleet sync (both ours), ratio = rehearse / sync in "
        "tenants/s (below 1: rehearsing is slower); 2: ratio = ours / bare sqlite3 in time "
        "(above 1: we are slower)"
    )
    return table(["measurement", "ours", "floor", "ratio"], rows, first=56) + "\n" + note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_common(parser)
    parser.add_argument("--only", choices=("rehearsal", "rebuild"), action="append")
    parser.add_argument("--tenants", type=int, help="tenants in the fleet (2000; quick 400)")
    parser.add_argument("--rounds", type=int, help="fresh fleets, each rehearsed and synced (2)")
    parser.add_argument("--rows", type=int, help="trades in the rebuilt database (10000)")
    parser.add_argument("--repeats", type=int, help="rebuilds per side (20; quick 6)")
    parser.add_argument("--dir", type=Path, help="where the databases go (default: temp)")
    args = parser.parse_args(argv)
    configure_logging("json", "warning")
    items = args.only or ["rehearsal", "rebuild"]
    n = args.tenants or (10 if args.smoke else 400 if args.quick else 2000)
    rounds = args.rounds or (1 if args.smoke or args.quick else 2)
    rows = args.rows or (100 if args.smoke else 10000)
    repeats = args.repeats or (1 if args.smoke else 6 if args.quick else 20)
    run = Run("migrations", args, source=source("service", "schema_registry"))
    try:
        registry, script = make_registry(run, run.work / "registry")
        run.results["migration_script"] = script
        if "rehearsal" in items:
            print(f"1. rehearsal: {n} tenants, {rounds} round(s)", flush=True)
            run.results["rehearsal"] = bench_rehearsal(run, registry, n, rounds)
        if "rebuild" in items:
            print(f"2. rebuild: {rows} trades, {repeats} repeat(s) per side", flush=True)
            run.results["rebuild"] = bench_rebuild(run, registry, rows, repeats)
        return run.finish(report(run.results))
    finally:
        shutil.rmtree(run.work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
