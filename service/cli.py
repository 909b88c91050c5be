"""The `tenantdb` command: run the API and mint development tokens.

Exit codes: 0 success, 1 the command failed, 2 bad usage or configuration, 3 (serve) a
server process could not start (uvicorn's STARTUP_FAILURE).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import importlib.metadata
import os
import secrets
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import msgspec
import structlog

from schema_registry import Registry, RegistryError, load_registry
from service.auth import mint_token
from service.backends.base import BackendError
from service.commands import db as db_commands
from service.commands import dump as dump_commands
from service.commands import fleet as fleet_commands
from service.commands import health as health_commands
from service.commands import registry as registry_commands
from service.commands.common import USAGE, NoCatalog, add_verbose, note
from service.config import ConfigError, Settings, load_settings
from service.errors import ServiceError
from service.logs import configure_logging
from service.operations.metrics import MULTIPROC_DIR
from service.wiring import StartupError, open_runtime

log = structlog.get_logger("tenantdb.cli")

# Operator command groups, each `register(commands)`: add a module here to add a group.
COMMAND_MODULES: tuple[ModuleType, ...] = (
    registry_commands,
    db_commands,
    fleet_commands,
    health_commands,
    dump_commands,
)

DEV_SECRET_FILE = ".dev-jwt-secret"  # noqa: S105 - a file name, not a secret
EPILOG = """\
examples:
  tenantdb serve                       # embedded default on 127.0.0.1:8000, data in ./data
  tenantdb serve --host 0.0.0.0 --port 9000
  tenantdb serve --workers 4           # four server processes, one per core
  tenantdb token alice                 # a development token for user alice
  tenantdb token ops --admin --ttl 600 # an admin token valid for 10 minutes
  tenantdb -v db inspect alice         # with the service's info logs on stderr

Operator commands log warnings only (their output is the report); -v shows the logs at
TENANTDB_LOG_LEVEL. The db, dump, fleet and health-check commands need an existing catalog
(DATA_DIR/catalog.db on the local backend; only `serve` creates one) and exit 2 naming
where they looked when there is none.

exit codes: 0 success, 1 the command failed (for serve: could not start, e.g. sqld not
answering within TENANTDB_STARTUP_TIMEOUT or a data directory it cannot write), 2 bad
usage or configuration, 3 serve: a server process could not start (uvicorn's
STARTUP_FAILURE; the reason is logged before it).
Settings come from TENANTDB_* environment variables (see README, "Configuration").
"""


class DevSecret(msgspec.Struct, frozen=True, kw_only=True):
    """The settings with a signing secret, and where that secret came from."""

    settings: Settings
    path: Path | None = None  # the development secret's file, when one was used
    created: bool = False  # made by this call: no server has seen it yet


def with_dev_secret(settings: Settings) -> DevSecret:
    """In development, make and keep a random HS256 secret when none is configured."""
    if settings.jwt_secret or settings.jwt_public_key_file or settings.jwks_url:
        return DevSecret(settings=settings)
    if settings.environment != "development":
        raise ConfigError(
            "TENANTDB_JWT_SECRET, TENANTDB_JWT_PUBLIC_KEY_FILE or TENANTDB_JWKS_URL must be set "
            "outside development"
        )
    path = settings.data_path / DEV_SECRET_FILE
    created = False
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        created = True
    secret = path.read_text().strip()
    return DevSecret(
        settings=msgspec.structs.replace(settings, jwt_secret=secret), path=path, created=created
    )


def _port_taken(host: str, port: int) -> str | None:
    """Why `serve` could not listen on host:port, found before the banner promises a URL
    (uvicorn would only log the bind error after it)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve {host}: {exc.strerror}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use: stop that process or pass --port"
            return f"cannot listen on {host}:{port}: {exc.strerror}"
    return None


def banner(host: str, port: int, token: str | None) -> str:
    """What `serve` says before it starts; a token only with a freshly made dev secret."""
    docs = f"  API docs: http://{host}:{port}/schema\n\n"
    if token is None:
        return f"tenantdb is starting on http://{host}:{port}\n\n" + docs
    return (
        "tenantdb is starting. Try it (this development token is valid for 24 hours):\n\n"
        f"  curl -s -X POST http://{host}:{port}/api/user/initialize \\\n"
        f"    -H 'Authorization: Bearer {token}' \\\n"
        "    -H 'Content-Type: application/json' \\\n"
        '    -d \'{"user_id": "demo-user", "email": "demo@example.com"}\'\n\n' + docs
    )


