"""Fixtures shared by every test folder: only what more than one folder needs."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_REGISTRY = ROOT / "schema_registry" / "example"
SEED000_REGISTRY = ROOT / "tests" / "registries" / "seed000"


@pytest.fixture
def example_registry() -> Path:
    return EXAMPLE_REGISTRY


@pytest.fixture(scope="session", autouse=True)
def localhost_subdomains() -> Iterator[None]:
    """In the test process: *.localhost is loopback, as RFC 6761 says, and sqld reads the
    namespace from the first label (Debian's resolver does not map it; the docs say so).
    Client processes under test get their own /etc/hosts (tests/clients/clientkit.jailed)."""
    original = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return original(host, *args, **kwargs)

    socket.getaddrinfo = resolve
    yield
    socket.getaddrinfo = original
