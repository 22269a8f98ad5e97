"""Component declarations: contract inputs, declared classes, the executor call pattern."""

import json
from pathlib import Path

import pytest
from kfp import dsl, local
from kfp.dsl import Artifact, Input, Output

from components.common.declare import parse_class
from components.common.kfp_args import plain_arguments
from components.domain.artifact_classes import ArtifactClass
from components.evaluate.component import evaluate
from components.export.component import export
from components.initialize import component as initialize_component
from components.train.component import train
from components.validate.component import validate

# explicit cache keys of every per-site task (components/CONTRACT.md)
COMMON = {
    "site_id": "String",
    "policy_digest": "String",
    "data_snapshot": "String",
    "round_index": "Integer",
}
# validate gets the specs and the run's settings; the later stages its admission
VALIDATE_ONLY = {"site_json": "String", "policy_json": "String", "run_id": "String"}


@pytest.mark.parametrize("component", [validate, train, export, evaluate])
def test_site_components_take_the_common_inputs(component):
    inputs = component.component_spec.inputs
    extra = VALIDATE_ONLY if component is validate else {"admission": "String"}
    for name, kind in {**COMMON, **extra}.items():
        assert name in inputs, name
        assert inputs[name].type == kind, name
    if component is not validate:
        assert not set(VALIDATE_ONLY) & set(inputs), "later stages read the admission"


def test_validate_emits_the_admission_as_a_parameter():
    outputs = validate.component_spec.outputs
    assert outputs["admission"].type == "String"
    assert outputs["admission"].description is None  # a parameter: no residency class


@pytest.mark.parametrize(
    ("component", "expected"),
    [
        (initialize_component.build(["a", "b"]), {"global_model": ArtifactClass.GLOBAL_MODEL}),
        (validate, {"summary": ArtifactClass.VALIDATION_SUMMARY}),
        (train, {"local_model": ArtifactClass.LOCAL_MODEL}),
        (export, {"update": ArtifactClass.DP_UPDATE}),
        (evaluate, {"evaluation": ArtifactClass.METRICS}),
    ],
)
def test_declared_output_classes(component, expected):
    outputs = component.component_spec.outputs
    artifacts = {k: v for k, v in outputs.items() if v.type != "String"}
    assert {k: parse_class(v.description) for k, v in artifacts.items()} == expected


def test_plain_arguments_turns_artifacts_into_paths():
    class FakeArtifact:
        path = "/tmp/x"

    assert plain_arguments({"a": 1, "b": "s", "m": FakeArtifact()}) == {
        "a": 1,
        "b": "s",
        "m": "/tmp/x",
    }


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def make_input(out: Output[Artifact]):
    import os

    os.makedirs(out.path, exist_ok=True)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def echo_arguments(site_id: str, round_index: int, model: Input[Artifact], out: Output[Artifact]):
    arguments = dict(locals())
    import json
    import os

    from components.common.kfp_args import plain_arguments

    plain = plain_arguments(arguments)
    os.makedirs(out.path, exist_ok=True)
    with open(os.path.join(out.path, "args.json"), "w") as handle:
        json.dump(plain, handle)


@pytest.mark.e2e
def test_body_pattern_passes_plain_values_and_paths_in_kfp_local(tmp_path: Path):
    @dsl.pipeline(name="echo")
    def echo():
        model = make_input().outputs["out"]
        echo_arguments(site_id="site-a", round_index=3, model=model)

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path))
    echo()
    (found,) = list(tmp_path.rglob("args.json"))
    args = json.loads(found.read_text())
    assert set(args) == {"site_id", "round_index", "model", "out"}
    assert args["site_id"] == "site-a" and args["round_index"] == 3
    assert Path(args["model"]).is_dir()
    assert args["out"] == str(found.parent)
