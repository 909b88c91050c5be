"""The sqld backend beside the local one and beside bare Hrana floors, in the same run.

    .venv/bin/python -m bench.sqld [--quick | --smoke] [--skip-http] [--new-users N]

One real sqld (the pinned binary tests use, JWT auth, --max-active-namespaces above every
namespace made, so libsql#1772's false 404s stay out), registry seed 000, then:

1. new user, in this process: `TenantService.initialize` + `database_token` through
   `open_runtime` on sqld and on local, interleaved with the floors, sent with the
   service's HTTP client: the admin create alone, the plan's DDL as a pipeline of
   `execute`s and as one conditioned `batch`, and create + batch (the issue's floor).
   The token as minted and signed with the loaded key. Target: sqld median < 25 ms.
2. profile, in this process: every Hrana round trip and admin call of new and returning
   users labelled and timed; CPU per returning initialize; client CPU per round trip;
   sqld's CPU per check on a new stream, an empty namespace and a held stream.
3. returning users over HTTP: `python -m service.cli serve` on local, sqld and sqld with
   TENANTDB_SQLD_CHECK_TTL (`--check-ttl`), warmed, then wrk (or the asyncio client)
   round after round, sqld's CPU read from /proc. Target: sqld >= 50% of local's req/s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import jwt

from bench import harness as h
from schema_registry import check
from service.backends.sqld import namespace_for
from service.backends.sqld.hrana import HranaDatabase, HranaHttp
from service.backends.sqld.http1 import Http1Pool
from service.config import Settings, load_settings
from service.logs import configure_logging
from service.tenants import TenantService
from service.wiring import open_runtime
from tests.sqld import DEFAULT_BIN, SqldServer, make_keypair

TARGET_NEW_USER_MS = 25.0
TARGET_RATIO = 0.5
TABLES_SQL = "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
LABELS = (  # (needle in the first statement that is not BEGIN, label)
    ("FROM tenants WHERE user_id", "catalog: read row"),
    ("INTO tenants", "catalog: write row"),
    ("INTO audit_log", "catalog: audit row"),
    ("PRAGMA schema_version", "schema cookie"),
    ("CREATE TABLE IF NOT EXISTS schema_version", "state: history table, newest row, schema"),
    ("FROM schema_version", "history: newest row"),
    ("INSERT INTO schema_version", "history: rows + COMMIT"),
    ("pragma_table_list", "introspect: pragmas"),
    ("sqlite_schema", "state: sqlite_schema"),
)


def settings_for(backend: str, folder: Path, sqld: SqldServer, key: Path, **more: Any) -> Settings:
    extra = (
        {}
        if backend == "local"
        else {
            "sqld_url": (sqld.url,),
            "sqld_admin_url": (sqld.admin_url,),
            "sqld_jwt_key_file": str(key),
            "public_url_template": "libsql://{namespace}.db.example.com",
            **more,
        }
    )
    return load_settings(
        {},
        backend=backend,
        registry=str(h.SEED000),
        data_dir=str(folder),
        jwt_secret=h.SECRET,
        log_level="warning",
        **extra,
    )


def server_env(s: Settings) -> dict[str, str]:
    """The TENANTDB_* environment of a `serve` subprocess with these settings."""
    env = {"backend": s.backend, "data_dir": s.data_dir, "registry": s.registry}
    if s.backend == "sqld":
        env.update(sqld_url=s.sqld_url[0], sqld_admin_url=s.sqld_admin_url[0])
        env.update(
            sqld_jwt_key_file=s.sqld_jwt_key_file or "", sqld_check_ttl=str(s.sqld_check_ttl)
        )
        env.update(public_url_template=s.public_url_template or "")
        env["sqld_held_streams"] = str(s.sqld_held_streams)
    return h.clean_env(jwt_secret=h.SECRET, log_level="warning", log_format="json", **env)


def stmt(sql: str) -> dict[str, Any]:
    return {"sql": sql, "args": [], "want_rows": False}


def sqld_idle(sqld: SqldServer, seconds: float) -> dict[str, Any]:
    """sqld's CPU with no requests (it grows with the namespaces it has loaded)."""
    assert sqld.process is not None
    dbs = sqld.folder / "data" / "dbs"
    cpu0 = h.cpu_seconds(sqld.process.pid)
    time.sleep(seconds)
    cores = (h.cpu_seconds(sqld.process.pid) - cpu0) / seconds
    return {"namespaces": len(list(dbs.iterdir())) if dbs.is_dir() else 0, "cores": round(cores, 3)}


