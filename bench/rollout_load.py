"""Sign-ins during an admin-API rollout: returning users' latency with and without one.

    .venv/bin/python -m bench.rollout_load [--quick | --smoke] [--tenants N] [--processes P]

The real server (`python -m service.cli serve`, as operators run it: uvicorn, uvloop,
httptools, TENANTDB_LOG_LEVEL=warning, TENANTDB_ROLLOUT_PROCESSES=P, default 1) on a data
directory holding N tenants (2,000) at the example registry's 1.2.0 (one database built
by the engine, copied; catalog rows as a sync leaves them), and a registry of the example
plus additive versions (1.3.0, 1.4.0, ...: a new table and index each), one per round.
R returning users (500) are created at the newest version by an untimed warm-up.

Then wrk (or, without it, an asyncio client) rotates the returning users' sign-ins
(POST /api/user/initialize, the fast path) at 4 connections in back-to-back slices of
S seconds (1): some before each rollout, some after the last; each round starts a rollout
of the N tenants to its version with POST /api/admin/rollouts (an admin token) and keeps
measuring slices until the job is no longer running. Only slices that ended with the job
still running count as "during" (the one it ended in is dropped). Figures are medians
over slices. Target (the contract): the median sign-in latency during a rollout at most
1.5x its value without one. Guards: every rollout finished with every tenant upgraded
(none failed or drifted, the returning users already current), sampled databases hold
the target's history row, no request failed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import sqlite3
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.harness import Run, add_common, example_plus, source, table
from bench.servers import (
    HOST,
    PYTHON_CAVEAT,
    SECRET,
    Load,
    Server,
    clean_env,
    make_users,
    start_warm,
    summarize,
)
from schema_registry import Registry, load_registry
from service.auth import mint_token
from service.config import load_settings
from service.logs import configure_logging
from tests.fleetkit import build_local_fleet

TARGET_RATIO = 1.5
FROM_VERSION = "1.2.0"  # the example registry's newest: the tenants start there


def version_of(round_: int) -> str:
    """The version round 1, 2, ... rolls out to: additive, one after the other."""
    return f"1.{2 + round_}.0"


def make_registry(run: Run, folder: Path, rounds: int) -> Registry:
    """The example registry plus one additive version per round (a table and its index)."""
    registry = load_registry(example_plus(folder, rounds, "rollout_notes"))
    run.guard(registry.current.version == version_of(rounds), "registry: the new versions load")
    run.guard(
        not any(v.migration for v in registry.versions[3:]), "registry: the versions add only"
    )
    return registry


class Admin:
    """The admin API over HTTP with an admin token, as an operator calls it."""

    def __init__(self, port: int) -> None:
        settings = load_settings({}, data_dir=tempfile.gettempdir(), jwt_secret=SECRET)
        self.port = port
        self.token = mint_token(settings, "bench-ops", admin=True, ttl=4 * 3600)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        conn.request(method, path, body=json.dumps(body) if body else None, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        conn.close()
        if resp.status not in (200, 202):
            raise RuntimeError(f"{method} {path}: {resp.status} {payload[:300]!r}")
        return json.loads(payload)


class Rig:
    """The started server with its tenants, the sign-in load and the admin API."""

    def __init__(self, run: Run) -> None:
        args = self.args = run.args
        self.run = run
        registry = make_registry(run, run.work / "registry", args.rounds)
        data = run.work / "data"
        settings = load_settings({}, data_dir=str(data), registry=registry.path)
        fleet = [f"fleet-{i:05d}" for i in range(args.tenants)]
        print(f"{args.tenants} tenants at {FROM_VERSION} ...", flush=True)
        self.places = build_local_fleet(settings, registry, FROM_VERSION, fleet, run.work)
        env = clean_env(
            data_dir=str(data),
            jwt_secret=SECRET,
            registry=registry.path,
            log_level="warning",
            log_format="json",
            rollout_processes=str(args.processes),
        )
        self.server = Server("tenantdb", ["service.cli", "serve"], env, run.work)
        self.users = make_users(args.users)
        self.load = Load(self.users, run.work, args.threads, args.python_client)
        self.admin = Admin(self.server.port)

    def warm(self) -> dict[str, Any]:
        """Start the server and create the returning users (untimed)."""
        warm: dict[str, Any] = start_warm(self.run, [self.server], self.users, self.load)
        created = warm["tenantdb"]["created"]
        self.run.guard(created == self.args.users, "the warm-up created every user")
        return {"client": self.load.client, "warm_up": warm["tenantdb"]}

    def slice(self) -> dict[str, Any]:
        return self.load(self.server, self.args.connections, self.args.seconds)

    def without(self) -> list[dict[str, Any]]:
        """Slices with no rollout running."""
        out = []
        for _ in range(self.args.slices):
            out.append(self.slice())
            show("no rollout", out[-1])
        return out

    def rollout(self, k: int) -> dict[str, Any]:
        """Start round k's rollout over the admin API and measure slices while it runs."""
        run, args, target = self.run, self.args, version_of(k)
        started = self.admin.call("POST", "/api/admin/rollouts", {"target": target})
        during: list[dict[str, Any]] = []
        while True:
            fig = self.slice()
            job = self.admin.call("GET", started["poll"])
            if job["state"] != "running":
                show("(ended in)", fig)
                break
            during.append(fig)
            show("rollout", fig)
        done = (job["state"], job["upgraded"], job["current"])
        ok = done == ("finished", args.tenants, args.users)
        run.guard(ok and not job["failed"] and not job["drifted"], "rollout: every tenant upgraded")
        places = list(self.places.values())
        for location in places[:: max(1, len(places) // 5)]:
            conn = sqlite3.connect(location)
            last = conn.execute("SELECT version FROM schema_version ORDER BY id DESC").fetchone()
            conn.close()
            run.guard(last == (target,), "rollout: sampled databases hold the target's history row")
        if not args.smoke:
            run.guard(len(during) >= 2, "rollout: it outlasted two load slices")
        keep = ("job_id", "target", "total", "upgraded", "current", "seconds", "rate")
        return {"rollout": {key: job[key] for key in keep}, "during": during}


def show(phase: str, fig: dict[str, Any]) -> None:
    print(
        f"  {phase:<11} {fig['rps']:>7.0f} req/s  p50 {fig['p50_ms']:6.2f} ms  p99 "
        f"{fig['p99_ms']:6.2f} ms  server {fig['server_cpu_cores']:.2f} cores, others "
        f"{fig['other_cpu_cores']:.2f}  errors {fig['errors'] or 0}",
        flush=True,
    )


def verdict(summary: dict[str, dict[str, Any]]) -> dict[str, Any]:
    without, during = summary["without_rollout"], summary.get("during_rollout")
    out: dict[str, Any] = {"target_ratio": TARGET_RATIO}
    if during is None:  # smoke: the rollout may end within the first slice
        return out | {"p50_ratio": None, "p50_ok": None, "p99_ratio": None}
    ratio = during["p50_ms"] / without["p50_ms"]
    out["p50_ratio"] = round(ratio, 3)
    out["p50_ok"] = ratio <= TARGET_RATIO
    out["p99_ratio"] = round(during["p99_ms"] / without["p99_ms"], 3)
    return out


def report(results: dict[str, Any]) -> str:
    meta, summary, v = results["meta"], results["summary"], results["verdict"]
    rows = [
        [phase, round(s["rps"]), s["p50_ms"], s["p99_ms"], s["server_cpu_cores"], s["slices"]]
        for phase, s in summary.items()
    ]
    head = ["sign-ins", "req/s", "p50 ms", "p99 ms", "srv cores", "slices"]
    lines = [
        f"POST /api/user/initialize, {meta['users']} returning users at {meta['connections']} "
        f"connections ({meta['client']}), {meta['seconds']:g} s slices, medians; rollouts of "
        f"{meta['tenants']} tenants in {meta['processes']} worker process(es)",
        table(head, rows, 18),
    ]
    for r in results["rounds"]:
        x = r["rollout"]
        lines.append(
            f"rollout to {x['target']}: {x['upgraded']} upgraded, {x['current']} current in "
            f"{x['seconds']:.1f} s ({x['rate']:.0f}/s), {len(r['during'])} slices during it"
        )
    if v["p50_ratio"] is None:
        lines.append("no slice fell wholly within a rollout (smoke): no ratio")
    else:
        ok = "PASS" if v["p50_ok"] else "MISS"
        lines.append(
            f"median during / without a rollout: {v['p50_ratio']:.2f}x (target <= "
            f"{TARGET_RATIO:g}x: {ok}); p99 {v['p99_ratio']:.2f}x"
        )
    if meta["client"] != "wrk":
        lines.append("CAVEAT: " + PYTHON_CAVEAT)
    return "\n".join(lines)


def phase(figures: list[dict[str, Any]]) -> dict[str, Any]:
    return summarize(figures) | {"slices": len(figures)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_common(parser)
    parser.add_argument("--tenants", type=int, help="tenants each rollout upgrades (2000)")
    parser.add_argument("--users", type=int, help="returning users signing in (500; smoke 20)")
    parser.add_argument("--processes", type=int, default=1, help="TENANTDB_ROLLOUT_PROCESSES")
    parser.add_argument("--connections", type=int, default=4, help="wrk connections (4)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--seconds", type=float, default=1.0, help="per slice (1)")
    parser.add_argument("--slices", type=int, help="without a rollout, per round (6; quick 4)")
    parser.add_argument("--rounds", type=int, help="rollouts (3; quick and smoke 1)")
    parser.add_argument("--python-client", action="store_true", help="even when wrk is here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--dir", type=Path, help="where the data goes (default: temp)")
    args = parser.parse_args(argv)
    args.tenants = args.tenants or (40 if args.smoke else 2000)
    args.users = args.users or (20 if args.smoke else 500)
    args.slices = args.slices or (1 if args.smoke else 4 if args.quick else 6)
    args.rounds = args.rounds or (1 if args.smoke or args.quick else 3)
    configure_logging("json", "warning")
    run = Run("rollout_load", args, source=source("service"))
    meta = run.results["meta"]
    meta.update(
        {k: getattr(args, k) for k in ("tenants", "users", "processes", "connections", "seconds")}
    )
    meta.update(slices_without=args.slices, rounds=args.rounds, target_ratio=TARGET_RATIO)
    rig: Rig | None = None
    try:
        rig = Rig(run)
        meta.update(rig.warm())
        without: list[dict[str, Any]] = []
        rounds = []
        for k in range(1, args.rounds + 1):
            print(f"round {k}: sign-ins, then a rollout to {version_of(k)}", flush=True)
            without += rig.without()
            rounds.append(rig.rollout(k))
        without += rig.without()
        return finish(run, without, rounds)
    finally:
        if rig is not None:
            rig.server.stop()
        if not args.keep:
            shutil.rmtree(run.work, ignore_errors=True)


def finish(run: Run, without: list[dict[str, Any]], rounds: list[dict[str, Any]]) -> int:
    """Guard the requests, summarize the phases, judge and report."""
    during = [fig for r in rounds for fig in r["during"]]
    errors = sum(sum(fig["errors"].values()) for fig in [*without, *during])
    run.guard(errors == 0, "no request failed")
    run.results["rounds"] = rounds
    run.results["without_rollout"] = without
    summary = {"without_rollout": phase(without)}
    if during:
        summary["during_rollout"] = phase(during)
    run.results["summary"] = summary
    run.results["verdict"] = verdict(summary)
    seconds = [r["rollout"]["seconds"] for r in rounds]
    run.results["meta"]["rollout_seconds_median"] = statistics.median(seconds)
    return run.finish(report(run.results))


if __name__ == "__main__":
    raise SystemExit(main())
