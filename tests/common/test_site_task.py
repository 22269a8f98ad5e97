"""Per-site task inputs are cross-checked before a task touches the site's bucket (pure)."""

from __future__ import annotations

import pytest

from components.common.site_task import (
    TaskInputError,
    call_with_task,
    parse_site_task,
    split_task_inputs,
)
from components.domain.canonical import canonical_json, policy_digest, sha256_hex
from pipelines.config.loader import load_federation
from tests.support.paths import REPO
from tests.support.site_inputs import contract_json


@pytest.fixture(scope="module")
def fed():
    return load_federation(REPO / "sites", REPO / "policies")


def _inputs(fed, site_id: str = "hospital-berlin", policy_id: str = "eu-health", **changes):
    policy = fed.policies[policy_id]
    body = {
        "site_id": site_id,
        "policy_digest": policy_digest(policy),
        "site_json": canonical_json(fed.sites["hospital-berlin"]),
        "policy_json": canonical_json(policy),
        "run_id": "run-1",
        "kfp_job_id": "job-1",
        "round_index": 1,
    }
    return {**body, **changes}


def test_consistent_inputs_parse(fed) -> None:
    task = parse_site_task(**_inputs(fed))
    assert task.site.id == "hospital-berlin" and task.policy.id == "eu-health"
    assert task.run_id == "run-1"
    assert parse_site_task(**_inputs(fed, run_id="")).run_id == "job-1"


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"site_id": "hospital-paris"}, "site_json describes site 'hospital-berlin'"),
        ({"policy_digest": "0" * 64}, "does not match policy 'eu-health'"),
        ({"round_index": 0}, "round_index"),
        ({"run_id": "../escape"}, "not usable in object keys"),
        ({"site_json": "{}"}, "not a valid Site"),
    ],
)
def test_inconsistent_inputs_refused(fed, changes, match) -> None:
    with pytest.raises(TaskInputError, match=match):
        parse_site_task(**_inputs(fed, **changes))


def test_another_sites_policy_refused(fed) -> None:
    with pytest.raises(TaskInputError, match="governed by 'eu-health'"):
        parse_site_task(**_inputs(fed, policy_id="us-health"))


def test_coordinator_spec_refused(fed) -> None:
    inputs = _inputs(fed, site_id=fed.coordinator.id, site_json=canonical_json(fed.coordinator))
    with pytest.raises(TaskInputError, match="role is 'coordinator'"):
        parse_site_task(**inputs)


def test_empty_run_ids_refused(fed) -> None:
    with pytest.raises(TaskInputError, match="site hospital-berlin: both run_id and kfp_job_id"):
        parse_site_task(**_inputs(fed, run_id="", kfp_job_id=""))


def test_a_data_stage_gets_the_contract_and_the_sites_tables(fed) -> None:
    task = parse_site_task(
        **_inputs(fed), dataset="breast_cancer", contract_json=contract_json("breast_cancer")
    )
    data = task.site_data()
    assert data.contract.name == "breast_cancer"
    assert (data.train_uri, data.holdout_uri) == (
        fed.sites["hospital-berlin"].data.uri,
        fed.sites["hospital-berlin"].data.holdout_uri,
    )
    with pytest.raises(TaskInputError, match="built without a dataset"):
        parse_site_task(**_inputs(fed)).site_data()


@pytest.mark.parametrize(
    ("dataset", "match"),
    [("digits", "task dataset 'digits' differs"), ("nope", "task dataset 'nope' differs")],
)
def test_a_dataset_the_site_does_not_hold_is_refused(fed, dataset, match) -> None:
    with pytest.raises(TaskInputError, match=match):
        parse_site_task(**_inputs(fed), dataset=dataset, contract_json=contract_json("digits"))


def test_the_contract_must_come_with_the_task_and_match_its_digest(fed) -> None:
    text = contract_json("breast_cancer")
    with pytest.raises(TaskInputError, match="lack contract_json"):
        parse_site_task(**_inputs(fed), dataset="breast_cancer")
    with pytest.raises(TaskInputError, match="is contract 'digits'"):
        parse_site_task(
            **_inputs(fed),
            dataset="breast_cancer",
            contract_json=contract_json("digits"),
        )
    edited = text.replace('"min_train":30', '"min_train":3')
    with pytest.raises(TaskInputError, match="not the compiled data contract"):
        parse_site_task(
            **_inputs(fed),
            dataset="breast_cancer",
            contract_json=edited,
            contract_digest=sha256_hex(text),
        )
    task = parse_site_task(
        **_inputs(fed),
        dataset="breast_cancer",
        contract_json=text,
        contract_digest=sha256_hex(text),
    )
    assert task.site_data().contract.min_rows == 30


def test_a_components_inputs_split_into_one_task_and_its_paths(fed) -> None:
    inputs = {
        **_inputs(fed),
        "data_snapshot": "snap-1",
        "dataset": "breast_cancer",
        "contract_json": contract_json("breast_cancer"),
        "batch_size": 16,
        "dp_enabled": True,
        "validation": "/in/validation",
        "local_model": "/out/local_model",
    }
    task, paths = split_task_inputs(inputs)
    assert paths == {"validation": "/in/validation", "local_model": "/out/local_model"}
    assert (task.settings.batch_size, task.settings.dp_enabled, task.settings.seed) == (
        16,
        True,
        None,
    )
    assert task.policy_digest == inputs["policy_digest"] and task.data is not None
    with pytest.raises(TaskInputError, match=r"lack the settings \['seed'\]"):
        task.require("batch_size", "seed")
    seen = call_with_task(lambda t, **kw: (t.site_id, kw), inputs)
    assert seen == ("hospital-berlin", paths)


def test_missing_common_inputs_are_named(fed) -> None:
    inputs = {k: v for k, v in _inputs(fed).items() if k != "policy_json"}
    with pytest.raises(TaskInputError, match=r"lack \['data_snapshot', 'policy_json'\]"):
        split_task_inputs(inputs)