# --------------------------------------------------------------------------- 1. new user


class Floors:
    """Bare Hrana and admin requests through the service's HTTP client, no service around."""

    def __init__(self, sqld: SqldServer, key: Path) -> None:
        now = int(time.time())
        claims = {"sub": "bench", "iat": now, "exp": now + 4 * 3600}
        token = jwt.encode(claims, key.read_text(encoding="utf-8"), algorithm="EdDSA")
        self.http = HranaHttp(sqld.url, lambda: token)
        self.admin = Http1Pool(sqld.admin_url)
        self.plan: list[str] = []  # the engine's own DDL, from the first sqld user

    async def create(self, namespace: str) -> None:
        path = f"/v1/namespaces/{namespace}/create"
        status, reply = await self.admin.request(
            "POST", path, b"{}", {"content-type": "application/json"}
        )
        if status != 200:
            raise RuntimeError(f"POST {path}: {status} {reply[:200]!r}")

    async def ddl_pipeline(self, namespace: str) -> None:
        sqls = ["BEGIN IMMEDIATE", *self.plan, "COMMIT"]
        requests = [{"type": "execute", "stmt": stmt(s)} for s in sqls]
        await self.http.pipeline(namespace, [*requests, {"type": "close"}])

    async def ddl_batch(self, namespace: str) -> None:
        """One Hrana `batch`, each step conditioned on the one before, ROLLBACK if the last
        failed (how HranaTransaction sends its batches)."""
        sqls = ["BEGIN IMMEDIATE", *self.plan, "COMMIT"]
        steps: list[dict[str, Any]] = [
            {"stmt": stmt(s), **({"condition": {"type": "ok", "step": i - 1}} if i else {})}
            for i, s in enumerate(sqls)
        ]
        last = {"type": "not", "cond": {"type": "ok", "step": len(sqls) - 1}}
        steps.append({"stmt": stmt("ROLLBACK"), "condition": last})
        batch = {"type": "batch", "batch": {"steps": steps}}
        _, _, results = await self.http.pipeline(namespace, [batch, {"type": "close"}])
        if any(e is not None for e in results[0]["result"]["step_errors"]):
            raise RuntimeError(f"DDL batch failed: {results[0]['result']['step_errors']}")

    async def tables(self, namespace: str) -> set[str]:
        return {str(r[0]) for r in await HranaDatabase(self.http, namespace).fetch(TABLES_SQL)}


async def new_user(run: h.Run, svc: TenantService, user_id: str) -> list[str]:
    outcome = await svc.initialize(user_id, None)
    token = svc.backend.database_token(user_id, outcome.record.location)
    result = outcome.result
    ok = outcome.created and result is not None and result.status == "applied"
    run.guard(ok, f"new user: {svc.backend.kind} created and applied the schema")
    run.guard(token or svc.backend.kind == "local", "new user: sqld minted a database token")
    return list(result.statements) if result else []


