"""The HTTP API: POST /api/user/initialize for returning, up-to-date users, beside a bare
Litestar endpoint that does only the same JWT check, in the same run.

    .venv/bin/python -m bench.api [--quick | --smoke] [--users N] [--python-client]

Servers, each a subprocess on a free loopback port, served as operators serve tenantdb
(`uvicorn.run` as in `tenantdb serve`: one worker, access log off, uvloop and httptools
when installed, else asyncio and h11; meta.versions records which):

  bare           this module's `--serve-bare`: one POST endpoint running
                 service.auth.Authenticator.authenticate and reading the JSON body (floor)
  tenantdb       `python -m service.cli serve`, TENANTDB_LOG_LEVEL=warning
  tenantdb-info  the same at the default info level: one JSON request line per request

N users (1,000) are initialized once, untimed, and one checked request must be the
returning, up-to-date path; then wrk (or, without it, an asyncio client) rotates their
tokens at 32 connections (throughput) and 4 (latency), the servers alternating round
after round; figures are medians of rounds. Targets: tenantdb >= 70% of bare's
requests/s, p99 < 10 ms at 4 connections.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from typing import Any

from bench.harness import Run, add_common, source
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
    start_warm,
    summarize,
)

TARGET_RATIO = 0.70
TARGET_P99_MS = 10.0


def serve_bare(host: str, port: int) -> int:
    """The floor, served the way `tenantdb serve` serves tenantdb."""
    import uvicorn  # noqa: PLC0415 - only the server subprocess needs the web stack
    from litestar import Litestar, Request, get, post  # noqa: PLC0415

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

    app = Litestar([initialize, health], exception_handlers=EXCEPTION_HANDLERS, logging_config=None)
    uvicorn.run(app, host=host, port=port, access_log=False, log_config=None)
    return 0


def servers(run: Run) -> list[Server]:
    data = str(run.work / "data")  # both tenantdb servers share it: the first creates

    def tenantdb(level: str) -> dict[str, str]:
        return clean_env(data_dir=data, jwt_secret=SECRET, log_level=level, log_format="json")

    return [
        Server("bare", ["bench.api", "--serve-bare"], clean_env(), run.work),
        Server("tenantdb", ["service.cli", "serve"], tenantdb("warning"), run.work),
        Server("tenantdb-info", ["service.cli", "serve"], tenantdb("info"), run.work),
    ]


def verdict(summary: dict[str, dict[str, Any]], at: int) -> dict[str, Any]:
    tp = summary["throughput"]
    low = summary.get("low_concurrency", tp)
    out: dict[str, Any] = {
        "target_ratio": TARGET_RATIO,
        "target_p99_ms": TARGET_P99_MS,
        "p99_judged_at_connections": at,
        "no_errors": all(a["errors"] == 0 for per in summary.values() for a in per.values()),
    }
    for name, level in (("tenantdb", "warning"), ("tenantdb-info", "info")):
        share = tp[name]["rps"] / tp["bare"]["rps"]
        out[f"ratio_{level}"] = round(share, 3)
        out[f"ratio_{level}_ok"] = share >= TARGET_RATIO
        out[f"p99_{level}_ms"] = low[name]["p99_ms"]
        out[f"p99_{level}_ok"] = low[name]["p99_ms"] < TARGET_P99_MS
        out[f"p99_{level}_saturated_ms"] = tp[name]["p99_ms"]
    return out


def report(results: dict[str, Any]) -> str:
    meta, v = results["meta"], results["verdict"]
    lines = [f"POST {ENDPOINT}, {meta['users']} returning users, {meta['client']}, medians"]
    cols = {"p50 ms": "p50_ms", "p90 ms": "p90_ms", "p99 ms": "p99_ms", "p99.9": "p999_ms"}
    cols |= {"srv cores": "server_cpu_cores", "CPU us/req": "server_cpu_us_per_request"}
    lines.append(load_tables(results["summary"], meta, **cols))
    for level, name in (("warning", "tenantdb"), ("info", "tenantdb-info")):
        ok = {True: "PASS", False: "MISS"}
        lines.append(
            f"{name} (log level {level}): {v[f'ratio_{level}']:.0%} of bare's requests/s "
            f"(target >= {TARGET_RATIO:.0%}: {ok[v[f'ratio_{level}_ok']]}), p99 "
            f"{v[f'p99_{level}_ms']:.2f} ms at {v['p99_judged_at_connections']} connections "
            f"(target < {TARGET_P99_MS:g} ms: {ok[v[f'p99_{level}_ok']]})"
        )
    lines.append(f"request log lines written by tenantdb-info: {meta['info_request_log_lines']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_common(parser)
    add_http(parser, users=1000)
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--host", default=HOST, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare:
        return serve_bare(args.host, args.port)
    loads = http_plan(args)
    run = Run("api", args, source=source("service"))
    meta = run.results["meta"]
    meta.update({k: getattr(args, k) for k in ("users", "seconds", "rounds", "connections")})
    meta["latency_connections"] = args.latency_connections
    started = servers(run)
    try:
        users = make_users(args.users)
        load = Load(users, run.work, args.threads, args.python_client)
        meta["client"] = load.client
        meta["warm_up"] = start_warm(run, started, users, load)
        created = meta["warm_up"]["tenantdb"]["created"]
        run.guard(created == args.users, "the warm-up created every database")
        logged = started[2].log_lines("request.completed")
        raw = measure_rounds(started, load, loads, args.rounds)
        meta["info_request_log_lines"] = started[2].log_lines("request.completed") - logged
        run.guard(meta["info_request_log_lines"] > 0, "tenantdb-info wrote its request log")
        run.results["rounds"] = raw
        summary = {k: {a: summarize(f) for a, f in per.items()} for k, per in raw.items()}
        run.results["summary"] = summary
        run.results["verdict"] = verdict(summary, args.latency_connections or args.connections)
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
