"""One sqld holding many namespaces, sized by deploy/'s rule under this machine's limits.

    .venv/bin/python -m bench.sqld_scale [--users N] [--baseline N] [--smoke]

For the baseline (1,000) and then N users (10,000), each on a fresh sqld started with
`--max-active-namespaces` and `--max-concurrent-connections` from deploy/README.md's rule
for this process's file limit (sqld inherits it; nobody can raise it; 2,583 loaded under
20,000 files), and `tenantdb serve` in front of it: provisioning over HTTP (8
connections, example registry 1.0.0), sign-ins of returning users at 8 connections, a
fleet rollout to 1.1.0 (in this process, concurrency 8), the catalog counted; sqld's
peak memory and open files sampled from /proc (the files' peak also per phase).
Targets: 0 non-200 responses, 0 failed tenants, 0 catalog rows missing; provisioning at N
within 10% of its rate at the baseline; fleet sync at N >= 150 DBs/s. About 10 minutes
at the defaults on 2 cores. Not in CI (its --smoke is).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import resource
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import harness as h
from bench import servers as hs
from bench.fleet import registry_upto
from schema_registry import EXAMPLE
from service.backends import transient
from service.config import load_settings
from service.logs import configure_logging
from service.rollouts.run import rollout
from service.wiring import open_runtime
from tests.sqld import DEFAULT_BIN, SqldServer, make_keypair

SIGN_IN_CONNECTIONS = 8
ROLLOUT_CONCURRENCY = 8
TARGET_PROVISION_SHARE = 0.9  # provisioning at N within 10% of the baseline's rate
TARGET_ROLLOUT_DBS_PER_S = 150.0
HELD_STREAMS = 256
# deploy/README.md, "Sizing": open files of sqld per loaded namespace, per connection (a
# stream's own 2, and the 5 of an unloaded namespace it keeps open), and spare (2,500 for
# 500 namespaces sqld is still unloading, 1,000 for its sockets and own files).
FILES_PER_NAMESPACE = 5
FILES_PER_CONNECTION = 7
SPARE_FILES = 3500


def sizing(nofile: int, held_streams: int) -> tuple[int, int]:
    """deploy/README.md's rule: (connections, max_active) for a file limit."""
    connections = 2 * held_streams
    files = nofile - FILES_PER_CONNECTION * connections - SPARE_FILES
    return connections, max(10, files // FILES_PER_NAMESPACE)


class Sampler:
    """sqld's resident memory and open files, sampled twice a second; the peaks kept, and
    the open files' peak of each phase (`phase`: what the run is doing now)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_rss_mb = 0.0
        self.peak_files = 0
        self.phase = "start"
        self.peak_files_by_phase: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def read(self) -> tuple[float, int]:
        status = Path(f"/proc/{self.pid}/status").read_text()
        rss = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS:"))
        return rss / 1024, len(os.listdir(f"/proc/{self.pid}/fd"))

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            try:
                rss, files = self.read()
            except (OSError, StopIteration):
                return
            self.peak_rss_mb, self.peak_files = (
                max(self.peak_rss_mb, rss),
                max(self.peak_files, files),
            )
            phase = self.phase
            self.peak_files_by_phase[phase] = max(self.peak_files_by_phase.get(phase, 0), files)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def provision(port: int, users: list[hs.User]) -> dict[str, Any]:
    """Every user's first initialize over HTTP on 8 connections: rate and failures."""
    failures: list[str] = []

    def chunk(part: list[hs.User]) -> int:
        conn, created = http.client.HTTPConnection(hs.HOST, port, timeout=60), 0
        for user in part:
            try:
                created += bool(hs.post(port, user, conn).get("created"))
            except (RuntimeError, OSError) as exc:
                failures.append(str(exc)[:300])
                conn.close()
                conn = http.client.HTTPConnection(hs.HOST, port, timeout=60)
        conn.close()
        return created

    started = time.perf_counter()
    with ThreadPoolExecutor(SIGN_IN_CONNECTIONS) as pool:
        parts = [users[i::SIGN_IN_CONNECTIONS] for i in range(SIGN_IN_CONNECTIONS)]
        created = sum(pool.map(chunk, parts))
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 2),
        "users_per_s": round(len(users) / seconds, 1),
        "created": created,
        "non_200": len(failures),
        "first_failures": failures[:5],
    }


