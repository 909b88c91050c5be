"""The schema sync engine beside bare sqlite3 doing the same work, in the same run.

    .venv/bin/python -m bench.engine [--quick | --smoke] [--only ITEM] [--databases N]

1. check: an up-to-date check of a 27-table seed-000 database (WAL), open and close
   included, with the catalog's stamp (target < 150 us median) and without; solo and held.
2. provision: seed 000 on a new file (target 1.3x the bare executescript).
3. upgrade: example 1.0.0 -> 1.1.0 on N databases, sequential and in worker processes.

Each beside bare sqlite3 doing the same work (see bench/README.md), interleaved so drift
hits ours and the floor alike; GC stays on, as in the service.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from bench import harness as h
from schema_registry import (
    EXAMPLE,
    HISTORY_DDL,
    Registry,
    SqliteDatabase,
    Stamp,
    Version,
    check,
    connect,
    drive,
    load_registry,
    sync,
)

CHECK_TARGET_US = 150.0
PROVISION_TARGET = 1.3
# DBs/s of bare sqlite3, as measured when the engine's targets were set (cited, not run).
ISSUE_FLOOR = {"sequential": 570.0, "parallel": 930.0}
FEW_ROWS = """
INSERT INTO accounts (name, broker, starting_balance)
VALUES ('Main', 'IBKR', 10000), ('Paper', NULL, 0);
INSERT INTO trades (account_id, symbol, side, quantity, price, exit_price, fee)
VALUES (1, 'AAPL', 'buy', 10, 190.5, 195.0, 1), (1, 'MSFT', 'sell', 5, 410, NULL, 1),
       (2, 'NVDA', 'buy', 2, 880, 905.5, 0), (1, 'TSLA', 'buy', 3, 170, NULL, 1);
