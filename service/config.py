"""Settings: TENANTDB_* environment variables, optionally on top of a TOML file.

Read once when the app is built (never at import), typed and validated with msgspec, and
every bad value is reported on a line of its own before anything starts.
"""

from __future__ import annotations

import difflib
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import msgspec
import structlog

from schema_registry import EXAMPLE

PREFIX: Final = "TENANTDB_"
ASYMMETRIC: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
SYMMETRIC: Final = frozenset({"HS256", "HS384", "HS512"})


class ConfigError(Exception):
    """One or more settings are invalid; the message has one line per problem."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every setting, named as its environment variable without the TENANTDB_ prefix."""

    data_dir: str = "./data"
    registry: str = str(EXAMPLE)
    backend: Literal["local", "sqld"] = "local"
    sync_mode: Literal["auto", "verify"] = "auto"
    environment: str = "development"
    # Auth: HS* need jwt_secret; RS/ES/PS/EdDSA need jwt_public_key_file or jwks_url.
    jwt_secret: str | None = None
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    jwt_public_key_file: str | None = None
    jwks_url: str | None = None
    jwks_cooldown: float = 30.0  # least seconds between JWKS fetches for an unknown kid
    jwks_timeout: float = 5.0  # most seconds a sign-in waits for the JWKS endpoint
    startup_timeout: float = 30.0  # seconds to keep trying a backend not answering yet
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway: float = 30.0
    jwt_user_claim: str = "sub"
    admin_role: str = "tenantdb:admin"
    # sqld backend: lists are comma-separated, one entry per sqld primary (shard), same order.
    sqld_url: tuple[str, ...] = ("http://127.0.0.1:8080",)
    sqld_admin_url: tuple[str, ...] = ("http://127.0.0.1:9090",)
    sqld_jwt_key_file: str | None = None  # Ed25519 private key (PEM); sqld has its public half
    public_url_template: str | None = None  # e.g. libsql://{namespace}.db.example.com
    token_ttl: int = 3600  # seconds a database_token is valid
    sqld_catalog_namespace: str = "tenantdb-catalog"
    # Seconds a returning user's confirmed-current check is reused without asking sqld
    # again (0: every initialize reads the live schema cookie). See SqldBackend.check.
    # A schema changed behind the service's back is noticed at most this much later.
    sqld_check_ttl: float = 0.0
    # Idle Hrana streams kept open per sqld server for returning users' checks (see
    # service/backends/streams.py). Each holds one of sqld's --max-concurrent-connections
    # (default 128): keep it below that, less what syncs and other replicas need.
    sqld_held_streams: int = 64
    # Runtime
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    threads: int = 8  # threads doing SQLite work off the event loop, in each server process
    connection_cache: int = 1024  # idle tenant connections kept open (LRU)
    # Worker processes an admin-API rollout may sync in (service/rollouts/processes.py), so
    # the server's event loop keeps only its bookkeeping and sign-ins keep their latency.
    rollout_processes: int = 1
    # Backups before schema changes (service/backups.py) and /metrics (service/metrics.py)
    backup_policy: Literal["always", "migration", "never"] = "migration"
    backup_keep: int = 5  # newest backups kept per tenant
    backup_dir: str | None = None  # default: DATA_DIR/backups
    metrics_token: str | None = None  # when set, /metrics needs `Authorization: Bearer` it
    # The HTTP edge: browsers (CORS, service/app.py) and rate limits (service/api/limits.py).
    cors_origins: tuple[str, ...] = ()  # origins whose pages may call the API; "*": any
    rate_limit: Literal["on", "off"] = "on"
    rate_limit_user: int = 30  # sync-schema and export calls per user (token subject) a minute
    rate_limit_auth_failures: int = 60  # failed authentications per client address a minute

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def backup_path(self) -> Path:
        if self.backup_dir is None:
            return self.data_path / "backups"
        return Path(self.backup_dir).expanduser().resolve()


