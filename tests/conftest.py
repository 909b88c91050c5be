"""Fixtures shared by every test folder: only what more than one folder needs."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_REGISTRY = ROOT / "schema_registry" / "example"
SEED000_REGISTRY = ROOT / "tests" / "registries" / "seed000"


@pytest.fixture
def example_registry() -> Path:
    return EXAMPLE_REGISTRY
