"""The layers of the tree, checked on every test run.

Two contracts are import-linter's (pyproject.toml, `[tool.importlinter]`): the engine never
imports the service, the web framework or the benchmarks; the API, rollouts and operations
reach a backend only through `service.backends.base`. The third is checked here by reading
the imports: outside the engine, code imports `schema_registry` itself, never a module
inside it. import-linter cannot tell `from schema_registry import sync` (the public
function) from the module of the same name.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_import_linter_contracts_hold() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint is not None, "import-linter is a dev dependency: reinstall .venv"
    done = subprocess.run(
        [lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 2 kept, 0 broken." in done.stdout


def _engine_internals(path: Path) -> list[str]:
    """`from schema_registry.X import ...` and `import schema_registry.X` in one file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("schema_registry."):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} from {node.module}")
        elif isinstance(node, ast.Import):
            found += [
                f"{path.relative_to(ROOT)}:{node.lineno} import {alias.name}"
                for alias in node.names
                if alias.name.startswith("schema_registry.")
            ]
    return found


def test_nothing_outside_the_engine_imports_its_internals() -> None:
    files = [p for folder in ("service", "bench") for p in (ROOT / folder).rglob("*.py")]
    assert len(files) > 20
    assert [hit for path in sorted(files) for hit in _engine_internals(path)] == []
