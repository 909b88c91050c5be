"""Loading settings the way deploy/ hands them over: empty values, a forgotten registry,
typos, bad choices and a registry named by its registry.toml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from schema_registry import load_registry
from service.config import ConfigError, load_settings
from tests.conftest import EXAMPLE_REGISTRY

SECRET = "s" * 40
TENANTDB = Path(sys.executable).parent / "tenantdb"


def cli(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The installed `tenantdb` command with only these TENANTDB_* variables."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TENANTDB_")}
    return subprocess.run(
        [str(TENANTDB), *args],
        env={**base, "TENANTDB_DATA_DIR": str(tmp_path / "data"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_empty_variable_means_unset() -> None:
    settings = load_settings(
        {
            "TENANTDB_JWT_ISSUER": "",
            "TENANTDB_JWT_AUDIENCE": "",
            "TENANTDB_THREADS": "",
            "TENANTDB_PUBLIC_URL_TEMPLATE": " ",
        }
    )
    assert settings.jwt_issuer is None
    assert settings.jwt_audience is None
    assert settings.threads == 8
    assert settings.public_url_template is None


def test_an_empty_value_in_the_config_file_means_unset(tmp_path: Path) -> None:
    config = tmp_path / "tenantdb.toml"
    config.write_text('jwt_issuer = ""\njwt_audience = "api"\n')
    settings = load_settings({"TENANTDB_CONFIG": str(config)})
    assert (settings.jwt_issuer, settings.jwt_audience) == (None, "api")


def test_outside_development_a_registry_must_be_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({"TENANTDB_ENVIRONMENT": "production", "TENANTDB_JWT_SECRET": SECRET})
    assert str(refused.value).splitlines() == [
        "TENANTDB_REGISTRY: set it to your registry folder (the one holding registry.toml); "
        "the example registry is served only when TENANTDB_ENVIRONMENT=development"
    ]
    named = load_settings(
        {
            "TENANTDB_ENVIRONMENT": "production",
            "TENANTDB_JWT_SECRET": SECRET,
            "TENANTDB_REGISTRY": str(EXAMPLE_REGISTRY),
        }
    )
    assert named.registry == str(EXAMPLE_REGISTRY)
    # In development the example registry still serves, for trying tenantdb out.
    assert load_settings({}).registry == str(EXAMPLE_REGISTRY)
    # The command says so in one line and exits 2, without a traceback.
    done = cli(
        ["serve"], {"TENANTDB_ENVIRONMENT": "production", "TENANTDB_JWT_SECRET": SECRET}, tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert "TENANTDB_REGISTRY: set it to your registry folder" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_misspelt_variable_is_named_with_the_closest_setting(tmp_path: Path) -> None:
    done = cli(
        ["token", "alice"],
        {"TENANTDB_JWT_SECERT": SECRET, "TENANTDB_LOG_FORMAT": "json"},
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1  # the token alone: warnings go to stderr
    assert '"variable":"TENANTDB_JWT_SECERT"' in done.stderr
    assert '"did_you_mean":"TENANTDB_JWT_SECRET"' in done.stderr
    # Variables of the test suite and the config file's name are not settings, nor typos.
    quiet = cli(
        ["token", "alice"],
        {"TENANTDB_SQLD_BIN": "/x", "TENANTDB_LOG_FORMAT": "json"},
        tmp_path,
    )
    assert "unknown_variable" not in quiet.stderr


def test_a_bad_choice_lists_the_allowed_values() -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({"TENANTDB_BACKEND": "postgres", "TENANTDB_LOG_LEVEL": "loud"})
    assert str(refused.value).splitlines() == [
        "TENANTDB_BACKEND='postgres': choose one of local, sqld",
        "TENANTDB_LOG_LEVEL='loud': choose one of debug, info, warning, error",
    ]


def test_the_registry_may_be_named_by_its_registry_toml(tmp_path: Path) -> None:
    settings = load_settings({"TENANTDB_REGISTRY": str(EXAMPLE_REGISTRY / "registry.toml")})
    assert settings.registry == str(EXAMPLE_REGISTRY)
    assert load_registry(settings.registry).current.version == "1.2.0"
    other = tmp_path / "schema.sql"
    other.write_text("")
    with pytest.raises(ConfigError, match=r"a file; give the folder holding registry\.toml"):
        load_settings({"TENANTDB_REGISTRY": str(other)})
    done = cli(
        ["token", "a"], {"TENANTDB_REGISTRY": str(EXAMPLE_REGISTRY / "registry.toml")}, tmp_path
    )
    assert done.returncode == 0, done.stderr
