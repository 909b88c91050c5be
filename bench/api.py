"""Benchmark of the HTTP API: POST /api/user/initialize for returning, up-to-date users,
beside a bare Litestar endpoint that does only the same JWT check, in the same run.

Run from the repo root:

    .venv/bin/python bench/api.py            # full run (about 3 minutes on 2 cores)
    .venv/bin/python bench/api.py --quick    # smaller run (under a minute)

What runs (issue 3, "Done when"):

* tenantdb, the real server: `python -m service.cli serve` (what `tenantdb serve` runs:
  uvicorn, one worker, access log off) on a free loopback port, with a temporary data
  directory and a fixed HS256 secret. Twice: with TENANTDB_LOG_LEVEL=warning (the request
  log is off, so logging stays out of the measurement) and with the default info level
  (one JSON request line per request to stderr, redirected to a file, as in production).
* bare: a Litestar app served the same way (this file, `--serve-bare PORT`) with a single
  POST /api/user/initialize that runs service.auth.Authenticator(settings).authenticate
  on the Authorization header, reads the JSON body and returns a small JSON object.

Load: N distinct users (1,000 by default), each initialized once before anything is
timed (so every timed request is a returning, up-to-date user with its catalog row and
file connection cached), then timed runs of POST /api/user/initialize, each request
carrying one user's token and body, users taken round-robin. The load generator is wrk
(2 threads, keep-alive) with a Lua script that rotates through the pre-generated
(token, body) pairs and prints its latency percentiles from `done()`. Each round runs
every app at 32 connections (throughput; with one worker the server is saturated, so
latency there is mostly queueing, about connections / throughput) and at 4 connections
(the latency the p99 target is judged on). Without wrk (apt-get install wrk), a Python
asyncio client stands in: it shares the two cores with the server and is much heavier
than wrk, so its figures are labelled as such.

The three servers run side by side and are measured in alternating order, round after
round, so machine drift hits all alike; each figure is the median over the rounds.
Server CPU per request comes from /proc/PID/stat around each measurement, and the CPU
that other processes used meanwhile from /proc/stat ("others": on a shared 2-core
machine it skews the absolute figures). Results go to bench/results/api.json. Target:
tenantdb >= 70% of the bare endpoint's requests/s, and p99 under 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import uvicorn
from litestar import Litestar, Request, get, post

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from service.auth import Authenticator, mint_token  # noqa: E402
from service.config import Settings, load_settings  # noqa: E402
from service.errors import EXCEPTION_HANDLERS  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "api.json"
SECRET = "tenantdb-bench-secret-0123456789abcdef0123456789"  # noqa: S105 (fixed, HS256)
ENDPOINT = "/api/user/initialize"
HOST = "127.0.0.1"
TARGET_RATIO = 0.70
TARGET_P99_MS = 10.0
TOKEN_TTL = 4 * 3600


# --------------------------------------------------------------------------- bare app


def bare_app(settings: Settings) -> Litestar:
    """A Litestar app whose one endpoint does only the JWT check and reads the body."""
    authenticator = Authenticator(settings)

    @post(ENDPOINT, status_code=200)
    async def initialize(request: Request[Any, Any, Any]) -> dict[str, Any]:
        identity = await authenticator.authenticate(request.headers.get("authorization"))
        body = await request.json()
        return {
            "success": True,
            "user_id": identity.user_id,
            "same": body.get("user_id") == identity.user_id,
        }

    @get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar(
        route_handlers=[initialize, health],
        exception_handlers=EXCEPTION_HANDLERS,
        logging_config=None,
    )


def serve_bare(port: int, data_dir: str) -> int:
    """Serve the bare app the way `tenantdb serve` serves tenantdb."""
    settings = load_settings({}, data_dir=data_dir, jwt_secret=SECRET)
    uvicorn.run(bare_app(settings), host=HOST, port=port, access_log=False, log_config=None)
    return 0


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _machine_busy() -> float:
    """CPU seconds spent busy on the whole machine since boot (all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, name: str, cmd: list[str], env: dict[str, str], work: Path) -> None:
        self.name = name
        self.cmd = cmd
        self.env = env
        self.port = int(cmd[-1])
        self.log = work / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.tail()}")
            with contextlib.suppress(OSError):
                conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer /health within 60 s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def log_lines(self, event: str) -> int:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text.count(f'"event":"{event}"')

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def tenantdb_server(name: str, work: Path, data_dir: Path, log_level: str) -> Server:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTDB_")}
    env.update(
        TENANTDB_DATA_DIR=str(data_dir),
        TENANTDB_JWT_SECRET=SECRET,
        TENANTDB_LOG_LEVEL=log_level,
        TENANTDB_LOG_FORMAT="json",
    )
    cmd = [sys.executable, "-m", "service.cli", "serve", "--host", HOST, "--port", str(free_port())]
    return Server(name, cmd, env, work)


