"""Servers and HTTP load, shared by the benches that measure a server (api.py, sqld.py):
server subprocesses started and stopped as operators do, users with tokens, the untimed
warm-up, wrk with a rotating Lua script (or an asyncio stand-in), CPU read from /proc, and
rounds that alternate the servers' order, and the report's table per load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.harness import ROOT, Run, table
from service.auth import mint_token
from service.config import load_settings

HOST = "127.0.0.1"
SECRET = "tenantdb-bench-secret-0123456789abcdef0123456789"  # noqa: S105 (fixed, HS256)
ENDPOINT = "/api/user/initialize"
User = tuple[str, str, str]  # (user_id, token, JSON body)


def cpu_seconds(pid: int, *, ended_children: bool = False) -> float:
    """utime + stime of a process, all its threads included (and with `ended_children`,
    cutime + cstime: its children that ended and were waited for)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    used = sum(int(f) for f in fields[11 : 15 if ended_children else 13])
    return used / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and every process under it (a server's workers), those
    that ended included (in their parent's cutime and cstime once it has waited for them:
    a rollout's worker processes)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0.0, [pid]
    while todo:
        one = todo.pop()
        with contextlib.suppress(OSError):
            total += cpu_seconds(one, ended_children=True)
        todo += children.get(one, [])
    return total


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy since boot (all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- HTTP servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**tenantdb: str) -> dict[str, str]:
    """This environment without any TENANTDB_* setting, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTDB_")}
    env.update({f"TENANTDB_{k.upper()}": v for k, v in tenantdb.items()})
    return env


class Server:
    """A server subprocess on a free loopback port, started and stopped as operators do."""

    def __init__(self, name: str, module: list[str], env: dict[str, str], work: Path) -> None:
        self.name = name
        self.port = free_port()
        self.cmd = [sys.executable, "-m", *module, "--host", HOST, "--port", str(self.port)]
        self.env = env
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
                ok = conn.getresponse().status == 200
                conn.close()
                if ok:
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


def make_users(n: int, prefix: str = "bench-user") -> list[User]:
    settings = load_settings({}, data_dir=tempfile.gettempdir(), jwt_secret=SECRET)
    users = []
    for i in range(n):
        user_id = f"{prefix}-{i:05d}"
        token = mint_token(settings, user_id, ttl=4 * 3600)
        body = json.dumps({"user_id": user_id, "email": f"{user_id}@example.com"})
        users.append((user_id, token, body))
    return users


def post(port: int, user: User, conn: http.client.HTTPConnection | None = None) -> Any:
    """One initialize; its JSON reply, raising on a non-200 status."""
    own = conn or http.client.HTTPConnection(HOST, port, timeout=60)
    headers = {"Authorization": f"Bearer {user[1]}", "Content-Type": "application/json"}
    own.request("POST", ENDPOINT, body=user[2], headers=headers)
    resp = own.getresponse()
    payload = resp.read()
    if conn is None:
        own.close()
    if resp.status != 200:
        raise RuntimeError(f"{user[0]} on port {port}: {resp.status} {payload[:300]!r}")
    return json.loads(payload)


# --------------------------------------------------------------------------- load

LUA = r"""
-- Rotates through pre-generated (token, body) pairs, one user per request; each thread
-- starts at its own offset. done() prints the figures as one JSON line.
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
    'WRKJSON {"requests":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,' ..
    '"write":%%d,"status":%%d,"timeout":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,' ..
    '"p999_us":%%d,"mean_us":%%.1f,"max_us":%%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.mean, latency.max))
end
"""
LATENCIES = ("p50", "p90", "p99", "p999", "mean", "max")
ERRORS = ("connect", "read", "write", "status", "timeout")
FIGURES = (
    *("rps", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "mean_ms", "max_ms"),
    *("server_cpu_cores", "server_cpu_us_per_request", "client_cpu_cores", "other_cpu_cores"),
)
PYTHON_CAVEAT = (
    "wrk is not installed (apt-get install wrk), so a Python asyncio client in this process "
    "generated the load: on the same two cores its own event-loop delays add to every "
    "latency it records, so compare the servers with each other, not with figures from wrk."
)


class Load:
    """One measurement against a server: wrk with the rotating Lua script, or (without wrk)
    an asyncio keep-alive client in this process."""

    def __init__(self, users: list[User], work: Path, threads: int, python: bool) -> None:
        self.users = users
        self.threads = threads
        self.use_wrk = not python and shutil.which("wrk") is not None
        self.client = "wrk" if self.use_wrk else "python-asyncio"
        self.lua = work / "rotate.lua"
        pairs = ",\n".join(f'  {{"{t}", {json.dumps(b)}}}' for _, t, b in users)
        self.lua.write_text(LUA % {"pairs": pairs, "threads": threads, "path": ENDPOINT})

    def __call__(self, server: Server, connections: int, seconds: float) -> dict[str, Any]:
        client0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        own0 = time.process_time()
        cpu0, busy0 = tree_cpu_seconds(server.pid), machine_busy()
        if self.use_wrk:
            raw = self._wrk(server, connections, seconds)
        else:
            raw = asyncio.run(_async_load(server.port, self.users, connections, seconds))
        cpu1, busy1 = tree_cpu_seconds(server.pid), machine_busy()
        client1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        client = (client1.ru_utime + client1.ru_stime - client0.ru_utime - client0.ru_stime) + (
            0.0 if self.use_wrk else time.process_time() - own0
        )
        secs, n = raw["duration_us"] / 1e6, max(raw["requests"], 1)
        return {
            "requests": raw["requests"],
            "seconds": round(secs, 2),
            "rps": round(raw["requests"] / secs, 1),
            **{f"{k}_ms": round(raw[f"{k}_us"] / 1000, 3) for k in LATENCIES},
            "errors": {k: raw[k] for k in ERRORS if raw[k]},
            "server_cpu_cores": round((cpu1 - cpu0) / secs, 2),
            "server_cpu_us_per_request": round((cpu1 - cpu0) / n * 1e6, 1),
            "client_cpu_cores": round(client / secs, 2),
            # whatever else ran on the machine meanwhile (other jobs skew every figure)
            "other_cpu_cores": round(max(0.0, busy1 - busy0 - (cpu1 - cpu0) - client) / secs, 2),
        }

    def _wrk(self, server: Server, connections: int, seconds: float) -> dict[str, Any]:
        cmd = [
            *("wrk", f"-t{self.threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s"),
            *("--timeout", "5s", "--latency", "-s", str(self.lua)),
            f"http://{HOST}:{server.port}{ENDPOINT}",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=seconds + 60)
        line = next((x for x in out.stdout.splitlines() if x.startswith("WRKJSON ")), None)
        if out.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
        raw: dict[str, Any] = json.loads(line.removeprefix("WRKJSON "))
        return raw


async def _async_load(port: int, users: list[User], connections: int, seconds: float) -> Any:
    reqs = [
        (
            f"POST {ENDPOINT} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
        ).encode()
        for _, token, body in users
    ]
    latencies: list[int] = []
    errors = dict.fromkeys(ERRORS, 0)
    stop = time.perf_counter() + seconds

    async def one(i: int) -> None:
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            errors["connect"] += 1
            return
        while time.perf_counter() < stop:
            i = (i + 1) % len(reqs)
            t0 = time.perf_counter_ns()
            writer.write(reqs[i])
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (int(h[15:]) for h in head.split(b"\r\n") if h[:15].lower() == b"content-length:"),
                0,
            )
            await reader.readexactly(length)
            latencies.append(time.perf_counter_ns() - t0)
            if not head.startswith(b"HTTP/1.1 2"):
                errors["status"] += 1
        writer.close()
        await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(one(k * len(reqs) // connections) for k in range(connections)))
    lat = sorted(latencies) or [0]

    def pct(q: float) -> int:
        return lat[min(len(lat) - 1, int(q / 100 * len(lat)))] // 1000

    return {
        "requests": len(latencies),
        "duration_us": int((time.perf_counter() - started) * 1e6),
        **errors,
        "p50_us": pct(50),
        "p90_us": pct(90),
        "p99_us": pct(99),
        "p999_us": pct(99.9),
        "mean_us": statistics.fmean(lat) / 1000,
        "max_us": lat[-1] // 1000,
    }


def measure_rounds(
    servers: list[Server],
    measure: Callable[[Server, int, float], dict[str, Any]],
    loads: dict[str, tuple[int, float]],
    rounds: int,
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every load on every server, round after round, the servers' order alternating."""
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {
        name: {s.name: [] for s in servers} for name in loads
    }
    for r in range(rounds):
        for server in servers if r % 2 == 0 else servers[::-1]:
            for name, (connections, seconds) in loads.items():
                fig = measure(server, connections, seconds)
                raw[name][server.name].append(fig)
                print(
                    f"  round {r + 1} {server.name:<14} c={connections:<3} {fig['rps']:>7.0f} "
                    f"req/s  p50 {fig['p50_ms']:6.2f} ms  p99 {fig['p99_ms']:6.2f} ms  server "
                    f"{fig['server_cpu_cores']:.2f} cores, others {fig['other_cpu_cores']:.2f}  "
                    f"errors {fig['errors'] or 0}",
                    flush=True,
                )
    return raw


def summarize(rounds: list[dict[str, Any]], extra: Sequence[str] = ()) -> dict[str, Any]:
    """Medians over rounds of every figure; requests and errors summed."""
    out: dict[str, Any] = {
        k: round(statistics.median(r[k] for r in rounds), 3) for k in (*FIGURES, *extra)
    }
    out["requests"] = sum(r["requests"] for r in rounds)
    out["errors"] = sum(sum(r["errors"].values()) for r in rounds)
    return out


def load_tables(summary: dict[str, dict[str, Any]], meta: dict[str, Any], **cols: str) -> str:
    """The report's tables, one per load, a row per server: req/s, the figures `cols` names
    (header=key), the CPU other processes used and the errors; a caveat without wrk."""
    out = []
    for load, per_app in summary.items():
        rows = [
            [name, round(r["rps"]), *(r[k] for k in cols.values()),
             f"others {r['other_cpu_cores']:.2f}, errors {r['errors']}"]
            for name, r in per_app.items()
        ]  # fmt: skip
        c = meta["connections" if load == "throughput" else "latency_connections"]
        out += ["", f"{load}: {c} connections", table(["app", "req/s", *cols], rows, 15)]
    return "\n".join(out + ([] if meta["client"] == "wrk" else ["CAVEAT: " + PYTHON_CAVEAT]))


def add_http(parser: argparse.ArgumentParser, users: int) -> None:
    """Options of the benches that load servers over HTTP (api.py, sqld.py)."""
    parser.add_argument("--users", type=int, help=f"returning users ({users}; smoke 20)")
    parser.add_argument("--connections", type=int, default=32, help="throughput run (32)")
    parser.add_argument("--latency-connections", type=int, default=4, help="0 skips (4)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--seconds", type=float, help="per measurement (12; quick 4)")
    parser.add_argument("--rounds", type=int, help="rounds of all servers (3; quick 1)")
    parser.add_argument("--python-client", action="store_true", help="even when wrk is here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.set_defaults(default_users=users)


def http_plan(args: argparse.Namespace) -> dict[str, tuple[int, float]]:
    """Fill in users, seconds and rounds for the run's size; the loads by name."""
    args.users = args.users or (20 if args.smoke else args.default_users)
    args.seconds = args.seconds or (1.0 if args.smoke else 4.0 if args.quick else 12.0)
    args.rounds = args.rounds or (1 if args.smoke or args.quick else 3)
    loads = {"throughput": (args.connections, args.seconds)}
    if args.latency_connections:
        loads["low_concurrency"] = (args.latency_connections, max(1.0, args.seconds / 2))
    return loads


def start_warm(run: Run, servers: list[Server], users: list[User], load: Load) -> dict[str, Any]:
    """Start each server, initialize every user once (untimed, so each timed request is a
    returning user), check that one more request takes the returning, up-to-date path, and
    put untimed load on it so it starts hot."""

    def initialize(port: int, chunk: list[User]) -> int:
        conn = http.client.HTTPConnection(HOST, port, timeout=60)
        created = sum(bool(post(port, user, conn).get("created")) for user in chunk)
        conn.close()
        return created

    warm: dict[str, Any] = {}
    for server in servers:
        print(f"starting {server.name} on port {server.port} ...", flush=True)
        server.start()
        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            chunks = [users[i::8] for i in range(8)]
            created = sum(pool.map(initialize, [server.port] * 8, chunks))
        seconds = round(time.perf_counter() - started, 2)
        warm[server.name] = {"seconds": seconds, "created": created}
        reply = post(server.port, users[len(users) // 2])
        returning = not reply.get("created") and reply.get("schema_synced")
        if not server.name.startswith("bare"):
            ok = returning and "up to date" in reply.get("message", "")
            run.guard(ok, "after the warm-up, initialize is the fast path")
        load(server, run.args.connections, min(2.0, run.args.seconds))
    return warm
