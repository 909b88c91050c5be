"""What every operator command shares: the runtime, output, exit codes."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import msgspec

from service.config import Settings
from service.tenants import TenantService
from service.wiring import open_runtime

T = TypeVar("T")

OK, FAILED, USAGE = 0, 1, 2  # exit codes: success, the command failed, bad usage/config


def with_tenants(
    settings: Settings,
    work: Callable[[TenantService], Awaitable[T]],
    *,
    backup: str | None = None,
) -> T:
    """Open the backend and catalog, run `work`, close them; `backup` overrides the
    configured backup policy."""

    async def main() -> T:
        async with open_runtime(settings, backup=backup) as tenants:
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
    return group.add_parser(
        name,
        help=help_text,
        description=description or help_text,
        epilog=epilog
        + "\nexit codes: 0 success, 1 the command failed, 2 bad usage or configuration.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


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