# The production stack, always: uvloop's event loop and httptools' HTTP/1.1 parser are
# dependencies, named here so that a missing one stops the start instead of uvicorn
# falling back to asyncio's loop and h11 in silence.
LOOP: Final = "asyncio" if sys.platform == "win32" else "uvloop"  # uvloop has no Windows build
HTTP: Final = "httptools"
# Our request log replaces uvicorn's access log; logging is ours (service.logs).
_QUIET_UVICORN: Final[dict[str, Any]] = {"access_log": False, "log_config": None}


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    """Run the API: one server process, or `--workers N` of them.

    uvicorn, not granian: uvicorn is the server the test suite runs in-process
    (tests/api/conftest.py) and the benchmarks measure, so production runs the code that
    is tested; with uvloop and httptools its per-request cost is close to granian's for
    an app whose time goes to the handler; and since 0.30 its own supervisor (`workers`)
    restarts a worker that dies and stops when one cannot start, so no second process
    manager (gunicorn) is needed. Workers share one listening socket, bound by this
    process, and are fresh interpreters (spawn) that build the app with
    `service.app:worker_app`.
    """
    import uvicorn  # noqa: PLC0415 - `tenantdb token` need not load the web stack

    from service.app import WORKER_SETTINGS, create_app  # noqa: PLC0415 - as above

    if args.workers < 1:
        note("tenantdb: --workers must be at least 1")
        return USAGE
    if (problem := _port_taken(args.host, args.port)) is not None:
        note(f"tenantdb: {problem}")
        return USAGE
    dev = with_dev_secret(settings)
    settings = dev.settings
    if dev.created:
        log.warning("auth.dev_secret_created", path=str(dev.path))
    registry = load_registry(settings.registry)
    asyncio.run(_reachable(settings, registry))  # StartupError: one line, exit 1
    # A token only when this start made the secret: one the operator configured is theirs
    # to hand out, and a printed token would be a 24-hour credential in a terminal log.
    token = None
    if dev.created and settings.environment == "development":
        token = mint_token(settings, "demo-user", ttl=24 * 3600)
    if args.workers == 1:
        app = create_app(settings, registry)
        sys.stdout.write(banner(args.host, args.port, token))
        sys.stdout.flush()
        uvicorn.run(app, host=args.host, port=args.port, loop=LOOP, http=HTTP, **_QUIET_UVICORN)
        return 0
    with _multiprocess_metrics() as metrics_dir:
        handed = {
            WORKER_SETTINGS: msgspec.json.encode(settings).decode(),
            MULTIPROC_DIR: metrics_dir,
        }
        os.environ.update(handed)  # the workers' environment: spawn copies this one
        try:
            log.info("service.workers", workers=args.workers, threads_each=settings.threads)
            sys.stdout.write(banner(args.host, args.port, token))
            sys.stdout.flush()
            return _supervise(args)
        finally:
            for name in handed:
                os.environ.pop(name, None)


def _supervise(args: argparse.Namespace) -> int:
    """Run `--workers N` server processes under uvicorn's supervisor until it stops: 0, or
    uvicorn's STARTUP_FAILURE (3) when a worker exited with it.

    The supervisor stops on SIGINT/SIGTERM and when a worker exits with STARTUP_FAILURE,
    and `uvicorn.run` returns normally either way: the supervisor is built here as
    `uvicorn.run` builds it, so that its workers' exit codes can be read once it returns. A
    worker asked to stop exits 0 (or by the signal), never with STARTUP_FAILURE.
    """
    import uvicorn  # noqa: PLC0415 - `tenantdb token` need not load the web stack
    from uvicorn.config import STARTUP_FAILURE  # noqa: PLC0415 - as above
    from uvicorn.supervisors import Multiprocess  # noqa: PLC0415 - as above

    config = uvicorn.Config(
        "service.app:worker_app",
        factory=True,
        workers=args.workers,
        host=args.host,
        port=args.port,
        loop=LOOP,
        http=HTTP,
        **_QUIET_UVICORN,
    )
    sock = config.bind_socket()  # the one listening socket, shared by the workers
    try:
        supervisor = Multiprocess(config, sockets=[sock])
        supervisor.run()
    finally:
        sock.close()
    failed = [p.pid for p in supervisor.processes if p.exitcode == STARTUP_FAILURE]
    if not failed:
        return 0
    log.error(
        "service.workers_failed_to_start",
        failed=failed,
        workers=args.workers,
        exit_code=STARTUP_FAILURE,
        message=f"{len(failed)} of {args.workers} server processes could not start (the reason "
        f"is logged above): serve stops with exit code {STARTUP_FAILURE}, uvicorn's "
        "STARTUP_FAILURE",
    )
    return STARTUP_FAILURE


