"""What every bench shares: statistics, machine metadata, the bare-sqlite3 floors, guards,
report tables and the results JSON (servers and HTTP load are in bench/servers.py).

A bench builds a `Run` from its parsed arguments (`add_common` adds --smoke, --quick and
--json), records what it measured in `run.results`, checks its correctness guards with
`run.guard(ok, what)` (a failing guard raises: nothing is reported from a run that did the
wrong work) and ends with `run.finish(report)`, which prints the report and writes the JSON.
A --smoke run writes JSON only where --json says: bench/results/ keeps measured figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from schema_registry import (
    EXAMPLE,
    SqliteDatabase,
    SyncContext,
    Version,
    diff,
    drive,
    load_registry,
    make_plan,
    sync,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SEED000 = ROOT / "tests" / "registries" / "seed000"
TABLES_SQL = "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"

# --------------------------------------------------------------------------- statistics


def stats(values: Sequence[float], suffix: str = "") -> dict[str, float]:
    """n, median, p90, p99, mean and min; keys get `suffix` (engine.json: "_us")."""
    ordered = sorted(values)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]

    return {
        "n": len(ordered),
        f"median{suffix}": round(statistics.median(ordered), 3),
        f"p90{suffix}": round(pct(90), 3),
        f"p99{suffix}": round(pct(99), 3),
        f"mean{suffix}": round(statistics.fmean(ordered), 3),
        f"min{suffix}": round(ordered[0], 3),
    }


def ratio(ours: float, floor: float) -> float:
    return round(ours / floor, 3) if floor else float("nan")


def ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def interleaved(
    variants: Mapping[str, Callable[[int], object]],
    n: int,
    block: int,
    before: Callable[[int], object] | None = None,
) -> dict[str, dict[str, float]]:
    """Time each variant n times in microseconds, alternating blocks of `block` calls, so
    drift on the machine hits every variant alike; `before(i)` runs untimed first."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    clock = time.perf_counter_ns
    for done in range(0, n, block):
        for name, fn in variants.items():
            for i in range(done, min(n, done + block)):
                if before is not None:
                    before(i)
                start = clock()
                fn(i)
                samples[name].append((clock() - start) / 1000)
    return {name: stats(s, "_us") for name, s in samples.items()}


async def rotated(
    variants: Mapping[str, Callable[[int], Awaitable[object]]], n: int
) -> dict[str, dict[str, float]]:
    """Each async variant once per iteration, in milliseconds, the order rotating."""
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(n):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            await variants[name](i)
            samples[name].append(ms_since(started))
    return {name: stats(values) for name, values in samples.items()}


# --------------------------------------------------------------------------- machine


