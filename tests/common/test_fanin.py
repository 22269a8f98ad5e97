"""Fan-in components from generated source: deterministic text, kfp compile, kfp.local run."""

import inspect
import json
from pathlib import Path

import pytest
import yaml
from kfp import compiler, dsl, local
from kfp.dsl import Artifact, Output

from components.common.declare import UndeclaredArtifactClassError, parse_class
from components.common.fanin import (
    Param,
    call_lines,
    dict_literal,
    fanin_component,
    function_source,
)
from components.domain.artifact_classes import ArtifactClass

SITES = ["site-a", "site-b", "site-c"]


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def produce(value: str, out: Output[Artifact]):
    import os

    os.makedirs(out.path, exist_ok=True)
    with open(os.path.join(out.path, "value.txt"), "w") as handle:
        handle.write(value)


def _gather_component():
    params = [Param("round_index", "int")]
    params += [Param(f"part_{i}", "Input[Artifact]") for i in range(1, len(SITES) + 1)]
    params.append(Param("combined", "Output[Artifact]"))
    parts = {site: f"part_{i}.path" for i, site in enumerate(SITES, start=1)}
    body = [
        "import json",
        "import os",
        "",
        f"parts = {dict_literal(parts)}",
        "values = {s: open(os.path.join(p, 'value.txt')).read() for s, p in parts.items()}",
        "os.makedirs(combined.path, exist_ok=True)",
        "with open(os.path.join(combined.path, 'combined.json'), 'w') as handle:",
        "    json.dump({'round': round_index, 'values': values}, handle)",
    ]
    return fanin_component(
        name="gather",
        params=params,
        docstring="Collect one value per site.",
        body=body,
        base_image="python:3.11",
        output_classes={"combined": ArtifactClass.METRICS},
    )


def _pipeline(gather):
    @dsl.pipeline(name="fanin-test")
    def fanin_test(prefix: str = "v"):
        parts = {f"part_{i}": produce(value=site).outputs["out"] for i, site in enumerate(SITES, 1)}
        gather(round_index=2, **parts)

    return fanin_test


def test_generated_source_is_deterministic_and_a_real_file():
    first, second = _gather_component(), _gather_component()
    assert first.python_func is second.python_func
    path = Path(inspect.getsourcefile(first.python_func))
    assert path.is_file()
    assert "def gather(" in path.read_text()
    assert "part_3: Input[Artifact]" in inspect.getsource(first.python_func)


def test_function_source_rejects_bad_names():
    with pytest.raises(ValueError, match="identifier"):
        function_source("gather", [Param("site-a", "str")], "doc", ["pass"])
    with pytest.raises(ValueError, match="duplicate"):
        function_source("gather", [Param("a", "str"), Param("a", "int")], "doc", ["pass"])


def test_call_lines_render_keyword_arguments():
    text = "\n".join(call_lines("run", [("a", "a"), ("d", dict_literal({1: "x"}))], "r"))
    assert text == "r = run(\n    a=a,\n    d={\n        1: x,\n    },\n)"


def test_output_without_class_is_refused():
    with pytest.raises(UndeclaredArtifactClassError, match="combined"):
        fanin_component(
            name="gather",
            params=[Param("combined", "Output[Artifact]")],
            docstring="No class.",
            body=["pass"],
            base_image="python:3.11",
            output_classes={},
        )


def test_generated_component_compiles_with_one_input_per_site(tmp_path: Path):
    package = tmp_path / "fanin.yaml"
    compiler.Compiler().compile(_pipeline(_gather_component()), str(package))
    spec = yaml.safe_load(package.read_text())
    inputs = spec["components"]["comp-gather"]["inputDefinitions"]["artifacts"]
    assert sorted(inputs) == ["part_1", "part_2", "part_3"]
    outputs = spec["components"]["comp-gather"]["outputDefinitions"]["artifacts"]
    assert parse_class(outputs["combined"]["description"]) is ArtifactClass.METRICS
    command = "".join(spec["deploymentSpec"]["executors"]["exec-gather"]["container"]["command"])
    assert '"site-c": part_3.path' in command


@pytest.mark.e2e
def test_generated_component_runs_in_kfp_local(tmp_path: Path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path))
    run = _pipeline(_gather_component())()
    task_dirs = [p for p in tmp_path.rglob("combined.json")]
    assert len(task_dirs) == 1, run
    result = json.loads(task_dirs[0].read_text())
    assert result == {"round": 2, "values": {s: s for s in SITES}}