async def fleet_sync(values: dict[str, Any], n: int) -> dict[str, Any]:
    """The rollout to 1.1.0 in this process, and the catalog's rows counted after it."""
    before = transient.RETRIES.snapshot()
    async with open_runtime(load_settings({}, **values)) as tenants:
        started = time.perf_counter()
        summary = await rollout(tenants, target="1.1.0", concurrency=ROLLOUT_CONCURRENCY)
        seconds = time.perf_counter() - started
        rows, by_version, _ = await tenants.catalog.summary()
    after = transient.RETRIES.snapshot()
    return {
        "seconds": round(seconds, 2),
        "dbs_per_s": round(n / seconds, 1),
        "upgraded": summary.upgraded,
        "failed": len(summary.failed),
        "drifted": len(summary.drifted),
        "first_failures": [f"{i.user_id}: {i.reason}" for i in summary.failed[:5]],
        "catalog_rows": rows,
        "catalog_by_version": by_version,
        "transient_retries": {k: after[k] - before[k] for k in after},
    }


def one_size(run: h.Run, n: int, users: list[hs.User]) -> dict[str, Any]:
    args, folder = run.args, run.work / f"n{n}"
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    connections, max_active = sizing(nofile, HELD_STREAMS)
    max_active = args.max_active or max_active
    private, public = make_keypair(run.work, f"sqld-{n}")
    sqld = SqldServer(folder / "sqld", [public], max_active=max_active, max_connections=connections)
    old = registry_upto(folder / "registry-1.0.0", "1.0.0")
    values = {
        "backend": "sqld",
        "data_dir": str(folder / "data"),
        "sqld_url": sqld.url,
        "sqld_admin_url": sqld.admin_url,
        "sqld_jwt_key_file": str(private),
        "public_url_template": "libsql://{namespace}.db.example.com",
        "sqld_held_streams": str(HELD_STREAMS),
        "jwt_secret": hs.SECRET,
        "rate_limit": "off",
        "log_level": "warning",
        "log_format": "json",
    }
    print(f"{n:,} users: sqld max_active {max_active:,}, files {nofile:,} ...", flush=True)
    sqld.start()
    assert sqld.process is not None
    server = hs.Server(
        f"serve-{n}", ["service.cli", "serve"], hs.clean_env(**values, registry=str(old)), run.work
    )
    out: dict[str, Any] = {"max_active": max_active, "connections": connections, "nofile": nofile}
    try:
        with Sampler(sqld.process.pid) as sampler:
            server.start()
            sampler.phase = "provision"
            out["provision"] = provision(server.port, users[:n])
            print(f"  provisioned: {out['provision']}", flush=True)
            load = hs.Load(users[:n], run.work, 2, args.python_client)
            sampler.phase = "sign_ins"
            out["sign_ins"] = load(server, SIGN_IN_CONNECTIONS, args.seconds)
            print(f"  sign-ins: {out['sign_ins']['rps']} req/s", flush=True)
            server.stop()
            fleet: dict[str, Any] = {**values, "registry": str(EXAMPLE)}
            fleet |= {"sqld_url": (sqld.url,), "sqld_admin_url": (sqld.admin_url,)}
            sampler.phase = "fleet_sync"
            out["fleet_sync"] = asyncio.run(fleet_sync(fleet, n))
            print(f"  fleet sync: {out['fleet_sync']}", flush=True)
            out["sqld_rss_mb"], out["sqld_open_files"] = sampler.read()
        out["sqld_peak_rss_mb"], out["sqld_peak_open_files"] = (
            round(sampler.peak_rss_mb, 1),
            sampler.peak_files,
        )
        out["sqld_peak_open_files_by_phase"] = sampler.peak_files_by_phase
        out["sqld_rss_mb"] = round(out["sqld_rss_mb"], 1)
        out["server_log_errors"] = server.log_lines("request.failed")
    finally:
        server.stop()
        sqld.stop()
    sign_in_errors = sum(out["sign_ins"]["errors"].values())
    out["non_200"] = out["provision"]["non_200"] + sign_in_errors
    out["failed_tenants"] = out["fleet_sync"]["failed"] + out["fleet_sync"]["drifted"]
    out["catalog_rows_missing"] = n - out["fleet_sync"]["catalog_rows"]
    run.guard(out["provision"]["created"] + out["provision"]["non_200"] == n, "every user asked")
    run.guard(out["fleet_sync"]["upgraded"] + out["failed_tenants"] <= n, "no tenant twice")
    return out


