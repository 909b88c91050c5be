"""`tenantdb health-check`: is the registry valid, the backend reachable, the fleet current?

The tenant counts come from the catalog, as of each tenant's last sync or sign-in; `fleet
status` and `db diff` look at the databases themselves. Every check runs even when an
earlier one fails, so one report says everything that is off.
"""

from __future__ import annotations

import argparse

import msgspec
import structlog

from schema_registry import Registry, RegistryError, load_registry, version_key
from service.backends.sqld import SqldBackend
from service.catalog import Catalog
from service.commands.common import (
    FAILED,
    OK,
    add_command,
    emit,
    emit_json,
    require_catalog,
    run,
)
from service.config import Settings
from service.wiring import open_backend

log = structlog.get_logger("tenantdb.commands.health")

DRIFTED_LISTED = 20  # drifted tenants named in the report; `fleet status` lists them all
EPILOG = """\
It needs the catalog to exist (DATA_DIR/catalog.db on the local backend; only `tenantdb
serve` creates one): without it, exit 2 naming where it looked.
Without --strict the exit code is 0 whenever the report could be made; with --strict it is
1 when anything is off: the registry does not validate, the backend is unreachable, or
tenants are drifted or not at the registry's current version.

examples:
  tenantdb health-check
  tenantdb health-check --strict && echo ready     # in a deploy script or a cron job
  tenantdb health-check --json
"""


class HealthReport(msgspec.Struct, frozen=True, kw_only=True):
    status: str  # ok, degraded
    problems: tuple[str, ...]
    registry_path: str
    registry_valid: bool
    registry_error: str | None = None
    registry_version: str | None = None
    registry_versions: tuple[str, ...] = ()
    backend: str
    backend_reachable: bool
    backend_error: str | None = None
    tenants: int | None = None  # None: the catalog could not be read
    tenants_by_version: dict[str, int] = {}
    out_of_date: int | None = None  # tenants not at the current version
    drifted: int | None = None
    drifted_tenants: tuple[str, ...] = ()  # the first DRIFTED_LISTED, by user id
    damaged: int | None = None  # database files that are not sound SQLite


class _Fleet(msgspec.Struct, frozen=True, kw_only=True):
    reachable: bool
    error: str | None = None
    tenants: int | None = None
    by_version: dict[str, int] = {}
    drifted: int | None = None
    drifted_tenants: tuple[str, ...] = ()
    damaged: int | None = None


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        commands,
        "health-check",
        "check the registry, the backend and the fleet's versions",
        EPILOG,
        description="Check that the registry validates, the backend answers, and how many "
        "tenants are drifted or behind the registry's current version.",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when anything is off")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.set_defaults(run=_health_check)


def _health_check(args: argparse.Namespace, settings: Settings) -> int:
    # No catalog is no fleet to judge: refuse (exit 2, naming where it looked) rather
    # than create an empty one and call it healthy.
    run(require_catalog(settings))
    report = check_health(settings)
    log.info("health.checked", status=report.status, problems=len(report.problems))
    if args.json:
        emit_json(report)
    else:
        emit(render(report))
    return FAILED if args.strict and report.problems else OK


def check_health(settings: Settings) -> HealthReport:
    registry: Registry | None = None
    registry_error = None
    try:
        registry = load_registry(settings.registry)
    except RegistryError as exc:
        registry_error = str(exc)
    fleet = run(_fleet(settings))
    current = registry.current.version if registry else None
    out_of_date = None
    if fleet.tenants is not None and current is not None:
        out_of_date = fleet.tenants - fleet.by_version.get(current, 0)
    problems = _problems(settings, registry_error, fleet, current, out_of_date)
    return HealthReport(
        status="degraded" if problems else "ok",
        problems=tuple(problems),
        registry_path=settings.registry,
        registry_valid=registry is not None,
        registry_error=registry_error,
        registry_version=current,
        registry_versions=tuple(v.version for v in registry.versions) if registry else (),
        backend=settings.backend,
        backend_reachable=fleet.reachable,
        backend_error=fleet.error,
        tenants=fleet.tenants,
        tenants_by_version=fleet.by_version,
        out_of_date=out_of_date,
        drifted=fleet.drifted,
        drifted_tenants=fleet.drifted_tenants,
        damaged=fleet.damaged,
    )


