"""initialize's seeded model: shapes from the contract, the model's tensors recorded in the
metadata, your builder refused before any site trains when it breaks the contract."""

from __future__ import annotations

import pytest

from components.domain.contract import DataContract
from components.initialize.executor import InitializeError, seeded_model
from components.train.models import ModelError
from pipelines.config.loader import contract_by_name

BUILDERS = "tests.support.user_models"


def _with_model(name: str, builder: str, **kwargs) -> DataContract:
    doc = contract_by_name(name).dict()
    doc["model"] = {"builder": builder, "kwargs": kwargs}
    return DataContract.parse_obj(doc)


def test_metadata_records_tensor_names_shapes_inputs_and_the_builder():
    contract = _with_model("diabetes", f"{BUILDERS}:small_mlp", hidden=5)
    meta = seeded_model(f"{BUILDERS}:small_mlp", contract, 0, "run-1").meta
    assert meta["tensors"] == {
        "dense/bias": [5],
        "dense/kernel": [11, 5],
        "dense_1/bias": [1],
        "dense_1/kernel": [5, 1],
    }
    assert meta["inputs"]["features"] == 11 and meta["inputs"]["names"][1] == "sex=1"
    assert meta["outputs"] == 1 and meta["task"] == "regression"
    assert meta["builder"] == {"reference": f"{BUILDERS}:small_mlp", "kwargs": {"hidden": 5}}
    builtin = seeded_model("logreg", contract_by_name("wine"), 0, "run-1").meta
    assert builtin["tensors"] == {"dense/bias": [3], "dense/kernel": [13, 3]}
    assert "builder" not in builtin


def test_a_builder_the_contract_does_not_declare_is_refused():
    with pytest.raises(InitializeError, match="not the builder the data contract 'wine'"):
        seeded_model(f"{BUILDERS}:small_mlp", contract_by_name("wine"), 0, "run-1")


@pytest.mark.parametrize(
    ("builder", "message"),
    [
        ("with_batch_norm", r"bn_after_dense \(BatchNormalization\)"),
        ("three_outputs", r"maps \(None, 30\) to \(None, 3\); the data contract needs"),
    ],
)
def test_a_builder_breaking_the_rules_fails_initialize(builder, message):
    contract = _with_model("breast_cancer", f"{BUILDERS}:{builder}")
    with pytest.raises(ModelError, match=message):
        seeded_model(f"{BUILDERS}:{builder}", contract, 0, "run-1")
