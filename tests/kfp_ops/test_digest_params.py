"""Pure parts of upload/schedule: digest contract, version description, `--param` parsing."""

from __future__ import annotations

import pytest

from pipelines.kfp_ops.digest import (
    PipelineParameter,
    PipelineYamlError,
    normalize_version_ref,
    pipeline_digest_of,
    pipeline_info_of,
    version_description,
    version_name_for,
)
from pipelines.kfp_ops.params import ParamError, parse_params

HEX = "0123456789abcdef" * 4

SPEC = f"""
pipelineInfo:
  name: federated-training
  description: "Federated training of 3 sites. digest: sha256:{HEX}"
root:
  inputDefinitions:
    parameters:
      rounds: {{parameterType: NUMBER_INTEGER, defaultValue: 3, description: rounds per run}}
      resume: {{parameterType: BOOLEAN, defaultValue: false}}
      run_id: {{parameterType: STRING, defaultValue: ''}}
---
platforms: {{kubernetes: {{}}}}
"""


def test_digest_read_from_description() -> None:
    assert pipeline_digest_of(SPEC) == f"sha256:{HEX}"
    assert pipeline_digest_of(SPEC.replace("sha256:", "")) == f"sha256:{HEX}"
    assert version_name_for(f"sha256:{HEX}") == f"sha256-{HEX}"
    assert normalize_version_ref("ABC1") == "sha256-abc1"
    assert normalize_version_ref("sha256:abc1") == "sha256-abc1"
    assert normalize_version_ref("sha256-abc1") == "sha256-abc1"
    assert normalize_version_ref("my-version") == "my-version"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (SPEC.replace("digest:", "hash:"), "has no 'digest: <sha256 hex>'"),
        (SPEC.replace(HEX, HEX[:63]), "has no 'digest: <sha256 hex>'"),
        ("a: [", "not valid YAML"),
        ("kind: Site\n", "not a compiled KFP pipeline"),
    ],
)
def test_digest_missing_names_the_file(text: str, fragment: str) -> None:
    with pytest.raises(PipelineYamlError) as err:
        pipeline_digest_of(text, "dist/x.yaml")
    assert str(err.value).startswith("dist/x.yaml: ")
    assert fragment in str(err.value)


def test_info_and_description() -> None:
    info = pipeline_info_of(SPEC)
    assert info.name == "federated-training"
    assert [p.name for p in info.parameters] == ["resume", "rounds", "run_id"]
    assert info.parameters[1] == PipelineParameter("rounds", "NUMBER_INTEGER", 3, "rounds per run")
    text = version_description(info)
    assert text.splitlines()[0] == f"fedpipe pipeline federated-training, digest sha256:{HEX}"
    assert text.splitlines()[1] == "parameters: resume=False, rounds=3, run_id=''"
    assert len(version_description(info, max_chars=40)) == 40


PARAMS = pipeline_info_of(SPEC).parameters


def test_params_typed_by_the_spec() -> None:
    assert parse_params(["rounds=5", "resume=yes", "run_id=a=b"], PARAMS) == {
        "rounds": 5,
        "resume": True,
        "run_id": "a=b",
    }


def test_params_without_spec_keep_literals() -> None:
    assert parse_params(["a=1", "b=0.5", "c=true", "d=x"], None) == {
        "a": 1,
        "b": 0.5,
        "c": True,
        "d": "x",
    }


@pytest.mark.parametrize(
    ("pairs", "fragment"),
    [
        (["rounds"], "expected key=value"),
        (["rounds=1", "rounds=2"], "given twice"),
        (["round=1"], "no such parameter; it has: resume, rounds, run_id"),
        (["rounds=1.5"], "not a valid NUMBER_INTEGER"),
        (["resume=maybe"], "not a valid BOOLEAN"),
    ],
)
def test_bad_params(pairs: list[str], fragment: str) -> None:
    with pytest.raises(ParamError) as err:
        parse_params(pairs, PARAMS)
    assert fragment in str(err.value)


def test_params_keep_their_value_rules() -> None:
    from pipelines.kfp_ops.digest import PipelineParameter

    params = (
        PipelineParameter("noise_multiplier", "NUMBER_DOUBLE", 1.5, ""),
        PipelineParameter("local_epochs", "NUMBER_INTEGER", 5, ""),
    )
    assert parse_params(["noise_multiplier=2", "local_epochs=1"], params) == {
        "noise_multiplier": 2.0,
        "local_epochs": 1,
    }
    with pytest.raises(ParamError, match=r"--param noise_multiplier=-1.0: must be a finite"):
        parse_params(["noise_multiplier=-1"], params)
    with pytest.raises(ParamError, match=r"--param local_epochs=0: must be an integer >= 1"):
        parse_params(["local_epochs=0"], params)