@contextmanager
def _multiprocess_metrics() -> Iterator[str]:
    """A fresh, empty directory for the workers' metric files, removed when they stop.

    On /dev/shm when there is one: the files are memory-mapped and written on every
    request, and on a tmpfs a write to them never waits on a disk. Fresh on every start,
    so counts of an earlier run (or of a killed one, whose folder stays behind) are never
    added to this one's.
    """
    shm = Path("/dev/shm")  # noqa: S108 - a private folder inside it, made by mkdtemp
    parent = shm if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None
    path = tempfile.mkdtemp(prefix="tenantdb-metrics-", dir=parent)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def _reachable(settings: Settings, registry: Registry) -> None:
    """Open what the server needs (sqld, waited for up to TENANTDB_STARTUP_TIMEOUT; the
    data directory; the catalog, brought to its current tables) before the banner promises
    a URL, so a start-up failure is one line instead of a traceback from the server."""
    async with open_runtime(settings, registry):
        pass


def _token(args: argparse.Namespace, settings: Settings) -> int:
    dev = with_dev_secret(settings)
    sys.stdout.write(mint_token(dev.settings, args.user_id, admin=args.admin, ttl=args.ttl) + "\n")
    sys.stdout.flush()
    # Which secret signed it, so a 401 "signature ... invalid" from a server started in
    # another directory (another dev secret) can be traced to its cause.
    if dev.path is None:
        note("tenantdb: signed with TENANTDB_JWT_SECRET")
    elif dev.created:
        note(
            f"tenantdb: created a new development secret {dev.path} and signed with it: only "
            "a server using this data directory (TENANTDB_DATA_DIR) accepts this token"
        )
    else:
        note(f"tenantdb: signed with the development secret {dev.path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tenantdb",
        description="A database per user, kept on the current schema without losing a row.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {importlib.metadata.version('tenantdb')}"
    )
    add_verbose(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the HTTP API",
        description="Run the HTTP API. Without a configured key, a development secret is "
        "created in the data directory and a working curl example is shown.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="server processes sharing the port (default 1); one per core for production. "
        "Each has TENANTDB_THREADS threads for SQLite work; an admin rollout runs in the one "
        "that took it, in TENANTDB_ROLLOUT_PROCESSES worker processes of its own",
    )
    add_verbose(serve)
    serve.set_defaults(run=_serve)
    token = commands.add_parser(
        "token",
        help="mint a development token (HS256, from the configured secret)",
        description="Print a token for USER_ID signed with TENANTDB_JWT_SECRET (or the "
        "development secret in the data directory, which is created when missing: a server "
        "started with another data directory will not accept the token). Stderr says which "
        "secret signed it.",
    )
    add_verbose(token)
    token.add_argument("user_id", metavar="USER_ID")
    token.add_argument("--admin", action="store_true", help="carry the admin role")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.set_defaults(run=_token)
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def log_level(args: argparse.Namespace, settings: Settings) -> str:
    """`serve` logs at TENANTDB_LOG_LEVEL; an operator command at warning unless -v, so
    its logs do not mix into the report it prints."""
    if args.command == "serve" or getattr(args, "verbose", False):
        return settings.log_level
    return "error" if settings.log_level == "error" else "warning"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.log_format, log_level(args, settings))
        code: int = args.run(args, settings)
    except (ConfigError, StartupError, RegistryError, NoCatalog, ServiceError, BackendError) as exc:
        message, code = _failure(exc)
        sys.stderr.write(f"tenantdb: {message}\n")
    return code


def _failure(exc: Exception) -> tuple[str, int]:
    """What a command that could not run says, in one line or block, and its exit code."""
    if isinstance(exc, ConfigError):
        return f"configuration error:\n{exc}", USAGE
    if isinstance(exc, StartupError):  # sqld not answering, a data directory it cannot write
        return f"cannot start: {exc}", 1
    if isinstance(exc, RegistryError):
        return f"the schema registry does not validate:\n{exc}", USAGE
    if isinstance(exc, NoCatalog):  # run from the wrong directory, or before any `serve`
        return exc.message, USAGE
    if isinstance(exc, ServiceError | BackendError):  # storage unreachable, busy, full, ...
        return exc.message, 1
    raise exc


if __name__ == "__main__":
    raise SystemExit(main())