async def provisioning(
    run: h.Run, floors: Floors, sqld_svc: TenantService, local_svc: TenantService, n: int
) -> dict[str, Any]:
    floors.plan = await new_user(run, sqld_svc, "warm-sqld-0")
    await new_user(run, local_svc, "warm-local-0")
    expected = {t.name for t in sqld_svc.registry.current.schema.tables}
    namespace = namespace_for("warm-sqld-0")
    made = await floors.tables(namespace)
    run.guard(made == expected | {"schema_version"}, "new user: sqld has the registry's tables")
    current = (await check(HranaDatabase(floors.http, namespace), sqld_svc.registry.current, None))[
        0
    ]
    run.guard(current, "new user: the engine's check finds the namespace current")
    await floors.create("floor-check")
    await floors.ddl_batch("floor-check")
    run.guard(expected <= await floors.tables("floor-check"), "floor: the DDL batch made them")

    def prepared(
        prefix: str, send: Callable[[str], Awaitable[None]]
    ) -> Callable[[int], Awaitable[None]]:
        async def one(i: int) -> None:  # the namespace is created untimed, by the harness
            await send(f"{prefix}-{i}")

        return one

    async def floor_new_user(i: int) -> None:
        await floors.create(f"floor-new-{i}")
        await floors.ddl_batch(f"floor-new-{i}")

    for prefix in ("floor-ddl-pipe", "floor-ddl-batch"):  # untimed: fresh, empty namespaces
        for i in range(n):
            await floors.create(f"{prefix}-{i}")
    variants: dict[str, Callable[[int], Awaitable[object]]] = {
        "sqld": lambda i: new_user(run, sqld_svc, f"prov-{i}"),
        "local": lambda i: new_user(run, local_svc, f"prov-{i}"),
        "floor_create": lambda i: floors.create(f"floor-create-{i}"),
        "floor_ddl_pipeline": prepared("floor-ddl-pipe", floors.ddl_pipeline),
        "floor_ddl_batch": prepared("floor-ddl-batch", floors.ddl_batch),
        "floor_new_user": floor_new_user,
    }
    out = {"plan_statements": len(floors.plan), "variants": await h.rotated(variants, n)}
    backend: Any = sqld_svc.backend  # its loaded key: the token's floor
    mint = {
        "backend": lambda i: backend.database_token(f"t-{i}", f"0/{namespace_for(f't-{i}')}"),
        "key_loaded_once": lambda i: jwt.encode(
            {"sub": f"t-{i}", "exp": 2**31}, backend._key, algorithm="EdDSA"
        ),
    }
    out["database_token_us"] = h.interleaved(mint, 300 if n > 5 else 5, block=50)
    return out


# --------------------------------------------------------------------------- 2. profile


@contextlib.contextmanager
def recorded(svc: TenantService, calls: list[tuple[str, float]]) -> Iterator[None]:
    """Every Hrana round trip and admin call this process makes meanwhile, labelled, in ms."""
    original = HranaHttp.exchange
    backend: Any = svc.backend
    create = getattr(backend, "create_namespace", None)

    async def timed_create(*args: Any) -> Any:
        started = time.perf_counter()
        try:
            return await create(*args)  # type: ignore[misc]  # set only when create exists
        finally:
            calls.append(("admin: create namespace", h.ms_since(started)))

    if create is not None:
        backend.create_namespace = timed_create

    async def exchange(
        http: HranaHttp,
        namespace: str,
        requests: list[dict[str, Any]],
        baton: str | None = None,
        base_url: str | None = None,
    ) -> Any:
        started = time.perf_counter()
        try:
            return await original(http, namespace, requests, baton, base_url)
        finally:
            sqls = [r["stmt"]["sql"] for r in requests if r.get("type") == "execute"]
            sqls += [
                s["stmt"]["sql"]
                for r in requests
                if r.get("type") == "batch"
                for s in r["batch"]["steps"]
            ]
            work = [s for s in sqls if not s.startswith(("BEGIN", "PRAGMA foreign_keys ="))]
            first = " ".join(work[0].split()) if work else "close"
            label = next((name for needle, name in LABELS if needle in first), first[:40])
            if len(work) > 8:
                label = f"plan DDL ({len(work)} statements, one batch)"
            in_tx = len(work) < len(sqls) or (baton is not None and len(work) > 1)
            prefix = "tx: " if in_tx else "held: " if baton is not None else ""
            calls.append((prefix + label, h.ms_since(started)))

    setattr(HranaHttp, "exchange", exchange)  # noqa: B010 - mypy refuses assigning a method
    try:
        yield
    finally:
        setattr(HranaHttp, "exchange", original)  # noqa: B010
        if create is not None:
            del backend.create_namespace


