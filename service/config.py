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

from schema_registry.registry import EXAMPLE

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
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway: float = 30.0
    jwt_user_claim: str = "sub"
    admin_role: str = "tenantdb:admin"
    # Runtime
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    workers: int = 8  # threads doing SQLite work off the event loop
    connection_cache: int = 1024  # idle tenant connections kept open (LRU)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()


_SECRET_FIELDS: Final = frozenset({"jwt_secret"})


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
    if name == "jwt_algorithms":
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
    if s.backend == "sqld":
        problems.append("TENANTDB_BACKEND=sqld: not available in this build yet (use local)")
    return problems
