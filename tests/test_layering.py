"""The runtime side never reaches the compile side: no module under components/ imports pipelines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

COMPONENTS = Path(__file__).resolve().parents[1] / "components"


def pipelines_imports(source: str) -> list[tuple[int, str]]:
    """(line, statement) of every `import pipelines[...]` / `from pipelines[...] import` in
    `source`, wherever it stands (module top, function body, TYPE_CHECKING block)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            if name == "pipelines" or name.startswith("pipelines."):
                found.append((node.lineno, name))
    return sorted(found)


def test_the_check_finds_every_import_form():
    source = (
        "import pipelines\n"
        "import os, pipelines.dag as d\n"
        "def f():\n    from pipelines.config import Site\n"
        "if TYPE_CHECKING:\n    from pipelines import fanin\n"
        "from components.domain import models\n"
        "import pipelinesx\n"
    )
    assert pipelines_imports(source) == [
        (1, "pipelines"),
        (2, "pipelines.dag"),
        (4, "pipelines.config"),
        (6, "pipelines"),
    ]


@pytest.mark.parametrize(
    "path", sorted(COMPONENTS.rglob("*.py")), ids=lambda p: str(p.relative_to(COMPONENTS))
)
def test_no_component_module_imports_pipelines(path: Path):
    assert pipelines_imports(path.read_text(encoding="utf-8")) == []
