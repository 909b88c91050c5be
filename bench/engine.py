"""Benchmark of the schema sync engine, each measurement beside its bare-sqlite3 floor.

Run from the repo root:

    .venv/bin/python bench/engine.py            # full run (about a minute on 2 cores)
    .venv/bin/python bench/engine.py --quick    # smaller run (a few seconds)
    .venv/bin/python bench/engine.py --profile upgrade   # + cProfile of our side of one item

Items (issue 2, "Done when"):

1. check     up-to-date check on a local file, open and close included, on a database
             synced to the 27-table seed-000 schema; with the stamp mirrored in the
             catalog (`known=`, target < 150 us median) and without it (reads the newest
             history row, which makes SQLite parse the schema). Floor: sqlite3.connect +
             PRAGMA schema_version + close.
2. provision the 27-table seed-000 schema on a new file: our sync vs bare sqlite3 running
             the same 1.0.0.sql in one transaction, WAL + synchronous=NORMAL (target 1.3x).
3. upgrade   example registry 1.0.0 -> 1.1.0 on N existing databases (2,000 by default),
             sequential and with 2 worker processes: our sync vs bare sqlite3 running the
             plan's statements plus one history row in one transaction per database.

Ours and the floor are measured in the same run and interleaved (alternating blocks, or
ABBA order for the multi-process phases) so machine drift hits both alike. GC stays
enabled, as in the service. Results go to bench/results/engine.json.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import json
import multiprocessing
import os
import platform
import pstats
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from schema_registry import history  # noqa: E402
from schema_registry.diff import diff  # noqa: E402
from schema_registry.history import Stamp  # noqa: E402
from schema_registry.plan import make_plan  # noqa: E402
from schema_registry.registry import EXAMPLE, Registry, Version, load_registry  # noqa: E402
from schema_registry.sqlite_db import SqliteDatabase, connect, drive  # noqa: E402
from schema_registry.sync import SyncContext, check, sync  # noqa: E402

SEED000 = ROOT / "tests" / "registries" / "seed000"
RESULTS = ROOT / "bench" / "results" / "engine.json"
CHECK_TARGET_US = 150.0
PROVISION_TARGET_RATIO = 1.3
ISSUE_FLOOR_SEQ = 570.0  # DBs/s, bare sqlite3, as measured in issue 2
ISSUE_FLOOR_PAR = 930.0  # DBs/s, bare sqlite3 with two processes, as measured in issue 2


# --------------------------------------------------------------------------- statistics


def _stats_us(samples_ns: list[int]) -> dict[str, float]:
    us = sorted(s / 1000 for s in samples_ns)
    p99 = us[min(len(us) - 1, round(0.99 * (len(us) - 1)))]
    return {
        "n": len(us),
        "median_us": round(statistics.median(us), 2),
        "p99_us": round(p99, 2),
        "mean_us": round(statistics.fmean(us), 2),
        "min_us": round(us[0], 2),
    }


def _interleaved(
    variants: dict[str, Callable[[int], object]],
    n: int,
    block: int,
    before: Callable[[int], object] | None = None,
) -> dict[str, dict[str, float]]:
    """Time each variant n times, one call at a time, alternating blocks of `block` calls.

    Each variant gets the iteration number (for per-iteration file names); `before(i)`
    runs untimed before each call (e.g. to remove the file the last call created).
    """
    samples: dict[str, list[int]] = {name: [] for name in variants}
    clock = time.perf_counter_ns
    done = 0
    while done < n:
        count = min(block, n - done)
        for name, fn in variants.items():
            for i in range(done, done + count):
                if before is not None:
                    before(i)
                start = clock()
                fn(i)
                samples[name].append(clock() - start)
        done += count
    return {name: _stats_us(s) for name, s in samples.items()}


def _ratio(ours: float, floor: float) -> float:
    return round(ours / floor, 2) if floor else float("nan")


# --------------------------------------------------------------------------- fixtures


def _remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _sync_new(path: Path, registry: Registry, target: str | None = None) -> Stamp:
    _remove_db(path)
    db = SqliteDatabase.open(path)
    try:
        result = drive(sync(db, registry, target=target))
    finally:
        db.close()
    if result.status != "applied" or result.stamp is None:
        raise RuntimeError(f"fixture sync of {path} ended {result.status}")
    return result.stamp


def _fsync_copy(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    fd = os.open(dst, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- 1. check


def _check_variants(
    path: Path, delete_path: Path, target: Version, stamp: Stamp
) -> dict[str, Callable[[int], object]]:
    spath = str(path)

    def floor(_: int) -> None:
        conn = sqlite3.connect(spath)
        conn.execute("PRAGMA schema_version").fetchone()
        conn.close()

    def known(_: int) -> None:
        db = SqliteDatabase.open(spath)
        ok = drive(check(db, target, known=stamp))[0]
        db.close()
        if not ok:
            raise RuntimeError("known-stamp check said out of date")

    def unknown(_: int) -> None:
        db = SqliteDatabase.open(spath)
        ok = drive(check(db, target))[0]
        db.close()
        if not ok:
            raise RuntimeError("history check said out of date")

    def open_only(_: int) -> None:  # connect(): sqlite3.connect + its 4 PRAGMAs, then close
        connect(spath).close()

    def lean_known(_: int) -> None:
        # What-if: connect() without journal_mode/synchronous, the two PRAGMAs that make
        # SQLite parse the whole schema (the journal mode is stored in the file anyway).
        conn = sqlite3.connect(spath, isolation_level=None, check_same_thread=False, timeout=10)
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA foreign_keys = ON")
        ok = drive(check(SqliteDatabase(conn), target, known=stamp))[0]
        conn.close()
        if not ok:
            raise RuntimeError("lean check said out of date")

    def header_known(_: int) -> None:
        # What-if: with no -wal and no -journal file the main file's header is authoritative,
        # so the cookie (header bytes 40..43) can be read without SQLite; else fall back.
        if os.path.exists(spath + "-wal") or os.path.exists(spath + "-journal"):
            known(0)
            return
        with open(spath, "rb") as file:
            header = file.read(100)
        if header[18] != 2 or int.from_bytes(header[40:44], "big") != stamp.cookie:
            raise RuntimeError("header check said out of date")

    def delete_floor(_: int) -> None:
        conn = sqlite3.connect(delete_path)
        conn.execute("PRAGMA schema_version").fetchone()
        conn.close()

    return {
        "floor": floor,
        "known": known,
        "unknown": unknown,
        "open_only": open_only,
        "whatif_lean_known": lean_known,
        "whatif_header_known": header_known,
        "floor_delete_mode": delete_floor,
    }


def _warm(variants: dict[str, Callable[[int], object]], times: int = 50) -> None:
    for fn in variants.values():
        for i in range(times):  # page cache, code paths, statement caches
            fn(i)


def bench_check(work: Path, seed: Registry, n: int) -> dict[str, Any]:
    """Two conditions, because in WAL mode they differ by more than the target:

    - solo: nothing else has the file open, so every open creates -wal and -shm and every
      close (the last one) removes them again: a few filesystem operations, noisy.
    - held: another connection keeps the file open (a pool, a concurrent request), so the
      WAL index stays mapped and open/close touch only the main file.
    """
    path = work / "check.db"
    stamp = _sync_new(path, seed)
    target = seed.current
    delete_path = work / "check-delete.db"  # the same schema in rollback-journal mode
    shutil.copyfile(path, delete_path)
    conn = sqlite3.connect(delete_path)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()
    variants = _check_variants(path, delete_path, target, stamp)

    _warm(variants)
    rows_solo = _interleaved(variants, n, block=100)

    holder = SqliteDatabase.open(path)  # a pooled connection, schema parsed once
    drive(check(holder, target))
    held = {
        k: v for k, v in variants.items() if k not in ("whatif_header_known", "floor_delete_mode")
    }
    held["pooled_known"] = lambda _: drive(check(holder, target, known=stamp))
    held["pooled_unknown"] = lambda _: drive(check(holder, target))
    _warm(held)
    rows_held = _interleaved(held, n, block=100)
    holder.close()

    def summary(rows: dict[str, dict[str, float]]) -> dict[str, Any]:
        return {
            "rows": rows,
            "ratio_known": _ratio(rows["known"]["median_us"], rows["floor"]["median_us"]),
            "ratio_unknown": _ratio(rows["unknown"]["median_us"], rows["floor"]["median_us"]),
            "met": rows["known"]["median_us"] < CHECK_TARGET_US,
        }

    return {
        "description": "open + check(known=stamp) + close on a 27-table seed-000 database (WAL)",
        "floor_description": "sqlite3.connect + PRAGMA schema_version + close",
        "tables": len(target.schema.tables),
        "target_median_us": CHECK_TARGET_US,
        "solo": summary(rows_solo),
        "held": summary(rows_held),
    }


# --------------------------------------------------------------------------- 2. provision


def _provision_variants(
    paths: list[Path], seed: Registry, template: Path, stamp: Stamp, head_id: int
) -> dict[str, Callable[[int], object]]:
    ddl = (SEED000 / "1.0.0.sql").read_text(encoding="utf-8")
    current = seed.current

    def ours(i: int) -> None:
        db = SqliteDatabase.open(paths[i])
        result = drive(sync(db, seed))
        db.close()
        if result.status != "applied":
            raise RuntimeError(f"provision ended {result.status}")

    def bare(i: int) -> None:
        conn = sqlite3.connect(paths[i], isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.executescript(f"BEGIN;\n{ddl}\nCOMMIT;")
        conn.close()

    history_row = (
        *(current.version, current.description, current.created_at, "2026-01-01T00:00:00Z"),
        *(current.content_hash, 0, 0, None, "bench", None),
    )

    def bare_recorded(i: int) -> None:  # the same + our history table and one row
        conn = sqlite3.connect(paths[i], isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.executescript(f"BEGIN IMMEDIATE;\n{ddl}\n;{history.HISTORY_DDL};")
        conn.execute(history._INSERT_SQL, history_row)
        conn.execute("COMMIT")
        conn.close()

    def copy_only(i: int) -> None:  # copy a pre-built file of the version, fsync it
        _fsync_copy(template, paths[i])

    def copy_stamped(i: int) -> None:  # + open, check the stamp, restamp the row, close
        _fsync_copy(template, paths[i])
        db = SqliteDatabase.open(paths[i])
        ok = drive(check(db, current, known=stamp))[0]
        db.conn.execute("BEGIN IMMEDIATE")
        db.conn.execute(
            "UPDATE schema_version SET applied_at = ?, trigger = ? WHERE id = ?",
            ("2026-01-01T00:00:00Z", "bench", head_id),
        )
        db.conn.execute("COMMIT")
        db.close()
        if not ok:
            raise RuntimeError("copied template is not at its stamp")

    return {
        "bare": bare,
        "ours": ours,
        "bare_recorded": bare_recorded,
        "copy_only": copy_only,
        "copy_stamped": copy_stamped,
    }


def bench_provision(work: Path, seed: Registry, n: int) -> dict[str, Any]:
    folder = work / "provision"
    folder.mkdir()
    template = work / "seed000-template.db"
    stamp = _sync_new(template, seed)
    reader = SqliteDatabase.open(template, create=False)
    head = drive(history.newest(reader))
    reader.close()
    if head is None:
        raise RuntimeError("template has no history row")
    paths = [folder / f"{i:05d}.db" for i in range(n)]
    variants = _provision_variants(paths, seed, template, stamp, head.id)

    def clear(i: int) -> None:
        _remove_db(paths[i])

    for fn in variants.values():
        for i in range(5):
            clear(i)
            fn(i)
    rows = _interleaved(variants, n, block=max(1, n // 10), before=clear)
    # What ours made is a real database at the version: our fast path accepts it.
    clear(0)
    variants["ours"](0)
    _check_provisioned(paths[0], seed)
    shutil.rmtree(folder)
    return {
        "description": "sync(SqliteDatabase.open(new), seed000) + close: 27 tables",
        "floor_description": (
            "sqlite3, WAL, synchronous=NORMAL: executescript(BEGIN; 1.0.0.sql; COMMIT)"
        ),
        "target_ratio": PROVISION_TARGET_RATIO,
        "rows": rows,
        "ratio": _ratio(rows["ours"]["median_us"], rows["bare"]["median_us"]),
        "ratio_p99": _ratio(rows["ours"]["p99_us"], rows["bare"]["p99_us"]),
        "met": rows["ours"]["median_us"] <= PROVISION_TARGET_RATIO * rows["bare"]["median_us"],
    }


def _check_provisioned(path: Path, registry: Registry) -> None:
    db = SqliteDatabase.open(path)
    try:
        ok = drive(check(db, registry.current))[0]
    finally:
        db.close()
    if not ok:
        raise RuntimeError(f"{path} is not at {registry.current.version} after provisioning")


# --------------------------------------------------------------------------- 3. upgrade

# Worker-process state (set by _init_worker, or directly in the parent for sequential runs).
_W: dict[str, Any] = {}


def _init_worker(registry_path: str, to_version: str, statements: list[str]) -> None:
    registry = load_registry(registry_path)
    version = registry.get(to_version)
    if version is None:
        raise RuntimeError(f"{to_version} missing")
    _W.update(
        registry=registry,
        to_version=to_version,
        statements=statements,
        row=(
            version.version,
            version.description,
            version.created_at,
            "",
            version.content_hash,
            len(statements),
            0,
            None,
            "bench",
            None,
        ),
        context=SyncContext(trigger="fleet"),
    )


def _upgrade_ours(path: str) -> None:
    db = SqliteDatabase.open(path, create=False)
    try:
        result = drive(sync(db, _W["registry"], target=_W["to_version"], context=_W["context"]))
    finally:
        db.close()
    if result.status != "applied":
        raise RuntimeError(f"{path}: upgrade ended {result.status}")


# The history row as the engine writes it, the cookie read before (the engine's own SQL may
# change; the floor should not).
_HISTORY_INSERT = (
    "INSERT INTO schema_version (version, description, created_at, applied_at, content_hash, "
    "changes_applied, schema_cookie, environment, trigger, notes) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _upgrade_bare(path: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = NORMAL")  # journal_mode=WAL is stored in the file
    conn.execute("BEGIN IMMEDIATE")
    for statement in _W["statements"]:
        conn.execute(statement)
    cookie = conn.execute("PRAGMA schema_version").fetchone()[0]
    row = list(_W["row"])
    row[3] = datetime.now(UTC).isoformat(timespec="seconds")
    row[6] = cookie
    conn.execute(_HISTORY_INSERT, row)
    conn.execute("COMMIT")
    conn.close()


_UPGRADERS = {"ours": _upgrade_ours, "bare": _upgrade_bare}


def _upgrade_many(job: tuple[str, list[str]]) -> int:
    kind, paths = job
    fn = _UPGRADERS[kind]
    for path in paths:
        fn(path)
    return len(paths)


def _ping(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


_FEW_ROWS = """
INSERT INTO accounts (name, broker, starting_balance)
VALUES ('Main', 'IBKR', 10000), ('Paper', NULL, 0);
INSERT INTO trades (account_id, symbol, side, quantity, price, exit_price, fee)
VALUES (1, 'AAPL', 'buy', 10, 190.5, 195.0, 1), (1, 'MSFT', 'sell', 5, 410, NULL, 1),
       (2, 'NVDA', 'buy', 2, 880, 905.5, 0), (1, 'TSLA', 'buy', 3, 170, NULL, 1);
