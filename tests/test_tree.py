"""The tests tree mirrors the code: one folder per package, shared helpers only in tests/support."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import REPO

TESTS = REPO / "tests"
WHOLE_RUNS = {"e2e", "support", "pipeline"}
"""Folders that mirror no single package: whole pipeline runs, shared helpers, and the pipeline
compiler's top-level modules (pipelines/compiler.py, dag.py, flows.py, task_inputs.py, task_names.py)."""


def _packages() -> set[str]:
    return {
        p.name
        for side in ("components", "pipelines")
        for p in (REPO / side).iterdir()
        if (p / "__init__.py").exists()
    }


def _test_folders() -> list[Path]:
    return sorted(p for p in TESTS.iterdir() if p.is_dir() and (p / "__init__.py").exists())


def test_every_test_folder_names_a_package() -> None:
    strays = [p.name for p in _test_folders() if p.name not in _packages() | WHOLE_RUNS]
    assert strays == [], f"tests/{strays} mirror no package under components/ or pipelines/"


def test_helpers_are_imported_one_way() -> None:
    """Only ``tests.support`` is shared; a test folder's name is never imported as a top-level module
    (``datasets``, ``train``) and no test imports another folder's tests."""
    folders = {p.name for p in _test_folders()}
    bad: list[str] = []
    for path in TESTS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                top, _, rest = name.partition(".")
                shadowing = top in folders
                foreign = top == "tests" and not rest.startswith("support")
                if shadowing or foreign:
                    bad.append(f"{path.relative_to(REPO)}:{node.lineno}: {name}")
    assert bad == []