_SECRET_FIELDS: Final = frozenset({"jwt_secret", "metrics_token"})
_LIST_FIELDS: Final = frozenset({"jwt_algorithms", "sqld_url", "sqld_admin_url", "cors_origins"})
# TENANTDB_* variables that are not settings: the config file's name, the test suite's own.
# TENANTDB_WORKER_SETTINGS: what `tenantdb serve --workers N` hands its server processes.
_NOT_SETTINGS: Final = frozenset({"CONFIG", "SQLD_BIN", "INTERRUPT_SEED", "WORKER_SETTINGS"})
# Old names still read, each with a warning at start-up naming its new one.
_RENAMED: Final = {"workers": "threads"}  # TENANTDB_WORKERS: SQLite threads, not processes


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from a config file (TENANTDB_CONFIG), the environment and overrides."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    config_file = env.get(PREFIX + "CONFIG")
    if config_file:
        try:
            loaded = tomllib.loads(Path(config_file).read_text(encoding="utf-8"))
            raw.update({k: v for k, v in loaded.items() if v != ""})  # empty means unset
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"TENANTDB_CONFIG={config_file}: {exc}") from None
    fields = set(Settings.__struct_fields__)
    problems: list[str] = []
    file_renamed = _take_renamed(raw)
    env_raw, unknown = _read_env(env, fields)
    renamed = file_renamed | _take_renamed(env_raw)
    raw.update(env_raw)
    for old, value in renamed.items():  # the new name wins wherever it is given
        raw.setdefault(_RENAMED[old], value)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    settings = Settings()
    for name, value in raw.items():
        if name not in fields:
            problems.append(f"{_env_name(name)}: unknown setting")
            continue
        try:
            settings = msgspec.convert(
                {**msgspec.structs.asdict(settings), name: value}, Settings, strict=False
            )
        except msgspec.ValidationError as exc:
            shown = "***" if name in _SECRET_FIELDS else repr(value)
            problems.append(f"{_env_name(name)}={shown}: {_reason(exc, name)}")
    if "registry" in raw:
        settings, problem = _registry_folder(settings)
        problems += [problem] if problem else []
    elif settings.environment != "development":
        problems.append(
            "TENANTDB_REGISTRY: set it to your registry folder (the one holding registry.toml); "
            "the example registry is served only when TENANTDB_ENVIRONMENT=development"
        )
    problems += _check(settings)
    if problems:
        raise ConfigError("\n".join(problems))
    _warn_unknown(unknown, settings)
    _warn_renamed(sorted(renamed), settings)
    return settings


def _read_env(env: Mapping[str, str], fields: set[str]) -> tuple[dict[str, Any], list[str]]:
    """The TENANTDB_* settings in `env` (old names too), and the unknown variables."""
    raw: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in env.items():
        if not key.startswith(PREFIX) or key[len(PREFIX) :] in _NOT_SETTINGS:
            continue
        name = key[len(PREFIX) :].lower()
        if name not in fields and name not in _RENAMED:
            unknown.append(key)
        elif value.strip():  # empty means unset (compose renders `${X:-}` as "")
            raw[name] = _from_env(name, value)
    return raw, unknown


def _take_renamed(raw: dict[str, Any]) -> dict[str, Any]:
    """Remove the settings given under an old name from `raw`; return them, by old name."""
    return {old: raw.pop(old) for old in _RENAMED if old in raw}


def _registry_folder(s: Settings) -> tuple[Settings, str | None]:
    """Accept the registry.toml file itself for its folder; any other file is a mistake."""
    path = Path(s.registry).expanduser()
    if not path.is_file():
        return s, None  # a folder, or missing: load_registry says what is wrong with it
    if path.name == "registry.toml":
        return msgspec.structs.replace(s, registry=str(path.parent)), None
    return s, f"TENANTDB_REGISTRY={s.registry}: a file; give the folder holding registry.toml"