INSERT INTO tags (name, color) VALUES ('breakout', 'green'), ('mistake', 'red');
INSERT INTO trade_tags (trade_id, tag_id) VALUES (1, 1), (2, 2), (3, 1);
INSERT INTO journal_entries (account_id, trade_id, title, body)
VALUES (1, 1, 'Good entry', 'Waited.');
INSERT INTO settings (key, value) VALUES ('theme', 'dark'), ('currency', 'USD');
"""


def _prepare(template: Path, paths: Iterable[Path]) -> None:
    for path in paths:
        _remove_db(path)
        shutil.copyfile(template, path)


def bench_upgrade(work: Path, example: Registry, n: int, workers: int) -> dict[str, Any]:
    v1, v2 = example.get("1.0.0"), example.get("1.1.0")
    if v1 is None or v2 is None:
        raise RuntimeError("the example registry lacks 1.0.0 or 1.1.0")
    statements = make_plan(diff(v1.schema, v2.schema)).statements()
    template = work / "example-1.0.0.db"
    _sync_new(template, example, target="1.0.0")
    conn = connect(template)
    conn.executescript(_FEW_ROWS)
    conn.close()
    row_counts = _row_counts(template)

    folder = work / "upgrade"
    folder.mkdir()
    ours_paths = [folder / f"ours-{i:05d}.db" for i in range(n)]
    bare_paths = [folder / f"bare-{i:05d}.db" for i in range(n)]
    _init_worker(str(EXAMPLE), "1.1.0", statements)

    # Sequential: one database at a time, ours and bare alternating per database.
    _prepare(template, [*ours_paths, *bare_paths])
    for i in range(min(20, n)):  # warm-up on the first few, then re-copy them
        _upgrade_ours(str(ours_paths[i]))
        _upgrade_bare(str(bare_paths[i]))
    _prepare(template, [*ours_paths[:20], *bare_paths[:20]])
    seq = _interleaved(
        {
            "ours": lambda i: _upgrade_ours(str(ours_paths[i])),
            "bare": lambda i: _upgrade_bare(str(bare_paths[i])),
        },
        n,
        block=1,
    )
    _verify_upgraded(ours_paths, bare_paths, example, row_counts)
    seq_rate = {k: round(1e6 / v["mean_us"], 1) for k, v in seq.items()}

    # With worker processes: ABBA segments so drift and cache state hit both sides alike.
    _prepare(template, [*ours_paths, *bare_paths])
    par_seconds = {"ours": 0.0, "bare": 0.0}
    ctx = multiprocessing.get_context("fork")
    initargs = (str(EXAMPLE), "1.1.0", statements)
    with ctx.Pool(workers, initializer=_init_worker, initargs=initargs) as pool:
        if len(set(pool.map(_ping, [0.3] * workers, chunksize=1))) != workers:
            raise RuntimeError("worker warm-up did not reach every worker")
        for kind, lo, hi in _abba_segments(n, segments=8 if n >= 800 else 2):
            chosen = [str(p) for p in (ours_paths if kind == "ours" else bare_paths)[lo:hi]]
            jobs = [(kind, chosen[w::workers]) for w in range(workers)]
            start = time.perf_counter()
            done = sum(pool.map(_upgrade_many, jobs, chunksize=1))
            par_seconds[kind] += time.perf_counter() - start
            if done != hi - lo:
                raise RuntimeError("a worker skipped databases")
    _verify_upgraded(ours_paths, bare_paths, example, row_counts)
    par_rate = {k: round(n / s, 1) for k, s in par_seconds.items()}
    shutil.rmtree(folder)
    return {
        "description": f"example 1.0.0 -> 1.1.0 on {n} databases with a few rows each",
        "floor_description": (
            "sqlite3: open, synchronous=NORMAL, BEGIN IMMEDIATE, the plan's "
            f"{len(statements)} statements, PRAGMA schema_version, INSERT history row, "
            "COMMIT, close"
        ),
        "statements": statements,
        "databases": n,
        "workers": workers,
        "sequential": {
            "per_db": seq,
            "dbs_per_s": seq_rate,
            "ratio": _ratio(seq_rate["bare"], seq_rate["ours"]),  # >1: ours is slower
        },
        "parallel": {
            "seconds": {k: round(v, 3) for k, v in par_seconds.items()},
            "dbs_per_s": par_rate,
            "ratio": _ratio(par_rate["bare"], par_rate["ours"]),
        },
        "issue_floor_dbs_per_s": {"sequential": ISSUE_FLOOR_SEQ, "parallel": ISSUE_FLOOR_PAR},
    }


def _abba_segments(n: int, segments: int) -> list[tuple[str, int, int]]:
    """Split 0..n into segments, each run by ours and bare in ABBA order (o b b o o b ...)."""
    bounds = [n * k // segments for k in range(segments + 1)]
    order: list[tuple[str, int, int]] = []
    for k in range(segments):
        pair = ("ours", "bare") if k % 2 == 0 else ("bare", "ours")
        order += [(kind, bounds[k], bounds[k + 1]) for kind in pair]
    return order


def _row_counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
    finally:
        conn.close()


def _verify_upgraded(
    ours: list[Path], bare: list[Path], registry: Registry, before: dict[str, int]
) -> None:
    """Both sides really did the upgrade: our fast path accepts them at 1.1.0, rows kept."""
    target = registry.get("1.1.0")
    assert target is not None
    for path in (ours[0], ours[-1], bare[0], bare[-1]):
        db = SqliteDatabase.open(path, create=False)
        try:
            ok = drive(check(db, target))[0]
        finally:
            db.close()
        counts = _row_counts(path)
        kept = all(
            counts.get(name) == count for name, count in before.items() if name != "schema_version"
        )
        if not ok or not kept or counts["schema_version"] != before["schema_version"] + 1:
            raise RuntimeError(f"{path} is not a clean 1.1.0 after the upgrade")


# --------------------------------------------------------------------------- profiling


def profile(item: str, work: Path, seed: Registry, example: Registry, n: int) -> None:
    """cProfile our side of one item and print where the time goes."""
    profiler = cProfile.Profile()
    folder = work / f"profile-{item}"
    folder.mkdir()
    if item == "check":
        path = folder / "check.db"
        stamp = _sync_new(path, seed)
        profiler.enable()
        for _ in range(n):
            db = SqliteDatabase.open(path)
            drive(check(db, seed.current, known=stamp))
            db.close()
            db = SqliteDatabase.open(path)
            drive(check(db, seed.current))
            db.close()
        profiler.disable()
    elif item == "provision":
        paths = [folder / f"{i:05d}.db" for i in range(n)]
        profiler.enable()
        for path in paths:
            db = SqliteDatabase.open(path)
            drive(sync(db, seed))
            db.close()
        profiler.disable()
    else:
        v1, v2 = example.get("1.0.0"), example.get("1.1.0")
        assert v1 is not None
        assert v2 is not None
        template = folder / "template.db"
        _sync_new(template, example, target="1.0.0")
        conn = connect(template)
        conn.executescript(_FEW_ROWS)
        conn.close()
        paths = [folder / f"{i:05d}.db" for i in range(n)]
        _prepare(template, paths)
        _init_worker(str(EXAMPLE), "1.1.0", make_plan(diff(v1.schema, v2.schema)).statements())
        profiler.enable()
        for path in paths:
            _upgrade_ours(str(path))
        profiler.disable()
    print(f"\n== cProfile: ours, {item}, {n} iterations (cumulative, then own time) ==")
    stats = pstats.Stats(profiler).strip_dirs()
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(20)


# --------------------------------------------------------------------------- report


def _table(results: dict[str, Any]) -> str:
    head = f"{'measurement':<44}{'ours':>12}{'floor':>12}{'ratio':>8}  {'target':<22}"
    lines = [head, "-" * len(head)]

    def line(name: str, ours: str, floor: str, ratio: float | str, target: str = "") -> None:
        lines.append(f"{name:<44}{ours:>12}{floor:>12}{ratio!s:>8}  {target:<22}")

    if "check" in results:
        c = results["check"]
        for cond in ("solo", "held"):
            part = c[cond]
            r = part["rows"]
            f = r["floor"]
            ok = "MET" if part["met"] else "MISSED"
            fm = f["median_us"]
            line(
                f"1. check [{cond}] known stamp, median us",
                f"{r['known']['median_us']:.1f}",
                f"{fm:.1f}",
                part["ratio_known"],
                f"<{CHECK_TARGET_US:.0f} us: {ok}",
            )
            line(
                "   known stamp, p99 us",
                f"{r['known']['p99_us']:.1f}",
                f"{f['p99_us']:.1f}",
                _ratio(r["known"]["p99_us"], f["p99_us"]),
            )
            line(
                "   no stamp (history row), median us",
                f"{r['unknown']['median_us']:.1f}",
                f"{fm:.1f}",
                part["ratio_unknown"],
            )
            line(
                "   no stamp, p99 us",
                f"{r['unknown']['p99_us']:.1f}",
                f"{f['p99_us']:.1f}",
                _ratio(r["unknown"]["p99_us"], f["p99_us"]),
            )
            line(
                "   (info) connect()+close alone, median us",
                f"{r['open_only']['median_us']:.1f}",
                f"{fm:.1f}",
                _ratio(r["open_only"]["median_us"], fm),
            )
            line(
                "   (what-if) no WAL/sync PRAGMAs, known, us",
                f"{r['whatif_lean_known']['median_us']:.1f}",
                f"{fm:.1f}",
                _ratio(r["whatif_lean_known"]["median_us"], fm),
            )
            if cond == "solo":
                line(
                    "   (what-if) header cookie read, median us",
                    f"{r['whatif_header_known']['median_us']:.1f}",
                    f"{fm:.1f}",
                    _ratio(r["whatif_header_known"]["median_us"], fm),
                )
                line(
                    "   (info) floor, same file in DELETE mode, us",
                    "",
                    f"{r['floor_delete_mode']['median_us']:.1f}",
                    "",
                )
            else:
                line(
                    "   (info) pooled conn: known / no stamp, us",
                    f"{r['pooled_known']['median_us']:.1f}",
                    f"{r['pooled_unknown']['median_us']:.1f}",
                    "",
                )
    if "provision" in results:
        p = results["provision"]
        r = p["rows"]
        b = r["bare"]
        ok = "MET" if p["met"] else "MISSED"
        line(
            "2. provision 27 tables, median ms",
            f"{r['ours']['median_us'] / 1000:.2f}",
            f"{b['median_us'] / 1000:.2f}",
            p["ratio"],
            f"<={PROVISION_TARGET_RATIO}x: {ok}",
        )
        line(
            "   provision, p99 ms",
            f"{r['ours']['p99_us'] / 1000:.2f}",
            f"{b['p99_us'] / 1000:.2f}",
            p["ratio_p99"],
        )
        for key, label in (
            ("bare_recorded", "(info) bare + history table/row"),
            ("copy_only", "(info) copy template + fsync"),
            ("copy_stamped", "(info) copy + open/check/restamp"),
        ):
            line(
                f"   {label}, median ms",
                f"{r[key]['median_us'] / 1000:.2f}",
                f"{b['median_us'] / 1000:.2f}",
                _ratio(r[key]["median_us"], b["median_us"]),
            )
    if "upgrade" in results:
        u = results["upgrade"]
        s, par = u["sequential"], u["parallel"]
        line(
            f"3. upgrade {u['databases']} DBs sequential, DBs/s",
            f"{s['dbs_per_s']['ours']:.0f}",
            f"{s['dbs_per_s']['bare']:.0f}",
            s["ratio"],
            f"issue floor ~{ISSUE_FLOOR_SEQ:.0f}",
        )
        line(
            "   upgrade per DB median ms",
            f"{s['per_db']['ours']['median_us'] / 1000:.2f}",
            f"{s['per_db']['bare']['median_us'] / 1000:.2f}",
            _ratio(s["per_db"]["ours"]["median_us"], s["per_db"]["bare"]["median_us"]),
        )
        line(
            "   upgrade per DB p99 ms",
            f"{s['per_db']['ours']['p99_us'] / 1000:.2f}",
            f"{s['per_db']['bare']['p99_us'] / 1000:.2f}",
            _ratio(s["per_db"]["ours"]["p99_us"], s["per_db"]["bare"]["p99_us"]),
        )
        line(
            f"   upgrade {u['workers']} processes, DBs/s",
            f"{par['dbs_per_s']['ours']:.0f}",
            f"{par['dbs_per_s']['bare']:.0f}",
            par["ratio"],
            f"issue floor ~{ISSUE_FLOOR_PAR:.0f}",
        )
    lines.append("ratio = ours / floor in time (for DBs/s: floor rate / our rate); >1 means slower")
    return "\n".join(lines)


def _engine_source() -> dict[str, str]:
    """Which engine was measured: the commit, and a hash of schema_registry/*.py as on disk
    (others edit it concurrently, so the working tree may differ from the commit)."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "schema_registry").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    head = ROOT / ".git" / "HEAD"
    commit = ""
    try:
        ref = head.read_text(encoding="utf-8").strip()
        commit = (
            (ROOT / ".git" / ref[5:]).read_text(encoding="utf-8").strip()
            if ref.startswith("ref: ")
            else ref
        )
    except OSError:
        pass
    return {"commit": commit, "schema_registry_sha256": digest.hexdigest()[:16]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (a few seconds)")
    parser.add_argument(
        "--only",
        choices=("check", "provision", "upgrade"),
        action="append",
        help="run only these items (repeatable)",
    )
    parser.add_argument("--databases", type=int, help="databases for the upgrade (default 2000)")
    parser.add_argument("--workers", type=int, default=2, help="processes for the parallel upgrade")
    parser.add_argument(
        "--profile",
        choices=("check", "provision", "upgrade"),
        help="after the run, cProfile our side of this item",
    )
    parser.add_argument("--dir", type=Path, help="where to put the databases (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=RESULTS, help="results file")
    args = parser.parse_args(argv)

    items = args.only or ["check", "provision", "upgrade"]
    n_check = 1000 if args.quick else 5000
    n_provision = 40 if args.quick else 300
    n_dbs = args.databases or (200 if args.quick else 2000)

    seed = load_registry(SEED000)
    example = load_registry(EXAMPLE)
    work = Path(tempfile.mkdtemp(prefix="bench-engine-", dir=args.dir))
    results: dict[str, Any] = {
        "meta": {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": args.quick,
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "dir": str(work),
            "gc_enabled": gc.isenabled(),
            "loadavg_start": os.getloadavg(),
            "engine_source": _engine_source(),
        }
    }
    try:
        if "check" in items:
            print(f"1. check: {n_check} iterations per variant ...", flush=True)
            results["check"] = bench_check(work, seed, n_check)
        if "provision" in items:
            print(f"2. provision: {n_provision} new files per variant ...", flush=True)
            results["provision"] = bench_provision(work, seed, n_provision)
        if "upgrade" in items:
            print(
                f"3. upgrade: {n_dbs} databases per side, sequential then "
                f"{args.workers} processes ...",
                flush=True,
            )
            results["upgrade"] = bench_upgrade(work, example, n_dbs, args.workers)
        results["meta"]["loadavg_end"] = os.getloadavg()
        print()
        print(_table(results))
        print(
            f"load average start/end: {results['meta']['loadavg_start'][0]:.2f} / "
            f"{results['meta']['loadavg_end'][0]:.2f} on {os.cpu_count()} CPUs "
            "(other work on the machine skews the 2-process numbers most)"
        )
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"\nresults: {args.json}")
        if args.profile:
            profile(
                args.profile,
                work,
                seed,
                example,
                {"check": 2000, "provision": 100, "upgrade": 300}[args.profile],
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