def bare_server(work: Path) -> Server:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTDB_")}
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--data-dir",
        str(work / "bare"),
        "--serve-bare",
        str(free_port()),
    ]
    return Server("bare", cmd, env, work)


# --------------------------------------------------------------------------- users


def make_users(n: int) -> list[tuple[str, str, str]]:
    """(user_id, token, body) for n distinct users."""
    settings = load_settings({}, data_dir=tempfile.gettempdir(), jwt_secret=SECRET)
    users = []
    for i in range(n):
        user_id = f"bench-user-{i:05d}"
        token = mint_token(settings, user_id, ttl=TOKEN_TTL)
        body = json.dumps(
            {"user_id": user_id, "email": f"{user_id}@example.com"}, separators=(",", ":")
        )
        users.append((user_id, token, body))
    return users


def warm_up(server: Server, users: list[tuple[str, str, str]], threads: int = 8) -> dict[str, Any]:
    """Initialize every user once (untimed) so each timed request is a returning user."""
    started = time.perf_counter()
    chunks = [users[i::threads] for i in range(threads)]

    def run(chunk: list[tuple[str, str, str]]) -> tuple[int, list[str]]:
        conn = http.client.HTTPConnection(HOST, server.port, timeout=60)
        created, bad = 0, []
        for user_id, token, body in chunk:
            conn.request(
                "POST",
                ENDPOINT,
                body=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            resp = conn.getresponse()
            payload = resp.read()
            if resp.status != 200:
                bad.append(f"{user_id}: {resp.status} {payload[:200]!r}")
            elif json.loads(payload).get("created"):
                created += 1
        conn.close()
        return created, bad

    with ThreadPoolExecutor(threads) as pool:
        outcomes = list(pool.map(run, chunks))
    bad = [b for _, errors in outcomes for b in errors]
    if bad:
        raise RuntimeError(f"{server.name}: warm-up failed for {len(bad)} users, e.g. {bad[:3]}")
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "created": sum(c for c, _ in outcomes),
    }


def check_returning(server: Server, user: tuple[str, str, str]) -> dict[str, Any]:
    """One request after the warm-up: it must be the returning, up-to-date path."""
    _, token, body = user
    conn = http.client.HTTPConnection(HOST, server.port, timeout=10)
    conn.request(
        "POST",
        ENDPOINT,
        body=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"{server.name}: {resp.status} {payload[:300]!r}")
    reply: dict[str, Any] = json.loads(payload)
    if not server.name.startswith("bare") and (
        reply.get("created")
        or not reply.get("schema_synced")
        or "up to date" not in reply.get("message", "")
    ):
        raise RuntimeError(f"{server.name}: not the returning, up-to-date path: {reply}")
    return {"bytes": len(payload), "reply": reply}


# --------------------------------------------------------------------------- wrk

LUA = r"""
-- Rotates through pre-generated (token, body) pairs, one user per request, round-robin;
-- each thread starts at its own offset. done() prints the figures as one JSON line.
local pairs_ = {
%(pairs)s
}
local nthreads = %(threads)d
local started = 0
local reqs = {}
local n = 0
local i = 0

function setup(thread)
  thread:set("tid", started)
  started = started + 1
end

function init(args)
  for k, pair in ipairs(pairs_) do
    reqs[k] = wrk.format("POST", "%(path)s", {
      ["Host"] = wrk.host .. ":" .. wrk.port,
      ["Authorization"] = "Bearer " .. pair[1],
      ["Content-Type"] = "application/json",
    }, pair[2])
  end
  n = #reqs
  i = (tid or 0) * math.floor(n / nthreads)
end

function request()
  i = i %% n + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"bytes":%%d,"connect":%%d,"read":%%d,' ..
    '"write":%%d,"status":%%d,"timeout":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,' ..
    '"p999_us":%%d,"mean_us":%%.1f,"stdev_us":%%.1f,"max_us":%%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.mean, latency.stdev,
    latency.max))
end
"""


def write_lua(path: Path, users: list[tuple[str, str, str]], threads: int) -> None:
    pairs = ",\n".join(f'  {{"{token}", {json.dumps(body)}}}' for _, token, body in users)
    path.write_text(LUA % {"pairs": pairs, "threads": threads, "path": ENDPOINT})