async def profile_ops(run: h.Run, svc: TenantService, n: int, new: bool) -> dict[str, Any]:
    totals: list[float] = []
    by_label: dict[str, list[float]] = defaultdict(list)
    for i in range(n):
        calls: list[tuple[str, float]] = []
        with recorded(svc, calls):
            started = time.perf_counter()
            outcome = await svc.initialize(f"profile-{i}", None)
            svc.backend.database_token(f"profile-{i}", outcome.record.location)
            totals.append(h.ms_since(started))
        run.guard(outcome.created == new, "profile: new users are new, returning ones are not")
        for label, ms in calls:
            by_label[label].append(ms)
    return {
        "ops": n,
        "total_ms": h.stats(totals),
        "round_trips_per_op": round(sum(len(v) for v in by_label.values()) / n, 2),
        "round_trips": [
            {
                "what": k,
                "per_op": round(len(v) / n, 2),
                "median_ms": round(sorted(v)[len(v) // 2], 3),
                "ms_per_op": round(sum(v) / n, 3),
            }
            for k, v in by_label.items()
        ],
    }


async def profile(
    run: h.Run, svcs: dict[str, TenantService], sqld: SqldServer, n: int, reps: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, svc in svcs.items():
        new, returning = await profile_ops(run, svc, n, True), await profile_ops(run, svc, n, False)
        http: list[HranaHttp] = getattr(svc.backend, "_http", [])
        opened = sum(x.connections_opened for x in http)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for i in range(reps * n):  # CPU per returning initialize: what bounds one worker
            outcome = await svc.initialize(f"profile-{i % n}", None)
            svc.backend.database_token(f"profile-{i % n}", outcome.record.location)
        cpu = {
            "ops": reps * n,
            "cpu_us_per_op": round((time.process_time() - cpu0) / (reps * n) * 1e6, 1),
            "wall_ms_per_op": round(h.ms_since(wall0) / (reps * n), 3),
            "new_tcp_connections": sum(x.connections_opened for x in http) - opened,
        }
        out[kind] = {"new_user": new, "returning_user": returning, "returning_cpu": cpu}
    out["sqld_cpu_per_pipeline"] = await stream_cost(svcs["sqld"], sqld, reps > 1)
    return out


async def stream_cost(svc: TenantService, sqld: SqldServer, full: bool) -> dict[str, Any]:
    """sqld's CPU and ours per `PRAGMA schema_version` pipeline (a returning user's check)
    on a new stream, on an empty namespace, and on a stream held open by its baton."""
    backend: Any = svc.backend  # the sqld backend: its own client and admin API
    http: HranaHttp = backend._http[0]
    seeded = namespace_for("profile-0")
    cookie = {"type": "execute", "stmt": stmt("PRAGMA schema_version")}
    await backend.create_namespace(0, "bench-empty")
    held: dict[str, Any] = {"baton": None}

    async def on_held() -> None:
        held["baton"], _, _ = await http.pipeline(seeded, [cookie], held["baton"])

    variants: dict[str, Callable[[], Awaitable[object]]] = {
        "new_stream_seed000": lambda: http.pipeline(seeded, [cookie, {"type": "close"}]),
        "new_stream_empty_namespace": lambda: http.pipeline(
            "bench-empty", [cookie, {"type": "close"}]
        ),
        "held_stream_seed000": on_held,
    }
    assert sqld.process is not None
    idle = await asyncio.to_thread(sqld_idle, sqld, 2.0 if full else 0.2)
    out: dict[str, Any] = {"idle_during": idle}
    count = 300 if full else 5
    for name, send in variants.items():
        walls: list[float] = []
        cpu0, process0 = h.cpu_seconds(sqld.process.pid), time.process_time()
        for _ in range(count):
            started = time.perf_counter()
            await send()
            walls.append(h.ms_since(started))
        cpu = h.cpu_seconds(sqld.process.pid) - cpu0
        net = max(0.0, cpu - idle["cores"] * sum(walls) / 1000)
        out[name] = {
            "wall_ms": h.stats(walls),
            "sqld_cpu_us": round(cpu / count * 1e6, 1),
            "sqld_cpu_us_net_of_idle": round(net / count * 1e6, 1),
            "client_cpu_us": round((time.process_time() - process0) / count * 1e6, 1),
        }
    await http.pipeline(seeded, [{"type": "close"}], held["baton"])
    return out


# --------------------------------------------------------------------------- 3. HTTP

EXTRA = ("sqld_cpu_cores", "sqld_cpu_us_per_request", "sqld_cpu_us_per_request_net")


def http_part(
    run: h.Run, sqld: SqldServer, key: Path, loads: dict[str, tuple[int, float]]
) -> dict[str, Any]:
    args, work = run.args, run.work
    held = {"sqld_held_streams": args.held_streams}
    servers = [
        h.Server(
            "local",
            ["service.cli", "serve"],
            server_env(settings_for("local", work / "http-local", sqld, key)),
            work,
        ),
        h.Server(
            "sqld",
            ["service.cli", "serve"],
            server_env(settings_for("sqld", work / "http-sqld", sqld, key, **held)),
            work,
        ),
    ]
    if args.check_ttl:
        ttl = settings_for(
            "sqld", work / "http-sqld", sqld, key, sqld_check_ttl=args.check_ttl, **held
        )
        servers.append(h.Server("sqld-ttl", ["service.cli", "serve"], server_env(ttl), work))
    users = h.make_users(args.users)
    load = h.Load(users, work, args.threads, args.python_client)
    run.results["meta"]["client"] = load.client
    assert sqld.process is not None
    pid = sqld.process.pid
    try:
        warm = h.start_warm(run, servers, users, load)
        idle = sqld_idle(sqld, 4.0 if not args.smoke else 0.2)

        def measure(server: h.Server, connections: int, seconds: float) -> dict[str, Any]:
            cpu0 = h.cpu_seconds(pid)
            fig = load(server, connections, seconds)
            cpu = h.cpu_seconds(pid) - cpu0
            net = max(0.0, cpu - idle["cores"] * fig["seconds"])
            requests = max(fig["requests"], 1)
            fig["sqld_cpu_cores"] = round(cpu / fig["seconds"], 2)
            fig["sqld_cpu_us_per_request"] = round(cpu / requests * 1e6, 1)
            fig["sqld_cpu_us_per_request_net"] = round(net / requests * 1e6, 1)
            # the harness counts sqld among "others": it is part of the sqld backend's cost
            fig["other_cpu_cores"] = round(
                max(0.0, fig["other_cpu_cores"] - fig["sqld_cpu_cores"]), 2
            )
            return fig

        raw = h.measure_rounds(servers, measure, loads, args.rounds)
    finally:
        for server in servers:
            server.stop()
    summary = {k: {a: h.summarize(f, EXTRA) for a, f in per.items()} for k, per in raw.items()}
    return {"warm_up": warm, "sqld_idle": idle, "rounds": raw, "summary": summary}


# --------------------------------------------------------------------------- report


def verdict(results: dict[str, Any]) -> dict[str, Any]:
    v = results["provisioning"]["variants"]
    out: dict[str, Any] = {
        "new_user_target_ms": TARGET_NEW_USER_MS,
        "new_user_sqld_median_ms": v["sqld"]["median"],
        "new_user_sqld_ok": v["sqld"]["median"] < TARGET_NEW_USER_MS,
        "new_user_local_median_ms": v["local"]["median"],
        "no_errors": True,
    }
    if "http" in results:
        tp = results["http"]["summary"]["throughput"]
        out["throughput_ratio"] = round(tp["sqld"]["rps"] / tp["local"]["rps"], 3)
        out["throughput_ok"] = out["throughput_ratio"] >= TARGET_RATIO
        if "sqld-ttl" in tp:
            out["check_ttl_ratio"] = round(tp["sqld-ttl"]["rps"] / tp["local"]["rps"], 3)
        out["no_errors"] = all(
            a["errors"] == 0 for per in results["http"]["summary"].values() for a in per.values()
        )
    return out


def report(results: dict[str, Any]) -> str:
    prov, prof, vd = results["provisioning"], results["profile"], results["verdict"]
    keys = ("median", "p90", "p99", "mean", "min")
    rows: list[list[object]] = [[k, *(v[x] for x in keys)] for k, v in prov["variants"].items()]
    out = [f"new user, seed 000 ({prov['plan_statements']} statements), ms"]
    out += [h.table(["variant", *keys], rows, 24)]
    tokens = {k: v["median_us"] for k, v in prov["database_token_us"].items()}
    out += [f"database_token, median us: {tokens}", ""]
    rows = []
    for kind in ("sqld", "local"):
        for op in ("new_user", "returning_user"):
            p = prof[kind][op]
            rows.append([f"{kind} {op}", p["total_ms"]["median"], p["round_trips_per_op"]])
            for r in sorted(p["round_trips"], key=lambda r: -float(r["ms_per_op"])):
                rows.append([f"  {r['what']}", r["median_ms"], r["per_op"], r["ms_per_op"]])
        cpu = prof[kind]["returning_cpu"]
        note = f"{cpu['new_tcp_connections']} new TCP connections in {cpu['ops']}"
        rows.append([f"{kind} returning: CPU us per op", cpu["cpu_us_per_op"], "", "", note])
    out += [h.table(["profile", "median ms", "per op", "ms/op"], rows, 56), ""]
    pipes = {k: v for k, v in prof["sqld_cpu_per_pipeline"].items() if k != "idle_during"}
    head = ["PRAGMA schema_version", "sqld us", "(net)", "client us", "wall ms"]
    rows = [
        [
            k,
            r["sqld_cpu_us"],
            r["sqld_cpu_us_net_of_idle"],
            r["client_cpu_us"],
            r["wall_ms"]["median"],
        ]
        for k, r in pipes.items()
    ]
    out += [h.table(head, rows, 30)]
    head = ["app", "req/s", "p50 ms", "p99 ms", "srv us/req", "sqld us/req", "(net)"]
    for load, per_app in results.get("http", {}).get("summary", {}).items():
        rows = [
            [n, round(r["rps"]), r["p50_ms"], r["p99_ms"], r["server_cpu_us_per_request"],
             r["sqld_cpu_us_per_request"], r["sqld_cpu_us_per_request_net"],
             f"others {r['other_cpu_cores']:.2f}, errors {r['errors']}"]
            for n, r in per_app.items()
        ]  # fmt: skip
        out += ["", f"returning users over HTTP, {load}", h.table(head, rows, 10)]
    ok = {True: "PASS", False: "MISS"}
    out.append(
        f"\nnew user on sqld: median {vd['new_user_sqld_median_ms']:.1f} ms (target < "
        f"{TARGET_NEW_USER_MS:g} ms: {ok[vd['new_user_sqld_ok']]}); local "
        f"{vd['new_user_local_median_ms']:.1f} ms"
    )
    if "throughput_ratio" in vd:
        out.append(
            f"returning users: sqld at {vd['throughput_ratio']:.0%} of local's requests/s "
            f"(target >= {TARGET_RATIO:.0%}: {ok[vd['throughput_ok']]}); with the check TTL "
            f"{vd.get('check_ttl_ratio', 0):.0%}"
        )
    return "\n".join(out)


# --------------------------------------------------------------------------- main


async def in_process(run: h.Run, sqld: SqldServer, key: Path) -> None:
    args, work = run.args, run.work
    sqld_settings = settings_for(
        "sqld", work / "inproc-sqld", sqld, key, sqld_held_streams=args.held_streams
    )
    floors = Floors(sqld, key)
    async with (
        open_runtime(sqld_settings) as sqld_svc,
        open_runtime(settings_for("local", work / "inproc-local", sqld, key)) as local_svc,
    ):
        try:
            print(f"1. new users: {args.new_users} per variant ...", flush=True)
            run.results["provisioning"] = await provisioning(
                run, floors, sqld_svc, local_svc, args.new_users
            )
            print(f"2. profile: {args.profile_users} new and returning users per backend ...")
            svcs = {"sqld": sqld_svc, "local": local_svc}
            run.results["profile"] = await profile(
                run,
                svcs,
                sqld,
                args.profile_users,
                1 if args.smoke else max(1, 600 // args.profile_users),
            )
        finally:
            await floors.admin.close()
            await floors.http.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    h.add_common(parser)
    h.add_http(parser, users=1000)
    parser.add_argument("--new-users", type=int, help="new users per variant (100; quick 30)")
    parser.add_argument("--profile-users", type=int, help="users profiled (30; quick 10)")
    parser.add_argument(
        "--check-ttl", type=float, default=1.0, help="sqld-ttl server's TTL (1; 0: none)"
    )
    parser.add_argument(
        "--held-streams", type=int, default=1024, help="TENANTDB_SQLD_HELD_STREAMS (1024)"
    )
    parser.add_argument("--skip-http", action="store_true", help="the in-process parts only")
    args = parser.parse_args(argv)
    args.new_users = args.new_users or (3 if args.smoke else 30 if args.quick else 100)
    args.profile_users = args.profile_users or (2 if args.smoke else 10 if args.quick else 30)
    args.default_users = 300 if args.quick else 1000
    loads = h.http_plan(args)
    configure_logging("json", "warning")
    binary = Path(os.environ.get("TENANTDB_SQLD_BIN") or DEFAULT_BIN)
    os.environ["TENANTDB_SQLD_BIN"] = str(binary)
    namespaces = 6 * args.new_users + args.profile_users + args.users + 20
    connections = 3 * args.held_streams + 256  # every server's held streams and their syncs
    run = h.Run(
        "sqld",
        args,
        sqld_binary=str(binary),
        sqld_max_active_namespaces=namespaces + 500,
        sqld_max_concurrent_connections=connections,
        source=h.source("service"),
    )
    meta = run.results["meta"]
    meta.update(
        {
            k: getattr(args, k)
            for k in (
                "new_users",
                "profile_users",
                "users",
                "connections",
                "latency_connections",
                "seconds",
                "rounds",
                "held_streams",
            )
        }
    )
    meta["check_ttl_s"] = args.check_ttl
    private, public = make_keypair(run.work, "sqld")
    sqld = SqldServer(
        run.work / "sqld", [public], max_active=namespaces + 500, max_connections=connections
    )
    try:
        sqld.start()
        run.results["sqld_idle"] = [sqld_idle(sqld, 0.2 if args.smoke else 4.0)]
        asyncio.run(in_process(run, sqld, private))
        if not args.skip_http:
            print("3. returning users over HTTP ...", flush=True)
            run.results["http"] = http_part(run, sqld, private, loads)
            run.results["sqld_idle"].append(run.results["http"]["sqld_idle"])
        run.results["verdict"] = verdict(run.results)
        if args.smoke:
            run.guard(run.results["verdict"]["no_errors"], "no request failed")
        return run.finish(report(run.results)) or (0 if run.results["verdict"]["no_errors"] else 1)
    finally:
        sqld.stop()
        if not args.keep:
            shutil.rmtree(run.work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
