"""A finished local run's summary.json → the spec that reproduces it (pure)."""

from __future__ import annotations

import copy

import pytest

from pipelines.simulate.from_run import RunSummaryError, spec_from_summary

SITES = ("clinic-boston", "hospital-berlin", "hospital-paris")
SUMMARY = {
    "run_id": "parity-a6",
    "dataset": "breast_cancer",
    "settings": {
        "alpha": None,
        "rounds": 3,
        "seed": 0,
        "split": "iid",
        "pipeline_parameters": {
            "batch_size": 32.0,
            "dp_enabled": False,
            "learning_rate": 0.1,
            "local_epochs": 1.0,
            "model_name": "logreg",
            "resume": False,
            "rule": "fedavg",
            "run_id": "parity-a6",
            "seed": 0,
            "server_learning_rate": 1.0,
            "server_optimizer": "fedavg",
        },
    },
}


def test_spec_from_a_local_run_summary() -> None:
    spec = spec_from_summary(SUMMARY, SITES, "uniform")
    assert (spec.run_id, spec.rounds, spec.batch_size, spec.local_epochs) == ("parity-a6", 3, 32, 1)
    assert (spec.model_name, spec.learning_rate, spec.seed, spec.split_seed) == (
        "logreg",
        0.1,
        0,
        0,
    )
    assert spec.alpha is None and spec.site_ids == SITES and spec.weighting == "uniform"


def test_dirichlet_split_keeps_alpha() -> None:
    summary = copy.deepcopy(SUMMARY)
    summary["settings"].update(split="dirichlet", alpha=0.5, seed=4)
    summary["settings"]["pipeline_parameters"]["seed"] = 4
    spec = spec_from_summary(summary, SITES, "uniform")
    assert spec.alpha == 0.5 and spec.split_seed == 4


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("dp_enabled", True, "pipeline_parameters.dp_enabled is True"),
        ("rule", "median", "only the fedavg rule"),
        ("server_optimizer", "fedadam", "plain FedAvg server step"),
        ("server_learning_rate", 0.5, "server_learning_rate must be 1.0"),
        ("resume", True, "resumed run"),
    ],
)
def test_refuses_what_the_reference_cannot_reproduce(field: str, value, fragment: str) -> None:
    summary = copy.deepcopy(SUMMARY)
    summary["settings"]["pipeline_parameters"][field] = value
    with pytest.raises(RunSummaryError, match=fragment):
        spec_from_summary(summary, SITES, "uniform")


def test_missing_field_is_named() -> None:
    summary = copy.deepcopy(SUMMARY)
    del summary["settings"]["rounds"]
    with pytest.raises(RunSummaryError, match="missing settings.rounds"):
        spec_from_summary(summary, SITES, "uniform")