def unknown_variable_hints(names: list[str]) -> list[tuple[str, str | None]]:
    """Each unknown TENANTDB_* name with the closest real one (a typo is otherwise silent)."""
    known = [_env_name(f) for f in Settings.__struct_fields__]
    return [(n, next(iter(difflib.get_close_matches(n, known, n=1)), None)) for n in names]


def _config_log(settings: Settings) -> Any:
    """The config's logger; logging is set up first if nobody has yet, so a warning goes to
    stderr as a log line and never into a command's stdout."""
    if not structlog.is_configured():
        from service.logs import configure_logging  # noqa: PLC0415 - only when there is a warning

        configure_logging(settings.log_format, settings.log_level)
    return structlog.get_logger("tenantdb.config")


def _warn_renamed(old_names: list[str], settings: Settings) -> None:
    """Log each setting given under its old name, naming the new one."""
    if not old_names:
        return
    log = _config_log(settings)
    for old in old_names:
        variable, new = _env_name(old), _env_name(_RENAMED[old])
        log.warning(
            "config.deprecated_variable",
            variable=variable,
            use=new,
            message=f"{variable} is deprecated: set {new} instead (same meaning: the threads "
            "doing SQLite work in each server process); when both are set, "
            f"{new} is used",
        )


def _warn_unknown(names: list[str], settings: Settings) -> None:
    """Log each unknown variable (see _config_log for where it goes)."""
    if not names:
        return
    log = _config_log(settings)
    for name, closest in unknown_variable_hints(sorted(names)):
        log.warning(
            "config.unknown_variable",
            variable=name,
            did_you_mean=closest,
            message=f"{name} is not a setting and is ignored"
            + (f"; did you mean {closest}?" if closest else ""),
        )


def _from_env(name: str, value: str) -> Any:
    if name in _LIST_FIELDS:
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _env_name(name: str) -> str:
    return PREFIX + name.upper()


def _reason(exc: msgspec.ValidationError, name: str | None = None) -> str:
    """msgspec's message, with the allowed values when the setting is a choice."""
    reason = str(exc).split(" - at ")[0]
    choices = _choices(name) if name else ()
    return f"choose one of {', '.join(choices)}" if choices else reason


def _choices(name: str) -> tuple[str, ...]:
    hint = typing.get_type_hints(Settings).get(name)
    if typing.get_origin(hint) is Literal:
        return tuple(str(a) for a in typing.get_args(hint))
    return ()


def _check(s: Settings) -> list[str]:
    """Rules across settings: the ones a type alone cannot say."""
    problems: list[str] = []
    unknown = [a for a in s.jwt_algorithms if a not in SYMMETRIC | ASYMMETRIC]
    if unknown:
        problems.append(
            f"TENANTDB_JWT_ALGORITHMS: {', '.join(unknown)} not allowed "
            f"(choose from {', '.join(sorted(SYMMETRIC | ASYMMETRIC))}; 'none' never is)"
        )
    if not s.jwt_algorithms:
        problems.append("TENANTDB_JWT_ALGORITHMS: give at least one algorithm")
    if any(a in ASYMMETRIC for a in s.jwt_algorithms) and not (s.jwt_public_key_file or s.jwks_url):
        problems.append(
            "TENANTDB_JWT_ALGORITHMS: asymmetric algorithms need "
            "TENANTDB_JWT_PUBLIC_KEY_FILE or TENANTDB_JWKS_URL"
        )
    if s.jwt_secret is not None and len(s.jwt_secret) < 32:
        problems.append("TENANTDB_JWT_SECRET: use at least 32 characters")
    if s.threads < 1:
        problems.append("TENANTDB_THREADS: must be at least 1")
    if s.connection_cache < 0:
        problems.append("TENANTDB_CONNECTION_CACHE: must be 0 or more")
    if not 1 <= s.rollout_processes <= 64:
        problems.append("TENANTDB_ROLLOUT_PROCESSES: from 1 to 64 worker processes")
    if s.jwt_leeway < 0:
        problems.append("TENANTDB_JWT_LEEWAY: must be 0 or more")
    if s.backup_keep < 1:
        problems.append("TENANTDB_BACKUP_KEEP: keep at least 1 backup per tenant")
    problems += _check_auth_and_startup(s)
    problems += _check_http_edge(s)
    if s.metrics_token is not None and len(s.metrics_token) < 16:
        problems.append("TENANTDB_METRICS_TOKEN: use at least 16 characters")
    if s.backend == "sqld":
        problems += _check_sqld(s)
    return problems


