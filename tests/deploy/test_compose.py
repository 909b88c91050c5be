"""deploy/compose.yaml, run: its sqld and tenantdb commands as local processes with exactly
the environment it (and the Dockerfile) declares, its healthchecks waited on, and a user
signed in end to end and connected with the client apps use."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.api.test_identity_providers import Jwks, rsa_key
from tests.clients.clientkit import hosts_for, node_modules, run_node
from tests.conftest import EXAMPLE_REGISTRY
from tests.deploy.composekit import (
    ComposeError,
    Mapper,
    dockerfile,
    load_compose,
)
from tests.sqld import free_port, make_keypair, sqld_binary

pytestmark = pytest.mark.sqld
VENV_BIN = Path(sys.executable).parent


class Processes:
    """Started processes, stopped (terminate, then kill) at the end of the test."""

    def __init__(self) -> None:
        self.started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.started.append((process, log))
        return process

    def stop(self) -> None:
        for process, _ in reversed(self.started):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@pytest.fixture
def processes() -> Iterator[Processes]:
    running = Processes()
    yield running
    running.stop()


def seconds(value: str) -> float:
    return float(value.removesuffix("s"))


def wait_healthy(
    check: list[str], spec: dict[str, Any], process: subprocess.Popen[bytes], log: Path
) -> None:
    """Run a healthcheck command as compose would, until it passes or retries run out."""
    deadline = (
        time.monotonic()
        + seconds(spec.get("start_period", "0s"))
        + seconds(spec.get("interval", "5s")) * int(spec.get("retries", 3))
    )
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{check[0]}: the service exited:\n{log.read_text()[-3000:]}")
        done = subprocess.run(
            check, capture_output=True, timeout=seconds(spec.get("timeout", "30s")), check=False
        )
        if done.returncode == 0:
            return
        time.sleep(0.2)
    pytest.fail(f"never healthy: {check}\n{log.read_text()[-3000:]}")


def healthcheck_command(test: list[str], mapped: Mapper) -> list[str]:
    assert test[0] in ("CMD", "CMD-SHELL"), test
    args = [mapped(a) for a in test[1:]]
    return ["sh", "-c", args[0]] if test[0] == "CMD-SHELL" else args


def serve_args(args: list[str], ports: dict[int, int]) -> list[str]:
    """`serve --host 0.0.0.0 --port 8000` on loopback and the port mapped for 8000."""
    out: list[str] = []
    for previous, arg in zip(["", *args], args, strict=False):
        if previous == "--port":
            out.append(str(ports[int(arg)]))
        elif previous == "--host" and arg == "0.0.0.0":  # noqa: S104 - what the image binds
            out.append("127.0.0.1")
        else:
            out.append(arg)
    return out


def test_compose_refuses_to_start_without_jwks_and_registry() -> None:
    with pytest.raises(ComposeError, match="TENANTDB_JWKS_URL"):
        load_compose({"TENANTDB_REGISTRY_DIR": "/x"})
    with pytest.raises(ComposeError, match="TENANTDB_REGISTRY_DIR"):
        load_compose({"TENANTDB_JWKS_URL": "http://idp/jwks.json"})


def test_compose_stack_signs_a_user_in_end_to_end(tmp_path: Path, processes: Processes) -> None:
    # What the operator prepares (deploy/README.md): keys in deploy/keys/, the private one
    # 0600 as openssl writes it; a registry; the identity provider's JWKS. The shell has
    # no TENANTDB_JWT_ISSUER or _AUDIENCE, so compose renders them as "".
    context = tmp_path / "deploy"
    (context / "keys").mkdir(parents=True)
    private, _ = make_keypair(context / "keys", "sqld")
    private.chmod(0o600)
    registry = tmp_path / "my-registry"
    shutil.copytree(EXAMPLE_REGISTRY, registry)
    identity = Jwks()
    signing = rsa_key()
    identity.publish("k1", signing)
    shell = {"TENANTDB_JWKS_URL": identity.url, "TENANTDB_REGISTRY_DIR": str(registry)}
    compose = load_compose(shell)
    image = dockerfile()
    sqld_spec, tenantdb_spec = compose["services"]["sqld"], compose["services"]["tenantdb"]

    # Container paths: volumes (named ones in tmp), bind mounts relative to deploy/ (here
    # the tmp context), secrets under /run/secrets/.
    paths: dict[str, Path] = {}
    for spec in (sqld_spec, tenantdb_spec):
        for volume in spec.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                paths[target] = (context / source).resolve()
            elif source.startswith("/"):
                paths[target] = Path(source)
            else:
                assert source in compose["volumes"], f"undeclared volume {source}"
                paths[target] = tmp_path / "volumes" / source
                paths[target].mkdir(parents=True, exist_ok=True)
    for name in tenantdb_spec.get("secrets", []):
        paths[f"/run/secrets/{name}"] = (context / compose["secrets"][name]["file"]).resolve()
    ports = {port: free_port() for port in (8080, 9090, 5001, 8000)}
    mapped = Mapper(paths, ports, set(compose["services"]))

    # sqld: the command it declares, on the pinned binary.
    command = [mapped(arg) for arg in sqld_spec["command"]]
    assert command[0] == "sqld"
    sqld_check = healthcheck_command(sqld_spec["healthcheck"]["test"], mapped)
    assert subprocess.run(sqld_check, capture_output=True, check=False).returncode != 0
    sqld_log = tmp_path / "sqld.log"
    sqld = processes.start(
        [str(sqld_binary()), *command[1:]], {"PATH": os.environ["PATH"]}, sqld_log
    )
    # tenantdb waits for sqld's healthcheck (depends_on: service_healthy), as compose does.
    assert tenantdb_spec["depends_on"]["sqld"]["condition"] == "service_healthy"
    wait_healthy(sqld_check, sqld_spec["healthcheck"], sqld, sqld_log)

    # tenantdb: the image's ENV under compose's environment, nothing else of ours.
    env = {"PATH": f"{VENV_BIN}:{os.environ['PATH']}", "HOME": str(tmp_path)}
    env |= {k: mapped(v) for k, v in image.env.items()}
    env |= {k: mapped(str(v)) for k, v in tenantdb_spec["environment"].items()}
    assert env["TENANTDB_JWT_ISSUER"] == ""  # what compose hands over when the shell has none
    entrypoint = [str(VENV_BIN / image.entrypoint[0]), *image.entrypoint[1:]]
    args = serve_args(tenantdb_spec.get("command", image.cmd), ports)
    tenantdb_log = tmp_path / "tenantdb.log"
    tenantdb = processes.start([*entrypoint, *args], env, tenantdb_log)
    check = [sys.executable if a == "python" else mapped(a) for a in image.healthcheck]
    wait_healthy(check, {"interval": "1s", "retries": 30}, tenantdb, tenantdb_log)

    # Sign in with the identity provider's token, as the app's backend would.
    now = int(time.time())
    token = jwt.encode(
        {"sub": "alice", "iat": now, "exp": now + 300},
        signing,
        algorithm="RS256",
        headers={"kid": "k1"},
    )
    response = httpx.post(
        f"http://127.0.0.1:{ports[8000]}/api/user/initialize",
        json={"user_id": "alice"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200, f"{response.text}\n{tenantdb_log.read_text()[-3000:]}"
    body = response.json()
    assert body["schema_version"] == "1.2.0"
    assert body["database_url"].startswith("http://alice-")
    assert body["database_url"].endswith(f".localhost:{ports[8080]}")

    # The app's own client connects with what it was given.
    script = (
        'import { createClient } from "@libsql/client";\n'
        "const db = createClient({ url: process.env.URL, authToken: process.env.TOKEN });\n"
        "await db.execute(\"INSERT INTO accounts (name) VALUES ('Main')\");\n"
        'const v = await db.execute("SELECT max(version) AS v FROM schema_version");\n'
        'const n = await db.execute("SELECT count(*) AS n FROM accounts");\n'
        "console.log(JSON.stringify([v.rows[0].v, Number(n.rows[0].n)]));\n"
    )
    out = run_node(
        script,
        tmp_path,
        node_modules(),
        hosts=hosts_for(body["database_url"]),
        env={"URL": body["database_url"], "TOKEN": body["database_token"]},
    )
    assert json.loads(out.strip().splitlines()[-1]) == ["1.2.0", 1]
    identity.close()
