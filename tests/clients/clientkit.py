"""The clients apps really use, run as apps run them: Node's @libsql/client and Python's
libsql, each in a process of its own, against a real sqld and a real tenantdb.

Pinned: tests/clients/package-lock.json (installed by `npm ci` into .cache/ once per lock)
and pyproject.toml's dev extras (`libsql`). A namespace URL's `*.localhost` name does not
resolve on Debian's resolver (RFC 6761 says it should mean loopback), and the drivers'
native parts (embedded replicas) resolve through the system, so each client runs in a
private mount namespace whose /etc/hosts names the namespaces it needs: nothing on the
machine changes, and the URL the client gets is exactly the one tenantdb handed out.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
HERE = Path(__file__).resolve().parent
README = ROOT / "README.md"


def node_modules() -> Path:
    """node_modules for tests/clients/package-lock.json, installed once with `npm ci`."""
    lock = (HERE / "package-lock.json").read_bytes()
    folder = ROOT / ".cache" / f"node-clients-{hashlib.sha256(lock).hexdigest()[:12]}"
    if (folder / "node_modules" / "@libsql" / "client").is_dir():
        return folder / "node_modules"
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed to install the pinned Node clients (tests/clients/package.json)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="node-clients-", dir=folder.parent))
    for name in ("package.json", "package-lock.json"):
        shutil.copy(HERE / name, staging / name)
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=staging,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        pytest.fail(f"npm ci for tests/clients failed:\n{done.stderr[-3000:]}")
    try:
        staging.rename(folder)  # atomic: a concurrent session may have won, which is fine
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return folder / "node_modules"


def hosts_for(*urls: str) -> list[str]:
    """The host names of namespace URLs, to be mapped to loopback."""
    return sorted({h for u in urls if (h := urlsplit(u).hostname) and h.endswith(".localhost")})


def jailed(command: list[str], hosts: list[str], folder: Path) -> list[str]:
    """`command` run with an /etc/hosts of its own mapping `hosts` to 127.0.0.1.

    A private mount namespace (unshare, as root): the machine's /etc/hosts is untouched.
    """
    if not hosts:
        return command
    hosts_file = folder / "hosts"
    hosts_file.write_text(
        "127.0.0.1 localhost\n::1 localhost\n" + "".join(f"127.0.0.1 {h}\n" for h in hosts)
    )
    unshare = shutil.which("unshare")
    if unshare is None or (os.geteuid() != 0):
        pytest.fail(
            "client tests map *.localhost with `unshare --mount` and need root "
            "(CI runs them as root); see tests/clients/clientkit.py"
        )
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    return [unshare, "--mount", "--", "sh", "-c", script, str(hosts_file), *command]


def run(command: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 60) -> str:
    """Run a client; its stdout, or a failure showing what it said."""
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        pytest.fail(
            f"{command[-2:]} exited {done.returncode}\n"
            f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
        )
    return done.stdout


def client_env() -> dict[str, str]:
    """This environment without RUST_LOG noise; libsql's replica logs go to stderr anyway."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTDB_")}
    env["RUST_LOG"] = "error"
    return env


def run_node(
    source: str, folder: Path, modules: Path, *, hosts: list[str], env: dict[str, str]
) -> str:
    """Run an ES module with the pinned node_modules beside it."""
    link = folder / "node_modules"
    if not link.exists():
        link.symlink_to(modules, target_is_directory=True)
    script = folder / f"client-{hashlib.sha256(source.encode()).hexdigest()[:8]}.mjs"
    script.write_text(source)
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed for the @libsql/client tests")
    return run(jailed([node, str(script)], hosts, folder), cwd=folder, env={**client_env(), **env})


def run_python(source: str, folder: Path, *, hosts: list[str], env: dict[str, str]) -> str:
    """Run a Python script with this interpreter (the venv, where `libsql` is installed)."""
    script = folder / f"client-{hashlib.sha256(source.encode()).hexdigest()[:8]}.py"
    script.write_text(source)
    return run(
        jailed([sys.executable, str(script)], hosts, folder),
        cwd=folder,
        env={**client_env(), **env},
    )


def readme_snippet(language: str, section: str = "## Use it from your app") -> str:
    """The one ```language block of a README section: the tests run what the docs show."""
    text = README.read_text(encoding="utf-8")
    start = text.index(section)
    end = text.find("\n## ", start + len(section))
    body = text[start : end if end != -1 else len(text)]
    blocks = re.findall(rf"```{language}\n(.*?)```", body, flags=re.DOTALL)
    assert len(blocks) == 1, f"expected one ```{language} block in {section!r}, found {len(blocks)}"
    return str(blocks[0])


def last_json(output: str) -> Any:
    """The last line a client printed, as JSON."""
    return json.loads(output.strip().splitlines()[-1])
