"""The HTTP API as operators serve it: returning users' sign-ins beside a bare Litestar
endpoint doing only the same JWT check, with 1 and 2 server processes, and a new user's
first sign-in beside bare sqlite3 creating the same tables, in the same run.

    .venv/bin/python -m bench.api [--quick | --smoke] [--users N] [--workers 1 2]
                                  [--new-users N] [--python-client]

Servers, each a subprocess on a free loopback port, on the production stack (uvloop and
httptools; meta.versions records them), for each worker count W of --workers (1 and 2):

  bare-W           this module's `--serve-bare --workers W`: one POST endpoint running
                   service.auth.Authenticator.authenticate and reading the JSON body (floor)
  tenantdb-W       `python -m service.cli serve --workers W`, TENANTDB_LOG_LEVEL=warning
  tenantdb-info-W  the same at the default info level (one JSON request line per request),
                   for the largest W only

1. Returning users: N users (1,000) are initialized once, untimed, and one checked request
   must be the returning, up-to-date path; then wrk (or, without it, an asyncio client)
   rotates their tokens at 32 connections (throughput) and 4 (latency), the servers
   alternating round after round; figures are medians of rounds, CPU is the server's
   whole process tree. Targets: tenantdb >= 85% of bare's requests/s with 2 workers, p99
   < 5 ms at 4 connections, the info level within 5 points of the warning level.
2. New users, sequential: M first sign-ins (200) on tenantdb-1, each timed by the client
   from request to reply, alternating with the floor: sqlite3 in this process creating
   the same tables (read back from the first new user's file) in a new WAL file, as
   engine.py's provision floor does. Target: median <= 1.2x the floor.
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import Run, add_common, ratio, remove_db, source, stats
from bench.servers import (
    ENDPOINT,
    HOST,
    SECRET,
    Load,
    Server,
    add_http,
    clean_env,
    http_plan,
    load_tables,
    make_users,
    measure_rounds,
    post,
    start_warm,
    summarize,
)

TARGET_RATIO = 0.85  # of bare's requests/s, with 2 workers
TARGET_P99_MS = 5.0  # at the latency load's connections
TARGET_INFO_POINTS = 0.05  # the info level's share within this of the warning level's
TARGET_NEW_USER = 1.2  # x bare sqlite3 creating the same tables
JUDGED_WORKERS = 2


def bare_app() -> Any:
    """The floor's app: the JWT check tenantdb's sign-in makes, and the body read."""
    from litestar import Litestar, Request, get, post  # noqa: PLC0415 - server side only

    from service.auth import Authenticator  # noqa: PLC0415
    from service.config import load_settings  # noqa: PLC0415
    from service.errors import EXCEPTION_HANDLERS  # noqa: PLC0415

    settings = load_settings({}, data_dir=tempfile.gettempdir(), jwt_secret=SECRET)
    authenticator = Authenticator(settings)

    @post(ENDPOINT, status_code=200)
    async def initialize(request: Request[Any, Any, Any]) -> dict[str, Any]:
        identity = await authenticator.authenticate(request.headers.get("authorization"))
        body = await request.json()
        return {"success": True, "user_id": identity.user_id, "same": body.get("user_id")}

    @get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar(
        [initialize, health], exception_handlers=EXCEPTION_HANDLERS, logging_config=None
    )


def serve_bare(host: str, port: int, workers: int) -> int:
    """The floor, served as `tenantdb serve --workers W` serves tenantdb (uvicorn, its own
    worker processes, access log off, uvloop and httptools)."""
    import uvicorn  # noqa: PLC0415 - only the server subprocess needs the web stack

    uvicorn.run(
        "bench.api:bare_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_config=None,
        loop="uvloop",
        http="httptools",
    )
    return 0


def servers(run: Run, workers: list[int]) -> list[Server]:
    data = str(run.work / "data")  # every tenantdb server shares it: the first creates

    def tenantdb(level: str) -> dict[str, str]:
        return clean_env(data_dir=data, jwt_secret=SECRET, log_level=level, log_format="json")

    out = []
    for w in workers:
        many = ["--workers", str(w)]
        out.append(Server(f"bare-{w}", ["bench.api", "--serve-bare", *many], clean_env(), run.work))
        serve = ["service.cli", "serve", *many]
        out.append(Server(f"tenantdb-{w}", serve, tenantdb("warning"), run.work))
    top = max(workers)
    serve = ["service.cli", "serve", "--workers", str(top)]
    out.append(Server(f"tenantdb-info-{top}", serve, tenantdb("info"), run.work))
    return out


def new_users(run: Run, server: Server, count: int) -> dict[str, Any]:
    """Item 2: first sign-ins over HTTP, alternating with the bare sqlite3 floor."""
    users = make_users(count + 1, prefix="bench-new")
    conn = http.client.HTTPConnection(HOST, server.port, timeout=60)
    first = post(server.port, users[0], conn)
    run.guard(first.get("created") is True, "new users: the first sign-in created the file")
    made = Path(first["database_url"].removeprefix("file:"))
    with sqlite3.connect(made) as db:
        ddl = [
            sql
            for name, sql in db.execute("SELECT name, sql FROM sqlite_schema ORDER BY rowid")
            if sql and name != "schema_version" and not name.startswith("sqlite_")
        ]
    run.guard(len(ddl) > 1, "new users: the floor creates the tables tenantdb made")
    script = "BEGIN;\n" + ";\n".join(ddl) + ";\nCOMMIT;"
    floor_dir = run.work / "floor"
    floor_dir.mkdir()

    def floor(i: int) -> None:
        path = floor_dir / f"{i:05d}.db"
        remove_db(path)
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.executescript(script)
        db.close()

    ours_ms: list[float] = []
    floor_ms: list[float] = []
    for i, user in enumerate(users[1:]):
        started = time.perf_counter()
        reply = post(server.port, user, conn)
        ours_ms.append((time.perf_counter() - started) * 1000)
        run.guard(reply.get("created") is True, "new users: every timed sign-in created a file")
        started = time.perf_counter()
        floor(i)
        floor_ms.append((time.perf_counter() - started) * 1000)
    conn.close()
    shutil.rmtree(floor_dir)
    ours, bare = stats(ours_ms), stats(floor_ms)
    share = ratio(ours["median"], bare["median"])
    return {
        "server": server.name,
        "tables_and_indexes": len(ddl),
        "ours_ms": ours,
        "floor_ms": bare,
        "ratio": share,
        "target": TARGET_NEW_USER,
        "met": share <= TARGET_NEW_USER,
    }


def verdict(summary: dict[str, dict[str, Any]], workers: list[int], at: int) -> dict[str, Any]:
    tp = summary["throughput"]
    low = summary.get("low_concurrency", tp)
    out: dict[str, Any] = {
        "target_ratio": TARGET_RATIO,
        "target_ratio_workers": JUDGED_WORKERS,
        "target_p99_ms": TARGET_P99_MS,
        "p99_judged_at_connections": at,
        "no_errors": all(a["errors"] == 0 for per in summary.values() for a in per.values()),
    }
    for w in workers:
        share = tp[f"tenantdb-{w}"]["rps"] / tp[f"bare-{w}"]["rps"]
        out[f"ratio_{w}_workers"] = round(share, 3)
        out[f"p99_{w}_workers_ms"] = low[f"tenantdb-{w}"]["p99_ms"]
        out[f"p99_{w}_workers_ok"] = low[f"tenantdb-{w}"]["p99_ms"] < TARGET_P99_MS
    judged = JUDGED_WORKERS if JUDGED_WORKERS in workers else max(workers)
    out["ratio_ok"] = out[f"ratio_{judged}_workers"] >= TARGET_RATIO
    top = max(workers)
    info = tp[f"tenantdb-info-{top}"]["rps"] / tp[f"bare-{top}"]["rps"]
    out["ratio_info"] = round(info, 3)
    out["info_points_below_warning"] = round(out[f"ratio_{top}_workers"] - info, 3)
    out["info_ok"] = out["info_points_below_warning"] <= TARGET_INFO_POINTS
    return out


def report(results: dict[str, Any]) -> str:
    meta, v = results["meta"], results["verdict"]
    ok = {True: "PASS", False: "MISS"}
    lines = [f"1. POST {ENDPOINT}, {meta['users']} returning users, {meta['client']}, medians"]
    cols = {"p50 ms": "p50_ms", "p90 ms": "p90_ms", "p99 ms": "p99_ms", "p99.9": "p999_ms"}
    cols |= {"srv cores": "server_cpu_cores", "CPU us/req": "server_cpu_us_per_request"}
    lines.append(load_tables(results["summary"], meta, **cols))
    for w in meta["workers"]:
        judged = " (judged)" if w == JUDGED_WORKERS else ""
        lines.append(
            f"{w} worker(s): tenantdb {v[f'ratio_{w}_workers']:.0%} of bare's requests/s"
            f"{judged}, p99 {v[f'p99_{w}_workers_ms']:.2f} ms at "
            f"{v['p99_judged_at_connections']} connections (target < {TARGET_P99_MS:g} ms: "
            f"{ok[v[f'p99_{w}_workers_ok']]})"
        )
    lines.append(
        f"returning users: target >= {TARGET_RATIO:.0%} of bare with {JUDGED_WORKERS} "
        f"workers: {ok[v['ratio_ok']]}; info level {v['ratio_info']:.0%} of bare, "
        f"{v['info_points_below_warning'] * 100:.1f} points below warning (target <= "
        f"{TARGET_INFO_POINTS * 100:.0f}: {ok[v['info_ok']]}); request log lines written: "
        f"{meta['info_request_log_lines']}"
    )
    if "new_users" in results:
        n = results["new_users"]
        lines += [
            "",
            f"2. new users, sequential, on {n['server']} ({n['ours_ms']['n']} first sign-ins, "
            f"{n['tables_and_indexes']} tables and indexes)",
            f"   tenantdb over HTTP: median {n['ours_ms']['median']:.2f} ms, p99 "
            f"{n['ours_ms']['p99']:.2f} ms; bare sqlite3: median {n['floor_ms']['median']:.2f} "
            f"ms; {n['ratio']:.2f}x (target <= {TARGET_NEW_USER}x: {ok[n['met']]})",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_common(parser)
    add_http(parser, users=1000)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="server processes (1 2)"
    )
    parser.add_argument("--new-users", type=int, help="item 2's first sign-ins (200; smoke 3)")
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--host", default=HOST, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare:
        return serve_bare(args.host, args.port, args.workers[0])
    loads = http_plan(args)
    count = args.new_users or (3 if args.smoke else 50 if args.quick else 200)
    workers = sorted(set(args.workers))
    run = Run("api", args, source=source("service"))
    meta = run.results["meta"]
    meta.update({k: getattr(args, k) for k in ("users", "seconds", "rounds", "connections")})
    meta.update(latency_connections=args.latency_connections, workers=workers, new_users=count)
    started = servers(run, workers)
    try:
        users = make_users(args.users)
        load = Load(users, run.work, args.threads, args.python_client)
        meta["client"] = load.client
        meta["warm_up"] = start_warm(run, started, users, load)
        created = sum(meta["warm_up"][s.name]["created"] for s in started if "tenantdb" in s.name)
        run.guard(created == args.users, "the warm-up created every database once")
        info = started[-1]
        logged = info.log_lines("request.completed")
        raw = measure_rounds(started, load, loads, args.rounds)
        meta["info_request_log_lines"] = info.log_lines("request.completed") - logged
        run.guard(meta["info_request_log_lines"] > 0, "tenantdb-info wrote its request log")
        run.results["rounds"] = raw
        summary = {k: {a: summarize(f) for a, f in per.items()} for k, per in raw.items()}
        run.results["summary"] = summary
        at = args.latency_connections or args.connections
        run.results["verdict"] = verdict(summary, workers, at)
        one = next(s for s in started if s.name == f"tenantdb-{min(workers)}")
        run.results["new_users"] = new_users(run, one, count)
        no_errors = run.results["verdict"]["no_errors"]
        if args.smoke:
            run.guard(no_errors, "no request failed")
        return run.finish(report(run.results)) or (0 if no_errors else 1)
    finally:
        for server in started:
            server.stop()
        if not args.keep:
            shutil.rmtree(run.work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