def _check_auth_and_startup(s: Settings) -> list[str]:
    problems: list[str] = []
    if not s.admin_role.strip():
        problems.append("TENANTDB_ADMIN_ROLE: give a role name (an empty one would match anyone)")
    if not 0 < s.jwks_timeout <= 60:
        problems.append("TENANTDB_JWKS_TIMEOUT: between 0 and 60 seconds")
    if s.startup_timeout < 0:
        problems.append("TENANTDB_STARTUP_TIMEOUT: must be 0 or more")
    return problems


def _check_http_edge(s: Settings) -> list[str]:
    """CORS origins as browsers send them (scheme://host[:port]); rate limits of 1 or more."""
    problems: list[str] = []
    for origin in s.cors_origins:
        parts = urlsplit(origin)
        exact = (
            parts.scheme in ("http", "https")
            and parts.netloc
            and origin == (f"{parts.scheme}://{parts.netloc}")
        )
        if origin != "*" and not exact:
            problems.append(
                f"TENANTDB_CORS_ORIGINS: {origin!r} is not an origin: give scheme://host[:port] "
                "with no path or trailing slash (e.g. https://app.example.com), or *"
            )
    for name in ("rate_limit_user", "rate_limit_auth_failures"):
        if getattr(s, name) < 1:
            problems.append(
                f"{_env_name(name)}: at least 1 a minute (TENANTDB_RATE_LIMIT=off turns limits off)"
            )
    return problems


def _check_sqld(s: Settings) -> list[str]:
    problems: list[str] = []
    if not s.sqld_url:
        problems.append("TENANTDB_SQLD_URL: give at least one sqld URL")
    if len(s.sqld_admin_url) != len(s.sqld_url):
        problems.append(
            "TENANTDB_SQLD_ADMIN_URL: give one admin URL per TENANTDB_SQLD_URL, in the same order"
        )
    if not s.sqld_jwt_key_file:
        problems.append("TENANTDB_SQLD_JWT_KEY_FILE: the Ed25519 private key (PEM) is required")
    elif not Path(s.sqld_jwt_key_file).is_file():
        problems.append(f"TENANTDB_SQLD_JWT_KEY_FILE: no such file {s.sqld_jwt_key_file}")
    elif not os.access(s.sqld_jwt_key_file, os.R_OK):
        problems.append(
            f"TENANTDB_SQLD_JWT_KEY_FILE: {s.sqld_jwt_key_file} is not readable by uid "
            f"{os.getuid()} (the image runs as uid 10001: chown 10001 the key, keep it 0600)"
        )
    if not s.public_url_template or "{namespace}" not in s.public_url_template:
        problems.append(
            "TENANTDB_PUBLIC_URL_TEMPLATE: required, with {namespace} "
            "(e.g. libsql://{namespace}.db.example.com)"
        )
    if s.token_ttl < 60:
        problems.append("TENANTDB_TOKEN_TTL: at least 60 seconds")
    if s.sqld_held_streams < 0:
        problems.append("TENANTDB_SQLD_HELD_STREAMS: must be 0 (none) or more")
    if not 0 <= s.sqld_check_ttl <= 60:
        problems.append("TENANTDB_SQLD_CHECK_TTL: from 0 (off) to 60 seconds")
    return problems
