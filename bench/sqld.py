"""The sqld backend beside the local one and beside bare Hrana floors, in the same run.

    .venv/bin/python -m bench.sqld [--quick | --smoke] [--skip-http] [--new-users N]

One real sqld (the pinned binary tests use, JWT auth), registry seed 000, then:

1. new user, in this process: `TenantService.initialize` + `database_token` through
   `open_runtime` on sqld and local, interleaved with floors sent by the service's HTTP
   client: the admin create, the plan's DDL as one Hrana batch, and both (the issue's
   floor); the token beside a bare signature. Target: sqld median < 25 ms.
2. returning users over HTTP: `python -m service.cli serve` on local, sqld and sqld with
   TENANTDB_SQLD_CHECK_TTL, warmed, then loaded round after round with sqld's CPU read
   from /proc. Target: sqld >= 50% of local's requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt

from bench import harness as h
from bench import servers as hs
from schema_registry import check
from service.backends.sqld import namespace_for
from service.backends.sqld.hrana import HranaDatabase, HranaHttp
from service.backends.sqld.http1 import Http1Pool
from service.config import load_settings
from service.logs import configure_logging
from service.tenants import TenantService
from service.wiring import open_runtime
from tests.sqld import DEFAULT_BIN, SqldServer, make_keypair

TARGET_NEW_USER_MS = 25.0
TARGET_RATIO = 0.5
KINDS = ("sqld", "local")


def env_for(
    run: h.Run, sqld: SqldServer, key: Path, backend: str, folder: str, **more: object
) -> dict[str, str]:
    """The TENANTDB_* settings of a server on `backend` with its data in `folder`: a `serve`
    subprocess's environment, or `load_settings(env)` in this process."""
    sqld_env = {
        "sqld_url": sqld.url,
        "sqld_admin_url": sqld.admin_url,
        "sqld_jwt_key_file": str(key),
        "public_url_template": "libsql://{namespace}.db.example.com",
        "sqld_held_streams": str(run.args.held_streams),
        **{k: str(v) for k, v in more.items()},
    }
    return hs.clean_env(
        backend=backend,
        data_dir=str(run.work / folder),
        registry=str(h.SEED000),
        jwt_secret=hs.SECRET,
        log_level="warning",
        log_format="json",
        **(sqld_env if backend == "sqld" else {}),
    )


def sqld_idle(sqld: SqldServer, seconds: float) -> dict[str, Any]:
    """sqld's CPU with no requests (it grows with the namespaces it has loaded)."""
    assert sqld.process is not None
    dbs = sqld.folder / "data" / "dbs"
    cpu0 = hs.cpu_seconds(sqld.process.pid)
    time.sleep(seconds)
    cores = (hs.cpu_seconds(sqld.process.pid) - cpu0) / seconds
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

    async def __aenter__(self) -> Floors:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.admin.close()
        await self.http.close()

    async def create(self, namespace: str) -> None:
        path, json = f"/v1/namespaces/{namespace}/create", {"content-type": "application/json"}
        status, reply = await self.admin.request("POST", path, b"{}", json)
        if status != 200:
            raise RuntimeError(f"POST {path}: {status} {reply[:200]!r}")

    async def ddl_batch(self, namespace: str) -> None:
        """One Hrana `batch`, each step conditioned on the one before, ROLLBACK if the last
        failed (how HranaTransaction sends its batches)."""
        sqls = ["BEGIN IMMEDIATE", *self.plan, "COMMIT"]
        steps: list[dict[str, Any]] = [
            {"stmt": {"sql": s, "args": [], "want_rows": False}}
            | ({"condition": {"type": "ok", "step": i - 1}} if i else {})
            for i, s in enumerate([*sqls, "ROLLBACK"])
        ]
        steps[-1]["condition"] = {"type": "not", "cond": {"type": "ok", "step": len(sqls) - 1}}
        batch = {"type": "batch", "batch": {"steps": steps}}
        _, _, results = await self.http.pipeline(namespace, [batch, {"type": "close"}])
        if any(e is not None for e in results[0]["result"]["step_errors"]):
            raise RuntimeError(f"DDL batch failed: {results[0]['result']['step_errors']}")

    async def tables(self, namespace: str) -> set[str]:
        return {str(r[0]) for r in await HranaDatabase(self.http, namespace).fetch(h.TABLES_SQL)}


