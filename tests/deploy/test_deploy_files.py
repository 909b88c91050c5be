"""deploy/'s files and the docs that go with them: what an operator copies must hold."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

from service.config import load_settings
from tests.deploy.composekit import DEPLOY, ROOT, dockerfile, load_compose

SHELL = {"TENANTDB_JWKS_URL": "https://idp/jwks.json", "TENANTDB_REGISTRY_DIR": "/srv/registry"}


def systemd_environment_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines as systemd reads them: comments only on lines of their own."""
    pairs = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith(("#", ";")):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value
    return pairs


def test_the_systemd_unit_keeps_every_data_setting_in_its_env_file() -> None:
    unit = (DEPLOY / "tenantdb.service").read_text()
    in_unit = re.findall(r"^Environment=(TENANTDB_\w+)=", unit, flags=re.MULTILINE)
    assert in_unit == ["TENANTDB_LOG_FORMAT"]
    assert "EnvironmentFile=/etc/tenantdb/env" in unit
    env = systemd_environment_file((DEPLOY / "tenantdb.env").read_text())
    assert all(" #" not in value for value in env.values()), env  # systemd keeps inline comments
    settings = load_settings(env)  # production: the registry is named, the JWKS too
    assert settings.environment == "production"
    assert settings.data_dir == "/var/lib/tenantdb"
    assert settings.registry == "/etc/tenantdb/registry"
    assert f"ReadWritePaths={settings.data_dir}" in unit
    assert "deploy/tenantdb.env" in (DEPLOY / "README.md").read_text()


def test_compose_names_a_registry_read_only_and_restarts_tenantdb() -> None:
    compose = load_compose(SHELL)
    tenantdb = compose["services"]["tenantdb"]
    registry = tenantdb["environment"]["TENANTDB_REGISTRY"]
    assert f"/srv/registry:{registry}:ro" in tenantdb["volumes"]
    assert tenantdb["restart"] in ("always", "unless-stopped", "on-failure")
    assert tenantdb["depends_on"]["sqld"]["condition"] == "service_healthy"
    assert compose["services"]["sqld"]["healthcheck"]["test"]
    # A URL every libSQL client can use, embedded replicas included (they refuse ws://).
    assert tenantdb["environment"]["TENANTDB_PUBLIC_URL_TEMPLATE"].startswith("http://")
    # The image names no registry, so outside development tenantdb must be given one.
    assert "TENANTDB_REGISTRY" not in dockerfile().env
    assert dockerfile().env["TENANTDB_ENVIRONMENT"] == "production"


def test_keys_stay_out_of_git_and_out_of_the_image() -> None:
    gitignore = (ROOT / ".gitignore").read_text().splitlines()
    assert "/deploy/keys/" in gitignore, "deploy/keys/ must be ignored by git"
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def excluded(path: str) -> bool:
        return any(
            fnmatch.fnmatch(path, p.removeprefix("**/"))
            or fnmatch.fnmatch(path, p)
            or path.startswith(p.rstrip("/") + "/")
            or fnmatch.fnmatch(Path(path).name, p.removeprefix("**/"))
            for p in patterns
        )

    for secret in (
        "data/.dev-jwt-secret",
        "data/tenants/2b/d8/alice.db",
        "deploy/keys/sqld.pem",
        "deploy/.env",
        ".git/config",
        ".venv/bin/python",
    ):
        assert excluded(secret), secret
    copied = re.findall(r"^COPY (.+) \S+$", (DEPLOY / "Dockerfile").read_text(), re.MULTILINE)
    for sources in copied:
        for source in sources.split():
            assert not excluded(source), f"the Dockerfile copies {source}, .dockerignore drops it"


def test_the_key_owner_the_docs_give_is_the_image_user() -> None:
    uid = re.search(r"useradd .*--uid (\d+)", (DEPLOY / "Dockerfile").read_text())
    assert uid is not None
    readme = (DEPLOY / "README.md").read_text()
    assert f"chown {uid.group(1)} deploy/keys/sqld.pem" in readme
    assert "chmod 0600 deploy/keys/sqld.pem" in readme


def test_the_readme_says_how_a_namespace_url_resolves() -> None:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Use it from your app") :]
    section = section[: section.index("\n## ", 3)]
    assert "http://{namespace}.localhost:8080" in section
    assert "127.0.0.1" in section  # what *.localhost must resolve to
    assert "libsql://{namespace}.db.example.com" in section
    assert "ws://" in section  # and why not
