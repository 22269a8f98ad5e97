"""validate's admission: what train, export and evaluate take instead of a dozen inputs (pure)."""

from __future__ import annotations

import json

import pytest

from components.common.admission import (
    RUN_FIELDS,
    admission_json,
    stage_arguments,
    validate_arguments,
)
from components.common.site_task import TaskInputError
from components.validate.site_admission import AdmissionInputs

SITE = '{"id": "s1", "role": "site"}'
POLICY = '{"id": "p1"}'
CONTRACT = '{"name": "digits"}'
RUN = {
    "run_id": "",
    "kfp_job_id": "job-9",
    "dataset": "digits",
    "rounds": 3,
    "model_name": "mlp",
    "local_epochs": 2,
    "batch_size": 16,
    "learning_rate": 0.1,
    "noise_multiplier": 1.1,
    "l2_norm_clip": 1.0,
    "dp_enabled": True,
    "dp_sampling": "poisson",
    "seed": 7,
}


class _Artifact:
    path = "/tmp/summary"


def _validate_arguments() -> dict:
    return {
        "site_id": "s1",
        "policy_digest": "d",
        "data_snapshot": "snap",
        "site_json": SITE,
        "policy_json": POLICY,
        "contract_json": CONTRACT,
        "contract_digest": "c",
        "round_index": 1,
        **RUN,
        "summary": _Artifact(),
        "admission": "/tmp/admission-file",
        "image": "ghcr.io/fedpipe/fedpipe:0.1.0",
        "rule": "fedavg",
        "coordinator_json": "{}",
    }


def test_admission_carries_specs_and_every_run_setting():
    doc = json.loads(admission_json(SITE, POLICY, RUN, CONTRACT))
    assert doc == {
        "site": {"id": "s1", "role": "site"},
        "policy": {"id": "p1"},
        "contract": {"name": "digits"},
        "run": RUN,
    }
    assert set(doc["run"]) == set(RUN_FIELDS)
    # ints stay ints (kfp.local turns ints in dict items into floats; a JSON string does not)
    assert doc["run"]["batch_size"] == 16 and isinstance(doc["run"]["batch_size"], int)


def test_admission_refuses_missing_settings():
    with pytest.raises(KeyError, match="seed"):
        admission_json(SITE, POLICY, {k: v for k, v in RUN.items() if k != "seed"}, CONTRACT)


def test_validate_gets_its_own_inputs_and_the_admission_text():
    kwargs, text = validate_arguments(_validate_arguments())
    assert kwargs == {
        "site_id": "s1",
        "policy_digest": "d",
        "data_snapshot": "snap",
        "site_json": SITE,
        "policy_json": POLICY,
        "contract_json": CONTRACT,
        "contract_digest": "c",
        "round_index": 1,
        "summary": "/tmp/summary",
        "run_id": "",
        "kfp_job_id": "job-9",
        "dataset": "digits",
        "rounds": 3,
        "batch_size": 16,
        "local_epochs": 2,
        "noise_multiplier": 1.1,
        "dp_enabled": True,
        "admission": AdmissionInputs("ghcr.io/fedpipe/fedpipe:0.1.0", "fedavg", "{}"),
    }
    assert json.loads(text)["run"]["learning_rate"] == 0.1


@pytest.mark.parametrize(
    ("stage", "expected_run"),
    [
        ("export", {"run_id": "", "kfp_job_id": "job-9"}),
        (
            "evaluate",
            {
                "run_id": "",
                "kfp_job_id": "job-9",
                "dataset": "digits",
                "model_name": "mlp",
                "contract_json": '{"name":"digits"}',
            },
        ),
    ],
)
def test_stage_arguments_unpack_the_admission(stage, expected_run):
    _, text = validate_arguments(_validate_arguments())
    args = stage_arguments(
        {"site_id": "s1", "policy_digest": "d", "round_index": 2, "admission": text}, stage
    )
    assert args == {
        "site_id": "s1",
        "policy_digest": "d",
        "round_index": 2,
        "site_json": '{"id":"s1","role":"site"}',
        "policy_json": '{"id":"p1"}',
        **expected_run,
        "audit": True,
    }


def test_train_gets_every_training_setting():
    _, text = validate_arguments(_validate_arguments())
    args = stage_arguments({"site_id": "s1", "admission": text}, "train")
    assert {k: args[k] for k in RUN if k != "rounds"} == {
        k: v for k, v in RUN.items() if k != "rounds"
    }
    assert "rounds" not in args
    assert args["contract_json"] == '{"name":"digits"}'


@pytest.mark.parametrize(
    "admission", ["not json", "[]", '{"site": {}}', '{"site": {}, "policy": {}, "run": {}}']
)
def test_a_malformed_admission_names_the_site(admission):
    with pytest.raises(TaskInputError, match="site s1: train input `admission`"):
        stage_arguments({"site_id": "s1", "admission": admission}, "train")


def test_validate_refuses_run_settings_breaking_their_rules_naming_each():
    # a run started from the Kubeflow UI's form reaches validate without the local checks
    from components.domain.run_parameters import RunParameterError

    bad = {**_validate_arguments(), "noise_multiplier": -1.0, "local_epochs": 0}
    with pytest.raises(RunParameterError) as refused:
        validate_arguments(bad)
    text = str(refused.value)
    assert text.startswith("site s1: refusing the run before anything is read: ")
    assert "run parameter local_epochs=0: must be an integer >= 1" in text
    assert "run parameter noise_multiplier=-1.0: must be a finite number > 0" in text