def run_wrk(
    server: Server, lua: Path, threads: int, connections: int, seconds: float
) -> dict[str, Any]:
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(lua),
        f"http://{HOST}:{server.port}{ENDPOINT}",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0, busy0 = _cpu_seconds(server.pid), _machine_busy()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=seconds + 60)
    cpu1, busy1 = _cpu_seconds(server.pid), _machine_busy()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    raw = json.loads(line.removeprefix("WRKJSON "))
    wrk_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return _figures(raw, cpu1 - cpu0, wrk_cpu, busy1 - busy0)


def _figures(
    raw: dict[str, Any], server_cpu: float, client_cpu: float, machine_busy: float
) -> dict[str, Any]:
    seconds = raw["duration_us"] / 1e6
    errors = {k: raw[k] for k in ("connect", "read", "write", "status", "timeout") if raw[k]}
    return {
        "requests": raw["requests"],
        "seconds": round(seconds, 2),
        "rps": round(raw["requests"] / seconds, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 3),
        "p90_ms": round(raw["p90_us"] / 1000, 3),
        "p99_ms": round(raw["p99_us"] / 1000, 3),
        "p999_ms": round(raw["p999_us"] / 1000, 3),
        "mean_ms": round(raw["mean_us"] / 1000, 3),
        "max_ms": round(raw["max_us"] / 1000, 3),
        "errors": errors,
        "server_cpu_cores": round(server_cpu / seconds, 2),
        "server_cpu_us_per_request": round(server_cpu / max(raw["requests"], 1) * 1e6, 1),
        "client_cpu_cores": round(client_cpu / seconds, 2),
        # whatever else ran on the machine meanwhile (other jobs skew every figure)
        "other_cpu_cores": round(max(0.0, machine_busy - server_cpu - client_cpu) / seconds, 2),
    }


# --------------------------------------------------------------------------- fallback client