async def new_user(run: h.Run, svc: TenantService, user_id: str) -> list[str]:
    outcome = await svc.initialize(user_id, None)
    token = svc.backend.database_token(user_id, outcome.record.location)
    result = outcome.result
    ok = outcome.created and result is not None and result.status == "applied"
    run.guard(ok, f"new user: {svc.backend.kind} created and applied the schema")
    run.guard(token or svc.backend.kind == "local", "new user: sqld minted a database token")
    return list(result.statements) if result else []


async def provisioning(run: h.Run, sqld: SqldServer, key: Path) -> dict[str, Any]:
    n, envs = run.args.new_users, {b: env_for(run, sqld, key, b, f"inproc-{b}") for b in KINDS}
    async with (
        open_runtime(load_settings(envs["sqld"])) as sqld_svc,
        open_runtime(load_settings(envs["local"])) as local_svc,
        Floors(sqld, key) as floors,
    ):
        floors.plan = await new_user(run, sqld_svc, "warm-sqld-0")
        await new_user(run, local_svc, "warm-local-0")
        for kind, svc in (("sqld", sqld_svc), ("local", local_svc)):  # the same user again
            again = await svc.initialize(f"warm-{kind}-0", None)
            ok = not again.created and again.result is None
            run.guard(ok, "returning user: initialize finds it current and syncs nothing")
        expected = {t.name for t in sqld_svc.registry.current.schema.tables}
        namespace, current = namespace_for("warm-sqld-0"), sqld_svc.registry.current
        made = await floors.tables(namespace)
        run.guard(made == expected | {"schema_version"}, "new user: sqld has the registry's tables")
        ok = (await check(HranaDatabase(floors.http, namespace), current, None))[0]
        run.guard(ok, "new user: the engine's check finds the namespace current")
        await floors.create("floor-check")
        await floors.ddl_batch("floor-check")
        run.guard(expected <= await floors.tables("floor-check"), "floor: the DDL batch made them")

        async def floor_new_user(i: int) -> None:
            await floors.create(f"floor-new-{i}")
            await floors.ddl_batch(f"floor-new-{i}")

        for i in range(n):  # untimed: fresh, empty namespaces for the DDL alone
            await floors.create(f"floor-ddl-batch-{i}")
        variants: dict[str, Callable[[int], Awaitable[object]]] = {
            "sqld": lambda i: new_user(run, sqld_svc, f"prov-{i}"),
            "local": lambda i: new_user(run, local_svc, f"prov-{i}"),
            "floor_create": lambda i: floors.create(f"floor-create-{i}"),
            "floor_ddl_batch": lambda i: floors.ddl_batch(f"floor-ddl-batch-{i}"),
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


# --------------------------------------------------------------------------- 2. HTTP

EXTRA = ("sqld_cpu_cores", "sqld_cpu_us_per_request", "sqld_cpu_us_per_request_net")


def http_part(
    run: h.Run, sqld: SqldServer, key: Path, loads: dict[str, tuple[int, float]]
) -> dict[str, Any]:
    args, serve = run.args, ["service.cli", "serve"]
    servers = [
        hs.Server("local", serve, env_for(run, sqld, key, "local", "http-local"), run.work),
        hs.Server("sqld", serve, env_for(run, sqld, key, "sqld", "http-sqld"), run.work),
    ]
    if args.check_ttl:  # the same data as sqld's
        env = env_for(run, sqld, key, "sqld", "http-sqld", sqld_check_ttl=args.check_ttl)
        servers.append(hs.Server("sqld-ttl", serve, env, run.work))
    users = hs.make_users(args.users)
    load = hs.Load(users, run.work, args.threads, args.python_client)
    run.results["meta"]["client"] = load.client
    assert sqld.process is not None
    pid = sqld.process.pid
    try:
        warm = hs.start_warm(run, servers, users, load)
        idle = sqld_idle(sqld, 4.0 if not args.smoke else 0.2)

        def measure(server: hs.Server, connections: int, seconds: float) -> dict[str, Any]:
            cpu0 = hs.cpu_seconds(pid)
            fig = load(server, connections, seconds)
            cpu = hs.cpu_seconds(pid) - cpu0
            net = max(0.0, cpu - idle["cores"] * fig["seconds"])
            requests = max(fig["requests"], 1)
            fig["sqld_cpu_cores"] = round(cpu / fig["seconds"], 2)
            fig["sqld_cpu_us_per_request"] = round(cpu / requests * 1e6, 1)
            fig["sqld_cpu_us_per_request_net"] = round(net / requests * 1e6, 1)
            # the load counts sqld among "others": it is part of the sqld backend's cost
            others = max(0.0, fig["other_cpu_cores"] - fig["sqld_cpu_cores"])
            fig["other_cpu_cores"] = round(others, 2)
            return fig

        raw = hs.measure_rounds(servers, measure, loads, args.rounds)
    finally:
        for server in servers:
            server.stop()
    summary = {k: {a: hs.summarize(f, EXTRA) for a, f in per.items()} for k, per in raw.items()}
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
        summary = results["http"]["summary"]
        tp = summary["throughput"]
        out["throughput_ratio"] = round(tp["sqld"]["rps"] / tp["local"]["rps"], 3)
        out["throughput_ok"] = out["throughput_ratio"] >= TARGET_RATIO
        if "sqld-ttl" in tp:
            out["check_ttl_ratio"] = round(tp["sqld-ttl"]["rps"] / tp["local"]["rps"], 3)
        out["no_errors"] = all(a["errors"] == 0 for per in summary.values() for a in per.values())
    return out


def report(results: dict[str, Any]) -> str:
    prov, vd, ok = results["provisioning"], results["verdict"], {True: "PASS", False: "MISS"}
    keys = ("median", "p90", "p99", "mean", "min")
    rows: list[list[object]] = [[k, *(v[x] for x in keys)] for k, v in prov["variants"].items()]
    out = [f"new user, seed 000 ({prov['plan_statements']} statements), ms"]
    out += [h.table(["variant", *keys], rows, 24)]
    tokens = {k: v["median_us"] for k, v in prov["database_token_us"].items()}
    out += [f"database_token, median us: {tokens}"]
    cols = {"p50 ms": "p50_ms", "p99 ms": "p99_ms", "srv us/req": "server_cpu_us_per_request"}
    cols |= {"sqld us/req": "sqld_cpu_us_per_request", "(net)": "sqld_cpu_us_per_request_net"}
    if "http" in results:
        out.append(hs.load_tables(results["http"]["summary"], results["meta"], **cols))
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    h.add_common(parser)
    hs.add_http(parser, users=1000)
    parser.add_argument("--new-users", type=int, help="new users per variant (100; quick 30)")
    parser.add_argument("--check-ttl", type=float, default=1.0, help="sqld-ttl's TTL (1; 0: none)")
    parser.add_argument("--held-streams", type=int, default=1024, help="of sqld servers (1024)")
    parser.add_argument("--skip-http", action="store_true", help="the in-process part only")
    args = parser.parse_args(argv)
    args.new_users = args.new_users or (3 if args.smoke else 30 if args.quick else 100)
    args.default_users = 300 if args.quick else 1000
    loads = hs.http_plan(args)
    configure_logging("json", "warning")
    binary = Path(os.environ.get("TENANTDB_SQLD_BIN") or DEFAULT_BIN)
    os.environ["TENANTDB_SQLD_BIN"] = str(binary)
    namespaces = 6 * args.new_users + args.users + 520  # above every namespace the run makes
    connections = 3 * args.held_streams + 256  # every server's held streams and their syncs
    run = h.Run(
        "sqld",
        args,
        sqld_binary=str(binary),
        sqld_max_active_namespaces=namespaces,
        sqld_max_concurrent_connections=connections,
        source=h.source("service"),
        check_ttl_s=args.check_ttl,
        **{k: getattr(args, k) for k in ("new_users", "users", "connections", "seconds")},
        **{k: getattr(args, k) for k in ("latency_connections", "rounds", "held_streams")},
    )
    private, public = make_keypair(run.work, "sqld")
    sqld = SqldServer(
        run.work / "sqld", [public], max_active=namespaces, max_connections=connections
    )
    try:
        sqld.start()
        run.results["sqld_idle"] = [sqld_idle(sqld, 0.2 if args.smoke else 4.0)]
        print(f"1. new users: {args.new_users} per variant ...", flush=True)
        run.results["provisioning"] = asyncio.run(provisioning(run, sqld, private))
        if not args.skip_http:
            print("2. returning users over HTTP ...", flush=True)
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
