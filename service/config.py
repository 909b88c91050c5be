"""Settings: TENANTDB_* environment variables, optionally on top of a TOML file.

Read once when the app is built (never at import), typed and validated with msgspec, and
every bad value is reported on a line of its own before anything starts.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

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
    workers: int = 8  # threads doing SQLite work off the event loop
    connection_cache: int = 1024  # idle tenant connections kept open (LRU)
    # Backups before schema changes (service/backups.py) and /metrics (service/metrics.py)
    backup_policy: Literal["always", "migration", "never"] = "migration"
    backup_keep: int = 5  # newest backups kept per tenant
    backup_dir: str | None = None  # default: DATA_DIR/backups
    metrics_token: str | None = None  # when set, /metrics needs `Authorization: Bearer` it

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def backup_path(self) -> Path:
        if self.backup_dir is None:
            return self.data_path / "backups"
        return Path(self.backup_dir).expanduser().resolve()


_SECRET_FIELDS: Final = frozenset({"jwt_secret", "metrics_token"})
_LIST_FIELDS: Final = frozenset({"jwt_algorithms", "sqld_url", "sqld_admin_url"})


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from a config file (TENANTDB_CONFIG), the environment and overrides."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    config_file = env.get(PREFIX + "CONFIG")
    if config_file:
        try:
            raw.update(tomllib.loads(Path(config_file).read_text(encoding="utf-8")))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"TENANTDB_CONFIG={config_file}: {exc}") from None
    fields = set(Settings.__struct_fields__)
    problems: list[str] = []
    for key, value in env.items():
        if not key.startswith(PREFIX) or key == PREFIX + "CONFIG":
            continue
        name = key[len(PREFIX) :].lower()
        if name in fields:
            raw[name] = _from_env(name, value)
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
            problems.append(f"{_env_name(name)}={shown}: {_reason(exc)}")
    problems += _check(settings)
    if problems:
        raise ConfigError("\n".join(problems))
    return settings


def _from_env(name: str, value: str) -> Any:
    if name in _LIST_FIELDS:
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _env_name(name: str) -> str:
    return PREFIX + name.upper()


def _reason(exc: msgspec.ValidationError) -> str:
    return str(exc).split(" - at ")[0]


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
    if s.workers < 1:
        problems.append("TENANTDB_WORKERS: must be at least 1")
    if s.connection_cache < 0:
        problems.append("TENANTDB_CONNECTION_CACHE: must be 0 or more")
    if s.jwt_leeway < 0:
        problems.append("TENANTDB_JWT_LEEWAY: must be 0 or more")
    if s.backup_keep < 1:
        problems.append("TENANTDB_BACKUP_KEEP: keep at least 1 backup per tenant")
    if s.metrics_token is not None and len(s.metrics_token) < 16:
        problems.append("TENANTDB_METRICS_TOKEN: use at least 16 characters")
    if s.backend == "sqld":
        problems += _check_sqld(s)
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