def versions() -> dict[str, str]:
    out = {"sqlite": sqlite3.sqlite_version}
    for dist in ("litestar", "uvicorn", "uvloop", "httptools", "msgspec", "pyjwt", "structlog"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def source(*folders: str) -> dict[str, str]:
    """Which code was measured: the commit, and a hash of the folders' *.py as on disk
    (others edit them concurrently, so the working tree may differ from the commit)."""
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    cmd = ["git", "rev-parse", "HEAD"]  # read-only
    head = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    return {
        "commit": head.stdout.strip(),
        "sha256": digest.hexdigest()[:16],
        "of": ", ".join(folders),
    }


# --------------------------------------------------------------------------- floors

# The floors' own history row (the engine's SQL may change; the floors should not); the
# INSERT reads the schema cookie itself, as the engine's does.
HISTORY_INSERT = (
    "INSERT INTO schema_version (version, description, created_at, applied_at, content_hash, "
    "changes_applied, schema_cookie, environment, trigger, notes) "
    "VALUES (?, ?, ?, ?, ?, ?, (SELECT schema_version FROM pragma_schema_version), ?, ?, ?)"
)


def history_row(version: Version, changes: int) -> tuple[object, ...]:
    head = (version.version, version.description, version.created_at, "2026-01-01T00:00:00Z")
    return (*head, version.content_hash, changes, None, "bench", None)


UPGRADE: dict[str, Any] = {}  # the example's 1.0.0 -> 1.1.0, per process: upgrade_init


def upgrade_init() -> None:
    """The example registry and the floor's plan from 1.0.0 to 1.1.0: the statements the
    engine's plan runs and the floor's history row (also a worker pool's initializer)."""
    registry = load_registry(EXAMPLE)
    v1, v2 = registry.get("1.0.0"), registry.get("1.1.0")
    assert v1 is not None
    assert v2 is not None
    statements = make_plan(diff(v1.schema, v2.schema)).statements()
    UPGRADE.update(registry=registry, statements=statements, row=history_row(v2, len(statements)))


def upgrade_many(job: tuple[str, Sequence[str]]) -> int:
    """Upgrade files at 1.0.0 to 1.1.0 (after `upgrade_init`): "ours" by the engine's sync;
    "bare", the floor, by open, synchronous=NORMAL, BEGIN IMMEDIATE, the plan's statements,
    one history row, COMMIT, close (journal_mode=WAL is stored in the file)."""
    kind, paths = job
    for path in paths:
        if kind == "ours":
            db = SqliteDatabase.open(path, create=False)
            context = SyncContext(trigger="fleet")
            result = drive(sync(db, UPGRADE["registry"], target="1.1.0", context=context))
            db.close()
            if result.status != "applied":
                raise RuntimeError(f"{path}: upgrade ended {result.status}")
            continue
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        for statement in UPGRADE["statements"]:
            conn.execute(statement)
        conn.execute(HISTORY_INSERT, UPGRADE["row"])
        conn.execute("COMMIT")
        conn.close()
    return len(paths)


def remove_db(path: Path | str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def example_plus(folder: Path, added: int, table: str) -> Path:
    """The example registry in `folder` with `added` versions after its newest (1.3.0,
    1.4.0, ...), each adding a table `{table}_{k}` and its index and nothing else: a
    rollout with work to do and no migration script, so no backups."""
    shutil.copytree(EXAMPLE, folder)
    newest = load_registry(folder).current.version
    major, minor, _ = (int(x) for x in newest.split("."))
    sql = (folder / f"{newest}.sql").read_text(encoding="utf-8")
    with (folder / "registry.toml").open("a", encoding="utf-8") as toml:
        for k in range(1, added + 1):
            version = f"{major}.{minor + k}.0"
            sql += (
                f"\nCREATE TABLE {table}_{k} (\n    id INTEGER PRIMARY KEY,\n"
                "    trade_id INTEGER REFERENCES trades(id) ON DELETE CASCADE,\n"
                "    body TEXT NOT NULL\n);\n"
                f"CREATE INDEX idx_{table}_{k}_trade ON {table}_{k} (trade_id);\n"
            )
            (folder / f"{version}.sql").write_text(sql, encoding="utf-8")
            toml.write(
                f'\n[[versions]]\nversion = "{version}"\ndescription = "{table} {k}"\n'
                f'created_at = "2026-04-{k:02d}T00:00:00Z"\nschema = "{version}.sql"\n'
                'optional = ["rate_limit_violations"]\n'
            )
    return folder


def row_counts(path: Path | str) -> dict[str, int]:
    """Rows per table (the guards compare them before and after an upgrade)."""
    conn = sqlite3.connect(path)
    try:
        names = [row[0] for row in conn.execute(TABLES_SQL)]
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in names}
    finally:
        conn.close()


# --------------------------------------------------------------------------- a run


class GuardFailed(RuntimeError):
    """The bench did not do the work it claims to measure."""


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--smoke", action="store_true", help="every item once on tiny inputs; checks, no speed"
    )
    parser.add_argument("--quick", action="store_true", help="a smaller run")
    parser.add_argument(
        "--json", type=Path, help="results file (default bench/results/NAME.json; smoke: none)"
    )


class Run:
    def __init__(self, name: str, args: argparse.Namespace, **meta: Any) -> None:
        self.name = name
        self.args = args
        self.guards: dict[str, int] = {}
        self.work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-", dir=getattr(args, "dir", None)))
        self.results: dict[str, Any] = {
            "meta": {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "quick": args.quick,
                "smoke": args.smoke,
                "python": platform.python_version(),
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "loadavg_start": loadavg(),
                "versions": versions(),
                "dir": str(self.work),
                **meta,
            }
        }

    def guard(self, ok: object, what: str) -> None:
        """Count a correctness check; raise when it failed."""
        if not ok:
            raise GuardFailed(what)
        self.guards[what] = self.guards.get(what, 0) + 1

    def finish(self, report: str) -> int:
        meta = self.results["meta"]
        meta["loadavg_end"] = loadavg()
        self.results["guards"] = self.guards
        print(report)
        print(
            f"load average start/end: {meta['loadavg_start'][0]:.2f} / "
            f"{meta['loadavg_end'][0]:.2f} on {os.cpu_count()} CPUs"
        )
        path = self.args.json or (None if self.args.smoke else RESULTS / f"{self.name}.json")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.results, indent=2) + "\n", encoding="utf-8")
            print(f"results: {path}")
        if self.args.smoke:
            print(f"smoke: {len(self.guards)} guards held ({sum(self.guards.values())} checks)")
        return 0


def table(head: Sequence[str], rows: Sequence[Sequence[object]], first: int = 44) -> str:
    """A report table: the first column left-aligned, the others right-aligned (floats with
    two decimals); cells beyond the header (a target, a note) follow as they are."""

    def line(cells: Sequence[object]) -> str:
        text = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in cells]
        out = f"{text[0]:<{first}}" + "".join(
            f"{c:>{max(10, len(name) + 2)}}" for c, name in zip(text[1:], head[1:], strict=False)
        )
        return out + "".join(f"  {c}" for c in text[len(head) :])

    top = line(head)
    return "\n".join([top, "-" * len(top), *(line(row) for row in rows)])