def verdict(results: dict[str, Any]) -> dict[str, Any]:
    base, big = results["baseline"], results["scale"]
    share = big["provision"]["users_per_s"] / base["provision"]["users_per_s"]
    checks = {
        "non_200": base["non_200"] + big["non_200"] == 0,
        "failed_tenants": base["failed_tenants"] + big["failed_tenants"] == 0,
        "catalog_rows_missing": base["catalog_rows_missing"] + big["catalog_rows_missing"] == 0,
        "provision_within_10pct": share >= TARGET_PROVISION_SHARE,
        "fleet_sync_150": big["fleet_sync"]["dbs_per_s"] >= TARGET_ROLLOUT_DBS_PER_S,
    }
    return {"provision_share": round(share, 3), "checks": checks}


def report(results: dict[str, Any]) -> str:
    base, big, vd = results["baseline"], results["scale"], results["verdict"]
    ok = {True: "PASS", False: "MISS"}
    sizes = (results["meta"]["baseline"], results["meta"]["users"])

    def row(name: str, get: Any) -> list[object]:
        return [name, get(base), get(big)]

    rows = [
        row("max-active namespaces (rule)", lambda r: r["max_active"]),
        row("provisioning, users/s", lambda r: r["provision"]["users_per_s"]),
        row(
            f"sign-ins at {SIGN_IN_CONNECTIONS} connections, req/s", lambda r: r["sign_ins"]["rps"]
        ),
        row("sign-ins p99, ms", lambda r: r["sign_ins"]["p99_ms"]),
        row("fleet sync, DBs/s", lambda r: r["fleet_sync"]["dbs_per_s"]),
        row("non-200 responses", lambda r: r["non_200"]),
        row("failed tenants", lambda r: r["failed_tenants"]),
        row("catalog rows missing", lambda r: r["catalog_rows_missing"]),
        row(
            "transient retries (rollout)",
            lambda r: sum(r["fleet_sync"]["transient_retries"].values()),
        ),
        row("sqld peak memory, MB", lambda r: r["sqld_peak_rss_mb"]),
        row("sqld peak open files", lambda r: r["sqld_peak_open_files"]),
        row("sqld open-file limit", lambda r: r["nofile"]),
    ]
    head = ["", f"{sizes[0]:,} users", f"{sizes[1]:,} users"]
    c = vd["checks"]
    lines = [
        h.table(head, rows, 40),
        "",
        f"0 non-200 responses: {ok[c['non_200']]}; 0 failed tenants: {ok[c['failed_tenants']]}; "
        f"0 catalog rows missing: {ok[c['catalog_rows_missing']]}",
        f"provisioning at {sizes[1]:,}: {vd['provision_share']:.0%} of its rate at {sizes[0]:,} "
        f"(target >= 90%): {ok[c['provision_within_10pct']]}",
        f"fleet sync at {sizes[1]:,}: {big['fleet_sync']['dbs_per_s']} DBs/s "
        f"(target >= {TARGET_ROLLOUT_DBS_PER_S:g}): {ok[c['fleet_sync_150']]}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    h.add_common(parser)
    parser.add_argument("--users", type=int, help="namespaces of the big run (10,000; smoke 30)")
    parser.add_argument(
        "--baseline", type=int, help="the run it is compared with (1,000; smoke 10)"
    )
    parser.add_argument("--seconds", type=float, help="sign-in load (20; smoke 1)")
    parser.add_argument(
        "--max-active", type=int, help="override the rule (smoke: 8, so sqld unloads namespaces)"
    )
    parser.add_argument("--python-client", action="store_true", help="even when wrk is here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    args.users = args.users or (30 if args.smoke else 3000 if args.quick else 10_000)
    args.baseline = args.baseline or (10 if args.smoke else 1000)
    args.seconds = args.seconds or (1.0 if args.smoke else 20.0)
    args.max_active = args.max_active or (8 if args.smoke else None)
    configure_logging("json", "warning")
    binary = Path(os.environ.get("TENANTDB_SQLD_BIN") or DEFAULT_BIN)
    os.environ["TENANTDB_SQLD_BIN"] = str(binary)
    run = h.Run(
        "sqld_scale",
        args,
        sqld_binary=str(binary),
        users=args.users,
        baseline=args.baseline,
        held_streams=HELD_STREAMS,
        source=h.source("service"),
    )
    users = hs.make_users(args.users)
    try:
        run.results["baseline"] = one_size(run, args.baseline, users)
        run.results["scale"] = one_size(run, args.users, users)
        run.results["verdict"] = vd = verdict(run.results)
        if args.smoke:  # correctness only: no speed is asserted
            for what in ("non_200", "failed_tenants", "catalog_rows_missing"):
                run.guard(vd["checks"][what], f"{what}: none")
        run.finish(report(run.results))
        return 0 if all(vd["checks"][k] for k in ("non_200", "failed_tenants")) else 1
    finally:
        if not args.keep:
            shutil.rmtree(run.work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