async def _async_load(
    port: int, users: list[tuple[str, str, str]], connections: int, seconds: float
) -> dict[str, Any]:
    """Keep-alive HTTP/1.1 load from asyncio: a stand-in for wrk, much heavier than it."""
    reqs = [
        (
            f"POST {ENDPOINT} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
        ).encode()
        for _, token, body in users
    ]
    latencies: list[int] = []
    errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    nbytes = 0
    stop = time.perf_counter() + seconds

    async def one(offset: int) -> None:
        nonlocal nbytes
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            errors["connect"] += 1
            return
        i = offset
        while time.perf_counter() < stop:
            i = (i + 1) % len(reqs)
            t0 = time.perf_counter_ns()
            writer.write(reqs[i])
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            payload = await reader.readexactly(length)
            latencies.append(time.perf_counter_ns() - t0)
            nbytes += len(head) + len(payload)
            if not head.startswith((b"HTTP/1.1 2", b"HTTP/1.0 2")):
                errors["status"] += 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one(k * len(reqs) // connections) for k in range(connections)))
    elapsed = time.perf_counter() - started
    lat = sorted(latencies)

    def pct(q: float) -> int:
        return lat[min(len(lat) - 1, int(q / 100 * len(lat)))] // 1000

    return {
        "requests": len(lat),
        "duration_us": int(elapsed * 1e6),
        "bytes": nbytes,
        **errors,
        "p50_us": pct(50),
        "p90_us": pct(90),
        "p99_us": pct(99),
        "p999_us": pct(99.9),
        "mean_us": statistics.fmean(lat) / 1000,
        "stdev_us": statistics.pstdev(lat) / 1000,
        "max_us": lat[-1] // 1000,
    }


def run_python_client(
    server: Server, users: list[tuple[str, str, str]], connections: int, seconds: float
) -> dict[str, Any]:
    cpu0, c0, busy0 = _cpu_seconds(server.pid), time.process_time(), _machine_busy()
    raw = asyncio.run(_async_load(server.port, users, connections, seconds))
    cpu1, c1, busy1 = _cpu_seconds(server.pid), time.process_time(), _machine_busy()
    return _figures(raw, cpu1 - cpu0, c1 - c0, busy1 - busy0)


# --------------------------------------------------------------------------- report


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("litestar", "uvicorn", "pyjwt", "msgspec", "structlog", "uvloop", "httptools"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    keys = (
        "rps",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "p999_ms",
        "mean_ms",
        "max_ms",
        "server_cpu_cores",
        "server_cpu_us_per_request",
        "client_cpu_cores",
        "other_cpu_cores",
    )
    out: dict[str, Any] = {k: round(statistics.median(r[k] for r in rounds), 3) for k in keys}
    out["requests"] = sum(r["requests"] for r in rounds)
    out["errors"] = sum(sum(r["errors"].values()) for r in rounds)
    return out


def _table(results: dict[str, Any]) -> str:
    meta, v = results["meta"], results["verdict"]
    lines = [
        "",
        f"POST {ENDPOINT}, {meta['users']} returning users round-robin, {meta['client']} "
        f"{meta['threads']} threads, {meta['rounds']} round(s), median of rounds",
    ]
    for load, per_app in results["summary"].items():
        first = results["rounds"][load]["bare"][0]
        conns = meta["connections"] if load == "throughput" else meta["latency_connections"]
        lines += [
            "",
            f"{load}: {conns} connections, {first['seconds']:.0f} s each",
            f"{'app':<15}{'req/s':>8}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}{'p99.9':>8}"
            f"{'srv cores':>10}{'CPU us/req':>11}{'others':>8}{'errors':>7}",
        ]
        for name in ("bare", "tenantdb", "tenantdb-info"):
            r = per_app[name]
            lines.append(
                f"{name:<15}{r['rps']:>8.0f}{r['p50_ms']:>8.2f}{r['p90_ms']:>8.2f}"
                f"{r['p99_ms']:>8.2f}{r['p999_ms']:>8.2f}{r['server_cpu_cores']:>10.2f}"
                f"{r['server_cpu_us_per_request']:>11.0f}{r['other_cpu_cores']:>8.2f}"
                f"{r['errors']:>7}"
            )

    def ok(flag: bool) -> str:
        return "PASS" if flag else "MISS"

    at = v["p99_judged_at_connections"]
    for level, name in (("warning", "tenantdb"), ("info", "tenantdb-info")):
        lines.append(
            f"{'' if level == 'info' else chr(10)}{name:<14} (log level {level:<7}): "
            f"{v[f'ratio_{level}']:.0%} of bare throughput (target >= {TARGET_RATIO:.0%}: "
            f"{ok(v[f'ratio_{level}_ok'])}), p99 {v[f'p99_{level}_ms']:.2f} ms at {at} "
            f"connections (target < {TARGET_P99_MS:g} ms: {ok(v[f'p99_{level}_ok'])}), "
            f"{v[f'p99_{level}_saturated_ms']:.2f} ms at {meta['connections']}"
        )
    lines.append(f"request log lines written by tenantdb-info: {meta['info_request_log_lines']}")
    lines.append(f"load average at start {meta['loadavg_start']}, at end {meta['loadavg_end']}")
    others = max(
        r["other_cpu_cores"] for per_app in results["summary"].values() for r in per_app.values()
    )
    if others > 0.2:
        lines.append(
            f"NOTE: other processes used up to {others:.2f} cores during the measurements "
            "('others'); on 2 cores that skews the absolute figures, less so the ratios."
        )
    if meta["client"] != "wrk":
        lines += ["", "CAVEAT: " + meta["client_caveat"]]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short round per app")
    parser.add_argument("--users", type=int, default=1000, help="distinct users (1000)")
    parser.add_argument("--connections", type=int, default=32, help="open connections (32)")
    parser.add_argument(
        "--latency-connections",
        type=int,
        default=4,
        help="connections of the low-concurrency latency run, 0 to skip (4)",
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--seconds", type=int, help="seconds per measurement (12; quick 4)")
    parser.add_argument("--rounds", type=int, help="rounds of the three apps (3; quick 1)")
    parser.add_argument(
        "--python-client",
        action="store_true",
        help="use the asyncio client even when wrk is installed",
    )
    parser.add_argument("--json", type=Path, default=RESULTS, help="results file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (4 if args.quick else 12)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.use_wrk = shutil.which("wrk") is not None and not args.python_client
    return args


CAVEAT = (
    "wrk is not installed (apt-get install wrk), so a Python asyncio client in this process "
    "generated the load: on the same two cores its own event-loop delays add to every "
    "latency it records, so compare the apps with each other, not with figures from wrk."
)


def _meta(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "versions": _versions(),
        "users": args.users,
        "client": "wrk" if args.use_wrk else "python-asyncio",
        "client_caveat": "" if args.use_wrk else CAVEAT,
        "threads": args.threads,
        "connections": args.connections,
        "latency_connections": args.latency_connections,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "dir": str(work),
        "apps": {
            "bare": "Litestar, one POST endpoint: Authenticator.authenticate + request.json()",
            "tenantdb": "python -m service.cli serve, TENANTDB_LOG_LEVEL=warning",
            "tenantdb-info": "python -m service.cli serve, TENANTDB_LOG_LEVEL=info "
            "(request log on, JSON lines to a file)",
        },
    }


class Load:
    """Runs one measurement against a server with wrk or the fallback client."""

    def __init__(self, args: argparse.Namespace, users: list[tuple[str, str, str]], work: Path):
        self.args = args
        self.users = users
        self.lua = work / "rotate.lua"
        write_lua(self.lua, users, args.threads)

    def __call__(self, server: Server, connections: int, seconds: int) -> dict[str, Any]:
        if self.args.use_wrk:
            return run_wrk(server, self.lua, self.args.threads, connections, seconds)
        return run_python_client(server, self.users, connections, seconds)


def _start_all(servers: list[Server], users: list[tuple[str, str, str]], load: Load) -> Any:
    warm: dict[str, Any] = {}
    for server in servers:
        print(f"starting {server.name} on port {server.port} ...")
        server.start()
        warm[server.name] = warm_up(server, users)
        warm[server.name]["check"] = check_returning(server, users[len(users) // 2])
        print(
            f"  warm-up pass: {warm[server.name]['seconds']} s, "
            f"{warm[server.name]['created']} databases created"
        )
        # a short untimed run under load, so every server starts the timed rounds hot
        load(server, load.args.connections, 2)
    return warm


def _measure_all(
    servers: list[Server], load: Load, args: argparse.Namespace
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every load on every server, round after round, alternating the order of servers."""
    loads = {"throughput": (args.connections, args.seconds)}
    if args.latency_connections:
        loads["low_concurrency"] = (args.latency_connections, max(2, args.seconds // 2))
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {
        name: {s.name: [] for s in servers} for name in loads
    }
    for r in range(args.rounds):
        for server in servers if r % 2 == 0 else servers[::-1]:
            for name, (connections, seconds) in loads.items():
                fig = load(server, connections, seconds)
                raw[name][server.name].append(fig)
                print(
                    f"  round {r + 1} {server.name:<14} c={connections:<3} "
                    f"{fig['rps']:>7.0f} req/s  p50 {fig['p50_ms']:6.2f} ms  "
                    f"p99 {fig['p99_ms']:6.2f} ms  server {fig['server_cpu_cores']:.2f} "
                    f"cores, others {fig['other_cpu_cores']:.2f}  errors {fig['errors'] or 0}"
                )
    return raw


def _verdict(summary: dict[str, dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    tp = summary["throughput"]
    low = summary.get("low_concurrency", tp)
    bare = tp["bare"]["rps"]
    verdict: dict[str, Any] = {
        "target_ratio": TARGET_RATIO,
        "target_p99_ms": TARGET_P99_MS,
        "p99_judged_at_connections": args.latency_connections or args.connections,
        "no_errors": all(a["errors"] == 0 for per in summary.values() for a in per.values()),
    }
    for name, level in (("tenantdb", "warning"), ("tenantdb-info", "info")):
        ratio = tp[name]["rps"] / bare
        verdict[f"ratio_{level}"] = round(ratio, 3)
        verdict[f"ratio_{level}_ok"] = ratio >= TARGET_RATIO
        verdict[f"p99_{level}_ms"] = low[name]["p99_ms"]
        verdict[f"p99_{level}_ok"] = low[name]["p99_ms"] < TARGET_P99_MS
        verdict[f"p99_{level}_saturated_ms"] = tp[name]["p99_ms"]
    return verdict


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.serve_bare:
        return serve_bare(args.serve_bare, args.data_dir or tempfile.gettempdir())
    if not args.use_wrk:
        print("wrk not found: falling back to the Python asyncio client (see caveat)")

    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    servers = [
        bare_server(work),
        tenantdb_server("tenantdb", work, work / "data", "warning"),
        tenantdb_server("tenantdb-info", work, work / "data", "info"),
    ]
    results: dict[str, Any] = {"meta": _meta(args, work)}
    try:
        print(f"minting {args.users} tokens ...")
        users = make_users(args.users)
        load = Load(args, users, work)
        results["meta"]["warm_up"] = _start_all(servers, users, load)
        log_before = servers[2].log_lines("request.completed")
        raw = _measure_all(servers, load, args)
        results["meta"]["info_request_log_lines"] = (
            servers[2].log_lines("request.completed") - log_before
        )
        results["rounds"] = raw
        results["summary"] = {
            name: {app: _summary(figs) for app, figs in per_app.items()}
            for name, per_app in raw.items()
        }
        results["verdict"] = _verdict(results["summary"], args)
        results["meta"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        print(_table(results))
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"\nresults: {args.json}")
    finally:
        for server in servers:
            server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if results.get("verdict", {}).get("no_errors") else 1


if __name__ == "__main__":
    raise SystemExit(main())