INSERT INTO tags (name, color) VALUES ('breakout', 'green'), ('mistake', 'red');
INSERT INTO trade_tags (trade_id, tag_id) VALUES (1, 1), (2, 2), (3, 1);
INSERT INTO journal_entries (account_id, trade_id, title, body) VALUES (1, 1, 'Good', 'Waited.');
INSERT INTO settings (key, value) VALUES ('theme', 'dark'), ('currency', 'USD');
"""


def synced(path: Path, registry: Registry, target: str | None = None, rows: str = "") -> Stamp:
    """A new database synced by the engine (a fixture, untimed), with `rows` added."""
    h.remove_db(path)
    db = SqliteDatabase.open(path)
    result = drive(sync(db, registry, target=target))
    db.conn.executescript(rows)
    db.close()
    if result.stamp is None:
        raise RuntimeError(f"fixture sync of {path} ended {result.status}")
    return result.stamp


def is_current(path: Path | str, version: Version, known: Stamp | None = None) -> bool:
    db = SqliteDatabase.open(path, create=False)
    try:
        return drive(check(db, version, known=known))[0]
    finally:
        db.close()


# --------------------------------------------------------------------------- 1. check


def bench_check(run: h.Run, seed: Registry, n: int) -> dict[str, Any]:
    path, delete_path = run.work / "check.db", run.work / "check-delete.db"
    stamp = synced(path, seed)
    shutil.copyfile(path, delete_path)  # the same schema in rollback-journal mode
    sqlite3.connect(delete_path).execute("PRAGMA journal_mode = DELETE").connection.close()
    target, spath = seed.current, str(path)

    def floor(path: str) -> None:
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA schema_version").fetchone()
        conn.close()

    def ours(known: Stamp | None, pooled: SqliteDatabase | None = None) -> None:
        db = pooled or SqliteDatabase.open(spath)
        ok = drive(check(db, target, known=known))[0]
        if pooled is None:
            db.close()
        run.guard(ok, "check: every check said up to date")

    variants: dict[str, Any] = {
        "floor": lambda _: floor(spath),
        "known": lambda _: ours(stamp),
        "unknown": lambda _: ours(None),
        "open_only": lambda _: connect(spath).close(),  # connect() and its PRAGMAs alone
        "floor_delete_mode": lambda _: floor(str(delete_path)),
    }

    def measure() -> dict[str, Any]:
        for fn in variants.values():  # page cache, code paths, statement caches
            for i in range(min(n, 50)):
                fn(i)
        rows = h.interleaved(variants, n, block=100)
        fm = rows["floor"]["median_us"]
        return {
            "rows": rows,
            "ratio_known": h.ratio(rows["known"]["median_us"], fm),
            "ratio_unknown": h.ratio(rows["unknown"]["median_us"], fm),
            "met": rows["known"]["median_us"] < CHECK_TARGET_US,
        }

    out: dict[str, Any] = {"tables": len(target.schema.tables), "target_median_us": 150.0}
    out["solo"] = measure()  # nothing else has the file open
    holder = SqliteDatabase.open(path)  # held: a pooled connection keeps it (and its WAL) open
    drive(check(holder, target))
    del variants["floor_delete_mode"]
    variants["pooled_known"] = lambda _: ours(stamp, holder)
    variants["pooled_unknown"] = lambda _: ours(None, holder)
    out["held"] = measure()
    holder.close()
    return out


# --------------------------------------------------------------------------- 2. provision


def bench_provision(run: h.Run, seed: Registry, n: int) -> dict[str, Any]:
    folder = run.work / "provision"
    folder.mkdir()
    paths = [folder / f"{i:05d}.db" for i in range(n)]
    ddl = (h.SEED000 / "1.0.0.sql").read_text(encoding="utf-8")

    def ours(i: int) -> None:
        db = SqliteDatabase.open(paths[i])
        status = drive(sync(db, seed)).status
        db.close()
        run.guard(status == "applied", "provision: every sync applied")

    def bare(i: int, recorded: bool = False) -> None:
        conn = sqlite3.connect(paths[i], isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        if not recorded:
            conn.executescript(f"BEGIN;\n{ddl}\nCOMMIT;")
        else:  # the same + our history table and one row
            conn.executescript(f"BEGIN IMMEDIATE;\n{ddl}\n;{HISTORY_DDL};")
            conn.execute(h.HISTORY_INSERT, h.history_row(seed.current, 0))
            conn.execute("COMMIT")
        conn.close()

    def bare_recorded(i: int) -> None:
        bare(i, recorded=True)

    variants = {"bare": bare, "ours": ours, "bare_recorded": bare_recorded}
    expected = {t.name for t in seed.current.schema.tables} | {"schema_version"}
    for name, fn in variants.items():  # warm-up, and each side's file checked once
        h.remove_db(paths[0])
        fn(0)
        made = set(h.row_counts(paths[0]))
        run.guard(made >= expected - {"schema_version"}, f"provision: {name} made every table")
        if name != "bare":
            run.guard(made == expected, f"provision: {name} made exactly the registry's tables")
            run.guard(is_current(paths[0], seed.current), f"provision: {name} passes our check")
    rows = h.interleaved(variants, n, block=max(1, n // 10), before=lambda i: h.remove_db(paths[i]))
    shutil.rmtree(folder)
    b, o = rows["bare"], rows["ours"]
    return {
        "target_ratio": PROVISION_TARGET,
        "rows": rows,
        "ratio": h.ratio(o["median_us"], b["median_us"]),
        "ratio_p99": h.ratio(o["p99_us"], b["p99_us"]),
        "met": o["median_us"] <= PROVISION_TARGET * b["median_us"],
    }


# --------------------------------------------------------------------------- 3. upgrade


def _ping(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def bench_upgrade(run: h.Run, example: Registry, n: int, workers: int) -> dict[str, Any]:
    h.upgrade_init()  # ours and the floor, here and (by fork) in the workers: h.upgrade_many
    v2 = example.get("1.1.0")
    assert v2 is not None
    template = run.work / "example-1.0.0.db"
    synced(template, example, "1.0.0", FEW_ROWS)
    before = h.row_counts(template)
    folder = run.work / "upgrade"
    folder.mkdir()
    sides = ("ours", "bare")
    paths = {k: [str(folder / f"{k}-{i:05d}.db") for i in range(n)] for k in sides}

    def prepare(count: int = n) -> None:
        for path in paths["ours"][:count] + paths["bare"][:count]:
            h.remove_db(path)
            shutil.copyfile(template, path)

    def verify() -> None:  # our check accepts both sides at 1.1.0, every row kept
        for path in (paths["ours"][0], paths["ours"][-1], paths["bare"][0], paths["bare"][-1]):
            counts = h.row_counts(path)
            history = counts.pop("schema_version") == before["schema_version"] + 1
            kept = all(counts.get(t) == c for t, c in before.items() if t != "schema_version")
            run.guard(is_current(path, v2), "upgrade: both sides pass our check at 1.1.0")
            run.guard(kept and history, "upgrade: every row kept, one more history row")

    prepare()
    for kind in sides:  # warm-up on the first few, then copy them again
        h.upgrade_many((kind, paths[kind][:20]))
    prepare(20)
    variants = {k: (lambda i, k=k: h.upgrade_many((k, [paths[k][i]]))) for k in sides}
    seq = h.interleaved(variants, n, block=1)
    verify()
    seq_rate = {k: round(1e6 / v["mean_us"], 1) for k, v in seq.items()}

    prepare()
    seconds = {"ours": 0.0, "bare": 0.0}
    segments = 8 if n >= 800 else 2
    bounds = [n * k // segments for k in range(segments + 1)]
    with multiprocessing.get_context("fork").Pool(workers, initializer=h.upgrade_init) as pool:
        pids = set(pool.map(_ping, [0.3] * workers, chunksize=1))
        run.guard(len(pids) == workers, "upgrade: every worker process started before the clock")
        for k in range(segments):  # ABBA: o b b o o b ...
            for kind in sides if k % 2 == 0 else sides[::-1]:
                chosen = paths[kind][bounds[k] : bounds[k + 1]]
                started = time.perf_counter()
                jobs = [(kind, chosen[w::workers]) for w in range(workers)]
                done = sum(pool.map(h.upgrade_many, jobs, chunksize=1))
                seconds[kind] += time.perf_counter() - started
                run.guard(done == len(chosen), "upgrade: workers did every database")
    verify()
    par_rate = {k: round(n / s, 1) for k, s in seconds.items()}
    shutil.rmtree(folder)
    seq_ratio, par_ratio = (h.ratio(r["bare"], r["ours"]) for r in (seq_rate, par_rate))
    return {
        **{"statements": h.UPGRADE["statements"], "databases": n, "workers": workers},
        "sequential": {"per_db": seq, "dbs_per_s": seq_rate, "ratio": seq_ratio},
        "parallel": {"seconds": seconds, "dbs_per_s": par_rate, "ratio": par_ratio},
        "issue_floor_dbs_per_s": ISSUE_FLOOR,
    }


# --------------------------------------------------------------------------- report

INFO = {
    "open_only": "(info) connect() + close alone",
    "floor_delete_mode": "(info) floor, the file in DELETE mode",
    "pooled_known": "(info) pooled connection, known stamp",
    "pooled_unknown": "(info) pooled connection, no stamp",
}


def report(results: dict[str, Any]) -> str:
    rows: list[list[object]] = []

    def add(label: str, ours: Any, floor: Any, key: str = "median_us", scale: int = 1) -> None:
        rows.append([label, ours[key] / scale, floor[key] / scale, h.ratio(ours[key], floor[key])])

    for cond in ("solo", "held") if "check" in results else ():
        part = results["check"][cond]
        r, f = part["rows"], part["rows"]["floor"]
        add(f"1. check [{cond}] known stamp, median us", r["known"], f)
        rows[-1].append(f"< {CHECK_TARGET_US:.0f} us: {'MET' if part['met'] else 'MISSED'}")
        add("   known stamp, p99 us", r["known"], f, "p99_us")
        add("   no stamp (history row), median us", r["unknown"], f)
        for key in (k for k in INFO if k in r):
            add(f"   {INFO[key]}, us", r[key], f)
    if "provision" in results:
        p = results["provision"]
        r, b = p["rows"], p["rows"]["bare"]
        add("2. provision 27 tables, median ms", r["ours"], b, scale=1000)
        rows[-1].append(f"<= {PROVISION_TARGET}x: {'MET' if p['met'] else 'MISSED'}")
        add("   provision, p99 ms", r["ours"], b, "p99_us", 1000)
        add("   (info) bare + history table and row, ms", r["bare_recorded"], b, scale=1000)
    if "upgrade" in results:
        u = results["upgrade"]
        for kind, how in (("sequential", "sequential"), ("parallel", f"{u['workers']} procs")):
            rate = u[kind]["dbs_per_s"]
            issue = f"issue's floor ~{ISSUE_FLOOR[kind]:.0f}"
            label = f"3. upgrade {u['databases']} DBs {how}, DBs/s"
            rows.append([label, rate["ours"], rate["bare"], u[kind]["ratio"], issue])
        per_db = u["sequential"]["per_db"]
        add("   per DB (sequential) median ms", per_db["ours"], per_db["bare"], scale=1000)
    note = "ratio = ours / floor in time (for DBs/s: floor rate / our rate); > 1 means slower"
    return h.table(["measurement", "ours", "floor", "ratio"], rows) + "\n" + note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    h.add_common(parser)
    items = ("check", "provision", "upgrade")
    parser.add_argument("--only", choices=items, action="append", help="these items only")
    parser.add_argument("--databases", type=int, help="databases to upgrade (2000)")
    parser.add_argument("--workers", type=int, default=2, help="processes for the upgrade (2)")
    parser.add_argument("--dir", type=Path, help="where the databases go (default: temp)")
    args = parser.parse_args(argv)
    size = 0 if args.smoke else 1 if args.quick else 2
    n_check, n_prov = (20, 1000, 5000)[size], (3, 40, 300)[size]
    n_dbs = args.databases or (20, 200, 2000)[size]
    run = h.Run("engine", args, engine_source=h.source("schema_registry"))
    seed, example = load_registry(h.SEED000), load_registry(EXAMPLE)
    only = args.only or items
    try:
        if "check" in only:
            print(f"1. check: {n_check} iterations per variant ...", flush=True)
            run.results["check"] = bench_check(run, seed, n_check)
        if "provision" in only:
            print(f"2. provision: {n_prov} new files per variant ...", flush=True)
            run.results["provision"] = bench_provision(run, seed, n_prov)
        if "upgrade" in only:
            print(f"3. upgrade: {n_dbs} databases per side, then {args.workers} processes ...")
            run.results["upgrade"] = bench_upgrade(run, example, n_dbs, args.workers)
        return run.finish(report(run.results))
    finally:
        shutil.rmtree(run.work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