def _problems(
    settings: Settings,
    registry_error: str | None,
    fleet: _Fleet,
    current: str | None,
    out_of_date: int | None,
) -> list[str]:
    problems = []
    if registry_error:
        problems.append("the registry does not validate")
    if not fleet.reachable:
        problems.append(f"the {settings.backend} backend is unreachable")
    if out_of_date:
        problems.append(f"{out_of_date} tenant(s) not at {current}")
    if fleet.drifted:
        problems.append(f"{fleet.drifted} tenant(s) drifted")
    if fleet.damaged:
        problems.append(f"{fleet.damaged} tenant(s) damaged (database files left as they are)")
    return problems


def _by_version(item: tuple[str, int]) -> tuple[int, tuple[int, ...]]:
    """Versions in semantic order ("1.10.0" after "1.9.0"), tenants without one first."""
    try:
        return 1, version_key(item[0])
    except ValueError:
        return 0, ()


async def _fleet(settings: Settings) -> _Fleet:
    """Reach the backend and read the catalog's counts; any failure means unreachable."""
    if settings.backend == "sqld" and not await _sqld_answers(settings):
        urls = ", ".join(settings.sqld_admin_url)
        return _Fleet(reachable=False, error=f"sqld's admin API does not answer at {urls}")
    try:
        backend, store, close = await open_backend(settings)
    except Exception as exc:  # whatever the cause, the report says it
        return _Fleet(reachable=False, error=_reason(exc))
    try:
        if not await backend.ping():
            return _Fleet(reachable=False, error="the backend did not answer its ping")
        catalog = Catalog(store)
        await catalog.open()
        count, by_version, drifted = await catalog.summary()
        listed = await catalog.tenants(status="drifted", limit=DRIFTED_LISTED)
        damaged = await catalog.count("damaged")
    except Exception as exc:  # as above
        return _Fleet(reachable=False, error=_reason(exc))
    finally:
        await close()
    return _Fleet(
        reachable=True,
        tenants=count,
        by_version=dict(sorted(by_version.items(), key=_by_version)),
        drifted=drifted,
        drifted_tenants=tuple(r.user_id for r in listed),
        damaged=damaged,
    )


async def _sqld_answers(settings: Settings) -> bool:
    """Ping sqld before opening the runtime, which would fail half-opened if it is down."""
    sqld = SqldBackend(settings)
    try:
        return await sqld.ping()
    finally:
        await sqld.close()


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def render(report: HealthReport) -> str:
    if report.registry_valid:
        registry = (
            f"valid: {report.registry_path} "
            f"({', '.join(report.registry_versions)}; current {report.registry_version})"
        )
    else:
        registry = f"INVALID: {report.registry_path}\n    {report.registry_error}"
    backend = (
        f"{report.backend}, reachable"
        if report.backend_reachable
        else f"{report.backend}, UNREACHABLE: {report.backend_error}"
    )
    lines = [f"registry     {registry}", f"backend      {backend}"]
    if report.tenants is not None:
        by_version = ", ".join(f"{v}: {n}" for v, n in report.tenants_by_version.items())
        lines.append(f"tenants      {report.tenants}" + (f" ({by_version})" if by_version else ""))
    if report.out_of_date is not None:
        lines.append(f"out of date  {report.out_of_date}")
    if report.drifted is not None:
        more = report.drifted - len(report.drifted_tenants)
        names = ", ".join(report.drifted_tenants) + (f" and {more} more" if more > 0 else "")
        lines.append(f"drifted      {report.drifted}" + (f" ({names})" if names else ""))
    if report.damaged:
        lines.append(f"damaged      {report.damaged}")
    summary = "ok" if not report.problems else f"degraded: {'; '.join(report.problems)}"
    lines.append(f"status       {summary}")
    return "\n".join(lines)
