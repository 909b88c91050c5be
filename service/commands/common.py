"""What every operator command shares: the runtime, output, exit codes."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import msgspec

from service.backends.base import BackendError
from service.backends.sqld import SqldBackend
from service.config import Settings
from service.errors import ServiceError
from service.tenants import TenantService
from service.wiring import open_runtime

T = TypeVar("T")

OK, FAILED, USAGE = 0, 1, 2  # exit codes: success, the command failed, bad usage/config
INTERRUPTED = 130  # a shell's code for a command stopped by Ctrl-C (128 + SIGINT)
CATALOG_FILE = "catalog.db"  # the local backend's catalog, in DATA_DIR


class NoCatalog(ServiceError):
    """No catalog where the settings point: only `serve` creates one, so an operator
    command run from the wrong directory says where it looked instead of making an empty
    catalog there and reporting an empty fleet."""

    status_code = 400
    code = "no_catalog"


def catalog_place(settings: Settings) -> str:
    """Where the catalog is: the local file, or the namespace on the first sqld shard."""
    if settings.backend == "sqld":
        return f"namespace {settings.sqld_catalog_namespace} on {settings.sqld_url[0]}"
    return str((settings.data_path / CATALOG_FILE).resolve())


async def require_catalog(settings: Settings) -> None:
    """Raise NoCatalog unless the catalog exists (an unreachable sqld is left to the
    command, which reports it as it always has)."""
    if settings.backend == "sqld":
        sqld = SqldBackend(settings)
        try:
            exists = await sqld.namespace_exists(0, settings.sqld_catalog_namespace)
        except BackendError:
            return
        finally:
            await sqld.close()
    else:
        exists = (settings.data_path / CATALOG_FILE).is_file()
    if not exists:
        raise NoCatalog(
            f"no catalog at {catalog_place(settings)} (TENANTDB_DATA_DIR is "
            f"{settings.data_dir!s}): run this where the service keeps its data, or set "
            "TENANTDB_DATA_DIR; only `tenantdb serve` creates a catalog"
        )


def with_tenants(
    settings: Settings,
    work: Callable[[TenantService], Awaitable[T]],
    *,
    backup: str | None = None,
) -> T:
    """Open the backend and catalog, run `work`, close them; `backup` overrides the
    configured backup policy."""

    async def main() -> T:
        await require_catalog(settings)
        # A command's event loop serves no request: local SQLite work runs on it.
        async with open_runtime(settings, backup=backup, inline=True) as tenants:
            return await work(tenants)

    return run(main())


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def emit_json(value: Any) -> None:
    """One JSON document on stdout (for --json and for non-terminal progress lines)."""
    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")
    sys.stdout.flush()


def emit(text: str) -> None:
    """Human-readable output on stdout."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def add_verbose(parser: argparse.ArgumentParser) -> None:
    """-v on a command (and before it): show the service's logs at TENANTDB_LOG_LEVEL.

    SUPPRESS as default, so a subcommand's absent -v does not undo `tenantdb -v CMD`.
    """
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the service's logs on stderr (otherwise warnings only)",
    )


def add_group(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    epilog: str,
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """A command group (`tenantdb NAME ...`) in the house style: help, examples, exit codes."""
    parser = commands.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=epilog
        + "\nexit codes: 0 success, 1 the command failed, 2 bad usage or configuration.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")


def add_command(
    group: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    epilog: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """One command of a group, in the same style: help, examples, exit codes."""
    parser = group.add_parser(
        name,
        help=help_text,
        description=description or help_text,
        epilog=epilog
        + "\nexit codes: 0 success, 1 the command failed, 2 bad usage or configuration.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_verbose(parser)
    return parser


def note(text: str) -> None:
    """A remark for the person at the terminal, on stderr, so stdout stays the result
    (a token, a JSON document) that scripts capture."""
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    sys.stderr.flush()


def fail(message: str) -> int:
    """Say on stderr why the command failed; returns the exit code for it."""
    sys.stderr.write(f"tenantdb: {message}\n")
    sys.stderr.flush()
    return FAILED


def usage(message: str) -> int:
    """Say on stderr what was asked wrongly (an unknown version or job, a folder that
    cannot be written); returns the exit code for bad usage."""
    fail(message)
    return USAGE
